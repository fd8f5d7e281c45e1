//! The probe: one TCP connection and one TLS handshake with the client's own settings (awc's
//! errors carry neither OpenSSL's verify result nor the server's alert), recording what the
//! server sends so its TLS 1.2 CertificateRequest can be read.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::ssl::{ErrorCode, HandshakeError, SslConnector, SslRef, SslStream, SslVersion};
use openssl::x509::{X509Name, X509Ref, X509VerifyResult, X509};
use serde::Serialize;

use crate::classify::{self, Context};
use crate::error::{Failure, FailureClass};
use crate::facts::{Cause, CertSummary, Endpoint, ErrorFacts};
use crate::own::OwnCert;
use crate::tls::{self, Identity, TlsOptions};
use crate::wire;

/// The most of the server's bytes the recorder keeps (its cleartext flight is far smaller).
const RECORD_LIMIT: usize = 256 * 1024;

/// How long to wait, after our side of a TLS 1.3 handshake, for the server's verdict on us.
const LATE_ALERT_WAIT: Duration = Duration::from_millis(500);

/// What one handshake showed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Handshake {
    /// Negotiated protocol, e.g. `TLSv1.3` (empty if the handshake failed).
    pub protocol: String,
    /// Negotiated cipher suite.
    pub cipher: String,
    /// Negotiated ALPN protocol.
    pub alpn: Option<String>,
    /// The server's chain as presented (even when it did not verify).
    pub chain: Vec<CertSummary>,
    /// Whether the server asked for a client certificate (known for TLS 1.2, or from its alert).
    /// Not in the JSON: a report says it once, in its `client_certificate`.
    #[serde(skip)]
    pub client_cert_requested: Option<bool>,
    /// CA names the server listed in its certificate request (TLS 1.2 only; encrypted in 1.3).
    #[serde(skip)]
    pub accepted_ca_names: Vec<String>,
    /// Connect + handshake time in milliseconds.
    pub millis: f64,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
    #[serde(skip)]
    pub(crate) peer_chain: Vec<X509>,
}

impl Handshake {
    fn fill(&mut self, ssl: &SslRef) {
        self.protocol = match ssl.version_str() {
            "unknown" => String::new(),
            v => v.to_owned(),
        };
        self.cipher = ssl
            .current_cipher()
            .map(|c| c.name().to_owned())
            .unwrap_or_default();
        self.alpn = ssl
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        if let Some(chain) = ssl.peer_cert_chain() {
            self.peer_chain = chain.iter().map(X509Ref::to_owned).collect();
            self.chain = chain.iter().map(CertSummary::of).collect();
        }
    }

    /// What the server's cleartext flight says of client certificates.
    fn note_request(&mut self, request: Option<wire::CertificateRequest>) {
        match request {
            Some(r) => {
                self.client_cert_requested = Some(true);
                self.accepted_ca_names = r.ca_names.iter().map(|der| ca_name(der)).collect();
            }
            // A whole TLS 1.2 flight without a request: the server asked for none.
            None if self.protocol == "TLSv1.2" => self.client_cert_requested = Some(false),
            None => {}
        }
    }
}

fn ca_name(der: &[u8]) -> String {
    X509Name::from_der(der)
        .map(|n| x509::cert::one_line(&n))
        .unwrap_or_else(|_| "<unparseable name>".into())
}

/// Records what the server sends, to read the cleartext part of a TLS 1.2 handshake.
struct Tee {
    inner: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
    /// Set for a probe that ends once the server's TLS 1.2 flight is read: instead of our
    /// answer, the server gets a `user_canceled` alert, and this turns true.
    cancel: Option<Arc<AtomicBool>>,
}

