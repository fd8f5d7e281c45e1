//! The report as a pure function of a run's data: runs made up here, tables, Markdown, JSON
//! and chart checked against them.

use bench::figure::{Figure, Unit};
use bench::model::{Crypto, FigureRun, Machine, Metric, Run, Sample, Server, Settings};
use bench::report;
use loadgen::load::{Errors, LoadResult};
use loadgen::stats::Latency;
use loadgen::tls::Backend;

/// A run of `figure` on `server` at `rate`/s for 2.5 s, costing `cpu_us` of server CPU each.
fn sample(server: Server, figure: Figure, rate: f64, cpu_us: f64) -> Sample {
    let ops = (rate * 2.5) as u64;
    let hs = figure.unit() == Unit::Handshakes;
    let load = LoadResult {
        mode: figure.mode(),
        request: figure.request(),
        http: figure.http(),
        backend: Backend::Rustls,
        concurrency: figure.conns(),
        threads: 2,
        elapsed_s: 2.5,
        requests: ops,
        handshakes: if hs { ops } else { figure.conns() as u64 },
        handshakes_measured: if hs { ops } else { 0 },
        resumed: 0,
        requests_per_s: rate,
        handshakes_per_s: if hs { rate } else { 0.0 },
        resumed_ratio: 0.0,
        latency: Some(Latency {
            p50_us: 900,
            p90_us: 1500,
            p99_us: 3000,
            max_us: 9000,
            mean_us: 1000.0,
        }),
        errors: Errors::default(),
        loadgen_cpu_s: 1.75,
        loadgen_cores: 0.7,
        machine_cores: 2,
        machine_busy_cores: 1.5,
    };
    Sample {
        server,
        rep: 0,
        load,
        server_cpu_s: ops as f64 * cpu_us * 1e-6,
        server_switches: 2 * ops,
        peak_rss_kib: 20480,
    }
}

/// Ours twice (30,000 and 32,000/s, 15 µs), nginx once (40,000/s, 15 µs) on each figure.
fn run(figures: &[Figure]) -> Run {
    let figures = figures
        .iter()
        .map(|&figure| FigureRun {
            figure,
            samples: vec![
                sample(Server::Ours, figure, 30000.0, 15.0),
                sample(Server::Nginx, figure, 40000.0, 15.0),
                sample(Server::Ours, figure, 32000.0, 15.0),
            ],
        })
        .collect();
    Run {
        started_utc: "2026-01-02T03-04-05Z".into(),
        settings: Settings {
            quick: true,
            reps: 2,
            secs: 2.5,
            workers: 2,
            threads: 2,
            tls: Backend::Rustls,
            label: None,
            server_args: Vec::new(),
        },
        machine: Machine {
            cores: 2,
            cpu_model: "test cpu".into(),
            kernel: "6.1".into(),
            openssl: Some("OpenSSL 3.0.19 27 Jan 2026".into()),
            server: Some("server 0.1.0".into()),
            nginx: Some("nginx/1.22.1".into()),
            commit: Some("abc1234".into()),
            load_average: Some("0.10".into()),
        },
        crypto: Some(Crypto {
            ecdsa_p256_sign_per_s: 36000.0,
            rsa2048_sign_per_s: 1600.0,
        }),
        figures,
        duration_s: 42.0,
    }
}

#[test]
fn metrics_count_the_figures_unit() {
    let hs = sample(Server::Ours, Figure::HsEcMutual, 1000.0, 1200.0);
    assert_eq!(hs.get(Metric::Rate, Unit::Handshakes), Some(1000.0));
    let cpu = hs.get(Metric::CpuPerOp, Unit::Handshakes).expect("cpu");
    assert!((cpu - 1200.0).abs() < 1e-6, "{cpu}");
    assert_eq!(hs.get(Metric::SwitchesPerOp, Unit::Handshakes), Some(2.0));
    // Other processes: 1.5 busy − 1.2 server − 0.7 load generator, not below zero.
    assert_eq!(hs.get(Metric::OtherCores, Unit::Handshakes), Some(0.0));
    let mut idle = hs.clone();
    idle.load.handshakes_measured = 0;
    idle.load.latency = None;
    assert_eq!(idle.get(Metric::CpuPerOp, Unit::Handshakes), None);
    assert_eq!(idle.get(Metric::P99, Unit::Handshakes), None);
}

