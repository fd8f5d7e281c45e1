//! The data of one `bench compare`: a run → its figures → their samples. It is written as
//! JSON as it is; the Markdown report and the chart are rendered from it.

use serde::Serialize;

use crate::figure::{Figure, KeyKind, Unit};
use loadgen::load::LoadResult;
use loadgen::stats::Spread;
use loadgen::tls::Backend;

/// Which server a sample measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    /// Our server's binary (`--server-bin`).
    Ours,
    /// nginx with the generated config.
    Nginx,
}

impl Server {
    /// Short name in tables and progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Server::Ours => "ours",
            Server::Nginx => "nginx",
        }
    }
}

/// One run of one server on one figure.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Which server.
    pub server: Server,
    /// Repetition (0-based).
    pub rep: usize,
    /// What the load generator measured.
    pub load: LoadResult,
    /// Server CPU seconds in the measured window (every process and thread).
    pub server_cpu_s: f64,
    /// Context switches of every server thread in the measured window.
    pub server_switches: u64,
    /// Peak RSS (VmHWM) of the server, KiB; nginx: master and workers summed.
    pub peak_rss_kib: u64,
}

/// A value of a sample that the report takes medians of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// The figure's rate ([`Unit`]).
    Rate,
    /// Server CPU per handshake (handshake figures) or per request, µs.
    CpuPerOp,
    /// Median latency, µs (with connect and handshake in the handshake figures).
    P50,
    /// 99th-percentile latency, µs.
    P99,
    /// Share of resumed handshakes.
    Resumed,
    /// Server context switches per handshake or request.
    SwitchesPerOp,
    /// Server CPU in cores.
    ServerCores,
    /// Load generator CPU in cores.
    LoadgenCores,
    /// Cores other processes took: machine busy time minus server and load generator.
    OtherCores,
    /// Peak RSS, KiB.
    PeakRss,
}

impl Sample {
    /// `metric` of this run of a figure counted in `unit`; `None` when it has no value.
    pub fn get(&self, metric: Metric, unit: Unit) -> Option<f64> {
        let l = &self.load;
        let ops = match unit {
            Unit::Handshakes => l.handshakes_measured,
            Unit::Requests | Unit::Logins => l.requests,
        } as f64;
        let server_cores = self.server_cpu_s / l.elapsed_s;
        Some(match metric {
            Metric::Rate => ops / l.elapsed_s,
            Metric::CpuPerOp if ops > 0.0 => self.server_cpu_s * 1e6 / ops,
            Metric::CpuPerOp => return None,
            Metric::SwitchesPerOp if ops > 0.0 => self.server_switches as f64 / ops,
            Metric::SwitchesPerOp => return None,
            Metric::P50 => f64::from(l.latency?.p50_us),
            Metric::P99 => f64::from(l.latency?.p99_us),
            Metric::Resumed => l.resumed_ratio,
            Metric::ServerCores => server_cores,
            Metric::LoadgenCores => l.loadgen_cores,
            Metric::OtherCores => (l.machine_busy_cores - server_cores - l.loadgen_cores).max(0.0),
            Metric::PeakRss => self.peak_rss_kib as f64,
        })
    }
}

/// One figure and every run of it.
#[derive(Debug, Clone, Serialize)]
pub struct FigureRun {
    /// What was measured.
    pub figure: Figure,
    /// Every run, of both servers.
    pub samples: Vec<Sample>,
}

impl FigureRun {
    /// Median and range of `metric` over the runs of `server`.
    pub fn spread(&self, server: Server, metric: Metric) -> Option<Spread> {
        let unit = self.figure.unit();
        let values: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.server == server)
            .filter_map(|s| s.get(metric, unit))
            .collect();
        Spread::of(&values)
    }

    /// Median of `metric` over the runs of `server`.
    pub fn median(&self, server: Server, metric: Metric) -> Option<f64> {
        self.spread(server, metric).map(|s| s.median)
    }

    /// Ours / nginx of the medians of `metric`.
    pub fn ratio(&self, metric: Metric) -> Option<f64> {
        let (ours, nginx) = (
            self.median(Server::Ours, metric)?,
            self.median(Server::Nginx, metric)?,
        );
        (nginx > 0.0).then(|| ours / nginx)
    }

    /// Failed requests of `server` over all its runs.
    pub fn errors(&self, server: Server) -> u64 {
        self.samples
            .iter()
            .filter(|s| s.server == server)
            .map(|s| s.load.errors.total())
            .sum()
    }
}

/// The machine and software a run was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores.
    pub cores: usize,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// `uname -r`.
    pub kernel: String,
    /// `openssl version` of the system (our server links it unless built `vendored-openssl`).
    pub openssl: Option<String>,
    /// `--server-bin --version`.
    pub server: Option<String>,
    /// `nginx -v`.
    pub nginx: Option<String>,
    /// `git describe --always --dirty` of the workspace.
    pub commit: Option<String>,
    /// 1-minute load average before the run: other work on the machine skews figures.
    pub load_average: Option<String>,
}

/// Signatures per second of one core (`openssl speed`). A full handshake costs the server one
/// signature, so `signs/s × cores` bounds full handshakes/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Crypto {
    /// ECDSA P-256 signatures/s, one core.
    pub ecdsa_p256_sign_per_s: f64,
    /// RSA-2048 signatures/s, one core.
    pub rsa2048_sign_per_s: f64,
}

impl Crypto {
    /// Full handshakes/s at most with `key` on `cores` cores.
    pub fn ceiling(&self, key: KeyKind, cores: usize) -> f64 {
        cores as f64
            * match key {
                KeyKind::EcP256 => self.ecdsa_p256_sign_per_s,
                KeyKind::Rsa2048 => self.rsa2048_sign_per_s,
            }
    }
}

/// The options of a run that shape its figures.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `--quick`: the CI-sized selection (its files are named `quick-*`).
    pub quick: bool,
    /// Runs per server and figure.
    pub reps: usize,
    /// Seconds per run (0.5 to 120).
    pub secs: f64,
    /// Worker threads of ours, worker processes of nginx.
    pub workers: usize,
    /// Load generator threads.
    pub threads: usize,
    /// Load generator TLS library (resumption: rustls in any case).
    pub tls: Backend,
    /// `--label`: what this run's server build is, e.g. `vendored OpenSSL 3.6`.
    pub label: Option<String>,
    /// `--server-arg`: extra flags of our server, e.g. `--metrics-bind=127.0.0.1:0`.
    pub server_args: Vec<String>,
}

/// Everything one `bench compare` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Start, UTC, file-name safe (`2026-01-31T12-00-00Z`).
    pub started_utc: String,
    /// How it ran.
    pub settings: Settings,
    /// Where.
    pub machine: Machine,
    /// `openssl speed`, when it ran.
    pub crypto: Option<Crypto>,
    /// Every figure, in the order run.
    pub figures: Vec<FigureRun>,
    /// Wall time of the whole run, s.
    pub duration_s: f64,
}