impl Tee {
    /// Ends the handshake with `user_canceled` if this is a probe whose server flight is in.
    fn cancel_now(&mut self) -> std::io::Result<bool> {
        let Some(canceled) = &self.cancel else {
            return Ok(false);
        };
        let done = self
            .seen
            .lock()
            .map(|s| wire::server_flight_done(&s))
            .unwrap_or(false);
        if !done {
            return Ok(false);
        }
        self.inner.write_all(&wire::USER_CANCELED_ALERT)?;
        self.inner.flush()?;
        canceled.store(true, Ordering::Relaxed);
        Ok(true)
    }
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut seen) = self.seen.lock() {
            if seen.len() < RECORD_LIMIT {
                seen.extend_from_slice(&buf[..n]);
            }
        }
        Ok(n)
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cancel_now()? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "probe ended on purpose (user_canceled)",
            ));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a TCP connection, classifying refusals and timeouts.
pub fn connect(ep: &Endpoint, timeout: Duration) -> Result<TcpStream, Failure> {
    let addrs = (ep.host.as_str(), ep.port)
        .to_socket_addrs()
        .map_err(|e| classify::unresolved(&ep.host, &e.to_string()))?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(timeout)).ok();
                s.set_write_timeout(Some(timeout)).ok();
                return Ok(s);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) => classify::connect_failure(addr, &e, timeout),
        None => classify::unresolved(&ep.host, "no address"),
    })
}

/// How a handshake ended, when it did not end well.
struct Ended {
    cause: Cause,
    /// OpenSSL's words, for the failure's detail.
    detail: String,
}

/// One handshake with `options` (optionally limited to one TLS version). Verification stays
/// on; a failure is classified, never ignored.
pub fn handshake(
    ep: &Endpoint,
    options: &TlsOptions,
    version: Option<SslVersion>,
) -> Result<Handshake, Failure> {
    run(ep, options, version, false)
}

/// A TLS 1.2 handshake without a client certificate that reads the server's cleartext flight
/// (its CertificateRequest and the CA names in it) and then ends on purpose with a
/// `user_canceled` alert, before the server would judge a certificate: the server counts it as
/// a canceled handshake, never as a refusal. `failure` is `None` when it ended so; the
/// handshake's own failure otherwise (a TLS 1.3-only server refuses TLS 1.2).
pub fn certificate_request_probe(
    ep: &Endpoint,
    options: &TlsOptions,
) -> Result<Handshake, Failure> {
    let anonymous = TlsOptions {
        identity: Identity::None,
        ..options.clone()
    };
    run(ep, &anonymous, Some(SslVersion::TLS1_2), true)
}

/// Why a request's handshake failed, at the cost of as few handshakes the server judges as it
/// takes. Without a client certificate, the TLS 1.2 probe that ends itself (the server counts
/// it as canceled, not refused) tells the rest: a server certificate we refuse, or a server
/// that asks for a certificate, which is why it ended a handshake that had none. Only when it
/// cannot tell (a TLS 1.3-only server), or when we sent a certificate (whose verdict only a
/// full handshake hears), is the request's handshake repeated, and counted by the server again.
/// `request_error` is what the request's own handshake said (OpenSSL's words, shown as the
/// detail, never decided on).
pub fn explain(
    ep: &Endpoint,
    options: &TlsOptions,
    request_error: &str,
) -> Result<Handshake, Failure> {
    if options.identity == Identity::None {
        let mut seen = certificate_request_probe(ep, options)?;
        match &seen.failure {
            // It asked for a certificate and ended the request's handshake, which had none.
            None if seen.client_cert_requested == Some(true) => {
                let asked = Ended {
                    cause: Cause::Alert(openssl::ssl::SslAlert::CERTIFICATE_REQUIRED),
                    detail: format!(
                        "the server asks for a client certificate and ended the request's \
                         handshake, which had none: {request_error}"
                    ),
                };
                seen.failure = Some(judge(&asked, &seen, ep, options));
                return Ok(seen);
            }
            // We refused its certificate: the probe heard the same as the request.
            Some(f)
                if matches!(
                    f.class,
                    FailureClass::UnknownCa
                        | FailureClass::NameMismatch
                        | FailureClass::ServerCertDates
                ) =>
            {
                return Ok(seen)
            }
            _ => {}
        }
    }
    handshake(ep, options, None)
}

