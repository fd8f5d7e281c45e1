//! Why a TLS connection fails, in plain words: a blocking probe with the openssl crate that sees
//! what awc does not (the verify result, the server's alert, its chain, whether it asked for a
//! client certificate and which CAs it named), and `diagnose URL`'s report.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::ssl::{HandshakeError, SslStream, SslVersion};
use openssl::x509::{X509NameRef, X509Ref, X509VerifyResult, X509};
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Failure, FailureClass};
use crate::tls::{self, Identity, TlsOptions};

/// Where to connect, and which name the certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host (name or IP) to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Name sent as SNI and verified against the certificate.
    pub name: String,
}

/// A certificate the server presented, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct CertSummary {
    /// Subject (one-line form).
    pub subject: String,
    /// Issuer (one-line form).
    pub issuer: String,
    /// subjectAltName entries.
    pub names: Vec<String>,
    /// notBefore (UTC date and time).
    pub not_before: String,
    /// notAfter (UTC date and time).
    pub not_after: String,
    /// Whole days until notAfter.
    pub days_left: i64,
    /// Key type.
    pub key: String,
}

impl CertSummary {
    /// Summarises one certificate.
    pub fn of(cert: &X509Ref) -> CertSummary {
        let der = cert.to_der().unwrap_or_default();
        let names = X509Certificate::from_der(&der)
            .map(|(_, c)| pki::inspect::names(&c))
            .unwrap_or_default();
        let nb = pki::authority::unix_time(cert.not_before()).unwrap_or(0);
        let na = pki::authority::unix_time(cert.not_after()).unwrap_or(0);
        CertSummary {
            subject: name(cert.subject_name()),
            issuer: name(cert.issuer_name()),
            names,
            not_before: pki::inspect::date(nb),
            not_after: pki::inspect::date(na),
            days_left: (na - pki::authority::now()).div_euclid(86_400),
            key: cert
                .public_key()
                .ok()
                .and_then(|k| pki::KeyAlgorithm::of(&k))
                .map_or_else(|| "unknown".into(), |a| a.to_string()),
        }
    }
}

fn name(n: &X509NameRef) -> String {
    pki::index::one_line(n)
}

/// What one handshake showed.
#[derive(Debug, Clone, Serialize)]
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
    pub client_cert_requested: Option<bool>,
    /// CA names the server listed in its certificate request (TLS 1.2 only; encrypted in 1.3).
    pub accepted_ca_names: Vec<String>,
    /// Connect + handshake time in milliseconds.
    pub millis: f64,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
    #[serde(skip)]
    peer_chain: Vec<X509>,
}

/// Records what the server sends, to read the cleartext part of a TLS 1.2 handshake.
struct Tee {
    inner: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut seen) = self.seen.lock() {
            if seen.len() < 256 * 1024 {
                seen.extend_from_slice(&buf[..n]);
            }
        }
        Ok(n)
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a TCP connection, classifying refusals and timeouts.
pub fn connect(ep: &Endpoint, timeout: Duration) -> Result<TcpStream, Failure> {
    let addrs: Vec<_> = (ep.host.as_str(), ep.port)
        .to_socket_addrs()
        .map_err(|e| {
            Failure::new(
                FailureClass::Other,
                format!("cannot resolve {}", ep.host),
                "check the host name in the URL",
                e.to_string(),
            )
        })?
        .collect();
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
    let (addr, e) = last.ok_or_else(|| {
        Failure::new(
            FailureClass::Other,
            format!("{} has no address", ep.host),
            "check the URL",
            "",
        )
    })?;
    Err(match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::new(
            FailureClass::NotListening,
            format!("nothing is listening on {addr}"),
            "start the server (`cargo run -p server`), or check the host and port",
            e.to_string(),
        ),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            timeout_failure(addr, timeout, "connecting")
        }
        _ => Failure::new(
            FailureClass::Other,
            format!("cannot connect to {addr}"),
            "check the network path",
            e.to_string(),
        ),
    })
}

