//! The device side of EST (RFC 7030): `client enroll` and `client renew`.
//!
//! - [`enroll`]: makes a key here (never sent), sends only a PKCS#10 request with a one-time
//!   token as HTTP Basic credentials, checks that the certificate it gets chains to our CA and
//!   holds our key, and writes the pair.
//! - [`renew`]: the same through `simplereenroll`, authenticated by the certificate being
//!   renewed (as the TLS client certificate), with a new key and the same subject and names.
//! - [`daemon`]: renews at 2/3 of the lifetime ([`schedule`]), runs a hook after each renewal,
//!   backs off while the CA is down, and stops (an error) when the certificate expired or the
//!   CA refuses it for good: it never keeps running on an expired certificate.
//!
//! Every pair is written by [`pair::Pair::write`]: the certificate and key on disk always
//! belong together, whenever the process stops.

mod answer;
pub mod pair;
pub mod schedule;

use std::path::PathBuf;
use std::time::Duration;

use awc::http::Method;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Req, X509};
use x509::KeyAlgorithm;

use crate::error::Failure;
use crate::tls::{CrlCheck, Identity, TlsOptions};
use crate::Client;
use pair::Pair;
use schedule::{Backoff, Step, Window};

/// The path of EST under a server (RFC 7030 §3.2.2).
pub const WELL_KNOWN: &str = "/.well-known/est";

/// The longest the daemon sleeps before it looks at the clock again.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Why an EST exchange failed; [`EstError::permanent`] tells a daemon to stop or to retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EstError {
    /// The CA could not be reached, or the TLS handshake failed (the failure explains it).
    #[error("{0}")]
    Unreachable(Failure),
    /// The CA answered with an error: its status and its one-line reason.
    #[error("the CA refused (HTTP {status}): {reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The CA's reason.
        reason: String,
        /// When it said a retry may succeed (`Retry-After`, seconds).
        retry_after: Option<u64>,
    },
    /// The CA answered 200 with something that is not a certificate for our key from our CA.
    #[error("the CA's answer cannot be used: {0}")]
    BadAnswer(String),
    /// A local file or argument.
    #[error("{0}")]
    Local(String),
    /// The certificate expired before it could be renewed.
    #[error("the certificate {cert} expired on {when}: it can no longer renew itself; enroll again with a new token (`pki token create`)")]
    Expired {
        /// The certificate file.
        cert: String,
        /// Its notAfter, as a date.
        when: String,
    },
}

impl EstError {
    /// True when retrying cannot help: the CA refused for good, the certificate expired, or
    /// our files are wrong. A CA that is down, busy (503) or slow (408, 429) is worth a retry.
    pub fn permanent(&self) -> bool {
        match self {
            EstError::Unreachable(_) | EstError::BadAnswer(_) => false,
            EstError::Refused { status, .. } => {
                (400..500).contains(status) && !matches!(status, 408 | 429)
            }
            EstError::Local(_) | EstError::Expired { .. } => true,
        }
    }

    /// When the CA said to come back (`Retry-After` of a 503 or 429), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EstError::Refused {
                retry_after: Some(s),
                ..
            } => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }

    /// The process exit code: 1 refused, 2 local, 3 expired, 19 an unusable answer, else
    /// the failure class of an unreachable CA.
    pub fn exit_code(&self) -> u8 {
        match self {
            EstError::Unreachable(f) => f.class.exit_code(),
            EstError::Refused { .. } => 1,
            EstError::Local(_) => 2,
            EstError::Expired { .. } => 3,
            EstError::BadAnswer(_) => 19,
        }
    }
}

/// A one-time enrollment token; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where the CA is and where the device's files are.
#[derive(Debug, Clone)]
pub struct EstOptions {
    /// The CA: `https://host:port`, or a full EST path (`https://host:port/.well-known/est`).
    pub url: String,
    /// The CA certificate (root) the CA's own certificate, and ours, must chain to.
    pub ca: PathBuf,
    /// The device's certificate and key.
    pub pair: Pair,
    /// Verify the CA as this name instead of the URL's host.
    pub server_name: Option<String>,
    /// Limit for connecting, the handshake and each request.
    pub timeout: Duration,
    /// Key type of new keys [default: the old key's type, else EC P-256].
    pub key_type: Option<KeyAlgorithm>,
}

