//! One worker of a run: its connection (made fresh, resumed, or kept alive), its requests,
//! and what it counted. Workers share the request, the budget and the counters ([`Shared`]).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use crate::config::{LoadConfig, Mode};
use crate::h2::{H2Conn, H2Error};
use crate::http::{read_response, Http, HttpError};
use crate::stats::Errors;
use crate::tls::{self, Connector};

/// State shared by the workers.
pub(crate) struct Shared {
    pub(crate) cfg: LoadConfig,
    pub(crate) connector: Connector,
    /// The HTTP/1.1 request's bytes.
    pub(crate) request: Vec<u8>,
    /// `host:port`, HTTP/2's `:authority`.
    pub(crate) authority: String,
    /// Requests not yet claimed (i64::MAX when unbounded).
    pub(crate) budget: AtomicI64,
    /// Measurement start and hard stop, set once all workers are ready.
    pub(crate) window: OnceLock<(Instant, Instant)>,
    pub(crate) ready: Barrier,
    pub(crate) go: Barrier,
    pub(crate) stop: AtomicBool,
    // Live counters for the progress line.
    pub(crate) ok: AtomicU64,
    pub(crate) handshakes: AtomicU64,
    pub(crate) failed: AtomicU64,
}

impl Shared {
    fn claim(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && self.budget.fetch_sub(1, Ordering::Relaxed) > 0
            && self.window.get().is_some_and(|w| Instant::now() < w.1)
    }

    fn hard_stop(&self) -> Instant {
        self.window
            .get()
            .map_or_else(|| Instant::now() + self.cfg.timeout, |w| w.1)
    }
}

#[derive(Default)]
pub(crate) struct WorkerStats {
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) requests: u64,
    pub(crate) handshakes: u64,
    pub(crate) handshakes_measured: u64,
    pub(crate) resumed: u64,
    pub(crate) errors: Errors,
}

/// Why one request failed.
pub(crate) enum Failure {
    Connect,
    Tls,
    Status,
    Io,
}

impl WorkerStats {
    fn fail(&mut self, shared: &Shared, f: Failure) {
        match f {
            Failure::Connect => self.errors.connect += 1,
            Failure::Tls => self.errors.tls += 1,
            Failure::Status => self.errors.http_status += 1,
            Failure::Io => self.errors.io += 1,
        }
        shared.failed.fetch_add(1, Ordering::Relaxed);
    }

    fn handshake_done(&mut self, shared: &Shared, resumed: bool, measured: bool) {
        self.handshakes += 1;
        shared.handshakes.fetch_add(1, Ordering::Relaxed);
        if measured {
            self.handshakes_measured += 1;
            self.resumed += u64::from(resumed);
        }
    }
}

/// An open connection: HTTP/1.1 bytes on the TLS stream, or an HTTP/2 client over it.
pub(crate) enum Conn {
    H1(Box<dyn tls::Stream>),
    H2(H2Conn),
}

/// A TLS 1.3 server refuses a client certificate after the client's handshake is done: the
/// refusal arrives as an alert on the first read, a TLS error inside the I/O error.
fn io_class(e: &std::io::Error) -> Failure {
    if tls::is_tls_error(e) {
        Failure::Tls
    } else {
        Failure::Io
    }
}

fn h2_class(e: &H2Error) -> Failure {
    e.io().map_or(Failure::Io, io_class)
}

/// A new connection and whether its TLS session was resumed.
async fn connect(shared: &Shared, connector: &Connector) -> Result<(Conn, bool), Failure> {
    let tcp = TcpStream::connect(shared.cfg.addr)
        .await
        .map_err(|_| Failure::Connect)?;
    // Requests are small and answered at once: do not let Nagle hold them back.
    let _ = tcp.set_nodelay(true);
    let c = connector
        .handshake(tcp, &shared.cfg.host)
        .await
        .map_err(|_| Failure::Tls)?;
    let conn = match shared.cfg.http {
        Http::H1 => Conn::H1(c.stream),
        // A server that did not choose h2 would take the preface for a bad HTTP/1.1 request:
        // a failed negotiation is a failed handshake.
        Http::H2 if c.alpn.as_deref() != Some(b"h2") => return Err(Failure::Tls),
        Http::H2 => Conn::H2(
            H2Conn::handshake(c.stream, &shared.authority)
                .await
                .map_err(|e| h2_class(&e))?,
        ),
    };
    Ok((conn, c.resumed))
}

