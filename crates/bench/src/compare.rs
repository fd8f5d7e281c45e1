//! `bench compare` (`make bench`): our server and nginx on the same benchmark PKI, started
//! fresh for every run, alternately, each figure repeated; the report goes to `bench/results/`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::http::RequestKind;
use crate::load::{self, Errors, Hooks, LoadConfig, Mode};
use crate::nginx::{self, NginxSite};
use crate::procfs;
use crate::report::{self, AltServer, Crypto, Machine, Report};
use crate::stats::{Latency, Spread};
use crate::tls::{Backend, TlsFiles};

/// Options of `bench compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// CI size: one run per server of 2.5 s for three figures (EC full handshakes one-way and
    /// mutual, keep-alive at 64 connections); under a minute.
    #[arg(long)]
    pub quick: bool,
    /// Runs per server and figure [default: 3; 1 with --quick].
    #[arg(long)]
    pub reps: Option<usize>,
    /// Seconds per run [default: 5; 2.5 with --quick].
    #[arg(long)]
    pub secs: Option<f64>,
    /// Only these figures (ids as in the report, e.g. hs-ec-mutual,ka-64).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Where the report goes [default: WORKSPACE/bench/results].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Our server's binary [default: WORKSPACE/target/release/server].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Worker threads of our server and worker processes of nginx.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Load generator threads [default: number of cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// TLS library of the load generator (resumption always uses rustls: see `bench load
    /// --help`). rustls by default: it leaves more of the shared cores to the server.
    #[arg(long, value_enum, default_value_t = Backend::Rustls)]
    pub tls: Backend,
    /// Run our server only (no nginx, no ratios).
    #[arg(long)]
    pub no_nginx: bool,
    /// A third server measured beside ours and nginx on the `--alt-only` figures: another build
    /// of our server (e.g. `--features vendored-openssl`), started with the same flags as ours.
    #[arg(long, value_name = "PATH")]
    pub alt_server_bin: Option<PathBuf>,
    /// Name of the third server in the report [default: "ours, vendored OpenSSL"]; the OpenSSL
    /// version found in its binary, if any, is appended.
    #[arg(long, value_name = "TEXT", requires = "alt_server_bin")]
    pub alt_label: Option<String>,
    /// Figures the third server runs [default: the full-handshake, resumed and ka-64 figures];
    /// only those also selected by `--only`/`--quick` run.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "FIGURE_IDS",
        requires = "alt_server_bin"
    )]
    pub alt_only: Vec<String>,
}

/// Key type of the benchmark PKI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// ECDSA P-256 everywhere (CA, server, client).
    EcP256,
    /// RSA-2048 everywhere.
    Rsa2048,
}

impl KeyKind {
    /// Name in tables.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::EcP256 => "EC P-256",
            KeyKind::Rsa2048 => "RSA-2048",
        }
    }
}

/// What a figure's rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// TLS handshakes per second (one request each).
    Handshakes,
    /// Requests per second on kept-alive connections.
    Requests,
    /// Correct `POST /login1` logins per second.
    Logins,
}

impl Unit {
    /// Unit of the rate.
    pub fn rate_label(self) -> &'static str {
        match self {
            Unit::Handshakes => "handshakes/s",
            Unit::Requests => "req/s",
            Unit::Logins => "logins/s",
        }
    }
    /// Unit of the CPU cost.
    pub fn op_label(self) -> &'static str {
        match self {
            Unit::Handshakes => "µs CPU/handshake",
            Unit::Requests | Unit::Logins => "µs CPU/request",
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Short id (`--only`, JSON).
    pub id: &'static str,
    /// Title in the report.
    pub title: &'static str,
    /// Key type of the PKI.
    pub key: KeyKind,
    /// Client certificate required.
    pub mutual: bool,
    /// Connection use.
    pub mode: Mode,
    /// Request.
    pub request: RequestKind,
    /// Connections at once.
    pub conns: usize,
    /// What the rate counts.
    pub unit: Unit,
    /// Load run at the same time, not measured: (request, connections). For "GET /login while
    /// POST /login1 is flooded".
    #[serde(skip)]
    pub background: Option<(RequestKind, usize)>,
    /// Extra flags for our server in this figure.
    #[serde(skip)]
    pub server_args: &'static [&'static str],
}

/// Connections for the handshake figures: enough to keep both server workers busy; more only
/// queues (the load generator competes for the same 2 cores).
const HS_CONNS: usize = 16;