/// What the daemon does besides renewing.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Run with `sh -c` after each renewal (with `EST_CERT`, `EST_KEY`, `EST_SERIAL` set).
    pub exec: Option<String>,
    /// First wait after a failure.
    pub retry_min: Duration,
    /// Longest wait after failures, and the pause after a renewal that left a certificate
    /// due at once.
    pub retry_max: Duration,
    /// Have the CA revoke each superseded certificate, after the hook ran.
    pub revoke_old: bool,
}

/// A certificate just written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// Its serial (hex).
    pub serial: String,
    /// Its subject, one-line form.
    pub subject: String,
    /// Its validity.
    pub window: Window,
    /// After a renewal, the certificate it replaced, and what became of it.
    pub superseded: Option<Superseded>,
}

/// The certificate a renewal replaced on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superseded {
    /// Its serial (hex).
    pub serial: String,
    /// Its notAfter, Unix seconds.
    pub not_after: i64,
    /// Whether the CA has revoked it.
    pub fate: Fate,
}

/// What became of a superseded certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Not asked to revoke it: valid until its notAfter (RFC 7030 has no revocation).
    Kept,
    /// Revoked as superseded (`--revoke-old`), now or by an earlier request.
    Revoked,
    /// `--revoke-old` was asked and the CA could not do it: why.
    NotRevoked(String),
}

impl Superseded {
    /// What became of it, and how to end it early, in one sentence.
    pub fn plain(&self) -> String {
        let valid = |why: &str| {
            format!(
                "the old certificate (serial {}) was not revoked{why}: it stays valid until {}; \
                 to end it now, run `client renew --revoke-old` at the next renewal, or the \
                 CA's operator runs `pki revoke {} --reason superseded`",
                self.serial,
                x509::time::date(self.not_after),
                self.serial
            )
        };
        match &self.fate {
            Fate::Kept => valid(""),
            Fate::Revoked => format!(
                "the old certificate (serial {}) is revoked (superseded): the CA's CRL lists it",
                self.serial
            ),
            Fate::NotRevoked(why) => valid(&format!(" ({why})")),
        }
    }
}

/// Asks the CA to revoke, as superseded, the certificate the pair on disk (just renewed)
/// replaced: the new certificate authenticates the request and is all it says.
pub async fn revoke_superseded(o: &EstOptions, old: &mut Superseded) {
    let identity = Identity::Pem {
        cert: o.pair.cert.clone(),
        key: o.pair.key.clone(),
    };
    let asked = async {
        let client = est_client(o, identity)?;
        let answer = client
            .est(Method::POST, "/revoke-superseded", None, None)
            .await
            .map_err(EstError::Unreachable)?;
        if answer.status == 200 {
            Ok(())
        } else {
            Err(answer.refused())
        }
    };
    old.fate = match asked.await {
        Ok(()) => Fate::Revoked,
        Err(e) => Fate::NotRevoked(e.to_string()),
    };
}

/// `client enroll`: a new key, a request for `name`, the token as Basic credentials.
pub async fn enroll(
    o: &EstOptions,
    name: &str,
    token: &Token,
    force: bool,
) -> Result<Enrolled, EstError> {
    if o.pair.exists() && !force {
        return Err(EstError::Local(format!(
            "{} exists already: renew it (`client renew`), or pass --force to enroll anew",
            o.pair.cert.display()
        )));
    }
    let name = x509::Name::parse(name).map_err(|e| EstError::Local(e.to_string()))?;
    let key = new_key(o.key_type.unwrap_or_default())?;
    let subject = x509::Subject::new(x509::Profile::Client.default_organization(), name.as_str())
        .to_x509_name()
        .map_err(|e| EstError::Local(e.to_string()))?;
    let csr = request(&key, &subject, &[])?;
    let client = est_client(o, Identity::None)?;
    let basic = (name.as_str(), token.0.as_str());
    let cert = exchange(&client, o, "simpleenroll", &csr, Some(basic)).await?;
    store(&client, o, &cert, &key).await
}

