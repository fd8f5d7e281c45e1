//! `openssl verify`: does a certificate chain to our CA, for this purpose and this name?
//!
//! Besides the OpenSSL code, every failure carries a plain-language reason ([`explain`]), which
//! the server's logs and the client's diagnostics reuse.

use std::net::IpAddr;
use std::path::PathBuf;

use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509PurposeId, X509Ref, X509StoreContext, X509};

use crate::error::{CryptoContext, Result};
use crate::inspect;

/// What a certificate is checked for (`openssl verify -purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Purpose {
    /// `-purpose sslserver`: EKU serverAuth.
    Server,
    /// `-purpose sslclient`: EKU clientAuth.
    Client,
}

/// Options of a verification.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Required EKU, if any.
    pub purpose: Option<Purpose>,
    /// Host name or IP the certificate must name in its subjectAltName.
    pub host: Option<String>,
    /// A CRL to check the leaf against (`-crl_check -CRLfile`).
    pub crl: Option<PathBuf>,
    /// Verify as of this Unix time instead of now.
    pub at: Option<i64>,
}

/// Why verification failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// OpenSSL's `X509_V_ERR_*` code (0 for our own checks).
    pub code: i32,
    /// OpenSSL's text for the code.
    pub openssl: String,
    /// The reason in plain words, with a hint.
    pub plain: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [OpenSSL {}: {}]",
            self.plain, self.code, self.openssl
        )
    }
}

/// Verifies `cert` (with intermediates `chain`) against the trust anchors `cas`, strictly
/// (`-x509_strict`, `-auth_level 2`). `Ok(Err(..))` is a certificate that does not pass;
/// `Err` is a failure to run the check at all (an unreadable CRL, say).
pub fn verify(
    cert: &X509Ref,
    chain: &[X509],
    cas: &[X509],
    options: &Options,
) -> Result<std::result::Result<(), Failure>> {
    let step = "verify";
    let mut store = X509StoreBuilder::new().step(step)?;
    for ca in cas {
        store.add_cert(ca.clone()).step(step)?;
    }
    let mut param = X509VerifyParam::new().step(step)?;
    let mut flags = X509VerifyFlags::X509_STRICT;
    param.set_auth_level(2);
    if let Some(p) = options.purpose {
        param
            .set_purpose(match p {
                Purpose::Server => X509PurposeId::SSL_SERVER,
                Purpose::Client => X509PurposeId::SSL_CLIENT,
            })
            .step(step)?;
    }
    if let Some(host) = &options.host {
        match host.parse::<IpAddr>() {
            Ok(ip) => param.set_ip(ip).step(step)?,
            Err(_) => param.set_host(host).step(step)?,
        }
    }
    if let Some(at) = options.at {
        param.set_time(at);
    }
    if let Some(crl) = &options.crl {
        let lookup = store.add_lookup(X509Lookup::file()).step(step)?;
        lookup
            .load_crl_file(crl, openssl::ssl::SslFiletype::PEM)
            .map_err(|source| crate::Error::Malformed {
                what: "CRL",
                path: crl.clone(),
                detail: format!("cannot load it ({source})"),
            })?;
        flags |= X509VerifyFlags::CRL_CHECK;
    }
    param.set_flags(flags).step(step)?;
    store.set_param(&param).step(step)?;
    let store = store.build();

    let mut untrusted = Stack::new().step(step)?;
    for c in chain {
        untrusted.push(c.clone()).step(step)?;
    }
    let mut ctx = X509StoreContext::new().step(step)?;
    let outcome = ctx
        .init(&store, cert, &untrusted, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error()))
        })
        .step(step)?;
    let (ok, err) = outcome;
    if !ok {
        return Ok(Err(Failure {
            code: err.as_raw(),
            openssl: err.error_string().to_owned(),
            plain: explain(err.as_raw()).to_owned(),
        }));
    }
    // OpenSSL accepts a CA:TRUE certificate as a TLS leaf; rustls-webpki does not, nor do we.
    if options.purpose.is_some() && inspect::is_ca(&cert.to_der().step(step)?) {
        return Ok(Err(Failure {
            code: 0,
            openssl: "ok".into(),
            plain: "the certificate is a CA certificate (CA:TRUE), not a server or client \
                    certificate: issue a leaf with `pki issue`"
                .into(),
        }));
    }
    Ok(Ok(()))
}

/// A plain-language reason, with what to do, for an OpenSSL `X509_V_ERR_*` code.
pub fn explain(code: i32) -> &'static str {
    match code {
        2 | 20 | 21 => "not issued by the trusted CA (wrong CA file, or the CA was regenerated since): use the ca.crt that signed it",
        4 | 7 => "the signature does not verify: the certificate was altered or signed by another key",
        3 => "no CRL for the CA was found: run `pki crl`",
        8 => "the CRL's signature does not verify: it was not made by this CA",
        9 => "not valid yet: its notBefore is in the future (check both clocks)",
        10 => "expired: issue a new certificate",
        11 => "the CRL is not valid yet (check the clocks)",
        12 => "the CRL is out of date (past its nextUpdate): run `pki crl`",
        18 => "self-signed, not issued by the CA: issue it with `pki issue`",
        19 => "the chain ends in a self-signed certificate that is not the trusted CA",
        22 | 25 => "the chain is longer than allowed",
        23 => "revoked by the CA",
        24 | 79 => "a certificate used as issuer is not a valid CA certificate",
        26 => "not issued for this use: its extendedKeyUsage lacks serverAuth/clientAuth",
        32 => "the issuer may not sign certificates (keyUsage lacks keyCertSign)",
        35 => "the issuer may not sign CRLs (keyUsage lacks cRLSign)",
        37 => "the issuer is not a CA",
        62 => "the host name is not in the certificate's subjectAltName: reissue with --san",
        63 => "the e-mail address is not in the certificate's subjectAltName",
        64 => "the IP address is not in the certificate's subjectAltName: reissue with --san IP:...",
        66 => "the certificate's key is too small (OpenSSL 3 wants RSA >= 2048 bits)",
        67 => "the CA's key is too small (OpenSSL 3 wants RSA >= 2048 bits)",
        68 => "the CA signed with a weak hash (SHA-1 or MD5)",
        85 => "the certificate has no authorityKeyIdentifier (strict verifiers refuse it)",
        89 => "the CA's basicConstraints is not marked critical",
        92 => "the CA certificate has no keyUsage",
        _ => "the certificate does not verify",
    }
}