/// Every figure of the full run, in report order.
pub fn figures() -> Vec<Figure> {
    use KeyKind::*;
    let hs = |id, title, key, mutual| Figure {
        id,
        title,
        key,
        mutual,
        mode: Mode::NewConn,
        request: RequestKind::GetLogin,
        conns: HS_CONNS,
        unit: Unit::Handshakes,
        background: None,
        server_args: &[],
    };
    let ka = |id, title, conns, request, unit| Figure {
        id,
        title,
        key: EcP256,
        mutual: true,
        mode: Mode::Keepalive,
        request,
        conns,
        unit,
        background: None,
        server_args: &[],
    };
    // Every login pays the full hash (no cache, no lockout): the flood is CPU-heavy on purpose.
    const HASH_EVERY_LOGIN: &[&str] = &["--login-cache-secs", "0", "--login-max-failures", "0"];
    vec![
        hs(
            "hs-ec-oneway",
            "Full handshakes/s, one-way, EC P-256",
            EcP256,
            false,
        ),
        hs(
            "hs-ec-mutual",
            "Full handshakes/s, mutual, EC P-256",
            EcP256,
            true,
        ),
        hs(
            "hs-rsa-oneway",
            "Full handshakes/s, one-way, RSA-2048",
            Rsa2048,
            false,
        ),
        hs(
            "hs-rsa-mutual",
            "Full handshakes/s, mutual, RSA-2048",
            Rsa2048,
            true,
        ),
        Figure {
            mode: Mode::Resume,
            ..hs(
                "resume-ec-oneway",
                "Resumed handshakes/s, one-way, EC P-256",
                EcP256,
                false,
            )
        },
        Figure {
            mode: Mode::Resume,
            ..hs(
                "resume-ec-mutual",
                "Resumed handshakes/s, mutual, EC P-256",
                EcP256,
                true,
            )
        },
        ka(
            "ka-1",
            "Keep-alive GET /login req/s, 1 connection",
            1,
            RequestKind::GetLogin,
            Unit::Requests,
        ),
        ka(
            "ka-64",
            "Keep-alive GET /login req/s, 64 connections",
            64,
            RequestKind::GetLogin,
            Unit::Requests,
        ),
        ka(
            "ka-256",
            "Keep-alive GET /login req/s, 256 connections",
            256,
            RequestKind::GetLogin,
            Unit::Requests,
        ),
        ka(
            "login1-64",
            "Keep-alive POST /login1 logins/s, 64 connections",
            64,
            RequestKind::PostLogin1,
            Unit::Logins,
        ),
        Figure {
            server_args: HASH_EVERY_LOGIN,
            ..ka(
                "get-idle-4",
                "GET /login, 4 connections, idle (p99 baseline)",
                4,
                RequestKind::GetLogin,
                Unit::Requests,
            )
        },
        Figure {
            server_args: HASH_EVERY_LOGIN,
            background: Some((RequestKind::PostLogin1, 64)),
            ..ka(
                "get-flood-4",
                "GET /login, 4 connections, while 64 connections flood POST /login1",
                4,
                RequestKind::GetLogin,
                Unit::Requests,
            )
        },
    ]
}

/// The figures of `--quick`.
pub const QUICK: &[&str] = &["hs-ec-oneway", "hs-ec-mutual", "ka-64"];

/// The figures the third server (`--alt-server-bin`) runs without `--alt-only`: those a
/// different TLS library changes most (full and resumed handshakes), and keep-alive at 64.
pub const ALT_DEFAULT: &[&str] = &[
    "hs-ec-oneway",
    "hs-ec-mutual",
    "hs-rsa-oneway",
    "hs-rsa-mutual",
    "resume-ec-oneway",
    "resume-ec-mutual",
    "ka-64",
];

/// Name of the third server without `--alt-label`.
pub const ALT_LABEL: &str = "ours, vendored OpenSSL";

/// Which server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// target/release/server.
    Ours,
    /// `--alt-server-bin`: another build of our server, same flags.
    Alt,
    /// nginx with the generated config.
    Nginx,
}

impl ServerKind {
    /// Short name in tables and progress lines.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Ours => "ours",
            ServerKind::Alt => "alt",
            ServerKind::Nginx => "nginx",
        }
    }
}

/// One run of one server on one figure.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Which server.
    pub server: ServerKind,
    /// Repetition number (0-based).
    pub rep: usize,
    /// The figure's rate (handshakes/s or requests/s).
    pub rate: f64,
    /// Requests answered as expected per second.
    pub requests_per_s: f64,
    /// Handshakes per second in the window.
    pub handshakes_per_s: f64,
    /// Resumed / all handshakes.
    pub resumed_ratio: f64,
    /// Latency of the run.
    pub latency: Option<Latency>,
    /// Failures.
    pub errors: Errors,
    /// Operations the CPU figure is divided by (handshakes or requests).
    pub ops: u64,
    /// Server CPU seconds in the window (every process and thread).
    pub server_cpu_s: f64,
    /// Server CPU per operation, µs.
    pub cpu_per_op_us: f64,
    /// Server CPU in cores (1.0 = one core busy the whole window).
    pub server_cores: f64,
    /// Load generator CPU in cores.
    pub loadgen_cores: f64,
    /// Cores used by other processes during the run (machine busy − server − load generator):
    /// work that had nothing to do with the benchmark and took CPU from it.
    pub other_cores: f64,
    /// Peak RSS of the server (nginx: master + workers), KiB.
    pub peak_rss_kib: u64,
    /// Window length, s.
    pub elapsed_s: f64,
}