/// `client renew`: a new key, a request with the current subject and names, authenticated by
/// the current certificate.
pub async fn renew(o: &EstOptions) -> Result<Enrolled, EstError> {
    let (current, old_key) = current(o)?;
    let window = window_of(&current)?;
    if x509::time::now() >= window.not_after {
        return Err(expired(o, window));
    }
    let alg = o
        .key_type
        .or_else(|| KeyAlgorithm::of(&old_key))
        .unwrap_or_default();
    let key = new_key(alg)?;
    let sans: Vec<String> = x509::identity::ClientIdentity::from_cert(&current)
        .map(|id| id.sans)
        .unwrap_or_default();
    let csr = request(&key, current.subject_name(), &sans)?;
    let identity = Identity::Pem {
        cert: o.pair.cert.clone(),
        key: o.pair.key.clone(),
    };
    let client = est_client(o, identity)?;
    let cert = exchange(&client, o, "simplereenroll", &csr, None).await?;
    let mut new = store(&client, o, &cert, &key).await?;
    new.superseded = Some(Superseded {
        serial: x509::cert::serial_hex(&current).unwrap_or_default(),
        not_after: window.not_after,
        fate: Fate::Kept,
    });
    Ok(new)
}

/// Where the current certificate stands now: the next step, its window, when it is due.
pub fn step_now(o: &EstOptions) -> Result<(Step, Window, i64), EstError> {
    let (cert, _) = current(o)?;
    let w = window_of(&cert)?;
    let spread = schedule::spread(&x509::cert::serial_hex(&cert).unwrap_or_default());
    let step = schedule::next(x509::time::now(), w, spread, MAX_WAIT);
    Ok((step, w, w.due_at(spread)))
}

/// `client renew --daemon`: renews whenever due, for as long as it can. Returns only when
/// it must stop: the certificate expired, the CA refused it for good, or the files are
/// unusable.
pub async fn daemon(o: &EstOptions, d: &DaemonOptions) -> EstError {
    let mut backoff = Backoff::new(d.retry_min, d.retry_max);
    let mut announced = None;
    loop {
        let (step, window, due) = match step_now(o) {
            Ok(s) => s,
            Err(e) => return e,
        };
        match step {
            Step::Expired => return expired(o, window),
            Step::Wait(wait) => {
                if announced != Some(window) {
                    announced = Some(window);
                    say(&format!(
                        "{} valid until {}; renews after {}",
                        o.pair.cert.display(),
                        x509::time::date(window.not_after),
                        x509::time::date(due)
                    ));
                }
                tokio::time::sleep(wait).await;
            }
            Step::Renew => match renew(o).await {
                Ok(mut new) => {
                    backoff.reset();
                    say(&format!(
                        "renewed: serial {} valid until {}",
                        new.serial,
                        x509::time::date(new.window.not_after),
                    ));
                    run_hook(d.exec.as_deref(), o, &new).await;
                    end_superseded(o, &mut new, d.revoke_old).await;
                    if let Some(old) = &new.superseded {
                        say(&old.plain());
                    }
                    pause_if_due_at_once(&new, backoff.max()).await;
                }
                Err(e) if e.permanent() => return e,
                Err(e) => {
                    let left = u64::try_from(window.not_after - x509::time::now()).unwrap_or(0);
                    let wait = backoff.after_failure(
                        Duration::from_secs(left),
                        x509::time::random_unit(),
                        e.retry_after(),
                    );
                    say(&format!(
                        "renewal failed: {e}; retrying in {} (the certificate is valid until {})",
                        humanize(wait),
                        x509::time::date(window.not_after)
                    ));
                    tokio::time::sleep(wait).await;
                }
            },
        }
    }
}

/// After the hook (so whatever serves the pair has moved to the new certificate): the old
/// one revoked, when asked.
pub async fn end_superseded(o: &EstOptions, new: &mut Enrolled, revoke_old: bool) {
    if let (true, Some(old)) = (revoke_old, new.superseded.as_mut()) {
        revoke_superseded(o, old).await;
    }
}

/// A successor that is due the moment it arrives means this host's clock runs ahead of the
/// CA's (or lifetimes are tiny): renewing again would loop every few seconds.
async fn pause_if_due_at_once(new: &Enrolled, pause: Duration) {
    let due = schedule::next(
        x509::time::now(),
        new.window,
        schedule::spread(&new.serial),
        MAX_WAIT,
    );
    if due == Step::Renew {
        say(&format!(
            "the new certificate is already due by this host's clock (valid from {}): is the \
             clock ahead of the CA's? next try in {}",
            x509::time::date(new.window.not_before),
            humanize(pause)
        ));
        tokio::time::sleep(pause).await;
    }
}