fn timeout_failure(what: impl std::fmt::Display, timeout: Duration, during: &str) -> Failure {
    Failure::new(
        FailureClass::Timeout,
        format!(
            "no answer from {what} within {}s while {during}",
            timeout.as_secs_f32()
        ),
        "check that the address is right and reachable, or raise --timeout",
        "",
    )
}

/// One handshake with `options` (optionally limited to one TLS version and without our
/// certificate). Verification stays on; a failure is classified, never ignored.
pub fn handshake(
    ep: &Endpoint,
    options: &TlsOptions,
    version: Option<SslVersion>,
) -> Result<Handshake, Failure> {
    let start = Instant::now();
    let sent_cert = options.identity != Identity::None;
    let mut builder = tls::builder(options, b"\x02h2\x08http/1.1")?;
    if let Some(v) = version {
        let set = builder
            .set_min_proto_version(Some(v))
            .and_then(|()| builder.set_max_proto_version(Some(v)));
        set.map_err(|e| Failure::local(format!("TLS set-up failed: {e}"), ""))?;
    }
    let connector = builder.build();
    let tcp = connect(ep, options.timeout)?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tee = Tee {
        inner: tcp,
        seen: seen.clone(),
    };
    let config = connector
        .configure()
        .map_err(|e| Failure::local(format!("TLS set-up failed: {e}"), ""))?;
    let result = config.connect(&ep.name, tee);
    let mut hs = Handshake {
        protocol: String::new(),
        cipher: String::new(),
        alpn: None,
        chain: Vec::new(),
        client_cert_requested: None,
        accepted_ca_names: Vec::new(),
        millis: 0.0,
        failure: None,
        peer_chain: Vec::new(),
    };
    let seen_bytes = || seen.lock().map(|s| s.clone()).unwrap_or_default();
    match result {
        Ok(mut stream) => {
            fill(&mut hs, stream.ssl());
            // In TLS 1.3 the server judges our certificate after our side has finished:
            // wait briefly for its verdict before calling the handshake good.
            if let Some(err) = late_alert(&mut stream) {
                let request = certificate_request(&seen_bytes());
                hs.client_cert_requested =
                    hs.client_cert_requested.or(request.as_ref().map(|_| true));
                hs.failure = Some(classify(
                    &err,
                    X509VerifyResult::OK,
                    &[],
                    sent_cert,
                    request.is_some(),
                    ep,
                    options,
                ));
                if hs
                    .failure
                    .as_ref()
                    .is_some_and(|f| f.class == FailureClass::ClientCertRequired)
                {
                    hs.client_cert_requested = Some(true);
                }
            }
        }
        Err(HandshakeError::Failure(mid)) | Err(HandshakeError::WouldBlock(mid)) => {
            fill(&mut hs, mid.ssl());
            let text = mid.error().to_string();
            let io_timeout = mid.error().io_error().is_some_and(|e| {
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            });
            let bytes = seen_bytes();
            let request = certificate_request(&bytes);
            if let Some(names) = &request {
                hs.client_cert_requested = Some(true);
                hs.accepted_ca_names.clone_from(names);
            }
            hs.failure = Some(if io_timeout {
                timeout_failure(
                    format!("{}:{}", ep.host, ep.port),
                    options.timeout,
                    "in the TLS handshake",
                )
            } else if looks_like_http(&bytes) {
                plain_http(ep, &text)
            } else {
                classify(
                    &text,
                    mid.ssl().verify_result(),
                    &hs.peer_chain,
                    sent_cert,
                    request.is_some(),
                    ep,
                    options,
                )
            });
        }
        Err(HandshakeError::SetupFailure(e)) => {
            return Err(Failure::local(format!("TLS set-up failed: {e}"), ""));
        }
    }
    if hs.failure.is_none() || hs.client_cert_requested.is_none() {
        if let Some(names) = certificate_request(&seen_bytes()) {
            hs.client_cert_requested = Some(true);
            hs.accepted_ca_names = names;
        } else if hs.protocol == "TLSv1.2" {
            hs.client_cert_requested = Some(false);
        }
    }
    hs.millis = start.elapsed().as_secs_f64() * 1000.0;
    Ok(hs)
}