/// Medians and spreads of one server on one figure.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStats {
    /// Rate.
    pub rate: Spread,
    /// Server CPU per operation, µs.
    pub cpu_per_op_us: Spread,
    /// Peak RSS, KiB.
    pub peak_rss_kib: Spread,
    /// p50 latency, µs.
    pub p50_us: Option<Spread>,
    /// p99 latency, µs.
    pub p99_us: Option<Spread>,
    /// Resumed share of handshakes.
    pub resumed_ratio: Spread,
    /// Server cores busy.
    pub server_cores: Spread,
    /// Load generator cores busy.
    pub loadgen_cores: Spread,
    /// Cores taken by unrelated processes.
    pub other_cores: Spread,
    /// Failed requests over all runs.
    pub errors: u64,
    /// Every run.
    pub samples: Vec<Sample>,
}

impl ServerStats {
    /// Aggregates runs; `None` without any.
    pub fn of(samples: Vec<Sample>) -> Option<ServerStats> {
        let col = |f: &dyn Fn(&Sample) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
        let lat = |f: &dyn Fn(&Latency) -> u32| -> Option<Spread> {
            Spread::of(
                &samples
                    .iter()
                    .filter_map(|s| s.latency.as_ref().map(|l| f64::from(f(l))))
                    .collect::<Vec<_>>(),
            )
        };
        Some(ServerStats {
            rate: Spread::of(&col(&|s| s.rate))?,
            cpu_per_op_us: Spread::of(&col(&|s| s.cpu_per_op_us))?,
            peak_rss_kib: Spread::of(&col(&|s| s.peak_rss_kib as f64))?,
            p50_us: lat(&|l| l.p50_us),
            p99_us: lat(&|l| l.p99_us),
            resumed_ratio: Spread::of(&col(&|s| s.resumed_ratio))?,
            server_cores: Spread::of(&col(&|s| s.server_cores))?,
            loadgen_cores: Spread::of(&col(&|s| s.loadgen_cores))?,
            other_cores: Spread::of(&col(&|s| s.other_cores))?,
            errors: samples.iter().map(|s| s.errors.total()).sum(),
            samples,
        })
    }
}

/// One figure, every server that ran it.
#[derive(Debug, Clone, Serialize)]
pub struct FigureResult {
    /// What was measured.
    pub figure: Figure,
    /// Our server.
    pub ours: Option<ServerStats>,
    /// nginx.
    pub nginx: Option<ServerStats>,
    /// The third server (`--alt-server-bin`), on the figures it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt: Option<ServerStats>,
}

/// A median that servers are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// The figure's rate.
    Rate,
    /// Server CPU per operation.
    CpuPerOp,
    /// Peak RSS.
    PeakRss,
}

impl FigureResult {
    /// The runs of one server, if it ran this figure.
    pub fn stats(&self, kind: ServerKind) -> Option<&ServerStats> {
        match kind {
            ServerKind::Ours => self.ours.as_ref(),
            ServerKind::Alt => self.alt.as_ref(),
            ServerKind::Nginx => self.nginx.as_ref(),
        }
    }
    /// `a / b` of the medians of `metric`.
    pub fn ratio_of(&self, metric: Metric, a: ServerKind, b: ServerKind) -> Option<f64> {
        let m = |s: &ServerStats| match metric {
            Metric::Rate => s.rate.median,
            Metric::CpuPerOp => s.cpu_per_op_us.median,
            Metric::PeakRss => s.peak_rss_kib.median,
        };
        ratio(m(self.stats(a)?), m(self.stats(b)?))
    }
    /// Ours / nginx of the median rates (> 1: we are faster).
    pub fn rate_ratio(&self) -> Option<f64> {
        self.ratio_of(Metric::Rate, ServerKind::Ours, ServerKind::Nginx)
    }
    /// Ours / nginx of the median CPU per operation (< 1: we spend less).
    pub fn cpu_ratio(&self) -> Option<f64> {
        self.ratio_of(Metric::CpuPerOp, ServerKind::Ours, ServerKind::Nginx)
    }
    /// Ours / nginx of the median peak RSS.
    pub fn rss_ratio(&self) -> Option<f64> {
        self.ratio_of(Metric::PeakRss, ServerKind::Ours, ServerKind::Nginx)
    }
}