/// Sends the request and reads the answer. `Ok(true)` when the server keeps the connection.
async fn exchange(shared: &Shared, conn: &mut Conn, buf: &mut Vec<u8>) -> Result<bool, Failure> {
    let kind = shared.cfg.request;
    let stream = match conn {
        Conn::H1(stream) => stream,
        Conn::H2(h2) => {
            let status = h2.exchange(kind, buf).await.map_err(|e| h2_class(&e))?;
            return match kind.accepts(status, buf) {
                true => Ok(true),
                false => Err(Failure::Status),
            };
        }
    };
    stream
        .write_all(&shared.request)
        .await
        .map_err(|e| io_class(&e))?;
    let head = read_response(stream, buf).await.map_err(|e| match e {
        HttpError::Io(e) => io_class(&e),
        HttpError::Protocol(_) => Failure::Io,
    })?;
    if !kind.accepts(head.status, &buf[head.head_len..]) {
        return Err(Failure::Status);
    }
    Ok(!head.close)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

pub(crate) async fn worker(shared: Arc<Shared>) -> WorkerStats {
    let mut st = WorkerStats::default();
    let connector = shared.connector.for_worker();
    let mut buf = Vec::with_capacity(1024);
    let keepalive = shared.cfg.mode == Mode::Keepalive;
    // Keep-alive connections are made before the window opens, so keep-alive rates are not
    // diluted by the handshakes of the set-up.
    let mut conn = match keepalive {
        true => preconnect(&shared, &connector, &mut st).await,
        false => None,
    };
    shared.ready.wait().await;
    shared.go.wait().await;
    while shared.claim() {
        let t0 = Instant::now();
        let limit = (t0 + shared.cfg.timeout).min(shared.hard_stop());
        let step = async {
            let mut handshake = None;
            let mut c = match conn.take() {
                Some(c) => c,
                None => {
                    let (c, resumed) = connect(&shared, &connector).await?;
                    handshake = Some(resumed);
                    c
                }
            };
            let kept = exchange(&shared, &mut c, &mut buf).await;
            Ok::<_, Failure>((handshake, c, kept))
        };
        match tokio::time::timeout_at(limit.into(), step).await {
            Ok(Ok((handshake, c, kept))) => {
                let exchanged = Exchanged {
                    handshake,
                    kept,
                    t0,
                    limit,
                };
                conn = settle(&shared, &mut st, exchanged, c).await;
            }
            Ok(Err(f)) => {
                let refused = matches!(f, Failure::Connect);
                st.fail(&shared, f);
                if refused {
                    // Nothing listening: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Err(_) => {
                if Instant::now() >= shared.hard_stop() {
                    break; // cut by the end of the run, not slow
                }
                st.errors.timeout += 1;
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    st
}

/// A keep-alive connection made before the window opens.
async fn preconnect(shared: &Shared, connector: &Connector, st: &mut WorkerStats) -> Option<Conn> {
    match tokio::time::timeout(shared.cfg.timeout, connect(shared, connector)).await {
        Ok(Ok((c, resumed))) => {
            st.handshake_done(shared, resumed, false);
            Some(c)
        }
        Ok(Err(f)) => {
            st.fail(shared, f);
            None
        }
        Err(_) => {
            st.errors.timeout += 1;
            None
        }
    }
}

/// One request that got an answer or a failure in time.
pub(crate) struct Exchanged {
    /// Whether a handshake was made for it (and whether it resumed).
    handshake: Option<bool>,
    /// The exchange: whether the connection may carry another request.
    kept: Result<bool, Failure>,
    t0: Instant,
    limit: Instant,
}

/// Counts one exchange; returns the connection when it is kept for the next request.
async fn settle(shared: &Shared, st: &mut WorkerStats, e: Exchanged, mut c: Conn) -> Option<Conn> {
    // A handshake the server refused after the fact is not one it completed.
    let refused = matches!(e.kept, Err(Failure::Tls));
    if let (Some(resumed), false) = (e.handshake, refused) {
        st.handshake_done(shared, resumed, true);
    }
    let keep = match e.kept {
        Ok(keep) => keep,
        Err(f) => {
            st.fail(shared, f);
            return None;
        }
    };
    st.requests += 1;
    st.latencies_us.push(micros(e.t0.elapsed()));
    shared.ok.fetch_add(1, Ordering::Relaxed);
    let keepalive = shared.cfg.mode == Mode::Keepalive;
    if keepalive && keep {
        return Some(c);
    }
    if let (false, Conn::H1(stream)) = (keepalive, &mut c) {
        // The server closes first (we asked for `Connection: close`): wait for its close so
        // the TIME_WAIT is on its side, not on our ports.
        let _ = tokio::time::timeout_at(
            e.limit.into(),
            tokio::io::copy(stream, &mut tokio::io::sink()),
        )
        .await;
    }
    None
}