fn fill(hs: &mut Handshake, ssl: &openssl::ssl::SslRef) {
    hs.protocol = ssl.version_str().to_owned();
    if hs.protocol == "unknown" {
        hs.protocol.clear();
    }
    hs.cipher = ssl
        .current_cipher()
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    hs.alpn = ssl
        .selected_alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    if let Some(chain) = ssl.peer_cert_chain() {
        hs.peer_chain = chain.iter().map(X509Ref::to_owned).collect();
        hs.chain = chain.iter().map(CertSummary::of).collect();
    }
}

/// Waits up to half a second for an alert after the handshake; `None` when nothing came.
fn late_alert(stream: &mut SslStream<Tee>) -> Option<String> {
    stream
        .get_ref()
        .inner
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok();
    let mut buf = [0u8; 1];
    match stream.ssl_read(&mut buf) {
        Ok(_) => None,
        Err(e) => match e.io_error() {
            Some(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Some(io) if io.kind() == std::io::ErrorKind::ConnectionReset => {
                Some("connection reset right after the handshake".to_owned())
            }
            _ if e.code() == openssl::ssl::ErrorCode::ZERO_RETURN => None,
            _ => Some(e.to_string()),
        },
    }
}

fn looks_like_http(bytes: &[u8]) -> bool {
    bytes.starts_with(b"HTTP/") || bytes.starts_with(b"<")
}

fn plain_http(ep: &Endpoint, text: &str) -> Failure {
    Failure::new(
        FailureClass::PlainHttp,
        format!("{}:{} answers in plain HTTP, not TLS", ep.host, ep.port),
        format!(
            "use http://{}:{} for a plain server, or point at the TLS port",
            ep.host, ep.port
        ),
        text.to_owned(),
    )
}

/// The CA names of a TLS 1.2 CertificateRequest in the server's cleartext flight, if there
/// was one. (TLS 1.3 encrypts it.)
pub fn certificate_request(bytes: &[u8]) -> Option<Vec<String>> {
    // Concatenate handshake records (type 22) until ChangeCipherSpec (20) or anything else.
    let mut hs = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 5 && rest[0] == 22 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let body = rest.get(5..5 + len)?;
        hs.extend_from_slice(body);
        rest = &rest[5 + len..];
    }
    let mut msgs = hs.as_slice();
    while msgs.len() >= 4 {
        let kind = msgs[0];
        let len = usize::from(msgs[1]) << 16 | usize::from(msgs[2]) << 8 | usize::from(msgs[3]);
        let body = msgs.get(4..4 + len)?;
        if kind == 13 {
            return Some(ca_names(body).unwrap_or_default());
        }
        msgs = &msgs[4 + len..];
    }
    None
}

fn ca_names(body: &[u8]) -> Option<Vec<String>> {
    // certificate_types<1..255>, signature_algorithms<2..2^16-2>, certificate_authorities<0..2^16-1>
    let types = usize::from(*body.first()?);
    let mut p = 1 + types;
    let algs = usize::from(u16::from_be_bytes([*body.get(p)?, *body.get(p + 1)?]));
    p += 2 + algs;
    let total = usize::from(u16::from_be_bytes([*body.get(p)?, *body.get(p + 1)?]));
    let mut list = body.get(p + 2..p + 2 + total)?;
    let mut out = Vec::new();
    while list.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([list[0], list[1]]));
        let der = list.get(2..2 + n)?;
        out.push(
            openssl::x509::X509Name::from_der(der)
                .map(|n| name(&n))
                .unwrap_or_else(|_| "<unparseable name>".into()),
        );
        list = &list[2 + n..];
    }
    Some(out)
}

/// The alert in OpenSSL's error text: "tlsv1 alert unknown ca" → "unknown ca".
fn alert(text: &str) -> Option<&str> {
    let i = text.find(" alert ")? + " alert ".len();
    let rest = &text[i..];
    Some(rest.split(':').next().unwrap_or(rest).trim())
}

