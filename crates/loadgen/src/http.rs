//! The two requests of the seed (as HTTP/1.1 bytes; [`crate::h2`] sends them over HTTP/2), and
//! an HTTP/1.1 response reader for one request at a time.

use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Which request each iteration sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// `GET /login` → `200 Hello World!`.
    GetLogin,
    /// `POST /login1` with the seed's form `username=name&password=pwd1` → `200 true`.
    PostLogin1,
}

/// The HTTP version each connection speaks (ALPN offers only that one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Http {
    /// HTTP/1.1, one request at a time.
    #[value(name = "h1")]
    H1,
    /// HTTP/2, one stream at a time on each connection.
    H2,
}

impl Http {
    /// The ALPN protocol id the client offers.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Http::H1 => b"http/1.1",
            Http::H2 => b"h2",
        }
    }
}

/// The seed's login form.
pub const LOGIN_FORM: &str = "username=name&password=pwd1";

impl RequestKind {
    /// The request's path.
    pub fn path(self) -> &'static str {
        match self {
            RequestKind::GetLogin => "/login",
            RequestKind::PostLogin1 => "/login1",
        }
    }

    /// The request bytes. `close` asks the server to close after answering, so that the server
    /// side closes first and the load generator's ports do not pile up in TIME_WAIT.
    pub fn bytes(self, host: &str, close: bool) -> Vec<u8> {
        let connection = if close { "close" } else { "keep-alive" };
        match self {
            RequestKind::GetLogin => format!(
                "GET /login HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\nAccept: */*\r\n\
                 Connection: {connection}\r\n\r\n"
            ),
            RequestKind::PostLogin1 => format!(
                "POST /login1 HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\nAccept: */*\r\n\
                 Connection: {connection}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n{LOGIN_FORM}",
                LOGIN_FORM.len()
            ),
        }
        .into_bytes()
    }

    /// Whether `status` and `body` are the answer this request must get.
    pub fn accepts(self, status: u16, body: &[u8]) -> bool {
        status == 200
            && match self {
                RequestKind::GetLogin => true,
                // Ours answers JSON `true`, nginx's reference the text `true`.
                RequestKind::PostLogin1 => body.trim_ascii() == b"true",
            }
    }
}

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection failed or closed early.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not HTTP/1.x as we read it.
    #[error("bad response: {0}")]
    Protocol(String),
}

/// How the end of a body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// `Content-Length`.
    Exact(usize),
    /// Neither length nor chunking: the body ends with the connection.
    UntilClose,
}

/// The head of a response: status, where the body starts, how long it is, and whether the
/// server will close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Bytes of the status line and headers.
    pub head_len: usize,
    /// Length of the body.
    pub body: BodyLength,
    /// `Connection: close` (or HTTP/1.0 without keep-alive).
    pub close: bool,
}

/// Parses a response head from the start of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Protocol(e.to_string())),
    };
    let status = resp
        .code
        .ok_or_else(|| HttpError::Protocol("no status".into()))?;
    let mut length = None;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(usize::from_str(value).map_err(|_| {
                HttpError::Protocol(format!("Content-Length {value:?} is not a number"))
            })?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Protocol(
                "chunked bodies are not read by this load generator".into(),
            ));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let body = match length {
        Some(n) => BodyLength::Exact(n),
        // 1xx, 204 and 304 have no body.
        None if status < 200 || status == 204 || status == 304 => BodyLength::Exact(0),
        None => BodyLength::UntilClose,
    };
    Ok(Some(Head {
        status,
        head_len,
        body,
        close: close || body == BodyLength::UntilClose,
    }))
}

/// Reads one whole response into `buf` (cleared first). Returns its head; the body is
/// `buf[head.head_len..]`.
pub async fn read_response<S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Head, HttpError> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HttpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = parse_head(buf)? {
            break head;
        }
        if buf.len() > 64 * 1024 {
            return Err(HttpError::Protocol("response head over 64 KiB".into()));
        }
    };
    match head.body {
        BodyLength::Exact(len) => {
            let want = head.head_len + len;
            while buf.len() < want {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(HttpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            // No pipelining: anything past the body would be a server bug; drop it.
            buf.truncate(want);
        }
        BodyLength::UntilClose => loop {
            // A TLS peer that closes without close_notify is an error in OpenSSL's eyes, but
            // here it only means the body ended.
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        },
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_request_has_the_right_length() {
        let req =
            String::from_utf8(RequestKind::PostLogin1.bytes("127.0.0.1:1", false)).expect("utf-8");
        assert!(req.starts_with("POST /login1 HTTP/1.1\r\n"));
        assert!(req.contains("Content-Length: 27\r\n"));
        assert!(req.ends_with("\r\n\r\nusername=name&password=pwd1"));
        let get = String::from_utf8(RequestKind::GetLogin.bytes("h", true)).expect("utf-8");
        assert!(get.contains("Connection: close\r\n") && get.ends_with("\r\n\r\n"));
    }

    #[test]
    fn heads() {
        let r =
            b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nHello World!";
        let h = parse_head(r).expect("ok").expect("complete");
        assert_eq!(h.status, 200);
        assert_eq!(h.body, BodyLength::Exact(12));
        assert!(!h.close);
        assert_eq!(&r[h.head_len..], b"Hello World!");
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")
            .expect("ok")
            .is_none());
        let h = parse_head(b"HTTP/1.1 404 Not Found\r\nconnection: Close\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(
            (h.status, h.body, h.close),
            (404, BodyLength::UntilClose, true)
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }

    #[test]
    fn login_answers() {
        assert!(RequestKind::PostLogin1.accepts(200, b"true"));
        assert!(RequestKind::PostLogin1.accepts(200, b"true\n"));
        assert!(!RequestKind::PostLogin1.accepts(200, b"false"));
        assert!(!RequestKind::GetLogin.accepts(500, b""));
    }

    #[tokio::test]
    async fn reads_a_response_in_pieces() {
        let data: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrue";
        let mut buf = Vec::new();
        let mut src = data;
        let h = read_response(&mut src, &mut buf).await.expect("read");
        assert_eq!(&buf[h.head_len..], b"true");
        let mut short: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ntrue";
        assert!(read_response(&mut short, &mut buf).await.is_err());
    }
}
