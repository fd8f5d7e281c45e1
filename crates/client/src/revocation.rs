//! Is the server's certificate revoked? When it names a CRL distribution point, the CRL there
//! is fetched (within the timeout), its signature checked against our CA, kept until its
//! nextUpdate, and the certificate's serial looked up, inside the handshake's verification.
//!
//! A revoked certificate fails the handshake; the facts (when, why) are kept for the failure's
//! explanation. A CRL that cannot be had is, by default, a warning ([`CrlCheck::Soft`], as
//! browsers do: an unreachable CRL server must not take down every client); `--crl-check hard`
//! refuses instead (SECURITY.md says when to choose which).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use openssl::x509::{
    CrlStatus, ReasonCode, X509Crl, X509Ref, X509StoreContextRef, X509VerifyResult, X509,
};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// The largest CRL fetched (ours are far smaller; a million entries is about 40 MiB).
const MAX_CRL_BYTES: usize = 16 << 20;

/// What to do about the server certificate's revocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CrlCheck {
    /// Check when the certificate names a CRL; a CRL that cannot be had is a warning.
    #[default]
    Soft,
    /// Check, and refuse the server when its CRL cannot be had.
    Hard,
    /// Do not check.
    Off,
}

/// Why the server's certificate was refused by this check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its CA revoked it.
    Revoked {
        /// Its serial (hex).
        serial: String,
        /// When, Unix seconds.
        at: i64,
        /// The reason in the CRL entry (`keyCompromise`), if it gives one.
        reason: Option<&'static str>,
    },
    /// `--crl-check hard`, and the CRL could not be had.
    NoCrl {
        /// Where it was looked for.
        url: String,
        /// Why it could not be used.
        why: String,
    },
}

/// The CRLs fetched by this process, by URL, with the refusal of the last handshake.
#[derive(Default)]
struct Cache {
    crls: Mutex<HashMap<String, Vec<u8>>>,
    refusal: Mutex<Option<Refusal>>,
}

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

/// Why the last handshake's check refused the server, if it did.
pub fn last_refusal() -> Option<Refusal> {
    cache()
        .refusal
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The verify callback's work at each certificate: nothing but the leaf, and only when OpenSSL
/// accepted it, is checked here.
pub fn verify(
    preverified: bool,
    ctx: &mut X509StoreContextRef,
    mode: CrlCheck,
    cas: &[X509],
    timeout: Duration,
) -> bool {
    if !preverified || ctx.error_depth() != 0 || mode == CrlCheck::Off {
        return preverified;
    }
    let Some(leaf) = ctx.current_cert() else {
        return preverified;
    };
    let Some(url) = distribution_point(leaf) else {
        return true;
    };
    let refusal = match crl_for(&url, cas, timeout) {
        Ok(crl) => revoked(&crl, leaf),
        Err(why) if mode == CrlCheck::Hard => Some(Refusal::NoCrl { url, why }),
        Err(why) => {
            eprintln!(
                "client: warning: the server's certificate names the CRL {url}, which could not \
                 be checked ({why}); going on without it (--crl-check hard refuses instead)"
            );
            None
        }
    };
    let refused = refusal.is_some();
    *cache()
        .refusal
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = refusal;
    if refused {
        ctx.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
    }
    !refused
}

/// The first URI of the certificate's crlDistributionPoints (http or https).
fn distribution_point(cert: &X509Ref) -> Option<String> {
    let der = cert.to_der().ok()?;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&der).ok()?;
    parsed.extensions().iter().find_map(|ext| {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            return None;
        };
        points.iter().find_map(|p| match &p.distribution_point {
            Some(DistributionPointName::FullName(names)) => names.iter().find_map(|n| match n {
                GeneralName::URI(u) if u.starts_with("http") => Some((*u).to_owned()),
                _ => None,
            }),
            _ => None,
        })
    })
}

/// The CRL at `url`: from this process's cache while it is current, else fetched and checked
/// (signed by one of our CAs, not past its nextUpdate).
fn crl_for(url: &str, cas: &[X509], timeout: Duration) -> Result<X509Crl, String> {
    let now = x509::time::now();
    let current = |crl: &X509Crl| {
        crl.next_update()
            .and_then(|t| x509::time::unix_time(t).ok())
            .is_some_and(|next| next > now)
    };
    let cached = cache()
        .crls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(url)
        .and_then(|der| X509Crl::from_der(der).ok());
    if let Some(crl) = cached.filter(|c| current(c)) {
        return Ok(crl);
    }
    let bytes = fetch(url, cas, timeout)?;
    let crl = X509Crl::from_der(&bytes)
        .or_else(|_| X509Crl::from_pem(&bytes))
        .map_err(|_| "the answer is not a CRL".to_owned())?;
    let signed = cas.iter().any(|ca| {
        ca.public_key()
            .is_ok_and(|k| crl.verify(&k).unwrap_or(false))
    });
    if !signed {
        return Err("the CRL is not signed by our CA".into());
    }
    if !current(&crl) {
        return Err("the CRL is past its nextUpdate".into());
    }
    cache()
        .crls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(url.to_owned(), crl.to_der().map_err(|e| e.to_string())?);
    Ok(crl)
}

/// The refusal for `leaf` when `crl` lists it.
fn revoked(crl: &X509Crl, leaf: &X509Ref) -> Option<Refusal> {
    let CrlStatus::Revoked(entry) = crl.get_by_serial(leaf.serial_number()) else {
        return None;
    };
    let reason = entry
        .extension::<ReasonCode>()
        .ok()
        .flatten()
        .and_then(|(_, r)| r.get_i64().ok())
        .and_then(reason_name);
    Some(Refusal::Revoked {
        serial: x509::cert::serial_hex(leaf).unwrap_or_default(),
        at: x509::time::unix_time(entry.revocation_date()).unwrap_or_default(),
        reason,
    })
}

/// RFC 5280's CRLReason, as `openssl ca -crl_reason` spells it.
fn reason_name(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "CACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        9 => "privilegeWithdrawn",
        10 => "AACompromise",
        _ => return None,
    })
}

/// GET `url` within `timeout` (an https URL is checked against our CA, TLS 1.2+). The
/// handshake that asks is still going on, on this thread's runtime: the fetch gets a thread
/// and a runtime of its own.
fn fetch(url: &str, cas: &[X509], timeout: Duration) -> Result<Vec<u8>, String> {
    let (url, cas) = (url.to_owned(), cas.to_vec());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let client = fetcher(&cas, timeout)?;
            let mut res = client.get(&url).send().await.map_err(|e| e.to_string())?;
            if !res.status().is_success() {
                return Err(format!("HTTP {}", res.status().as_u16()));
            }
            let body = res
                .body()
                .limit(MAX_CRL_BYTES)
                .await
                .map_err(|e| e.to_string())?;
            Ok(body.to_vec())
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the fetch crashed".into()))
}

fn fetcher(cas: &[X509], timeout: Duration) -> Result<awc::Client, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| e.to_string())?;
    for ca in cas {
        b.cert_store_mut()
            .add_cert(ca.clone())
            .map_err(|e| e.to_string())?;
    }
    Ok(awc::Client::builder()
        .connector(
            awc::Connector::new()
                .openssl(b.build())
                .timeout(timeout)
                .handshake_timeout(timeout),
        )
        .timeout(timeout)
        .finish())
}
