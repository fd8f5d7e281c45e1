//! `bench`: `bench load` floods one HTTPS endpoint (with a client certificate if given);
//! `bench compare` runs our server and nginx side by side and writes the report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use bench::http::RequestKind;
use bench::load::{self, LoadConfig, Mode};
use bench::tls::{Backend, TlsFiles};
use clap::{Args, Parser, Subcommand};

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
    Compare(bench::compare::CompareArgs),
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
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
        threads: a.threads.unwrap_or(cores),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Load(a) => run_load(a),
        Command::Compare(a) => bench::compare::run(&a),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
