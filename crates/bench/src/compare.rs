//! `bench compare` (`make bench`): our server and nginx on the same benchmark PKI, each started
//! afresh for every run, taking turns, every figure repeated. It returns the [`Run`]; the
//! report module writes it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{io, Error, Result};
use crate::figure::{Figure, KeyKind};
use crate::model::{Crypto, FigureRun, Machine, Metric, Run, Sample, Server, Settings};
use crate::nginx;
use crate::servers::{free_port, Pki, Running};
use loadgen::load::{self, Hooks, LoadConfig, Mode, NoHooks};
use loadgen::tls::{Backend, TlsFiles};
use loadgen::usage;

/// What `bench compare` runs, every default resolved.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The figures, in order.
    pub figures: Vec<Figure>,
    /// How each runs; recorded in the report.
    pub settings: Settings,
    /// Our server's binary.
    pub server_bin: PathBuf,
    /// nginx's binary; `None` runs ours alone.
    pub nginx: Option<PathBuf>,
    /// The workspace, for its commit.
    pub root: PathBuf,
}

/// The workspace root: the nearest folder above the working directory holding
/// `crates/bench`, else the one this binary was built from.
pub fn workspace_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors()
        .find(|d| d.join("crates/bench/Cargo.toml").is_file())
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
            Path::to_owned,
        )
}

/// The server's CPU time and context switches at one edge of the load's measured window.
#[derive(Debug, Default, Clone, Copy)]
struct Reading {
    cpu_s: f64,
    switches: u64,
}

impl Reading {
    fn now(pid: u32) -> Reading {
        Reading {
            cpu_s: usage::tree_cpu_seconds(pid),
            switches: usage::tree_context_switches(pid),
        }
    }
}

/// Reads the server at the edges of the load's measured window.
struct Meter {
    pid: u32,
    at: Mutex<(Reading, Reading)>,
}

impl Hooks for Meter {
    fn started(&self) {
        if let Ok(mut at) = self.at.lock() {
            at.0 = Reading::now(self.pid);
        }
    }
    fn stopped(&self) {
        if let Ok(mut at) = self.at.lock() {
            at.1 = Reading::now(self.pid);
        }
    }
}

/// What every run of a comparison shares.
struct Bench<'a> {
    cfg: &'a CompareConfig,
    ec: Pki,
    rsa: Option<Pki>,
    work: tempfile::TempDir,
}