/// `a / b`, `None` when `b` is zero or either is not finite.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// The workspace root: the nearest folder above the working directory holding
/// `crates/bench`, else the one this binary was built from.
pub fn workspace_root() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if dir.join("crates/bench/Cargo.toml").is_file() {
                return dir.to_owned();
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> Result<u16> {
    // The port is released before the server binds it; another process could take it in
    // between, which the start-up check would then report.
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A server process started for one run; stopped (and killed if need be) when dropped.
struct Running {
    child: Child,
    kind: ServerKind,
    log: PathBuf,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until the port accepts connections, or fails with the server's log.
    fn wait_ready(&mut self, port: u16) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{:?} exited at start-up ({status}):\n{}",
                    self.kind,
                    self.log_tail()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{:?} did not listen on {addr} within 15 s:\n{}",
                    self.kind,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM: nginx's fast shutdown (master and workers), our server's graceful stop. The
        // std library only sends SIGKILL, which would orphan nginx's workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in procfs::tree(self.pid()).into_iter().rev() {
            let _ = Command::new("kill")
                .args(["-KILL", &p.to_string()])
                .status();
        }
        // Without a `kill` binary, at least the process we started goes.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads the server's CPU time at the edges of the load's window.
struct Meter {
    pid: u32,
    at: Mutex<(f64, f64)>,
}

impl Hooks for Meter {
    fn started(&self) {
        let cpu = procfs::tree_cpu_seconds(self.pid);
        if let Ok(mut at) = self.at.lock() {
            at.0 = cpu;
        }
    }
    fn stopped(&self) {
        let cpu = procfs::tree_cpu_seconds(self.pid);
        if let Ok(mut at) = self.at.lock() {
            at.1 = cpu;
        }
    }
}

/// A benchmark PKI of one key type.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn make(key: KeyKind) -> Result<Pki> {
        let dir = tempfile::Builder::new().prefix("bench-pki-").tempdir()?;
        let key = match key {
            KeyKind::EcP256 => pki::KeyAlgorithm::EcP256,
            KeyKind::Rsa2048 => pki::KeyAlgorithm::Rsa2048,
        };
        pki::Folder::new(common::Layout::new(dir.path()))
            .init(&pki::InitOptions {
                key,
                p12_password: Some("x".into()),
                ..Default::default()
            })
            .context("cannot make the benchmark PKI")?;
        Ok(Pki { dir })
    }

    fn layout(&self) -> common::Layout {
        common::Layout::new(self.dir.path())
    }
}

/// Everything the runs share.
struct Ctx {
    args: CompareArgs,
    secs: f64,
    threads: usize,
    server_bin: PathBuf,
    alt_bin: Option<PathBuf>,
    nginx: Option<PathBuf>,
    work: tempfile::TempDir,
    ec: Pki,
    rsa: Option<Pki>,
}

impl Ctx {
    fn pki(&self, key: KeyKind) -> Result<&Pki> {
        match key {
            KeyKind::EcP256 => Ok(&self.ec),
            KeyKind::Rsa2048 => self.rsa.as_ref().context("no RSA PKI was made"),
        }
    }

