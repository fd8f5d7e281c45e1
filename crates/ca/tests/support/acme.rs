//! An ACME client we did not write (the instant-acme crate) over the tests' own transport: each
//! request a new TLS connection (verified against the PKI's root), sent to the replicas in turn,
//! so a client may reach either `ca` at every step. The protocol is all instant-acme's.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};

/// Sends each request to the next of `replicas`.
pub struct Alternating {
    replicas: Vec<SocketAddr>,
    root: PathBuf,
    next: AtomicUsize,
    /// How many requests each replica answered.
    pub answered: Arc<Vec<AtomicUsize>>,
    /// The headers of the last answer (names lower-case).
    pub last_headers: Arc<Mutex<Vec<(String, String)>>>,
}

impl Alternating {
    /// A transport to `replicas`, trusting `root`.
    pub fn new(replicas: Vec<SocketAddr>, root: PathBuf) -> Alternating {
        let answered = Arc::new(replicas.iter().map(|_| AtomicUsize::new(0)).collect());
        Alternating {
            replicas,
            root,
            next: AtomicUsize::new(0),
            answered,
            last_headers: Arc::default(),
        }
    }
}

impl HttpClient for Alternating {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let i = self.next.fetch_add(1, Ordering::SeqCst) % self.replicas.len();
        let (addr, root, answered) = (self.replicas[i], self.root.clone(), self.answered.clone());
        let last = self.last_headers.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match body.collect().await {
                Ok(all) => all.to_bytes(),
                Err(never) => match never {},
            };
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let mut head = format!("{} {path} HTTP/1.1", parts.method);
            if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
                head.push_str(&format!(
                    "\r\nContent-Type: {}",
                    ct.to_str().unwrap_or_default()
                ));
            }
            let reply = tokio::task::spawn_blocking(move || {
                crate::support::call(addr, &root, None, &head, &bytes)
            })
            .await
            .map_err(|e| Error::Other(Box::new(e)))?;
            answered[i].fetch_add(1, Ordering::SeqCst);
            *last.lock().unwrap_or_else(PoisonError::into_inner) = reply.headers.clone();
            let mut b = http::Response::builder().status(reply.status);
            for (n, v) in &reply.headers {
                b = b.header(n.as_str(), v.as_str());
            }
            let (parts, ()) = b.body(()).map_err(Error::Http)?.into_parts();
            Ok(BytesResponse {
                parts,
                body: Box::new(Bytes::from(reply.body)),
            })
        })
    }
}
