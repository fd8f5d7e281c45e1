//! A plain-HTTP application for the front door to forward to (actix-web on its own thread, on an
//! ephemeral loopback port), with routes that misbehave on demand.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};

/// The application; stopped when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    /// Requests that reached it.
    pub hits: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Routes: `GET /headers` (what it received, as JSON `[name, value]` pairs), `GET
    /// /big/{mib}` (that many MiB of a byte pattern, with its length), `GET /sleep/{secs}`,
    /// `GET /stall` (one piece of body, then nothing), `POST /upload` (the length and byte sum
    /// of the body), `POST /login1` (the seed's `true`/`false`; 401 for user `nobody`).
    pub fn start() -> Upstream {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let hits = counted.clone();
                    App::new()
                        .wrap_fn(move |req, srv| {
                            hits.fetch_add(1, Ordering::SeqCst);
                            actix_web::dev::Service::call(srv, req)
                        })
                        .app_data(web::PayloadConfig::new(64 << 20))
                        .route("/headers", web::get().to(headers))
                        .route("/big/{mib}", web::get().to(big))
                        .route("/sleep/{secs}", web::get().to(sleep))
                        .route("/stall", web::get().to(stall))
                        .route("/upload", web::post().to(upload))
                        .route("/login1", web::post().to(login1))
                })
                .workers(1)
                .bind(("127.0.0.1", 0))
                .expect("bind upstream");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("send");
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().expect("upstream starts");
        Upstream {
            addr,
            hits,
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn headers(req: HttpRequest) -> HttpResponse {
    let pairs: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    HttpResponse::Ok().json(pairs)
}

async fn big(mib: web::Path<u64>) -> HttpResponse {
    HttpResponse::Ok().body(Pattern {
        sent: 0,
        total: *mib << 20,
        stall_after: None,
    })
}

async fn stall() -> HttpResponse {
    HttpResponse::Ok().body(Pattern {
        sent: 0,
        total: 1 << 20,
        stall_after: Some(CHUNK as u64),
    })
}

async fn sleep(secs: web::Path<u64>) -> &'static str {
    actix_web::rt::time::sleep(Duration::from_secs(*secs)).await;
    "slept"
}

async fn upload(body: Bytes) -> String {
    format!("{} {}", body.len(), byte_sum(&body))
}

async fn login1(form: web::Form<std::collections::HashMap<String, String>>) -> HttpResponse {
    if form.get("username").map(String::as_str) == Some("nobody") {
        return HttpResponse::Unauthorized().body("who?");
    }
    let ok = form.get("username").map(String::as_str) == Some("name")
        && form.get("password").map(String::as_str) == Some("pwd1");
    HttpResponse::Ok().json(ok)
}

/// The sum of `bytes`, modulo 2^32: what `/upload` answers, to compare with what was sent.
pub fn byte_sum(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
}

/// The byte at `offset` of every `/big` answer.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

const CHUNK: usize = 64 * 1024;

/// A body made piece by piece as it is sent: the answer's size costs no memory here.
struct Pattern {
    sent: u64,
    total: u64,
    /// After this many bytes, never send another (and never end).
    stall_after: Option<u64>,
}

impl MessageBody for Pattern {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.total)
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Infallible>>> {
        if self.stall_after.is_some_and(|n| self.sent >= n) {
            return Poll::Pending;
        }
        if self.sent >= self.total {
            return Poll::Ready(None);
        }
        let n = (self.total - self.sent).min(CHUNK as u64);
        let start = self.sent;
        let piece: Vec<u8> = (start..start + n).map(pattern_byte).collect();
        self.sent += n;
        Poll::Ready(Some(Ok(Bytes::from(piece))))
    }
}