    fn start(&self, kind: ServerKind, fig: &Figure, port: u16) -> Result<Running> {
        let layout = self.pki(fig.key)?.layout();
        match kind {
            ServerKind::Ours | ServerKind::Alt => {
                let bin = match kind {
                    ServerKind::Alt => self.alt_bin.as_ref().context("no --alt-server-bin")?,
                    _ => &self.server_bin,
                };
                let log = self.work.path().join(format!("{}.log", kind.name()));
                let out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)?;
                let child = Command::new(bin)
                    .arg("--pki-dir")
                    .arg(layout.root())
                    .args(["--bind", &format!("127.0.0.1:{port}")])
                    .args([
                        "--client-auth",
                        if fig.mutual { "required" } else { "none" },
                    ])
                    .args(["--workers", &self.args.workers.to_string()])
                    .args(["--watch-secs", "0"])
                    .args(fig.server_args)
                    // No per-request log lines: nginx runs with access_log off.
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::null())
                    .stdout(out.try_clone()?)
                    .stderr(out)
                    .spawn()
                    .with_context(|| format!("cannot start {}", bin.display()))?;
                Ok(Running { child, kind, log })
            }
            ServerKind::Nginx => {
                let nginx = self.nginx.as_ref().context("nginx is not available")?;
                let dir = self.work.path().join(format!("nginx-{port}"));
                std::fs::create_dir_all(&dir)?;
                let site = NginxSite {
                    dir: dir.clone(),
                    port,
                    workers: self.args.workers,
                    cert: layout.server_cert(),
                    key: layout.server_key(),
                    ca: layout.ca_cert(),
                    crl: Some(layout.ca_crl()).filter(|p| p.exists()),
                    mutual: fig.mutual,
                };
                let conf = dir.join("nginx.conf");
                std::fs::write(&conf, nginx::render(&site))?;
                let log = dir.join("error.log");
                let out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)?;
                let child = Command::new(nginx)
                    .arg("-p")
                    .arg(&dir)
                    .arg("-c")
                    .arg(&conf)
                    .arg("-e")
                    .arg(&log)
                    .stdin(Stdio::null())
                    .stdout(out.try_clone()?)
                    .stderr(out)
                    .spawn()
                    .with_context(|| format!("cannot start {}", nginx.display()))?;
                Ok(Running { child, kind, log })
            }
        }
    }

    fn run_once(&self, kind: ServerKind, fig: &Figure, rep: usize) -> Result<Sample> {
        let port = free_port()?;
        let mut server = self.start(kind, fig, port)?;
        server.wait_ready(port)?;
        let layout = self.pki(fig.key)?.layout();
        let cfg = LoadConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            host: "127.0.0.1".into(),
            files: TlsFiles {
                ca: layout.ca_cert(),
                cert: fig.mutual.then(|| layout.client_cert()),
                key: fig.mutual.then(|| layout.client_key()),
            },
            backend: if fig.mode == Mode::Resume {
                Backend::Rustls
            } else {
                self.args.tls
            },
            concurrency: fig.conns,
            requests: None,
            duration: Some(Duration::from_secs_f64(self.secs)),
            mode: fig.mode,
            request: fig.request,
            threads: self.threads,
            timeout: Duration::from_secs(5),
            progress: false,
        };
        let meter = Meter {
            pid: server.pid(),
            at: Mutex::new((0.0, 0.0)),
        };
        // The background load starts first and outlasts the measured window.
        let background = fig.background.map(|(request, concurrency)| {
            let bg = LoadConfig {
                request,
                concurrency,
                duration: Some(Duration::from_secs_f64(self.secs + 1.0)),
                threads: 1,
                ..cfg.clone()
            };
            std::thread::spawn(move || load::run(&bg, &load::NoHooks))
        });
        if background.is_some() {
            std::thread::sleep(Duration::from_millis(500));
        }
        let r = load::run(&cfg, &meter)?;
        if let Some(bg) = background {
            let _ = bg.join();
        }
        let peak_rss_kib = procfs::tree_peak_rss_kib(server.pid());
        server.stop();
        let (cpu0, cpu1) = *meter
            .at
            .lock()
            .map_err(|_| anyhow::anyhow!("meter poisoned"))?;
        let server_cpu_s = (cpu1 - cpu0).max(0.0);
        let ops = match fig.unit {
            Unit::Handshakes => r.handshakes_measured,
            Unit::Requests | Unit::Logins => r.requests,
        };
        if r.requests == 0 {
            eprintln!(
                "bench: {:?} answered nothing; its log:\n{}",
                kind,
                server.log_tail()
            );
        }
        Ok(Sample {
            server: kind,
            rep,
            rate: match fig.unit {
                Unit::Handshakes => r.handshakes_per_s,
                Unit::Requests | Unit::Logins => r.requests_per_s,
            },
            requests_per_s: r.requests_per_s,
            handshakes_per_s: r.handshakes_per_s,
            resumed_ratio: r.resumed_ratio,
            latency: r.latency,
            errors: r.errors,
            ops,
            server_cpu_s,
            cpu_per_op_us: if ops == 0 {
                f64::NAN
            } else {
                server_cpu_s * 1e6 / ops as f64
            },
            server_cores: server_cpu_s / r.elapsed_s,
            loadgen_cores: r.loadgen_cores,
            other_cores: (r.machine_busy_cores - server_cpu_s / r.elapsed_s - r.loadgen_cores)
                .max(0.0),
            peak_rss_kib,
            elapsed_s: r.elapsed_s,
        })
    }
}

/// `openssl speed -seconds 1 ecdsap256 rsa2048`: signatures per second on one core.
pub fn crypto_ceiling(cores: usize) -> Option<Crypto> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "1", "ecdsap256", "rsa2048"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ec = report::parse_speed_sign(&text, "ecdsa (nistp256)")?;
    let rsa = report::parse_speed_sign(&text, "rsa 2048 bits")?;
    Some(Crypto {
        ecdsa_p256_sign_per_s: ec,
        rsa2048_sign_per_s: rsa,
        cores,
    })
}

/// The OpenSSL version a server binary carries, e.g. `OpenSSL 3.6.3`, found the way `strings`
/// would: the text `OpenSSL X.Y.Z` that OpenSSL compiles in (`OPENSSL_VERSION_TEXT`). Only a
/// statically linked OpenSSL (the `vendored` feature) is in the binary; `None` otherwise.
pub fn linked_openssl(bin: &Path) -> Option<String> {
    openssl_version_in(&std::fs::read(bin).ok()?)
}

/// The first `OpenSSL X.Y.Z` (three dot-separated numbers, then a space or NUL) in `bytes`.
pub fn openssl_version_in(bytes: &[u8]) -> Option<String> {
    const TAG: &[u8] = b"OpenSSL ";
    let mut from = 0;
    while let Some(at) = bytes[from..].windows(TAG.len()).position(|w| w == TAG) {
        let start = from + at + TAG.len();
        let rest = &bytes[start..bytes.len().min(start + 24)];
        let len = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'.'))
            .unwrap_or(rest.len());
        let version = &rest[..len];
        let parts: Vec<&[u8]> = version.split(|b| *b == b'.').collect();
        let ended = matches!(rest.get(len), Some(b' ' | 0));
        if ended && parts.len() == 3 && parts.iter().all(|p| !p.is_empty()) {
            return Some(format!("OpenSSL {}", String::from_utf8_lossy(version)));
        }
        from = start;
    }
    None
}

