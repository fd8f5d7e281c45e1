//! `bench`: `bench load` floods one HTTPS endpoint (with a client certificate if given);
//! `bench compare` runs our server and nginx side by side and writes the report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use bench::compare::{self, CompareConfig};
use bench::figure::Figure;
use bench::model::Settings;
use bench::{nginx, report};
use clap::{Args, Parser, Subcommand};
use loadgen::http::{Http, RequestKind};
use loadgen::load::{self, LoadConfig, Mode};
use loadgen::tls::{Backend, TlsFiles};

#[derive(Parser)]
#[command(
    name = "bench",
    version,
    about = "HTTPS load generator with client certificates, and our server vs nginx"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load one HTTPS endpoint (loopback only) and report rates, latency and errors.
    Load(LoadArgs),
    /// Benchmark our server against nginx and write bench/results/<date>.{md,json,svg}.
    Compare(CompareArgs),
    /// Print the nginx.conf `bench compare` runs nginx with (bench/profile.sh uses it).
    NginxConf(NginxConfArgs),
}

#[derive(Args)]
struct NginxConfArgs {
    /// The PKI folder (the `pki` layout) whose server certificate, CA and CRL nginx loads.
    #[arg(long)]
    pki: PathBuf,
    /// Port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// nginx's prefix: its pid file, log and temporary folders go there.
    #[arg(long)]
    dir: PathBuf,
    /// Require a client certificate (checked against the CA and its CRL).
    #[arg(long)]
    mutual: bool,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// One process and no workers, for callgrind (which follows no fork).
    #[arg(long)]
    no_master: bool,
}

#[derive(Args)]
struct CompareArgs {
    /// CI size: hs-ec-oneway, hs-ec-mutual, ka-64 and h2-64, one run each of 2.5 s; about a minute.
    #[arg(long)]
    quick: bool,
    /// Runs per server and figure [default: 3; 1 with --quick].
    #[arg(long)]
    reps: Option<usize>,
    /// Seconds per run [default: 5; 2.5 with --quick].
    #[arg(long)]
    secs: Option<f64>,
    /// Only these figures, e.g. hs-ec-mutual,ka-64.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Figure>,
    /// Where the report goes [default: WORKSPACE/bench/results].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Our server's binary [default: WORKSPACE/target/release/server].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// What this server build is, written in the report (e.g. "vendored OpenSSL 3.6").
    #[arg(long)]
    label: Option<String>,
    /// An extra flag for our server (repeatable), e.g. `--server-arg=--metrics-bind=127.0.0.1:0`
    /// to measure what the metrics cost.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Worker threads of our server and worker processes of nginx.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Load generator threads [default: number of cores].
    #[arg(long)]
    threads: Option<usize>,
    /// TLS library of the load generator (resumption always uses rustls).
    #[arg(long, value_enum, default_value_t = Backend::Rustls)]
    tls: Backend,
    /// Run our server only (no nginx, no ratios).
    #[arg(long)]
    no_nginx: bool,
}

#[derive(Args)]
struct LoadArgs {
    /// Server URL, e.g. https://127.0.0.1:8091 (loopback addresses only).
    #[arg(long)]
    url: String,
    /// CA certificate the server's certificate must chain to.
    #[arg(long)]
    ca: PathBuf,
    /// Client certificate (PEM) for mutual TLS; one-way TLS without it.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Connections at once.
    #[arg(short = 'c', long, default_value_t = 16)]
    concurrency: usize,
    /// Total requests, all connections together.
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Seconds to run [without -n and -d: 10 s; with -n only: at most 300 s].
    #[arg(short = 'd', long)]
    duration: Option<f64>,
    /// How connections are used.
    #[arg(long, value_enum, default_value_t = Mode::Keepalive)]
    mode: Mode,
    /// The request sent.
    #[arg(long, value_enum, default_value_t = RequestKind::GetLogin)]
    request: RequestKind,
    /// HTTP version: h1 (HTTP/1.1) or h2 (HTTP/2, keep-alive mode only, one stream at a time
    /// on each connection).
    #[arg(long, value_enum, default_value_t = Http::H1)]
    http: Http,
    /// TLS library of the load generator. rustls costs less CPU per handshake here (about 450 µs
    /// against OpenSSL 3.0's 1,200 µs for a mutual EC handshake) and is the only one that can
    /// resume sessions without unsafe code.
    #[arg(long, value_enum, default_value_t = Backend::Rustls)]
    tls: Backend,
    /// Load generator threads [default: number of cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds a request (with its connect and handshake) may take.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Print one JSON object instead of text (the progress lines still go to stderr).
    #[arg(long)]
    json: bool,
    /// No progress line every second.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("{what} must be a positive number of seconds"))
}

fn run_load(a: LoadArgs) -> Result<()> {
    let (addr, host) = load::parse_url(&a.url)?;
    let cfg = LoadConfig {
        addr,
        host,
        files: TlsFiles {
            ca: a.ca,
            cert: a.cert,
            key: a.key,
        },
        backend: a.tls,
        concurrency: a.concurrency,
        requests: a.requests,
        duration: a.duration.map(|d| seconds(d, "-d")).transpose()?,
        mode: a.mode,
        request: a.request,
        http: a.http,
        threads: a.threads.unwrap_or_else(cores),
        timeout: seconds(a.timeout, "--timeout")?,
        progress: !a.quiet,
    };
    let result = load::run(&cfg, &load::NoHooks)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", result.render());
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn run_compare(a: CompareArgs) -> Result<()> {
    let root = compare::workspace_root();
    let nginx = match (a.no_nginx, nginx::find()) {
        (true, _) => None,
        (false, Some(n)) => Some(n),
        (false, None) => {
            bail!("nginx is missing: run `bash bench/install-nginx.sh` (root), or pass --no-nginx")
        }
    };
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let figures = match (a.only.is_empty(), a.quick) {
        (false, _) => Figure::ALL
            .into_iter()
            .filter(|f| a.only.contains(f))
            .collect(),
        (true, true) => Figure::QUICK.to_vec(),
        (true, false) => Figure::ALL.to_vec(),
    };
    let quick = a.quick;
    let cfg = CompareConfig {
        figures,
        settings: Settings {
            quick,
            reps: a.reps.unwrap_or(if quick { 1 } else { 3 }),
            secs: a.secs.unwrap_or(if quick { 2.5 } else { 5.0 }),
            workers: a.workers,
            threads: a.threads.unwrap_or_else(cores),
            tls: a.tls,
            label: a.label,
            server_args: a.server_args,
        },
        server_bin: a
            .server_bin
            .unwrap_or_else(|| target.join("release/server")),
        nginx,
        root: root.clone(),
    };
    let run = compare::run(&cfg)?;
    let paths = report::write(&run, &a.out.unwrap_or_else(|| root.join("bench/results")))?;
    println!("{}", report::table(&run));
    for p in paths {
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn run_nginx_conf(a: NginxConfArgs) {
    let layout = common::Layout::new(&a.pki);
    let conf = nginx::render(&a.dir, a.port, a.workers, &layout, a.mutual);
    match a.no_master {
        true => print!(
            "{}",
            conf.replace("master_process on;", "master_process off;")
        ),
        false => print!("{conf}"),
    }
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Load(a) => run_load(a),
        Command::Compare(a) => run_compare(a),
        Command::NginxConf(a) => {
            run_nginx_conf(a);
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {}", common::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
