//! The load generator: `c` connections on a tokio runtime, bounded by a request count and a
//! deadline, reporting rates, latency percentiles, errors by class, and its own CPU use.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Barrier;

pub use crate::config::{parse_url, LoadConfig, Mode, DEFAULT_SECS, MAX_SECS_WITH_COUNT};
use crate::error::{io, Error, Result};
use crate::http::{Http, RequestKind};
pub use crate::stats::Errors;
use crate::stats::Latency;
use crate::tls::{Backend, Connector};
use crate::worker::{worker, Shared, WorkerStats};

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// Connection use.
    pub mode: Mode,
    /// Request sent.
    pub request: RequestKind,
    /// HTTP version.
    pub http: Http,
    /// TLS library of the client.
    pub backend: Backend,
    /// Connections at once.
    pub concurrency: usize,
    /// Load generator threads.
    pub threads: usize,
    /// Seconds from the start of measurement (all keep-alive connections up) to the end.
    pub elapsed_s: f64,
    /// Requests answered as expected.
    pub requests: u64,
    /// TLS handshakes completed (including those of keep-alive set-up and reconnects).
    pub handshakes: u64,
    /// Handshakes completed during the measured window.
    pub handshakes_measured: u64,
    /// Of those, resumed ones.
    pub resumed: u64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Handshakes per second (measured window).
    pub handshakes_per_s: f64,
    /// Resumed / all handshakes of the window (0 when there were none).
    pub resumed_ratio: f64,
    /// Latency of answered requests (with connect and handshake in new-conn and resume modes).
    pub latency: Option<Latency>,
    /// Failures by class.
    pub errors: Errors,
    /// CPU seconds the load generator used in the window.
    pub loadgen_cpu_s: f64,
    /// Those in cores: 1.0 = one core busy the whole time.
    pub loadgen_cores: f64,
    /// Cores of the machine.
    pub machine_cores: usize,
    /// Cores busy machine-wide in the window (every process: server, load generator, others).
    pub machine_busy_cores: f64,
}

impl LoadResult {
    /// The human-readable summary `bench load` prints.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{:?} {:?} {:?} over {} connection(s), {} thread(s), {:?} client, {:.2} s\n\
             requests:   {} ok, {:.1} req/s\n\
             handshakes: {} in the window, {:.1} /s, resumed {:.1}%\n",
            self.mode,
            self.request,
            self.http,
            self.concurrency,
            self.threads,
            self.backend,
            self.elapsed_s,
            self.requests,
            self.requests_per_s,
            self.handshakes_measured,
            self.handshakes_per_s,
            self.resumed_ratio * 100.0
        );
        match &self.latency {
            Some(l) => s.push_str(&format!(
                "latency:    p50 {} µs, p90 {} µs, p99 {} µs, max {} µs\n",
                l.p50_us, l.p90_us, l.p99_us, l.max_us
            )),
            None => s.push_str("latency:    no answered request\n"),
        }
        let e = &self.errors;
        s.push_str(&format!(
            "errors:     {} (connect {}, tls {}, http-status {}, timeout {}, io {})\n\
             load generator CPU: {:.2} s = {:.2} of {} cores; machine busy {:.2} cores (all processes)\n",
            e.total(),
            e.connect,
            e.tls,
            e.http_status,
            e.timeout,
            e.io,
            self.loadgen_cpu_s,
            self.loadgen_cores,
            self.machine_cores,
            self.machine_busy_cores
        ));
        s
    }
}

/// Called at the edges of the measured window, e.g. to read a server's CPU time.
pub trait Hooks: Sync {
    /// The window starts (keep-alive connections are up).
    fn started(&self) {}
    /// The window ended (every worker stopped).
    fn stopped(&self) {}
}

/// Hooks that do nothing.
pub struct NoHooks;
impl Hooks for NoHooks {}

async fn progress(shared: Arc<Shared>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let (mut ok0, mut hs0) = (0, 0);
    for second in 1.. {
        tick.tick().await;
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let ok = shared.ok.load(Ordering::Relaxed);
        let hs = shared.handshakes.load(Ordering::Relaxed);
        eprintln!(
            "[{second:>3}s] {:>8} req/s {:>8} handshakes/s   total {ok} ok, {} errors",
            ok - ok0,
            hs - hs0,
            shared.failed.load(Ordering::Relaxed)
        );
        (ok0, hs0) = (ok, hs);
    }
}

/// Runs one load test to its end (count, time or both) and returns what it measured. Builds
/// its own tokio runtime; `hooks` are called at the edges of the measured window.
pub fn run(cfg: &LoadConfig, hooks: &dyn Hooks) -> Result<LoadResult> {
    check(cfg)?;
    let shared = Arc::new(shared_for(cfg)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()
        .map_err(io("start the tokio runtime"))?;
    let measured = rt.block_on(measure(cfg, shared, hooks));
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(result_of(cfg, measured))
}

/// What a run can refuse before it starts.
fn check(cfg: &LoadConfig) -> Result<()> {
    if cfg.concurrency == 0 || cfg.threads == 0 {
        return Err(Error::Usage("-c and --threads must be at least 1".into()));
    }
    if !cfg.addr.ip().is_loopback() {
        return Err(Error::Usage(format!(
            "{} is not a loopback address",
            cfg.addr
        )));
    }
    if cfg.http == Http::H2 && cfg.mode != Mode::Keepalive {
        return Err(Error::Usage(
            "HTTP/2 is measured on kept-alive connections only (--mode keepalive)".into(),
        ));
    }
    Ok(())
}

/// What every worker shares: the request, the connector, the budget and the counters.
fn shared_for(cfg: &LoadConfig) -> Result<Shared> {
    let resume = cfg.mode == Mode::Resume;
    let connector = Connector::new(cfg.backend, &cfg.files, resume, cfg.http)?;
    let close = cfg.mode != Mode::Keepalive;
    let host_header = format!("{}:{}", cfg.host, cfg.addr.port());
    Ok(Shared {
        request: cfg.request.bytes(&host_header, close),
        authority: host_header.clone(),
        connector,
        budget: AtomicI64::new(
            cfg.requests
                .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX)),
        ),
        window: OnceLock::new(),
        ready: Barrier::new(cfg.concurrency + 1),
        go: Barrier::new(cfg.concurrency + 1),
        stop: AtomicBool::new(false),
        ok: AtomicU64::new(0),
        handshakes: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        cfg: cfg.clone(),
    })
}