/// The label of the third server: `label` (default [`ALT_LABEL`]) with the OpenSSL version of
/// its binary appended when known and not already in the label.
pub fn alt_label(label: Option<&str>, openssl: Option<&str>) -> String {
    let label = label.unwrap_or(ALT_LABEL);
    match openssl {
        Some(v) if !label.contains(v) => format!("{label} ({v})"),
        _ => label.to_owned(),
    }
}

/// The order of the servers in repetition `rep`: rotated by one each time, so that over as many
/// repetitions as servers each runs once in every position, and drift favours none (with two
/// servers: swapped every repetition).
pub fn run_order(servers: usize, rep: usize) -> Vec<usize> {
    (0..servers).map(|i| (i + rep) % servers).collect()
}

fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// How to rebuild our server's binary.
const REBUILD: &str = "cargo build --release -p server";
/// How `make bench-vendored` builds the third server's.
const REBUILD_ALT: &str =
    "CARGO_TARGET_DIR=target/vendored cargo build --release -p server --features vendored-openssl";

/// Newest modification time of the files under `path`.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest(&e.path()))
        .max()
}

/// A warning when our server's sources changed after its binary was built (`bench compare`
/// builds nothing; `make bench` builds first).
pub fn stale_binary(root: &Path, bin: &Path, rebuild: &str) -> Option<String> {
    let built = std::fs::metadata(bin).ok()?.modified().ok()?;
    let sources = ["crates/server/src", "crates/common/src", "crates/pki/src"]
        .iter()
        .filter_map(|p| newest(&root.join(p)))
        .max()?;
    (sources > built).then(|| {
        format!(
            "{} is older than the sources in crates/server, crates/common or crates/pki: these \
             figures may not be those of the commit named above (rebuild: `{rebuild}`)",
            bin.display()
        )
    })
}

fn machine(root: &Path, nginx: Option<&Path>) -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let root_s = root.to_string_lossy().into_owned();
    let commit = command_line("git", &["-C", &root_s, "rev-parse", "--short", "HEAD"]);
    let dirty = command_line("git", &["-C", &root_s, "status", "--porcelain"])
        .is_some_and(|s| !s.is_empty());
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        kernel: command_line("uname", &["-r"]).unwrap_or_default(),
        openssl: openssl::version::version().to_owned(),
        nginx: nginx.map(nginx::version),
        commit: commit.map(|c| {
            if dirty {
                format!("{c} (with local changes)")
            } else {
                c
            }
        }),
        stale_server_binary: None,
        load_average: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_owned)),
    }
}

/// Checks the third server's options against the figures that will run, and describes it.
fn alt_server(args: &CompareArgs, figs: &[Figure], bin: &Path) -> Result<AltServer> {
    if !bin.is_file() {
        bail!(
            "--alt-server-bin {} is missing: build it first (e.g. `CARGO_TARGET_DIR=target/vendored \
             cargo build --release -p server --features vendored-openssl`)",
            bin.display()
        );
    }
    let all = figures();
    let unknown: Vec<&str> = args
        .alt_only
        .iter()
        .map(String::as_str)
        .filter(|id| !all.iter().any(|f| f.id == *id))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "--alt-only: no figure {}; ids: {}",
            unknown.join(", "),
            all.iter().map(|f| f.id).collect::<Vec<_>>().join(", ")
        );
    }
    let wanted: Vec<&str> = if args.alt_only.is_empty() {
        ALT_DEFAULT.to_vec()
    } else {
        args.alt_only.iter().map(String::as_str).collect()
    };
    let ids: Vec<String> = figs
        .iter()
        .filter(|f| wanted.contains(&f.id))
        .map(|f| f.id.to_owned())
        .collect();
    if ids.is_empty() {
        bail!(
            "--alt-server-bin: none of its figures ({}) is among those selected to run",
            wanted.join(", ")
        );
    }
    let root = workspace_root();
    let openssl = linked_openssl(bin);
    let stale = stale_binary(&root, bin, REBUILD_ALT);
    if let Some(w) = &stale {
        eprintln!("bench: warning: {w}");
    }
    Ok(AltServer {
        label: alt_label(args.alt_label.as_deref(), openssl.as_deref()),
        bin: bin.to_owned(),
        openssl,
        figures: ids,
        stale_binary: stale,
    })
}