fn classify(
    text: &str,
    verify: X509VerifyResult,
    chain: &[X509],
    sent_cert: bool,
    cert_requested: bool,
    ep: &Endpoint,
    options: &TlsOptions,
) -> Failure {
    let code = verify.as_raw();
    if code != 0 {
        let detail = format!("OpenSSL verify error {code}: {}", verify.error_string());
        let leaf = chain.first().map(|c| CertSummary::of(c));
        let names = leaf
            .as_ref()
            .map(|l| l.names.join(", "))
            .unwrap_or_default();
        return match code {
            62 | 64 => Failure::new(
                FailureClass::NameMismatch,
                format!("the server's certificate is for {names}, not {}", ep.name),
                format!("connect with one of those names, pass --server-name NAME, or reissue it: `pki issue server --force --san {}`", ep.name),
                detail,
            ),
            10 => Failure::new(
                FailureClass::ServerCertDates,
                format!("the server's certificate expired on {}", leaf.map(|l| l.not_after).unwrap_or_default()),
                "reissue it (`pki issue server --force`) and reload the server (`kill -HUP`)",
                detail,
            ),
            9 => Failure::new(
                FailureClass::ServerCertDates,
                format!("the server's certificate is not valid until {}", leaf.map(|l| l.not_before).unwrap_or_default()),
                "check the clock of this machine and of the server",
                detail,
            ),
            2 | 18 | 19 | 20 | 21 => Failure::new(
                FailureClass::UnknownCa,
                format!(
                    "the server's certificate was not issued by the CA in {} (its issuer: {})",
                    options.ca.display(),
                    leaf.map(|l| l.issuer).unwrap_or_default()
                ),
                "pass the server's CA with --ca; if the CA was remade with --force, copy the new ca.crt",
                detail,
            ),
            _ => Failure::new(
                FailureClass::Other,
                format!("the server's certificate does not verify: {}", pki::verify::explain(code)),
                "inspect it with `client diagnose URL`",
                detail,
            ),
        };
    }
    let detail = text.to_owned();
    let refused = |why: &str, hint: &str| {
        Failure::new(
            FailureClass::ClientCertRefused,
            format!("the server refused our client certificate: {why}"),
            hint.to_owned(),
            detail.clone(),
        )
    };
    match alert(text) {
        Some("certificate required") => required(detail),
        Some("handshake failure") if !sent_cert && cert_requested => required(detail),
        Some("handshake failure") if sent_cert => refused(
            "its policy rejects it (for example a CA certificate used as a client certificate)",
            "use a client certificate from `pki issue client`",
        ),
        Some("unknown ca") if sent_cert => refused(
            "it was not issued by a CA the server trusts",
            "use a certificate issued by the server's CA (`pki issue client --name NAME` there)",
        ),
        Some("certificate revoked") => refused(
            "it has been revoked by the CA",
            "ask for a new one: `pki issue client --name NAME --force`",
        ),
        Some("certificate expired") => refused("it has expired", "issue a new one: `pki issue client --name NAME --force`"),
        Some("bad certificate") if sent_cert => refused(
            "the server found it invalid (for example not valid yet: check the clocks)",
            "inspect it with `pki inspect`",
        ),
        Some("unsupported certificate") => refused(
            "it is not meant for TLS clients (extendedKeyUsage lacks clientAuth)",
            "use a client certificate from `pki issue client`, not a server one",
        ),
        Some("access denied") => refused("the server's policy denies it", "ask the server's operator to allow it"),
        Some("protocol version") | Some("insufficient security") | Some("handshake failure") => no_common(detail),
        _ if text.contains("no protocols available") || text.contains("unsupported protocol") || text.contains("no shared cipher") => no_common(detail),
        _ if text.contains("wrong version number") || text.contains("packet length too long") => plain_http(ep, text),
        _ if text.contains("reset") && !sent_cert => Failure::new(
            FailureClass::ClientCertRequired,
            "the server closed the connection right after the handshake: it most likely requires a client certificate",
            "pass --cert/--key (or --p12)",
            detail,
        ),
        _ if text.contains("reset") => refused(
            "the server closed the connection right after the handshake",
            "see the server's log for the reason",
        ),
        _ => Failure::new(FailureClass::Other, "the TLS handshake failed", "run `client diagnose URL` for details", detail),
    }
}