/// Runs the hook; its failure is reported, the new pair stays (it is valid).
pub async fn run_hook(exec: Option<&str>, o: &EstOptions, new: &Enrolled) {
    let Some(cmd) = exec else {
        return;
    };
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .env("EST_CERT", &o.pair.cert)
        .env("EST_KEY", &o.pair.key)
        .env("EST_SERIAL", &new.serial);
    let status = actix_web::rt::task::spawn_blocking(move || c.status()).await;
    match status {
        Ok(Ok(s)) if s.success() => say(&format!("hook ran: {cmd}")),
        Ok(Ok(s)) => say(&format!(
            "hook {cmd:?} failed ({s}); the new certificate is in place"
        )),
        Ok(Err(e)) => say(&format!("hook {cmd:?} did not start: {e}")),
        Err(e) => say(&format!("hook {cmd:?} did not run: {e}")),
    }
}

/// One line on stderr with the time (a daemon's log).
pub fn say(line: &str) {
    eprintln!("{} client: {line}", x509::time::date(x509::time::now()));
}

fn humanize(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

fn expired(o: &EstOptions, w: Window) -> EstError {
    EstError::Expired {
        cert: o.pair.cert.display().to_string(),
        when: x509::time::date(w.not_after),
    }
}

fn local(e: impl std::fmt::Display) -> EstError {
    EstError::Local(e.to_string())
}

fn new_key(alg: KeyAlgorithm) -> Result<PKey<Private>, EstError> {
    x509::key::generate(alg).map_err(local)
}

/// The current certificate (leaf) and key.
fn current(o: &EstOptions) -> Result<(X509, PKey<Private>), EstError> {
    if !o.pair.exists() {
        return Err(EstError::Local(format!(
            "no certificate at {}: enroll first (`client enroll --est URL --token …`)",
            o.pair.cert.display()
        )));
    }
    let loaded = crate::tls::load_identity(&Identity::Pem {
        cert: o.pair.cert.clone(),
        key: o.pair.key.clone(),
    })
    .map_err(|f| EstError::Local(f.to_string()))?
    .ok_or_else(|| EstError::Local("no certificate".into()))?;
    let leaf = loaded
        .chain
        .into_iter()
        .next()
        .ok_or_else(|| local("no certificate"))?;
    Ok((leaf, loaded.key))
}

fn window_of(cert: &X509) -> Result<Window, EstError> {
    let t = |a| x509::time::unix_time(a).map_err(local);
    Ok(Window {
        not_before: t(cert.not_before())?,
        not_after: t(cert.not_after())?,
    })
}

/// `openssl req -new`: subject `subject`, subjectAltNames `sans` (`DNS:x` form), signed by
/// `key`.
fn request(
    key: &PKey<Private>,
    subject: &openssl::x509::X509NameRef,
    sans: &[String],
) -> Result<X509Req, EstError> {
    use openssl::x509::extension::SubjectAlternativeName;
    let ssl = |e: openssl::error::ErrorStack| local(format!("req -new failed: {e}"));
    let mut b = X509Req::builder().map_err(ssl)?;
    b.set_version(0).map_err(ssl)?;
    b.set_subject_name(subject).map_err(ssl)?;
    b.set_pubkey(key).map_err(ssl)?;
    if !sans.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for s in sans {
            match s.split_once(':') {
                Some(("DNS", v)) => san.dns(v),
                Some(("IP", v)) => san.ip(v),
                Some(("email", v)) => san.email(v),
                Some(("URI", v)) => san.uri(v),
                _ => return Err(local(format!("cannot ask for the name {s:?} again"))),
            };
        }
        let ext = san.build(&b.x509v3_context(None)).map_err(ssl)?;
        let mut stack = openssl::stack::Stack::new().map_err(ssl)?;
        stack.push(ext).map_err(ssl)?;
        b.add_extensions(&stack).map_err(ssl)?;
    }
    let digest = KeyAlgorithm::of(key)
        .map(KeyAlgorithm::signature_digest)
        .unwrap_or_else(openssl::hash::MessageDigest::sha256);
    b.sign(key, digest).map_err(ssl)?;
    Ok(b.build())
}

/// `https://host:port` and the EST path prefix of `url`.
fn split_url(url: &str) -> Result<(String, String), EstError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        local(format!(
            "--est {url}: EST runs over TLS; give https://host:port"
        ))
    })?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.trim_end_matches('/');
    let prefix = if path.is_empty() {
        WELL_KNOWN.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((format!("https://{authority}"), prefix))
}