fn run(
    ep: &Endpoint,
    options: &TlsOptions,
    version: Option<SslVersion>,
    cancel: bool,
) -> Result<Handshake, Failure> {
    let start = Instant::now();
    let connector = connector(options, version)?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let canceled = Arc::new(AtomicBool::new(false));
    let tee = Tee {
        inner: connect(ep, options.timeout)?,
        seen: Arc::clone(&seen),
        cancel: cancel.then(|| Arc::clone(&canceled)),
    };
    let flight = || seen.lock().map(|s| s.clone()).unwrap_or_default();
    let mut hs = Handshake::default();
    let ended = match connector.configure().map_err(setup)?.connect(&ep.name, tee) {
        Ok(mut stream) => {
            hs.fill(stream.ssl());
            late_alert(&mut stream)
        }
        Err(HandshakeError::Failure(mid) | HandshakeError::WouldBlock(mid)) => {
            hs.fill(mid.ssl());
            Some(failed(mid.error(), mid.ssl().verify_result(), &flight()))
        }
        Err(HandshakeError::SetupFailure(e)) => return Err(setup(e)),
    };
    // Ended by us, on purpose, once the server's flight was read: not a failure.
    let ended = ended.filter(|_| !canceled.load(Ordering::Relaxed));
    hs.note_request(wire::certificate_request(&flight()));
    if let Some(ended) = ended {
        let failure = judge(&ended, &hs, ep, options);
        if failure.class == FailureClass::ClientCertRequired {
            hs.client_cert_requested = Some(true);
        }
        hs.failure = Some(failure);
    }
    hs.millis = start.elapsed().as_secs_f64() * 1000.0;
    Ok(hs)
}

fn setup(e: openssl::error::ErrorStack) -> Failure {
    Failure::local(format!("TLS set-up failed: {e}"), "")
}

fn connector(options: &TlsOptions, version: Option<SslVersion>) -> Result<SslConnector, Failure> {
    let mut builder = tls::builder(options, b"\x02h2\x08http/1.1")?;
    if let Some(v) = version {
        builder.set_min_proto_version(Some(v)).map_err(setup)?;
        builder.set_max_proto_version(Some(v)).map_err(setup)?;
    }
    Ok(builder.build())
}

fn failed(err: &openssl::ssl::Error, verify: X509VerifyResult, flight: &[u8]) -> Ended {
    let detail = if verify == X509VerifyResult::OK {
        err.to_string()
    } else {
        format!(
            "OpenSSL verify error {}: {}",
            verify.as_raw(),
            verify.error_string()
        )
    };
    Ended {
        cause: ErrorFacts::of(err, verify, flight).cause(),
        detail,
    }
}

/// In TLS 1.3 the server judges our certificate after our side has finished: waits briefly for
/// its verdict. `None` when nothing came, or the server closed cleanly.
fn late_alert(stream: &mut SslStream<Tee>) -> Option<Ended> {
    stream
        .get_ref()
        .inner
        .set_read_timeout(Some(LATE_ALERT_WAIT))
        .ok();
    let err = stream.ssl_read(&mut [0u8; 1]).err()?;
    if err.code() == ErrorCode::ZERO_RETURN {
        return None;
    }
    let ended = failed(&err, X509VerifyResult::OK, &[]);
    (ended.cause != Cause::Timeout).then_some(ended)
}

/// Classifies how the handshake ended; an alert about our certificate is first weighed
/// against our own check of it.
fn judge(ended: &Ended, hs: &Handshake, ep: &Endpoint, options: &TlsOptions) -> Failure {
    let sent_cert = options.identity != Identity::None;
    let own = if sent_cert && classify::concerns_own_cert(ended.cause) {
        OwnCert::load(options).ok().flatten()
    } else {
        None
    };
    let ctx = Context {
        endpoint: ep,
        ca_file: &options.ca,
        timeout: options.timeout,
        sent_cert,
        cert_requested: hs.client_cert_requested == Some(true),
        server_leaf: hs.chain.first(),
        own: own.as_ref(),
        now: x509::time::now(),
    };
    classify::classify(ended.cause, &ctx, &ended.detail)
}