/// Runs the comparison and writes the report. Returns the path of the Markdown file.
pub fn run(args: &CompareArgs) -> Result<()> {
    let t0 = Instant::now();
    let root = workspace_root();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let secs = args.secs.unwrap_or(if args.quick { 2.5 } else { 5.0 });
    if !(0.5..=120.0).contains(&secs) {
        bail!("--secs must be between 0.5 and 120");
    }
    let mut figs: Vec<Figure> = figures();
    if args.quick {
        figs.retain(|f| QUICK.contains(&f.id));
    }
    if !args.only.is_empty() {
        figs.retain(|f| args.only.iter().any(|o| o == f.id));
        if figs.is_empty() {
            bail!(
                "--only matches no figure; ids: {}",
                figures()
                    .iter()
                    .map(|f| f.id)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let server_bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), PathBuf::from)
            .join("release/server"),
    };
    if !server_bin.is_file() {
        bail!(
            "{} is missing: build it first with `cargo build --release -p server -p bench`",
            server_bin.display()
        );
    }
    if let Some(w) = stale_binary(&root, &server_bin, REBUILD) {
        eprintln!("bench: warning: {w}");
    }
    let alt = match &args.alt_server_bin {
        None => None,
        Some(bin) => Some(alt_server(args, &figs, bin)?),
    };
    let nginx = if args.no_nginx {
        None
    } else {
        Some(nginx::ensure(&root)?)
    };
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("bench/results"));
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    eprintln!(
        "bench: making the benchmark PKI (EC P-256{})",
        if figs.iter().any(|f| f.key == KeyKind::Rsa2048) {
            " and RSA-2048"
        } else {
            ""
        }
    );
    let ec = Pki::make(KeyKind::EcP256)?;
    let rsa = figs
        .iter()
        .any(|f| f.key == KeyKind::Rsa2048)
        .then(|| Pki::make(KeyKind::Rsa2048))
        .transpose()?;
    eprintln!("bench: openssl speed (crypto ceiling)");
    let crypto = crypto_ceiling(cores);
    let ctx = Ctx {
        args: args.clone(),
        secs,
        threads: args.threads.unwrap_or(cores),
        server_bin,
        alt_bin: args.alt_server_bin.clone(),
        work: tempfile::Builder::new().prefix("bench-run-").tempdir()?,
        nginx: nginx.clone(),
        ec,
        rsa,
    };
    let kinds_of = |fig: &Figure| -> Vec<ServerKind> {
        let mut k = vec![ServerKind::Ours];
        if alt
            .as_ref()
            .is_some_and(|a| a.figures.iter().any(|id| id == fig.id))
        {
            k.push(ServerKind::Alt);
        }
        if nginx.is_some() {
            k.push(ServerKind::Nginx);
        }
        k
    };
    let total: usize = figs.iter().map(|f| reps * kinds_of(f).len()).sum();
    let mut done = 0;
    let mut results = Vec::new();
    for fig in &figs {
        let kinds = kinds_of(fig);
        let mut by_kind: Vec<Vec<Sample>> = vec![Vec::new(); kinds.len()];
        for rep in 0..reps {
            // Rotate which server goes first, so drift (heat, other load) favours none.
            for i in run_order(kinds.len(), rep) {
                done += 1;
                let s = ctx.run_once(kinds[i], fig, rep)?;
                eprintln!(
                    "[{done:>2}/{total}] {:<17} {:<5} #{}: {:>9.1} {:<13} {:>8.1} {:<17} errors {}; cores: server {:.2}, load generator {:.2}, other {:.2}",
                    fig.id,
                    kinds[i].name(),
                    rep + 1,
                    s.rate,
                    fig.unit.rate_label(),
                    s.cpu_per_op_us,
                    fig.unit.op_label(),
                    s.errors.total(),
                    s.server_cores,
                    s.loadgen_cores,
                    s.other_cores,
                );
                by_kind[i].push(s);
            }
        }
        let mut stats: Vec<(ServerKind, Option<ServerStats>)> = kinds
            .into_iter()
            .zip(by_kind.into_iter().map(ServerStats::of))
            .collect();
        let mut take = |kind: ServerKind| {
            stats
                .iter_mut()
                .find(|(k, _)| *k == kind)
                .and_then(|(_, s)| s.take())
        };
        results.push(FigureResult {
            figure: fig.clone(),
            ours: take(ServerKind::Ours),
            nginx: take(ServerKind::Nginx),
            alt: take(ServerKind::Alt),
        });
    }
    let now = time::OffsetDateTime::now_utc();
    let report = Report {
        started_utc: report::stamp(now - Duration::from_secs_f64(t0.elapsed().as_secs_f64())),
        quick: args.quick,
        reps,
        secs_per_run: secs,
        workers: args.workers,
        loadgen_threads: ctx.threads,
        loadgen_tls: args.tls,
        machine: Machine {
            stale_server_binary: stale_binary(&root, &ctx.server_bin, REBUILD),
            ..machine(&root, nginx.as_deref())
        },
        crypto,
        alt,
        figures: results,
        duration_s: t0.elapsed().as_secs_f64(),
    };
    let paths = report::write(&report, &out_dir)?;
    println!("{}", report::render_table(&report));
    if let (Some(alt), Some(t)) = (&report.alt, report::render_alt_table(&report)) {
        println!("alt = {}\n\n{t}", alt.label);
    }
    for p in paths {
        println!("wrote {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_figures_exist_and_ids_are_unique() {
        let all = figures();
        for q in QUICK {
            assert!(all.iter().any(|f| f.id == *q), "{q}");
        }
        let mut ids: Vec<_> = all.iter().map(|f| f.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }

    #[test]
    fn alt_defaults_exist() {
        let all = figures();
        for id in ALT_DEFAULT {
            assert!(all.iter().any(|f| f.id == *id), "{id}");
        }
        // --quick's figures all run the third server by default.
        assert!(QUICK.iter().all(|q| ALT_DEFAULT.contains(q)));
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: CompareArgs,
    }

    fn parse(args: &[&str]) -> Result<CompareArgs, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from(std::iter::once("compare").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn alt_options() {
        let a = parse(&[
            "--alt-server-bin",
            "target/vendored/release/server",
            "--alt-only",
            "hs-ec-mutual,ka-64",
            "--alt-label",
            "ours, OpenSSL 3.6",
        ])
        .expect("parse");
        assert_eq!(a.alt_only, ["hs-ec-mutual", "ka-64"]);
        assert_eq!(a.alt_label.as_deref(), Some("ours, OpenSSL 3.6"));
        assert!(parse(&[]).expect("parse").alt_server_bin.is_none());
        // Label and figures of a third server need the server.
        assert!(parse(&["--alt-only", "ka-64"]).is_err());
        assert!(parse(&["--alt-label", "x"]).is_err());
    }

    #[test]
    fn alt_figures_are_checked() {
        let bin = tempfile::NamedTempFile::new().expect("temp file");
        let path = bin.path().to_string_lossy().into_owned();
        let figs: Vec<Figure> = figures()
            .into_iter()
            .filter(|f| QUICK.contains(&f.id))
            .collect();
        let alt = alt_server(
            &parse(&["--alt-server-bin", &path]).expect("parse"),
            &figs,
            bin.path(),
        )
        .expect("default figures");
        assert_eq!(alt.figures, QUICK);
        assert_eq!(alt.label, ALT_LABEL);
        assert_eq!(alt.openssl, None);
        let a = parse(&["--alt-server-bin", &path, "--alt-only", "ka-64,ka-1"]).expect("parse");
        let alt = alt_server(&a, &figs, bin.path()).expect("ka-64 runs");
        assert_eq!(alt.figures, ["ka-64"]);
        let a = parse(&["--alt-server-bin", &path, "--alt-only", "ka-1"]).expect("parse");
        assert!(
            alt_server(&a, &figs, bin.path()).is_err(),
            "none of them runs"
        );
        let a = parse(&["--alt-server-bin", &path, "--alt-only", "nope"]).expect("parse");
        let e = alt_server(&a, &figs, bin.path()).expect_err("unknown id");
        assert!(e.to_string().contains("no figure nope"), "{e}");
        let missing = Path::new("/nonexistent/server");
        assert!(alt_server(&a, &figs, missing).is_err());
    }

    #[test]
    fn openssl_version_of_a_binary() {
        let bin = b"\0junk OpenSSL 3 wants RSA >= 2048\0OpenSSL 3.6\0x OpenSSL 3.6.3 9 Jun 2026\0";
        assert_eq!(openssl_version_in(bin).as_deref(), Some("OpenSSL 3.6.3"));
        assert_eq!(
            openssl_version_in(b"OpenSSL 1.1.1w\0").as_deref(),
            None,
            "a letter suffix is not X.Y.Z followed by a space"
        );
        assert_eq!(openssl_version_in(b"no version here"), None);
        assert_eq!(openssl_version_in(b"OpenSSL 3.0.19"), None, "cut off");
        assert_eq!(
            alt_label(None, Some("OpenSSL 3.6.3")),
            "ours, vendored OpenSSL (OpenSSL 3.6.3)"
        );
        assert_eq!(alt_label(Some("aws-lc"), None), "aws-lc");
        assert_eq!(
            alt_label(Some("ours, OpenSSL 3.6.3"), Some("OpenSSL 3.6.3")),
            "ours, OpenSSL 3.6.3"
        );
    }

    #[test]
    fn order_rotates() {
        assert_eq!(run_order(2, 0), [0, 1]);
        assert_eq!(run_order(2, 1), [1, 0]);
        assert_eq!(run_order(3, 0), [0, 1, 2]);
        assert_eq!(run_order(3, 1), [1, 2, 0]);
        assert_eq!(run_order(3, 2), [2, 0, 1]);
        assert_eq!(run_order(1, 5), [0]);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(2.0, 4.0), Some(0.5));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
    }
}
