//! What the client can check of its own certificate without the server: its dates, its
//! extendedKeyUsage, and whether it chains to the CA file we hold. The diagnosis weighs a
//! server's alert against these facts (a "certificate expired" alert also means "my CRL is past
//! its nextUpdate"), and `diagnose` lists them.

use std::path::{Path, PathBuf};

use openssl::x509::{X509Ref, X509};
use x509::verify::{Options, Problem, Purpose};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Failure;
use crate::facts::{dates, CertSummary};
use crate::tls::{self, TlsOptions};

/// <openssl/x509_vfy.h>: "unspecified certificate verification error".
const X509_V_ERR_UNSPECIFIED: i32 = 1;

/// Where a certificate stands against the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dates {
    /// Between notBefore and notAfter.
    Valid,
    /// Before notBefore.
    NotYetValid,
    /// After notAfter.
    Expired,
}

/// How our certificate reached us: what decides the advice for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Issuance {
    /// Files from `pki issue` (or a PKCS#12 bundle, or anything `client` did not write): a new
    /// one comes from `pki`.
    #[default]
    Files,
    /// Written by `client enroll`/`client renew` over EST (the pair's symlinks say so): a new
    /// one comes from the online CA, with a new token once this one cannot renew itself.
    Est,
}

/// Our client certificate, checked locally.
#[derive(Debug, Clone)]
pub struct OwnCert {
    /// Where it came from.
    pub source: String,
    /// Its summary (subject, dates, days left).
    pub summary: CertSummary,
    /// notBefore and notAfter, Unix seconds.
    pub validity: (i64, i64),
    /// Whether its extendedKeyUsage includes clientAuth.
    pub client_auth: bool,
    /// The CA file it was checked against.
    pub ca_file: PathBuf,
    /// Whether it verifies, as a client certificate, against that CA file.
    pub chain: Result<(), Problem>,
    /// How it reached us.
    pub issuance: Issuance,
}

impl OwnCert {
    /// Checks `leaf` (with intermediates `chain`) against `cas`, read from `ca_file`.
    pub fn check(leaf: &X509Ref, chain: &[X509], cas: &[X509], ca_file: &Path) -> OwnCert {
        let options = Options {
            purpose: Some(Purpose::Client),
            ..Options::default()
        };
        let chain = match x509::verify::verify(leaf, chain, cas, &options) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => Err(f.problem),
            // The check could not run (no memory, say): nothing is known.
            Err(_) => Err(Problem::Other(X509_V_ERR_UNSPECIFIED)),
        };
        OwnCert {
            source: String::new(),
            summary: CertSummary::of(leaf),
            validity: dates(leaf),
            client_auth: has_client_auth(leaf),
            ca_file: ca_file.to_owned(),
            chain,
            issuance: Issuance::Files,
        }
    }

    /// Loads the certificate of `options.identity` and checks it against `options.ca`.
    /// `Ok(None)` when we present none.
    pub fn load(options: &TlsOptions) -> Result<Option<OwnCert>, Failure> {
        let Some(id) = tls::load_identity(&options.identity)? else {
            return Ok(None);
        };
        let cas = x509::cert::load_certs("CA certificate", &options.ca)
            .map_err(|e| tls::local_file(e, "pass the CA's ca.crt with --ca"))?;
        let mut own = OwnCert::check(&id.chain[0], &id.chain[1..], &cas, &options.ca);
        own.source = id.source;
        if let tls::Identity::Pem { cert, key } = &options.identity {
            let pair = crate::est::pair::Pair::new(cert.clone(), key.clone());
            if pair.is_ok_and(|p| p.written_by_est()) {
                own.issuance = Issuance::Est;
            }
        }
        Ok(Some(own))
    }

    /// Its dates at Unix time `now`.
    pub fn dates(&self, now: i64) -> Dates {
        match self.validity {
            (not_before, _) if now < not_before => Dates::NotYetValid,
            (_, not_after) if now > not_after => Dates::Expired,
            _ => Dates::Valid,
        }
    }
}

fn has_client_auth(cert: &X509Ref) -> bool {
    let der = cert.to_der().unwrap_or_default();
    X509Certificate::from_der(&der)
        .ok()
        .and_then(|(_, c)| {
            c.extended_key_usage()
                .ok()
                .flatten()
                .map(|e| e.value.client_auth)
        })
        .unwrap_or(false)
}