fn est_client(o: &EstOptions, identity: Identity) -> Result<Client, EstError> {
    let (base, _) = split_url(&o.url)?;
    let tls = TlsOptions {
        ca: o.ca.clone(),
        identity,
        server_name: o.server_name.clone(),
        timeout: o.timeout,
        // The CA's own service certificate names the CA's /crl: checking it would fetch from
        // the CA before every EST exchange with it. A device trusts the CA it enrolls with.
        crl_check: CrlCheck::Off,
    };
    Client::new(&base, tls).map_err(EstError::Unreachable)
}

/// One EST POST: the request in base64, the answer's certificate out.
async fn exchange(
    client: &Client,
    o: &EstOptions,
    op: &str,
    csr: &X509Req,
    basic: Option<(&str, &str)>,
) -> Result<X509, EstError> {
    let (_, prefix) = split_url(&o.url)?;
    let der = csr.to_der().map_err(local)?;
    let body = x509::cert::base64_lines(&der, "\r\n");
    let answer = client
        .est(Method::POST, &format!("{prefix}/{op}"), Some(body), basic)
        .await
        .map_err(EstError::Unreachable)?;
    if answer.status != 200 {
        return Err(answer.refused());
    }
    let certs = certs_of(&answer.body)?;
    let mine = csr.public_key().map_err(local)?;
    certs
        .into_iter()
        .find(|c| c.public_key().is_ok_and(|k| k.public_eq(&mine)))
        .ok_or_else(|| EstError::BadAnswer("no certificate for our key in the answer".into()))
}

/// Checks `cert` against our CA (with `cacerts` for intermediates), then writes the pair.
async fn store(
    client: &Client,
    o: &EstOptions,
    cert: &X509,
    key: &PKey<Private>,
) -> Result<Enrolled, EstError> {
    let (_, prefix) = split_url(&o.url)?;
    let answer = client
        .est(Method::GET, &format!("{prefix}/cacerts"), None, None)
        .await
        .map_err(EstError::Unreachable)?;
    if answer.status != 200 {
        return Err(EstError::BadAnswer(format!(
            "cacerts answered HTTP {}",
            answer.status
        )));
    }
    let intermediates: Vec<X509> = certs_of(&answer.body)?
        .into_iter()
        .filter(|c| c.issued(c) != openssl::x509::X509VerifyResult::OK)
        .collect();
    let roots = x509::cert::load_certs("CA certificate", &o.ca).map_err(local)?;
    let options = x509::verify::Options {
        purpose: Some(x509::verify::Purpose::Client),
        ..Default::default()
    };
    match x509::verify::verify(cert, &intermediates, &roots, &options) {
        Ok(Ok(())) => {}
        Ok(Err(f)) => {
            return Err(EstError::BadAnswer(format!(
                "the certificate does not verify: {f}"
            )))
        }
        Err(e) => return Err(local(e)),
    }
    let mut pem = cert.to_pem().map_err(local)?;
    for i in &intermediates {
        pem.extend(i.to_pem().map_err(local)?);
    }
    let key_pem = key.private_key_to_pem_pkcs8().map_err(local)?;
    let serial = x509::cert::serial_hex(cert).map_err(local)?;
    o.pair
        .write(&pem, &key_pem, &serial)
        .map_err(EstError::Local)?;
    Ok(Enrolled {
        serial,
        subject: x509::cert::one_line(cert.subject_name()),
        window: window_of(cert)?,
        superseded: None,
    })
}

/// The certificates of a base64 certs-only PKCS#7 answer.
fn certs_of(answer: &[u8]) -> Result<Vec<X509>, EstError> {
    let compact: String = String::from_utf8_lossy(answer)
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = openssl::base64::decode_block(&compact)
        .map_err(|_| EstError::BadAnswer("the answer is not base64".into()))?;
    let p7 = openssl::pkcs7::Pkcs7::from_der(&der)
        .map_err(|_| EstError::BadAnswer("the answer is not PKCS#7".into()))?;
    let certs = p7
        .signed()
        .and_then(|s| s.certificates())
        .map(|s| s.iter().map(|c| c.to_owned()).collect::<Vec<_>>())
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(EstError::BadAnswer(
            "the PKCS#7 answer holds no certificate".into(),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;