impl Bench<'_> {
    fn pki(&self, key: KeyKind) -> &Pki {
        match (key, &self.rsa) {
            (KeyKind::Rsa2048, Some(rsa)) => rsa,
            _ => &self.ec,
        }
    }

    fn load_config(&self, figure: Figure, server: &Running) -> LoadConfig {
        let layout = self.pki(figure.key()).layout();
        let mutual = figure.mutual();
        LoadConfig {
            addr: server.addr,
            host: "127.0.0.1".into(),
            files: TlsFiles {
                ca: layout.ca_cert(),
                cert: mutual.then(|| layout.client_cert()),
                key: mutual.then(|| layout.client_key()),
            },
            backend: match figure.mode() {
                Mode::Resume => Backend::Rustls,
                _ => self.cfg.settings.tls,
            },
            concurrency: figure.conns(),
            requests: None,
            duration: Some(Duration::from_secs_f64(self.cfg.settings.secs)),
            mode: figure.mode(),
            request: figure.request(),
            http: figure.http(),
            threads: self.cfg.settings.threads,
            timeout: Duration::from_secs(5),
            progress: false,
        }
    }

    /// The command line of `server` on `port` for `figure` (forwarding to `upstream` when it
    /// is given); nginx's config is written first.
    fn command(
        &self,
        server: Server,
        figure: Figure,
        port: u16,
        dir: &Path,
        upstream: Option<u16>,
    ) -> Result<Command> {
        let layout = self.pki(figure.key()).layout();
        let cmd = match (server, &self.cfg.nginx) {
            (Server::Ours, _) => {
                let mut cmd = Command::new(&self.cfg.server_bin);
                cmd.arg("--pki-dir").arg(layout.root());
                cmd.args(["--bind", &format!("127.0.0.1:{port}"), "--watch-secs", "0"]);
                let auth = if figure.mutual() { "required" } else { "none" };
                cmd.args([
                    "--client-auth",
                    auth,
                    "--workers",
                    &self.cfg.settings.workers.to_string(),
                ]);
                // No per-request log lines: nginx runs with access_log off.
                cmd.args(figure.server_args()).env("RUST_LOG", "warn");
                cmd.args(&self.cfg.settings.server_args);
                if let Some(up) = upstream {
                    cmd.arg("--upstream").arg(format!("http://127.0.0.1:{up}"));
                }
                cmd
            }
            (Server::Nginx, Some(bin)) => {
                let conf = dir.join("nginx.conf");
                let text = nginx::render_with(
                    dir,
                    port,
                    self.cfg.settings.workers,
                    &layout,
                    figure.mutual(),
                    upstream,
                );
                std::fs::write(&conf, text).map_err(io(format!("write {}", conf.display())))?;
                let mut cmd = Command::new(bin);
                cmd.arg("-p").arg(dir).arg("-c").arg(&conf);
                // Start-up errors (-e) and later ones (error_log) go to the log Running reads.
                cmd.arg("-e").arg(dir.join("nginx.log"));
                cmd
            }
            (Server::Nginx, None) => return Err(Error::usage("nginx is not available")),
        };
        Ok(cmd)
    }

    /// The upstream of the proxied figure: an nginx of its own, plain HTTP on loopback.
    fn upstream(&self, dir: &Path) -> Result<Running> {
        let bin = self
            .cfg
            .nginx
            .as_ref()
            .ok_or_else(|| Error::usage("the proxied figure needs nginx as its upstream"))?;
        let port = free_port()?;
        let conf = dir.join("upstream.conf");
        std::fs::write(&conf, nginx::render_upstream(dir, port))
            .map_err(io(format!("write {}", conf.display())))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-p").arg(dir).arg("-c").arg(&conf);
        cmd.arg("-e").arg(dir.join("upstream.log"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Running::start(Server::Nginx, cmd, dir.join("upstream.out"), addr)
    }

    fn run_once(&self, server: Server, figure: Figure, rep: usize) -> Result<Sample> {
        let dir = self
            .work
            .path()
            .join(format!("{}-{}-{rep}", figure.id(), server.name()));
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let port = free_port()?;
        // Started first, stopped when this run ends; neither server's tree, so not measured.
        let mut upstream = figure.proxied().then(|| self.upstream(&dir)).transpose()?;
        let up_port = upstream.as_ref().map(|u| u.addr.port());
        let cmd = self.command(server, figure, port, &dir, up_port)?;
        let log = dir.join(format!("{}.log", server.name()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut running = Running::start(server, cmd, log, addr)?;
        let cfg = self.load_config(figure, &running);
        // The background load starts first and outlasts the measured window.
        let background = figure.background().map(|(request, concurrency)| {
            let bg = LoadConfig {
                request,
                concurrency,
                duration: Some(Duration::from_secs_f64(self.cfg.settings.secs + 1.0)),
                threads: 1,
                ..cfg.clone()
            };
            let handle = std::thread::spawn(move || load::run(&bg, &NoHooks));
            std::thread::sleep(Duration::from_millis(500));
            handle
        });
        let meter = Meter {
            pid: running.pid(),
            at: Mutex::new((Reading::default(), Reading::default())),
        };
        let load = load::run(&cfg, &meter)?;
        if let Some(bg) = background {
            let _ = bg.join();
        }
        let peak_rss_kib = usage::tree_peak_rss_kib(running.pid());
        running.stop();
        if let Some(up) = upstream.as_mut() {
            up.stop();
        }
        if load.requests == 0 {
            eprintln!(
                "bench: {} answered nothing; its log:\n{}",
                server.name(),
                running.log_tail()
            );
        }
        let (r0, r1) = meter.at.into_inner().unwrap_or_default();
        Ok(Sample {
            server,
            rep,
            load,
            server_cpu_s: (r1.cpu_s - r0.cpu_s).max(0.0),
            server_switches: r1.switches.saturating_sub(r0.switches),
            peak_rss_kib,
        })
    }
}

/// Runs every figure `reps` times on each server, the order swapped every repetition so that
/// drift (heat, other load) favours neither.
pub fn run(cfg: &CompareConfig) -> Result<Run> {
    let Settings { reps, secs, .. } = cfg.settings;
    let t0 = Instant::now();
    let started_utc = stamp(time::OffsetDateTime::now_utc());
    if !(0.5..=120.0).contains(&secs) || cfg.figures.is_empty() || reps == 0 {
        return Err(Error::usage(
            "--secs must be 0.5 to 120, --reps at least 1, and --only name a figure",
        ));
    }
    if !cfg.server_bin.is_file() {
        return Err(Error::usage(format!(
            "{} is missing: build it first (`cargo build --release -p server`)",
            cfg.server_bin.display()
        )));
    }
    let machine = machine(cfg);
    eprintln!("bench: making the benchmark PKI; openssl speed");
    let need_rsa = cfg.figures.iter().any(|f| f.key() == KeyKind::Rsa2048);
    let bench = Bench {
        cfg,
        ec: Pki::make(KeyKind::EcP256)?,
        rsa: need_rsa.then(|| Pki::make(KeyKind::Rsa2048)).transpose()?,
        work: tempfile::Builder::new()
            .prefix("bench-run-")
            .tempdir()
            .map_err(io("make a temporary folder"))?,
    };
    let crypto = crypto_ceiling();
    let servers: Vec<Server> = std::iter::once(Server::Ours)
        .chain(cfg.nginx.as_ref().map(|_| Server::Nginx))
        .collect();
    let total = cfg.figures.len() * reps * servers.len();
    let (mut figures, mut done) = (Vec::new(), 0);
    for &figure in &cfg.figures {
        let mut run = FigureRun {
            figure,
            samples: Vec::new(),
        };
        for rep in 0..reps {
            for i in 0..servers.len() {
                let server = servers[(i + rep) % servers.len()];
                let sample = bench.run_once(server, figure, rep)?;
                done += 1;
                progress(done, total, figure, &sample);
                run.samples.push(sample);
            }
        }
        figures.push(run);
    }
    Ok(Run {
        started_utc,
        settings: cfg.settings.clone(),
        machine,
        crypto,
        figures,
        duration_s: t0.elapsed().as_secs_f64(),
    })
}

fn progress(done: usize, total: usize, figure: Figure, s: &Sample) {
    let unit = figure.unit();
    let get = |m| s.get(m, unit).unwrap_or(f64::NAN);
    eprintln!(
        "[{done:>2}/{total}] {:<16} {:<5} #{}: {:>9.1} {:<12} {:>7.1} µs server CPU/op, errors {}",
        figure.id(),
        s.server.name(),
        s.rep + 1,
        get(Metric::Rate),
        unit.rate_label(),
        get(Metric::CpuPerOp),
        s.load.errors.total(),
    );
}

/// A file-name-safe UTC time stamp, `2026-01-02T03-04-05Z`.
pub fn stamp(t: time::OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]-[minute]-[second]Z");
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The first line of a command's standard output (or error: `nginx -v` writes there).
fn first_line(cmd: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let line = String::from_utf8_lossy(&text)
        .lines()
        .next()?
        .trim()
        .to_owned();
    (out.status.success() && !line.is_empty()).then_some(line)
}

fn machine(cfg: &CompareConfig) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let root = cfg.root.to_string_lossy();
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| Some(l.strip_prefix("model name")?.split_once(':')?.1.trim()))
            .unwrap_or("unknown")
            .to_owned(),
        kernel: first_line(Path::new("uname"), &["-r"]).unwrap_or_default(),
        openssl: first_line(Path::new("openssl"), &["version"]),
        server: first_line(&cfg.server_bin, &["--version"]),
        nginx: cfg.nginx.as_deref().and_then(nginx::version),
        commit: first_line(
            Path::new("git"),
            &["-C", &root, "describe", "--always", "--dirty"],
        ),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_owned)),
    }
}

