//! HTTP/2 for the load generator: one stream at a time on each connection (`h2load -m 1`),
//! so that an h2 figure has the shape of its HTTP/1.1 keep-alive twin and only the protocol
//! differs. Browsers speak h2 to a server that offers it, as both servers under test do.

use bytes::Bytes;
use h2::client::SendRequest;

use crate::http::{RequestKind, LOGIN_FORM};
use crate::tls::Stream;

/// An HTTP/2 connection, its frames driven by a task of its own.
pub struct H2Conn {
    send: SendRequest<Bytes>,
    authority: String,
}

/// Why an HTTP/2 exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum H2Error {
    /// The connection or stream failed (the I/O error inside, if any, is the source).
    #[error("HTTP/2: {0}")]
    Protocol(#[from] h2::Error),
    /// The request could not be built (a bad authority).
    #[error("HTTP/2 request: {0}")]
    Request(#[from] http::Error),
}

impl H2Error {
    /// The I/O error under it, for the TLS/IO classification of the load generator.
    pub fn io(&self) -> Option<&std::io::Error> {
        match self {
            H2Error::Protocol(e) => e.get_io(),
            H2Error::Request(_) => None,
        }
    }
}

impl H2Conn {
    /// The HTTP/2 preface and settings over an established TLS stream (ALPN `h2`).
    /// `authority` is `host:port`, sent as `:authority`.
    pub async fn handshake(stream: Box<dyn Stream>, authority: &str) -> Result<H2Conn, H2Error> {
        let (send, connection) = h2::client::handshake(stream).await?;
        // The connection future reads and writes frames; it ends with the connection, and any
        // error it meets shows on the next request.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(H2Conn {
            send,
            authority: authority.to_owned(),
        })
    }

    /// Sends one request and reads its whole answer into `body` (cleared first). Returns the
    /// status.
    pub async fn exchange(
        &mut self,
        kind: RequestKind,
        body: &mut Vec<u8>,
    ) -> Result<u16, H2Error> {
        let uri = format!("https://{}{}", self.authority, kind.path());
        let request = match kind {
            RequestKind::GetLogin => http::Request::get(uri).body(())?,
            RequestKind::PostLogin1 => http::Request::post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("content-length", LOGIN_FORM.len())
                .body(())?,
        };
        let mut send = self.send.clone().ready().await?;
        let has_body = kind == RequestKind::PostLogin1;
        let (response, mut stream) = send.send_request(request, !has_body)?;
        if has_body {
            stream.send_data(Bytes::from_static(LOGIN_FORM.as_bytes()), true)?;
        }
        let response = response.await?;
        let status = response.status().as_u16();
        let mut data = response.into_body();
        body.clear();
        while let Some(chunk) = data.data().await {
            let chunk = chunk?;
            // Give the window back, or a long answer would stall the stream.
            let _ = data.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        Ok(status)
    }
}