#[test]
fn medians_and_ratios_per_server() {
    let mut r = run(&[Figure::Ka64]);
    let f = &r.figures[0];
    let s = f.spread(Server::Ours, Metric::Rate).expect("ours ran");
    assert_eq!(
        (s.median, s.min, s.max, s.n),
        (31000.0, 30000.0, 32000.0, 2)
    );
    assert_eq!(f.ratio(Metric::Rate), Some(31000.0 / 40000.0));
    assert_eq!(f.errors(Server::Nginx), 0);
    r.figures[0].samples.retain(|s| s.server == Server::Ours);
    assert_eq!(r.figures[0].ratio(Metric::Rate), None, "no nginx, no ratio");
}

#[test]
fn numbers() {
    assert_eq!(report::num(1234567.4), "1,234,567");
    assert_eq!(report::num(999.6), "1,000");
    assert_eq!(report::num(-12.34), "-12.3");
    assert_eq!(report::num(26.0), "26");
    assert_eq!(report::num(f64::NAN), "–");
}

#[test]
fn table_has_medians_spreads_and_ratios() {
    let t = report::table(&run(&[Figure::HsEcMutual, Figure::Ka64]));
    assert!(
        t.starts_with("| figure | unit | ours | nginx | ours/nginx |"),
        "{t}"
    );
    assert!(t.contains("| Keep-alive GET /login, 64 connections | req/s | 31,000 (30,000–32,000) | 40,000 | **0.78×** | 15 µs | 15 µs | 1.00× |"), "{t}");
    assert_eq!(
        t.lines().count(),
        2 + 2,
        "header, separator, a row per figure"
    );
}

#[test]
fn markdown_from_the_run_only() {
    let all = run(&Figure::ALL);
    let md = report::markdown(&all, "x.svg");
    assert!(
        md.starts_with("# Our server vs nginx, 2026-01-02T03-04-05Z (quick)\n"),
        "{md}"
    );
    assert!(md.contains("![keep-alive requests/s vs connections](x.svg)"));
    assert!(
        md.contains(
            "| ka-256 | nginx | 900 µs | 3,000 µs | 0% | 0 | 0.60 | 0.70 | 0.20 | 2.00 | 20.0 MiB |"
        ),
        "{md}"
    );
    assert!(
        md.contains("at most 72,000 and 3,200 full handshakes/s"),
        "{md}"
    );
    assert!(md.contains("hs-ec-oneway ours 43.1%, nginx 55.6%;"), "{md}");
    assert!(md.contains("idle value (`get-flood-4` / `get-idle-4`): ours 1.00×, nginx 1.00×"));
    let words = md.to_lowercase();
    for word in ["target", "issue", "verdict", "missed"] {
        assert!(!words.contains(word), "{word} in the report");
    }
    // Without the flood pair or nginx, their lines go, and nothing is made up.
    let mut quick = run(&Figure::QUICK);
    quick
        .figures
        .iter_mut()
        .for_each(|f| f.samples.retain(|s| s.server == Server::Ours));
    let md = report::markdown(&quick, "x.svg");
    assert!(
        !md.contains("flood") && !md.contains("| hs-ec-oneway | nginx |"),
        "{md}"
    );
    assert!(
        md.contains("| 31,000 (30,000–32,000) | – | **–** | 15 µs | – | – |"),
        "{md}"
    );
}

#[test]
fn files_json_and_chart() {
    let r = run(&[Figure::HsEcMutual, Figure::Ka1, Figure::Ka64, Figure::Ka256]);
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = report::write(&r, dir.path()).expect("written");
    let names: Vec<_> = paths
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .collect();
    assert_eq!(
        names,
        [
            "quick-2026-01-02T03-04-05Z.json",
            "quick-2026-01-02T03-04-05Z.md",
            "quick-2026-01-02T03-04-05Z.svg"
        ]
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&paths[0]).expect("json")).expect("parses");
    assert_eq!(json["figures"][0]["figure"], "hs-ec-mutual");
    assert_eq!(json["figures"][1]["samples"][1]["server"], "nginx");
    assert_eq!(json["figures"][1]["samples"][1]["load"]["requests"], 100000);
    let svg = std::fs::read_to_string(&paths[2]).expect("svg");
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    assert!(
        svg.contains("\nours\n") && svg.contains("\nnginx\n"),
        "legend: {svg}"
    );
    assert!(
        svg.contains("32,000") || svg.contains("40,000"),
        "y labels: {svg}"
    );
    // A run without keep-alive figures still draws (empty) axes.
    assert!(report::chart_svg(&run(&[Figure::HsEcOneway])).is_ok());
}