/// `openssl speed -seconds 1 ecdsap256 rsa2048` (about 4 s); `None` when it does not run.
pub fn crypto_ceiling() -> Option<Crypto> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "1", "ecdsap256", "rsa2048"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(Crypto {
        ecdsa_p256_sign_per_s: speed_signs(&text, "ecdsa (nistp256)")?,
        rsa2048_sign_per_s: speed_signs(&text, "rsa 2048 bits")?,
    })
}

/// Signs/s of the `openssl speed` result line holding `label`: the first number after the
/// per-operation times (`0.000614s`).
pub fn speed_signs(output: &str, label: &str) -> Option<f64> {
    let is_time = |t: &str| {
        t.strip_suffix('s')
            .is_some_and(|n| n.parse::<f64>().is_ok())
    };
    output.lines().find_map(|l| {
        let tokens: Vec<&str> = l.split_whitespace().collect();
        if !tokens.join(" ").contains(label) {
            return None;
        }
        let last_time = tokens.iter().rposition(|t| is_time(t))?;
        tokens[last_time + 1..].iter().find_map(|t| t.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_speed_output() {
        let out = "version: 3.0.19\n\
                   \x20                 sign    verify    sign/s verify/s\n\
                   rsa 2048 bits 0.000614s 0.000018s   1629.0  55226.0\n\
                   \x20                             sign    verify    sign/s verify/s\n\
                   \x20256 bits ecdsa (nistp256)   0.0000s   0.0001s  36436.4  11928.6\n";
        assert_eq!(speed_signs(out, "rsa 2048 bits"), Some(1629.0));
        assert_eq!(speed_signs(out, "ecdsa (nistp256)"), Some(36436.4));
        assert_eq!(speed_signs(out, "ecdsa (nistp384)"), None);
    }

    #[test]
    fn stamps_are_file_names() {
        let t = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        assert_eq!(stamp(t), "2026-01-02T03-04-05Z");
    }

    #[test]
    fn a_missing_server_binary_is_refused_before_any_work() {
        let cfg = CompareConfig {
            figures: Figure::QUICK.to_vec(),
            settings: Settings {
                quick: true,
                reps: 1,
                secs: 1.0,
                workers: 1,
                threads: 1,
                tls: Backend::Rustls,
                label: None,
                server_args: Vec::new(),
            },
            server_bin: "/nonexistent/server".into(),
            nginx: None,
            root: workspace_root(),
        };
        let e = run(&cfg).expect_err("no binary");
        assert!(
            e.to_string().contains("/nonexistent/server is missing"),
            "{e}"
        );
        let mut short = cfg;
        short.settings.secs = 0.1;
        let e = run(&short).expect_err("too short");
        assert!(matches!(e, Error::Load(loadgen::Error::Usage(_))), "{e}");
    }
}
