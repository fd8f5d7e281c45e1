//! `openssl verify`: does a certificate chain to our CA, for this purpose and this name?
//!
//! Besides the OpenSSL code, every failure carries its typed [`Problem`] and that problem's
//! plain-language reason, from the table the server's logs and the client's diagnosis share.

use std::net::IpAddr;
use std::path::PathBuf;

use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509PurposeId, X509Ref, X509StoreContext, X509};

use crate::error::{CryptoContext, Result};
use crate::inspect;
pub use crate::problem::Problem;

/// What a certificate is checked for (`openssl verify -purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
    /// The problem, typed.
    pub problem: Problem,
    /// OpenSSL's `X509_V_ERR_*` code (0 for our own checks).
    pub code: i32,
    /// OpenSSL's text for the code.
    pub openssl: String,
    /// The reason in plain words, with a hint ([`Problem::explain`]).
    pub plain: String,
}

impl Failure {
    fn new(problem: Problem, code: i32, openssl: &str) -> Failure {
        Failure {
            problem,
            code,
            openssl: openssl.to_owned(),
            plain: problem.explain().to_owned(),
        }
    }
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
            .map_err(|source| crate::error::Error::Malformed {
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
        // A refusal with X509_V_OK would be a bug of OpenSSL's; it still is a refusal.
        let problem = Problem::of(err).unwrap_or(Problem::Other(err.as_raw()));
        return Ok(Err(Failure::new(problem, err.as_raw(), err.error_string())));
    }
    // OpenSSL accepts a CA:TRUE certificate as a TLS leaf; rustls-webpki does not, nor do we.
    if options.purpose.is_some() && inspect::is_ca(&cert.to_der().step(step)?) {
        return Ok(Err(Failure::new(Problem::CaAsLeaf, 0, "ok")));
    }
    Ok(Ok(()))
}

/// A plain-language reason, with what to do, for an OpenSSL `X509_V_ERR_*` code: the words of
/// [`Problem::explain`] for a raw code (what an OpenSSL verify callback hands over).
pub fn explain(code: i32) -> &'static str {
    Problem::from_code(code).map_or(Problem::Other(code).explain(), Problem::explain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_wrapper_keeps_the_servers_words() {
        assert_eq!(explain(23), "revoked by the CA");
        assert_eq!(explain(12), Problem::CrlExpired.explain());
        assert_eq!(explain(0), "the certificate does not verify");
        assert_eq!(explain(9999), "the certificate does not verify");
    }
}