fn required(detail: String) -> Failure {
    Failure::new(
        FailureClass::ClientCertRequired,
        "the server requires a client certificate and we sent none",
        "pass --cert and --key (or --p12); `make certs` made certs/client/client.{crt,key}",
        detail,
    )
}

fn no_common(detail: String) -> Failure {
    Failure::new(
        FailureClass::NoCommonProtocol,
        "no TLS version or cipher suite in common with the server",
        "the server may allow only TLS 1.3 (or older, weaker settings): compare with `openssl s_client`",
        detail,
    )
}

/// A full `diagnose URL` report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was checked.
    pub endpoint: String,
    /// The name verified.
    pub name: String,
    /// The handshake with our settings.
    pub handshake: Handshake,
    /// Whether the presented chain verifies against `--ca` (strictly), and if not why.
    pub chain_check: Result<(), String>,
    /// Whether the name is in the server certificate.
    pub name_check: Result<(), String>,
    /// CA names the server accepts for client certificates (from a TLS 1.2 probe).
    pub accepted_ca_names: Vec<String>,
    /// Whether the server demands a client certificate (None = could not tell).
    pub client_cert_required: Option<bool>,
    /// Our own files.
    pub local: Vec<String>,
}

/// Probes `ep` the way a careful person would with `openssl s_client`, three times at most: our
/// settings; TLS 1.2 without a certificate (to read the server's certificate request); and, for
/// a TLS 1.3-only server, TLS 1.3 without a certificate.
pub fn diagnose(ep: &Endpoint, options: &TlsOptions) -> Result<Report, Failure> {
    let (local, cas) = local_checks(options)?;
    let hs = handshake(ep, options, None)?;
    if hs.failure.as_ref().is_some_and(|f| {
        matches!(
            f.class,
            FailureClass::NotListening | FailureClass::Timeout | FailureClass::PlainHttp
        )
    }) {
        return Ok(Report {
            endpoint: format!("{}:{}", ep.host, ep.port),
            name: ep.name.clone(),
            chain_check: Err("no TLS handshake".into()),
            name_check: Err("no TLS handshake".into()),
            accepted_ca_names: vec![],
            client_cert_required: None,
            handshake: hs,
            local,
        });
    }
    let (chain_check, name_check) = match hs.peer_chain.split_first() {
        None => (
            Err("the server sent no certificate".into()),
            Err("no certificate".into()),
        ),
        Some((leaf, rest)) => {
            let check = |host: Option<String>| {
                let o = pki::verify::Options {
                    purpose: Some(pki::verify::Purpose::Server),
                    host,
                    ..Default::default()
                };
                match pki::verify::verify(leaf, rest, &cas, &o) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(f)) => Err(f.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            };
            let chain = check(None);
            let name = match check(Some(ep.name.clone())) {
                Err(e) if chain.is_ok() => Err(e),
                Err(_) => Err("not checked: the chain does not verify".into()),
                Ok(()) => Ok(()),
            };
            (
                chain.map_err(|e| format!("{e} (CA file {})", options.ca.display())),
                name,
            )
        }
    };
    let anonymous = TlsOptions {
        identity: Identity::None,
        ..options.clone()
    };
    let mut accepted = hs.accepted_ca_names.clone();
    let mut required = match &hs.failure {
        Some(f) if f.class == FailureClass::ClientCertRequired => Some(true),
        _ => None,
    };
    // Chain problems make every further probe fail the same way: skip them.
    if chain_check.is_ok() {
        if let Ok(h12) = handshake(ep, &anonymous, Some(SslVersion::TLS1_2)) {
            if h12.client_cert_requested == Some(true) {
                accepted = h12.accepted_ca_names.clone();
            }
            match (&h12.failure, h12.client_cert_requested) {
                (None, requested) => {
                    required = Some(false)
                        .filter(|_| requested.is_some())
                        .or(required)
                        .or(Some(false))
                }
                (Some(f), _) if f.class == FailureClass::ClientCertRequired => {
                    required = Some(true)
                }
                (Some(f), _) if f.class == FailureClass::NoCommonProtocol => {
                    if let Ok(h13) = handshake(ep, &anonymous, Some(SslVersion::TLS1_3)) {
                        required = match h13.failure {
                            None => Some(false),
                            Some(f) if f.class == FailureClass::ClientCertRequired => Some(true),
                            Some(_) => required,
                        };
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Report {
        endpoint: format!("{}:{}", ep.host, ep.port),
        name: ep.name.clone(),
        chain_check,
        name_check,
        accepted_ca_names: accepted,
        client_cert_required: required,
        handshake: hs,
        local,
    })
}

/// Our own files: the CA loads, the key matches the certificate, EKU clientAuth, expiry.
fn local_checks(options: &TlsOptions) -> Result<(Vec<String>, Vec<X509>), Failure> {
    let mut out = Vec::new();
    let cas = pki::folder::load_certs("CA certificate", &options.ca)
        .map_err(|e| tls::local_file(e, "run `make certs` or pass --ca"))?;
    let n = cas.len();
    out.push(format!(
        "CA file {}: {n} certificate(s)",
        options.ca.display()
    ));
    match tls::load_identity(&options.identity)? {
        None => out.push("client certificate: none (one-way TLS)".into()),
        Some(id) => {
            let leaf = &id.chain[0];
            let s = CertSummary::of(leaf);
            out.push(format!(
                "client certificate {}: {}, key matches",
                id.source, s.subject
            ));
            let der = leaf.to_der().unwrap_or_default();
            let client_auth = X509Certificate::from_der(&der)
                .ok()
                .and_then(|(_, c)| {
                    c.extended_key_usage()
                        .ok()
                        .flatten()
                        .map(|e| e.value.client_auth)
                })
                .unwrap_or(false);
            out.push(if client_auth {
                "extendedKeyUsage includes clientAuth".into()
            } else {
                "WARNING: extendedKeyUsage lacks clientAuth: servers will refuse it".into()
            });
            out.push(match s.days_left {
                d if d < 0 => format!("WARNING: expired on {}", s.not_after),
                d if d < 30 => format!("WARNING: expires in {d} days ({})", s.not_after),
                d => format!("valid until {} ({d} days left)", s.not_after),
            });
        }
    }
    Ok((out, cas))
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hs = &self.handshake;
        writeln!(
            f,
            "diagnose {} (verifying the name {})",
            self.endpoint, self.name
        )?;
        if !hs.protocol.is_empty() {
            writeln!(
                f,
                "  TLS          {} {} ALPN {} ({:.1} ms)",
                hs.protocol,
                hs.cipher,
                hs.alpn.as_deref().unwrap_or("none"),
                hs.millis
            )?;
        }
        for (i, c) in hs.chain.iter().enumerate() {
            writeln!(f, "  server [{i}]   {}", c.subject)?;
            writeln!(f, "    issuer     {}", c.issuer)?;
            if !c.names.is_empty() {
                writeln!(f, "    names      {}", c.names.join(", "))?;
            }
            writeln!(
                f,
                "    valid      {} → {} ({} days left)",
                c.not_before, c.not_after, c.days_left
            )?;
            writeln!(f, "    key        {}", c.key)?;
        }
        let yes = |r: &Result<(), String>| match r {
            Ok(()) => "yes".to_owned(),
            Err(e) => format!("NO: {e}"),
        };
        writeln!(f, "  chains to CA {}", yes(&self.chain_check))?;
        writeln!(f, "  name matches {}", yes(&self.name_check))?;
        writeln!(
            f,
            "  client cert  {}",
            match self.client_cert_required {
                Some(true) => "the server requires one",
                Some(false) => "the server does not require one",
                None => "could not tell whether the server wants one",
            }
        )?;
        if !self.accepted_ca_names.is_empty() {
            writeln!(f, "  it accepts   {}", self.accepted_ca_names.join("; "))?;
        }
        for l in &self.local {
            writeln!(f, "  local        {l}")?;
        }
        match &hs.failure {
            None => writeln!(f, "  result       OK"),
            Some(fail) => writeln!(f, "  result       FAILED: {}", fail.to_lines()),
        }
    }
}