/// What the window measured, before it becomes a [`LoadResult`].
struct Measured {
    stats: WorkerStats,
    elapsed: f64,
    cpu: f64,
    busy: f64,
}

/// Starts the workers, opens the window when they are ready, and gathers their figures.
async fn measure(cfg: &LoadConfig, shared: Arc<Shared>, hooks: &dyn Hooks) -> Measured {
    let workers: Vec<_> = (0..cfg.concurrency)
        .map(|_| tokio::spawn(worker(shared.clone())))
        .collect();
    shared.ready.wait().await;
    hooks.started();
    let cpu0 = crate::usage::self_cpu_seconds();
    let busy0 = crate::usage::machine_busy_seconds();
    let start = Instant::now();
    let _ = shared.window.set((start, start + cfg.time_bound()));
    let ticker = cfg.progress.then(|| tokio::spawn(progress(shared.clone())));
    shared.go.wait().await;
    let mut all = WorkerStats::default();
    for w in workers {
        if let Ok(st) = w.await {
            all.latencies_us.extend(st.latencies_us);
            all.requests += st.requests;
            all.handshakes += st.handshakes;
            all.handshakes_measured += st.handshakes_measured;
            all.resumed += st.resumed;
            all.errors.add(&st.errors);
        }
    }
    let end = Instant::now();
    let cpu = crate::usage::self_cpu_seconds() - cpu0;
    let busy = crate::usage::machine_busy_seconds() - busy0;
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        t.abort();
    }
    hooks.stopped();
    Measured {
        stats: all,
        elapsed: (end - start).as_secs_f64().max(1e-9),
        cpu,
        busy,
    }
}

fn result_of(cfg: &LoadConfig, m: Measured) -> LoadResult {
    let Measured {
        mut stats,
        elapsed,
        cpu,
        busy,
    } = m;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    LoadResult {
        mode: cfg.mode,
        request: cfg.request,
        http: cfg.http,
        backend: cfg.backend,
        concurrency: cfg.concurrency,
        threads: cfg.threads,
        elapsed_s: elapsed,
        requests: stats.requests,
        handshakes: stats.handshakes,
        handshakes_measured: stats.handshakes_measured,
        resumed: stats.resumed,
        requests_per_s: stats.requests as f64 / elapsed,
        handshakes_per_s: stats.handshakes_measured as f64 / elapsed,
        resumed_ratio: if stats.handshakes_measured == 0 {
            0.0
        } else {
            stats.resumed as f64 / stats.handshakes_measured as f64
        },
        latency: Latency::from_samples(&mut stats.latencies_us),
        errors: stats.errors,
        loadgen_cpu_s: cpu,
        loadgen_cores: cpu / elapsed,
        machine_cores: cores,
        machine_busy_cores: busy / elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TlsFiles;
    use std::net::SocketAddr;

    #[test]
    fn urls() {
        let (a, h) = parse_url("https://127.0.0.1:8091").expect("ok");
        assert_eq!((a.port(), h.as_str()), (8091, "127.0.0.1"));
        let (a, h) = parse_url("https://localhost:9/login").expect("ok");
        assert!(a.ip().is_loopback());
        assert_eq!((a.port(), h.as_str()), (9, "localhost"));
        let (a, _) = parse_url("https://[::1]:8443").expect("ok");
        assert_eq!(a.port(), 8443);
        assert!(parse_url("http://127.0.0.1:1").is_err());
        assert!(parse_url("https://192.0.2.1:443").is_err());
    }

    #[test]
    fn every_run_is_bounded_in_time() {
        let cfg = LoadConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            host: "127.0.0.1".into(),
            files: TlsFiles {
                ca: "ca.crt".into(),
                cert: None,
                key: None,
            },
            backend: Backend::Openssl,
            concurrency: 1,
            requests: None,
            duration: None,
            mode: Mode::Keepalive,
            request: RequestKind::GetLogin,
            http: Http::H1,
            threads: 1,
            timeout: Duration::from_secs(5),
            progress: false,
        };
        assert_eq!(cfg.time_bound(), Duration::from_secs(DEFAULT_SECS));
        let counted = LoadConfig {
            requests: Some(10),
            ..cfg.clone()
        };
        assert_eq!(
            counted.time_bound(),
            Duration::from_secs(MAX_SECS_WITH_COUNT)
        );
        let timed = LoadConfig {
            duration: Some(Duration::from_secs(2)),
            ..cfg
        };
        assert_eq!(timed.time_bound(), Duration::from_secs(2));
    }
}
