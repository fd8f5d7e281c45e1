//! A deliberately small TLS client on the openssl crate (blocking sockets), so tests control
//! every handshake detail and see exactly why one fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream, SslVersion};

/// How to connect.
#[derive(Clone, Default)]
pub struct Opts<'a> {
    pub ca: Option<&'a Path>,
    pub cert: Option<(&'a Path, &'a Path)>,
    pub version: Option<SslVersion>,
    pub alpn: Option<&'a [u8]>,
    pub groups: Option<&'a str>,
    pub ciphers: Option<&'a str>,
    /// Name to verify and send as SNI (default "localhost").
    pub host: Option<&'a str>,
}

impl<'a> Opts<'a> {
    /// Trust `ca` and present the certificate and key of `pair`.
    pub fn mutual(ca: &'a Path, pair: &'a (std::path::PathBuf, std::path::PathBuf)) -> Opts<'a> {
        Opts {
            ca: Some(ca),
            cert: Some((&pair.0, &pair.1)),
            ..Opts::default()
        }
    }
}

pub struct Reply {
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    pub body: String,
    pub alpn: Option<Vec<u8>>,
    pub version: String,
    pub peer_serial: String,
}

fn connect(addr: SocketAddr, o: &Opts<'_>) -> Result<SslStream<TcpStream>, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    if let Some(ca) = o.ca {
        b.set_ca_file(ca).map_err(|e| e.to_string())?;
    }
    if let Some((cert, key)) = o.cert {
        b.set_certificate_chain_file(cert)
            .map_err(|e| e.to_string())?;
        b.set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| e.to_string())?;
    }
    if let Some(v) = o.version {
        b.set_min_proto_version(Some(v))
            .map_err(|e| e.to_string())?;
        b.set_max_proto_version(Some(v))
            .map_err(|e| e.to_string())?;
        if v == SslVersion::TLS1 || v == SslVersion::TLS1_1 {
            // Let the client try; the server must be the one to refuse.
            b.set_security_level(0);
            b.set_cipher_list("DEFAULT@SECLEVEL=0")
                .map_err(|e| e.to_string())?;
        }
    }
    if let Some(a) = o.alpn {
        b.set_alpn_protos(a).map_err(|e| e.to_string())?;
    }
    if let Some(g) = o.groups {
        b.set_groups_list(g).map_err(|e| e.to_string())?;
    }
    if let Some(c) = o.ciphers {
        b.set_cipher_list(c).map_err(|e| e.to_string())?;
    }
    let connector = b.build();
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let cfg = connector.configure().map_err(|e| e.to_string())?;
    cfg.connect(o.host.unwrap_or("localhost"), tcp)
        .map_err(|e| format!("handshake: {e}"))
}

/// Handshake, send `request` (a full HTTP/1.1 request), read the whole reply.
pub fn request(addr: SocketAddr, o: &Opts<'_>, request: &str) -> Result<Reply, String> {
    let mut s = connect(addr, o)?;
    s.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(format!("read: {e}"));
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {text:?}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    let ssl = s.ssl();
    Ok(Reply {
        status,
        head,
        body,
        alpn: ssl.selected_alpn_protocol().map(<[u8]>::to_vec),
        version: ssl.version_str().to_owned(),
        peer_serial: ssl
            .peer_certificate()
            .and_then(|c| x509::cert::serial_hex(&c).ok())
            .unwrap_or_default(),
    })
}

/// `GET path` with `Connection: close`.
pub fn get(addr: SocketAddr, o: &Opts<'_>, path: &str) -> Result<Reply, String> {
    request(
        addr,
        o,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
}

/// `POST path` with a body and content type.
pub fn post(
    addr: SocketAddr,
    o: &Opts<'_>,
    path: &str,
    ctype: &str,
    body: &str,
) -> Result<Reply, String> {
    request(
        addr,
        o,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Expects the server to refuse the client: returns OpenSSL's error text, which names the
/// alert the server sent. With TLS 1.3 the client's handshake completes before the server has
/// judged its certificate, so we wait for the alert before sending anything.
pub fn refusal(addr: SocketAddr, o: &Opts<'_>) -> String {
    refused(addr, o, None)
}

/// Like [`refusal`], but the way curl and browsers behave: the request is written right after
/// the client's side of the handshake, before the server's verdict can have arrived. The alert
/// must still be what the client reads (the server lingers instead of resetting).
pub fn refusal_after_write(addr: SocketAddr, o: &Opts<'_>) -> String {
    refused(
        addr,
        o,
        Some(b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

fn refused(addr: SocketAddr, o: &Opts<'_>, first: Option<&[u8]>) -> String {
    let mut s = match connect(addr, o) {
        Err(e) => return e,
        Ok(s) => s,
    };
    s.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .ok();
    if let Some(Err(e)) = first.map(|bytes| s.write_all(bytes)) {
        return format!("write: {e}");
    }
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Err(e) => format!("read: {e}"),
        Ok(0) => "closed without alert".into(),
        Ok(_) => panic!("the server sent data: it accepted the client"),
    }
}
