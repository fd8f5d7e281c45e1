//! The report of `bench compare`: Markdown with the tables, JSON with every run, and an SVG
//! chart (keep-alive req/s against connections) written as plain SVG text.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::compare::{FigureResult, Metric, ServerKind, ServerStats, Unit};
use crate::http::RequestKind;
use crate::load::Mode;
use crate::stats::Spread;
use crate::tls::Backend;

/// The machine and software a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores.
    pub cores: usize,
    /// /proc/cpuinfo model name.
    pub cpu_model: String,
    /// `uname -r`.
    pub kernel: String,
    /// OpenSSL the load generator and our server link.
    pub openssl: String,
    /// `nginx -v`.
    pub nginx: Option<String>,
    /// Git commit of the workspace.
    pub commit: Option<String>,
    /// 1-minute load average before the run (other work on the machine skews figures).
    pub load_average: Option<String>,
    /// Set when our server's binary is older than its sources: the figures are then not those
    /// of the commit above.
    pub stale_server_binary: Option<String>,
}

/// Signatures per second of one core (`openssl speed`): a full handshake costs the server one
/// signature, so `signs/s × cores` bounds full handshakes/s.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Crypto {
    /// ECDSA P-256 signatures/s, one core.
    pub ecdsa_p256_sign_per_s: f64,
    /// RSA-2048 signatures/s, one core.
    pub rsa2048_sign_per_s: f64,
    /// Cores of the machine.
    pub cores: usize,
}

/// The third server of a run (`--alt-server-bin`).
#[derive(Debug, Clone, Serialize)]
pub struct AltServer {
    /// Its name in the report, with the OpenSSL version of its binary when found.
    pub label: String,
    /// Its binary.
    pub bin: PathBuf,
    /// `OpenSSL X.Y.Z` found in the binary (a statically linked OpenSSL), if any.
    pub openssl: Option<String>,
    /// The figures it ran.
    pub figures: Vec<String>,
    /// Set when its binary is older than our server's sources.
    pub stale_binary: Option<String>,
}

/// Everything `bench compare` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Start, UTC (`2026-01-31T12-00-00Z`).
    pub started_utc: String,
    /// `--quick`.
    pub quick: bool,
    /// Runs per server and figure.
    pub reps: usize,
    /// Seconds per run.
    pub secs_per_run: f64,
    /// Workers of each server.
    pub workers: usize,
    /// Load generator threads.
    pub loadgen_threads: usize,
    /// Load generator TLS library (resumption: rustls).
    pub loadgen_tls: Backend,
    /// Where.
    pub machine: Machine,
    /// `openssl speed`, when it ran.
    pub crypto: Option<Crypto>,
    /// The third server, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt: Option<AltServer>,
    /// Every figure.
    pub figures: Vec<FigureResult>,
    /// Wall time of the whole comparison, s.
    pub duration_s: f64,
}

/// A file-name-safe UTC time stamp.
pub fn stamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Sign/s of the `openssl speed` line containing `label` (e.g. `rsa 2048 bits`,
/// `ecdsa (nistp256)`): the first plain number after the per-operation times (`0.0001s`).
pub fn parse_speed_sign(output: &str, label: &str) -> Option<f64> {
    let line = output.lines().find(|l| {
        l.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(label)
            && l.split_whitespace()
                .any(|t| t.ends_with('s') && t[..t.len() - 1].parse::<f64>().is_ok())
    })?;
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let last_time = tokens
        .iter()
        .rposition(|t| t.ends_with('s') && t[..t.len() - 1].parse::<f64>().is_ok())?;
    tokens[last_time + 1..].iter().find_map(|t| t.parse().ok())
}

/// `12,345` for large numbers, one decimal below 100 (none for whole numbers).
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x.abs() < 100.0 && x.fract() != 0.0 {
        return format!("{x:.1}");
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// `median (min–max)`, or the median alone for one run.
pub fn spread(s: &Spread) -> String {
    if s.n <= 1 || s.min == s.max {
        num(s.median)
    } else {
        format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
    }
}

fn opt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{r:.2}×"))
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// The main table: rates and CPU per operation, both servers, with ratios.
pub fn render_table(r: &Report) -> String {
    let mut s = String::from(
        "| figure | ours | nginx | ours/nginx | ours CPU/op | nginx CPU/op | CPU ours/nginx |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in &r.figures {
        let rate = |x: &Option<ServerStats>| x.as_ref().map_or("–".into(), |x| spread(&x.rate));
        let cpu = |x: &Option<ServerStats>| {
            x.as_ref().map_or("–".into(), |x| {
                format!("{} µs", num(x.cpu_per_op_us.median))
            })
        };
        let _ = writeln!(
            s,
            "| {} ({}) | {} | {} | **{}** | {} | {} | {} |",
            f.figure.title,
            f.figure.unit.rate_label(),
            rate(&f.ours),
            rate(&f.nginx),
            opt_ratio(f.rate_ratio()),
            cpu(&f.ours),
            cpu(&f.nginx),
            opt_ratio(f.cpu_ratio()),
        );
    }
    s
}

/// The third server's table: its rate, CPU per operation and peak RSS on the figures it ran,
/// each with its ratio to nginx and to ours. `None` without a third server.
pub fn render_alt_table(r: &Report) -> Option<String> {
    r.alt.as_ref()?;
    let mut s = String::from(
        "| figure | alt | alt/nginx | alt/ours | alt CPU/op | CPU alt/nginx | CPU alt/ours | alt peak RSS | RSS alt/nginx | RSS alt/ours |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in &r.figures {
        let Some(st) = &f.alt else { continue };
        let vs = |m, other| opt_ratio(f.ratio_of(m, ServerKind::Alt, other));
        let _ = writeln!(
            s,
            "| {} ({}) | {} | **{}** | {} | {} µs | {} | {} | {} | {} | {} |",
            f.figure.id,
            f.figure.unit.rate_label(),
            spread(&st.rate),
            vs(Metric::Rate, ServerKind::Nginx),
            vs(Metric::Rate, ServerKind::Ours),
            num(st.cpu_per_op_us.median),
            vs(Metric::CpuPerOp, ServerKind::Nginx),
            vs(Metric::CpuPerOp, ServerKind::Ours),
            mib(st.peak_rss_kib.median),
            vs(Metric::PeakRss, ServerKind::Nginx),
            vs(Metric::PeakRss, ServerKind::Ours),
        );
    }
    Some(s)
}

/// Every server of a figure that ran it, by its short name, in table order.
fn servers(f: &FigureResult) -> impl Iterator<Item = (&'static str, &ServerStats)> {
    [ServerKind::Ours, ServerKind::Alt, ServerKind::Nginx]
        .into_iter()
        .filter_map(|k| f.stats(k).map(|st| (k.name(), st)))
}

fn details_table(r: &Report) -> String {
    let mut s = String::from(
        "| figure | server | p50 | p99 | resumed | errors | server cores | load generator cores | peak RSS |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in &r.figures {
        for (name, st) in servers(f) {
            let us = |x: &Option<Spread>| {
                x.map_or("–".into(), |x| format!("{} µs", num(x.median.round())))
            };
            let _ = writeln!(
                s,
                "| {} | {name} | {} | {} | {:.0}% | {} | {:.2} | {:.2} | {} |",
                f.figure.id,
                us(&st.p50_us),
                us(&st.p99_us),
                st.resumed_ratio.median * 100.0,
                st.errors,
                st.server_cores.median,
                st.loadgen_cores.median,
                mib(st.peak_rss_kib.median),
            );
        }
    }
    s
}

fn memory_table(r: &Report) -> String {
    let mut s = String::from(
        "| figure | ours peak RSS | nginx peak RSS (master + workers) | ours/nginx |\n|---|---:|---:|---:|\n",
    );
    for f in &r.figures {
        let m = |x: &Option<ServerStats>| {
            x.as_ref()
                .map_or("–".into(), |x| mib(x.peak_rss_kib.median))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            f.figure.id,
            m(&f.ours),
            m(&f.nginx),
            opt_ratio(f.rss_ratio())
        );
    }
    s
}

fn crypto_section(r: &Report) -> String {
    let Some(c) = r.crypto else {
        return "`openssl speed` did not run.\n".into();
    };
    let cores = c.cores as f64;
    let mut s = format!(
        "`openssl speed -seconds 1 ecdsap256 rsa2048`, one core: ECDSA P-256 {} signs/s, RSA-2048 {} \
         signs/s. × {} cores: **{} and {} full handshakes/s at most**, for a server that did nothing \
         but sign (the load generator's own handshake work shares the same cores here).\n\n",
        num(c.ecdsa_p256_sign_per_s),
        num(c.rsa2048_sign_per_s),
        c.cores,
        num(c.ecdsa_p256_sign_per_s * cores),
        num(c.rsa2048_sign_per_s * cores),
    );
    let mut rows = String::new();
    for f in r
        .figures
        .iter()
        .filter(|f| f.figure.unit == Unit::Handshakes && f.figure.mode == Mode::NewConn)
    {
        let ceiling = match f.figure.key {
            crate::compare::KeyKind::EcP256 => c.ecdsa_p256_sign_per_s,
            crate::compare::KeyKind::Rsa2048 => c.rsa2048_sign_per_s,
        } * cores;
        let pct = |x: &Option<ServerStats>| {
            x.as_ref().map_or("–".into(), |x| {
                format!("{:.1}%", x.rate.median / ceiling * 100.0)
            })
        };
        let alt = if r.alt.is_some() {
            format!(" {} |", pct(&f.alt))
        } else {
            String::new()
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {} |{alt} {} |",
            f.figure.id,
            num(ceiling),
            pct(&f.ours),
            pct(&f.nginx)
        );
    }
    if !rows.is_empty() {
        if r.alt.is_some() {
            s.push_str(
                "| figure | ceiling | ours, share of it | alt, share of it | nginx, share of it |\n\
                 |---|---:|---:|---:|---:|\n",
            );
        } else {
            s.push_str(
                "| figure | ceiling | ours, share of it | nginx, share of it |\n|---|---:|---:|---:|\n",
            );
        }
        s.push_str(&rows);
    }
    s
}

fn loadgen_section(r: &Report) -> String {
    let cores = r.machine.cores as f64;
    let mut s = format!(
        "The load generator runs on the same {} cores as the server. CPU over each run, in cores \
         (median): the load generator's from `/proc/self/stat`, the server's from `/proc/PID/stat` \
         of every server process, and *other*: the rest of the machine's busy time (`/proc/stat`), \
         work unrelated to the benchmark that took CPU from it.\n\n\
         | figure | server | server cores | load generator cores | other cores | machine busy |\n\
         |---|---|---:|---:|---:|---:|\n",
        r.machine.cores
    );
    let mut saturated = Vec::new();
    let mut disturbed = Vec::new();
    let mut rows = 0;
    for f in &r.figures {
        for (name, st) in servers(f) {
            let busy =
                (st.server_cores.median + st.loadgen_cores.median + st.other_cores.median) / cores;
            rows += 1;
            if busy > 0.9 {
                saturated.push(format!("{} ({name})", f.figure.id));
            }
            if st.other_cores.median > 0.15 {
                disturbed.push(format!("{} ({name})", f.figure.id));
            }
            let _ = writeln!(
                s,
                "| {} | {name} | {:.2} | {:.2} | {:.2} | {:.0}% |",
                f.figure.id,
                st.server_cores.median,
                st.loadgen_cores.median,
                st.other_cores.median,
                busy * 100.0
            );
        }
    }
    s.push('\n');
    if saturated.is_empty() {
        s.push_str(
            "No run had the machine over 90% busy: where a server stayed below its core count, \
             it was waiting (on the network path or the load generator), not short of CPU.\n",
        );
    } else {
        let _ = writeln!(
            s,
            "Runs with the machine over 90% busy: {}. There, every core the load generator uses is \
             one the server cannot: compare the servers by **CPU per operation** as well as by rate \
             (the load generator's cost per operation is the same for both).",
            all_or(&saturated, rows, "every one")
        );
    }
    if !disturbed.is_empty() {
        let _ = writeln!(
            s,
            "\n**Other processes took more than 0.15 cores during**: {}. Rates from those runs are \
             low by about that share; CPU per operation is much less affected. Rerun on an idle \
             machine before trusting a small difference.",
            all_or(&disturbed, rows, "every run")
        );
    }
    s
}

/// `items` joined, or `all` when they are all `total` rows.
fn all_or(items: &[String], total: usize, all: &str) -> String {
    if items.len() == total {
        all.to_owned()
    } else {
        items.join(", ")
    }
}

/// One line of the chart: name, colour, (connections, req/s) points.
type Series = (&'static str, &'static str, Vec<(usize, Spread)>);

/// The SVG chart: keep-alive `GET /login` req/s against connections, one line per server,
/// min–max bars. Connections on a log2 axis.
pub fn chart_svg(r: &Report) -> String {
    let series: Vec<Series> = [("ours", "#1f77b4"), ("nginx", "#d62728")]
        .into_iter()
        .map(|(name, color)| {
            let pts = r
                .figures
                .iter()
                .filter(|f| {
                    f.figure.mode == Mode::Keepalive && f.figure.request == RequestKind::GetLogin
                })
                .filter_map(|f| {
                    let st = if name == "ours" { &f.ours } else { &f.nginx };
                    st.as_ref().map(|s| (f.figure.conns, s.rate))
                })
                .collect();
            (name, color, pts)
        })
        .collect();
    let (w, h) = (640.0, 400.0);
    let (left, right, top, bottom) = (80.0, 50.0, 40.0, 60.0);
    let xs: Vec<usize> = {
        let mut v: Vec<usize> = series
            .iter()
            .flat_map(|s| s.2.iter().map(|p| p.0))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let ymax = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1.max))
        .fold(0.0_f64, f64::max);
    let ymax = nice_ceiling(ymax.max(1.0));
    let lx = |c: usize| (c.max(1) as f64).log2();
    let (x0, x1) = match (xs.first(), xs.last()) {
        (Some(&a), Some(&b)) if b > a => (lx(a), lx(b)),
        (Some(&a), _) => (lx(a) - 1.0, lx(a) + 1.0),
        _ => (0.0, 1.0),
    };
    let px = |c: usize| left + (lx(c) - x0) / (x1 - x0) * (w - left - right);
    let py = |v: f64| h - bottom - v / ymax * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Keep-alive GET /login: requests/s vs connections</text>\n",
        w / 2.0
    );
    // Axes, y grid and labels.
    for i in 0..=5 {
        let v = ymax * f64::from(i) / 5.0;
        let y = py(v);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 6.0,
            y + 4.0,
            num(v)
        );
    }
    for &c in &xs {
        let x = px(c);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#000\"/>\n\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{c}</text>",
            h - bottom,
            h - bottom + 5.0,
            h - bottom + 20.0
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#000\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.1}\" stroke=\"#000\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">connections (log scale)</text>\n\
         <text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">requests/s (median, bars: min–max)</text>",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom,
        (left + w - right) / 2.0,
        h - 18.0,
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
    );
    for (i, (name, color, pts)) in series.iter().enumerate() {
        if pts.is_empty() {
            continue;
        }
        let path: Vec<String> = pts
            .iter()
            .map(|(c, sp)| format!("{:.1},{:.1}", px(*c), py(sp.median)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            path.join(" ")
        );
        for (c, sp) in pts {
            let x = px(*c);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{color}\"/>\n\
                 <circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{color}\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\" text-anchor=\"middle\">{}</text>",
                py(sp.min),
                py(sp.max),
                py(sp.median),
                x,
                // The first series labelled below its points, the second above: they often
                // sit close together.
                if i == 0 {
                    py(sp.median) + 18.0
                } else {
                    py(sp.median) - 9.0
                },
                num(sp.median)
            );
        }
        let ly = top + 8.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"14\" height=\"4\" fill=\"{color}\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{name}</text>",
            left + 12.0,
            ly - 4.0,
            left + 32.0,
            ly + 1.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A round axis maximum (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten), at least `x`.
fn nice_ceiling(x: f64) -> f64 {
    let p = 10f64.powf(x.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * p)
}

/// Server CPU per full handshake of the TLS library alone (OpenSSL 3.0.19, in-memory handshake
/// on this kind of machine, from issue 6): one-way EC P-256, one-way RSA-2048, mutual EC P-256.
pub const LIBRARY_FLOOR_US: [(&str, f64); 3] = [
    ("hs-ec-oneway", 267.0),
    ("hs-rsa-oneway", 509.0),
    ("hs-ec-mutual", 1050.0),
];

/// One target of issue 6, judged on this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The target, in words.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// `met`, `parity` (below, but within the runs' spread) or `missed`.
    pub verdict: &'static str,
}

/// The targets that this run's figures can judge (none for a figure that did not run).
pub fn verdicts(r: &Report) -> Vec<Verdict> {
    let fig = |id: &str| r.figures.iter().find(|f| f.figure.id == id);
    let ours = |id: &str| fig(id).and_then(|f| f.ours.as_ref());
    let judge = |ok: bool| if ok { "met" } else { "missed" };
    let mut out = Vec::new();
    for f in r.figures.iter().filter(|f| f.figure.id.starts_with("hs-")) {
        let (Some(ratio), Some(o), Some(n)) = (f.rate_ratio(), &f.ours, &f.nginx) else {
            continue;
        };
        let verdict = if ratio >= 1.0 {
            "met"
        } else if o.rate.max >= n.rate.median {
            "parity"
        } else {
            "missed"
        };
        out.push(Verdict {
            target: format!("{}: ≥ 1.0× nginx", f.figure.title),
            measured: format!("{ratio:.2}×"),
            verdict,
        });
    }
    for (id, floor) in LIBRARY_FLOOR_US {
        if let Some(o) = ours(id) {
            let x = o.cpu_per_op_us.median / floor;
            out.push(Verdict {
                target: format!("{id}: server CPU ≤ 1.3× the library's {} µs", num(floor)),
                measured: format!("{} µs = {x:.2}×", num(o.cpu_per_op_us.median)),
                verdict: judge(x <= 1.3),
            });
        }
    }
    for (resume, full) in [
        ("resume-ec-oneway", "hs-ec-oneway"),
        ("resume-ec-mutual", "hs-ec-mutual"),
    ] {
        if let (Some(a), Some(b)) = (ours(resume), ours(full)) {
            let x = a.rate.median / b.rate.median;
            out.push(Verdict {
                target: format!("{resume}: ≥ 5× our {full} rate"),
                measured: format!("{x:.2}×"),
                verdict: judge(x >= 5.0),
            });
        }
    }
    if let Some(f) = fig("ka-64") {
        if let (Some(rate), Some(cpu)) = (f.rate_ratio(), f.cpu_ratio()) {
            out.push(Verdict {
                target: "ka-64: ≥ 1.0× nginx's requests/s".into(),
                measured: format!("{rate:.2}×"),
                verdict: judge(rate >= 1.0),
            });
            out.push(Verdict {
                target: "ka-64: CPU per request ≤ nginx's".into(),
                measured: format!("{cpu:.2}×"),
                verdict: judge(cpu <= 1.0),
            });
        }
    }
    let p99 = |id: &str| ours(id).and_then(|o| o.p99_us.as_ref()).map(|p| p.median);
    if let (Some(idle), Some(flood)) = (p99("get-idle-4"), p99("get-flood-4")) {
        let x = flood / idle;
        out.push(Verdict {
            target: "GET /login p99 while /login1 is flooded: ≤ 2× idle".into(),
            measured: format!("{} → {} µs = {x:.2}×", num(idle), num(flood)),
            verdict: judge(x <= 2.0),
        });
    }
    if let Some(x) = fig("login1-64").and_then(FigureResult::rate_ratio) {
        out.push(Verdict {
            target: "login1-64: ≥ 0.5× nginx's (unhashed) rate".into(),
            measured: format!("{x:.2}×"),
            verdict: judge(x >= 0.5),
        });
    }
    if let Some(x) = fig("ka-256").and_then(FigureResult::rss_ratio) {
        out.push(Verdict {
            target: "ka-256: peak RSS ≤ 2× nginx's".into(),
            measured: format!("{x:.2}×"),
            verdict: judge(x <= 2.0),
        });
    }
    out
}

/// The targets table, and why the ones that can be missed are missed.
fn targets_section(r: &Report) -> String {
    let v = verdicts(r);
    if v.is_empty() {
        return "No figure of this run judges a target.\n".into();
    }
    let mut s = String::from("| target | measured | verdict |\n|---|---:|---|\n");
    for t in &v {
        let _ = writeln!(s, "| {} | {} | {} |", t.target, t.measured, t.verdict);
    }
    let missed = |prefix: &str| {
        v.iter()
            .any(|t| t.verdict != "met" && t.target.starts_with(prefix))
    };
    s.push('\n');
    if missed("Full handshakes") || missed("hs-") {
        s.push_str(
            "- Full handshakes, one-way: ours and nginx spend about the same CPU per handshake \
             because it is nearly all OpenSSL's: `SSL_accept` is 96% of our server's user-space \
             instructions (callgrind), the rest is the kernel's TCP work (~60 µs) and actix. The \
             library floor was measured without sockets. What closes it: a newer OpenSSL \
             (`make bench-vendored`, OpenSSL 3.6: about 0.9× the CPU of 3.0 here).\n",
        );
    }
    if missed("resume-") {
        s.push_str(
            "- Resumption: a TLS 1.3 resumption still runs an X25519 key exchange (48% of its \
             instructions) and the key schedule (25%), plus a new TCP connection, so it cannot \
             cost a fifth of a full handshake whose ECDSA signature takes ~20 µs. Only PSK-only \
             resumption (no (EC)DHE) would, and it gives up forward secrecy: not done.\n",
        );
    }
    if missed("ka-64") {
        s.push_str(
            "- Keep-alive: OpenSSL's record layer is ~40% of our user-space instructions per \
             request and our middleware ~4%; the rest is actix's HTTP/1 codec and tokio. Runs on \
             2 shared cores vary by ±10%: compare several reports before reading a small gap.\n",
        );
    }
    s
}

/// The whole Markdown report; `svg_name` is the chart's file name beside it.
pub fn render_markdown(r: &Report, svg_name: &str) -> String {
    let m = &r.machine;
    let mut s = format!(
        "# Our server vs nginx, {}{}\n\n\
         {} cores ({}), Linux {}, {}, {}; commit {}; load average before the run {}.\n\
         Each figure: {} run(s) of {} s per server, {}; each run starts the server afresh. Figures are \
         medians, with (min–max) over the runs. {}: {} workers; load generator: {} threads, {:?} client \
         (rustls for resumption in any case). Total time {:.0} s.\n\n",
        r.started_utc,
        if r.quick { " (quick)" } else { "" },
        m.cores,
        m.cpu_model,
        m.kernel,
        m.openssl,
        m.nginx.as_deref().unwrap_or("no nginx"),
        m.commit.as_deref().unwrap_or("unknown"),
        m.load_average.as_deref().unwrap_or("?"),
        r.reps,
        r.secs_per_run,
        if r.alt.is_some() {
            "the servers taking turns in every repetition, the order rotated by one each time \
             (ours, alt, nginx; then alt, nginx, ours; …)"
        } else {
            "the two servers alternating (first one, then the other, the order swapped every \
             repetition)"
        },
        if r.alt.is_some() { "Every server" } else { "Both servers" },
        r.workers,
        r.loadgen_threads,
        r.loadgen_tls,
        r.duration_s,
    );
    if let Some(stale) = &m.stale_server_binary {
        let _ = writeln!(s, "**Warning: {stale}**\n");
    }
    if let Some(stale) = r.alt.as_ref().and_then(|a| a.stale_binary.as_ref()) {
        let _ = writeln!(s, "**Warning (alt): {stale}**\n");
    }
    s.push_str("## Rates and server CPU per operation\n\n");
    s.push_str(&render_table(r));
    s.push_str(
        "\nours/nginx > 1: we serve more. CPU ours/nginx < 1: we spend less server CPU per handshake \
         or request (user + system time of every server process and thread over the run, divided \
         by the handshakes or requests completed in it).\n\n",
    );
    if let (Some(alt), Some(table)) = (&r.alt, render_alt_table(r)) {
        let _ = write!(
            s,
            "## Third server: {}\n\n\
             `{}`, started with the same flags as ours, on {}: in each repetition it ran in turn \
             with ours and nginx, in the same conditions.\n\n",
            alt.label,
            alt.bin.display(),
            alt.figures.join(", ")
        );
        s.push_str(&table);
        s.push_str(
            "\nalt/nginx and alt/ours > 1: it serves more; CPU and RSS ratios < 1: it spends less. \
             Latency, errors and cores: rows `alt` in the tables below.\n\n",
        );
    }
    s.push_str("## Targets (issue 6)\n\n");
    s.push_str(&targets_section(r));
    s.push_str("\n## Chart\n\n");
    let _ = writeln!(s, "![keep-alive requests/s vs connections]({svg_name})\n");
    if r.alt.is_some() {
        s.push_str(
            "The chart shows ours and nginx only; the third server is in the table above.\n\n",
        );
    }
    s.push_str("## Latency, errors, CPU, memory (medians)\n\n");
    s.push_str(&details_table(r));
    s.push_str("\n## Peak memory\n\n");
    s.push_str(&memory_table(r));
    s.push_str(
        "\nVmHWM from `/proc/PID/status`; nginx: summed over master and workers (pages they \
         share, such as the binary and libraries, count once per process, which favours ours).\n\n",
    );
    s.push_str("## Crypto ceiling\n\n");
    s.push_str(&crypto_section(r));
    s.push_str("\n## Is the load generator the bottleneck?\n\n");
    s.push_str(&loadgen_section(r));
    s.push_str(
        "\n## How it was measured\n\n\
         - Benchmark PKI made by the `pki` library in a temporary folder: CA, server (DNS:localhost, \
           IP:127.0.0.1) and client certificates, all EC P-256 or all RSA-2048, with a CRL; both \
           servers load the same files and check the CRL in mutual runs.\n\
         - Our server: `target/release/server --pki-dir DIR --bind 127.0.0.1:PORT --client-auth \
           required|none --workers N --watch-secs 0`, with `RUST_LOG=warn` so that it writes no \
           per-request log (nginx: `access_log off`).\n\
         - nginx: a config written per run (see `crates/bench/src/nginx.rs`): same certificates, \
           TLS 1.2 + 1.3, the same ECDHE+AEAD suites and groups, `ssl_session_cache shared`, \
           `ssl_verify_client on` + `ssl_client_certificate` + `ssl_crl` for mutual runs, \
           `return 200 \"Hello World!\"` for /login and a fixed `return 200 \"true\"` for POST \
           /login1 (no password hashing), `keepalive_requests 1000000` (ours has no per-connection \
           limit), listening on 127.0.0.1 only.\n\
         - Load generator: `bench load` in-process; HTTP/1.1 without pipelining; chain and \
           host verification on. Full handshakes: a new connection per request with `Connection: \
           close` (the server closes first). Resumption: rustls offering the previous session's \
           ticket on each new connection (the openssl crate's `set_session` is unsafe, and this \
           workspace forbids unsafe code). Keep-alive: the connections are opened before the \
           measured window starts.\n\
         - CPU per handshake includes the one request made on it. Figures from a machine \
           that was doing other work (see the load average) are noisy; rerun before trusting a \
           small difference.\n",
    );
    s
}

/// Writes `<stamp>.md`, `.json` and `.svg` (prefixed `quick-` for `--quick`) into `dir`.
pub fn write(r: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let base = format!("{}{}", if r.quick { "quick-" } else { "" }, r.started_utc);
    let svg_name = format!("{base}.svg");
    let files = [
        (
            dir.join(format!("{base}.md")),
            render_markdown(r, &svg_name),
        ),
        (
            dir.join(format!("{base}.json")),
            serde_json::to_string_pretty(r)? + "\n",
        ),
        (dir.join(&svg_name), chart_svg(r)),
    ];
    let mut out = Vec::new();
    for (path, text) in files {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{figures, Sample, ServerKind};
    use crate::load::Errors;
    use crate::stats::Latency;

    fn sample(server: ServerKind, rate: f64) -> Sample {
        Sample {
            server,
            rep: 0,
            rate,
            requests_per_s: rate,
            handshakes_per_s: 0.0,
            resumed_ratio: 0.0,
            latency: Some(Latency {
                p50_us: 900,
                p90_us: 1500,
                p99_us: 3000,
                max_us: 9000,
                mean_us: 1000.0,
            }),
            errors: Errors::default(),
            ops: 1000,
            server_cpu_s: 0.015,
            cpu_per_op_us: 15.0,
            server_cores: 1.2,
            loadgen_cores: 0.7,
            other_cores: 0.0,
            peak_rss_kib: 20480,
            elapsed_s: 2.5,
        }
    }

    fn report() -> Report {
        let figs = figures()
            .into_iter()
            .filter(|f| f.id.starts_with("ka-") || f.id == "hs-ec-mutual")
            .map(|f| FigureResult {
                ours: ServerStats::of(vec![
                    sample(ServerKind::Ours, 30000.0),
                    sample(ServerKind::Ours, 32000.0),
                ]),
                nginx: ServerStats::of(vec![sample(ServerKind::Nginx, 40000.0)]),
                alt: None,
                figure: f,
            })
            .collect();
        Report {
            started_utc: "2026-01-02T03-04-05Z".into(),
            quick: true,
            reps: 2,
            secs_per_run: 2.5,
            workers: 2,
            loadgen_threads: 2,
            loadgen_tls: Backend::Openssl,
            machine: Machine {
                cores: 2,
                cpu_model: "test cpu".into(),
                kernel: "6.1".into(),
                openssl: "OpenSSL 3.0.19".into(),
                nginx: Some("nginx/1.22.1".into()),
                commit: Some("abc1234".into()),
                load_average: Some("0.10".into()),
                stale_server_binary: None,
            },
            crypto: Some(Crypto {
                ecdsa_p256_sign_per_s: 36000.0,
                rsa2048_sign_per_s: 1600.0,
                cores: 2,
            }),
            alt: None,
            figures: figs,
            duration_s: 42.0,
        }
    }

    /// The report with a third server on `hs-ec-mutual` and `ka-64`.
    fn report_with_alt() -> Report {
        let mut r = report();
        for f in &mut r.figures {
            if f.figure.id == "hs-ec-mutual" || f.figure.id == "ka-64" {
                let mut s = sample(ServerKind::Alt, 48000.0);
                s.cpu_per_op_us = 12.0;
                s.peak_rss_kib = 30720;
                f.alt = ServerStats::of(vec![s]);
            }
        }
        r.alt = Some(AltServer {
            label: "ours, vendored OpenSSL (OpenSSL 3.6.3)".into(),
            bin: "target/vendored/release/server".into(),
            openssl: Some("OpenSSL 3.6.3".into()),
            figures: vec!["hs-ec-mutual".into(), "ka-64".into()],
            stale_binary: None,
        });
        r
    }

    #[test]
    fn targets_are_judged_from_the_figures() {
        let r = report();
        let v = verdicts(&r);
        let find = |t: &str| {
            v.iter()
                .find(|x| x.target.starts_with(t))
                .unwrap_or_else(|| panic!("no target {t}: {v:?}"))
        };
        // Ours 31,000 (30,000–32,000) vs nginx 40,000: below, and not within the spread.
        let hs = find("Full handshakes/s, mutual, EC P-256");
        assert_eq!((hs.measured.as_str(), hs.verdict), ("0.78×", "missed"));
        let floor = find("hs-ec-mutual: server CPU");
        assert_eq!(floor.verdict, "met", "{floor:?}");
        assert_eq!(find("ka-64: ≥ 1.0×").verdict, "missed");
        assert_eq!(find("ka-64: CPU per request").verdict, "met");
        assert_eq!(find("ka-256: peak RSS").verdict, "met");
        // Figures that did not run judge nothing.
        assert!(!v.iter().any(|x| x.target.starts_with("resume-")), "{v:?}");
        let md = render_markdown(&r, "x.svg");
        assert!(md.contains("## Targets (issue 6)"), "{md}");
        assert!(md.contains("- Keep-alive: OpenSSL's record layer"), "{md}");
    }

    #[test]
    fn a_rate_within_the_spread_is_parity() {
        let mut r = report();
        for f in &mut r.figures {
            f.nginx = ServerStats::of(vec![sample(ServerKind::Nginx, 31500.0)]);
        }
        let v = verdicts(&r);
        let hs = v
            .iter()
            .find(|x| x.target.starts_with("Full handshakes/s, mutual"))
            .expect("hs target");
        assert_eq!(hs.verdict, "parity", "{hs:?}");
    }

    #[test]
    fn numbers() {
        assert_eq!(num(1234567.4), "1,234,567");
        assert_eq!(num(999.6), "1,000");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(26.0), "26");
        assert_eq!(num(f64::NAN), "–");
        let s = Spread::of(&[1000.0, 2000.0, 3000.0]).expect("spread");
        assert_eq!(spread(&s), "2,000 (1,000–3,000)");
        let one = Spread::of(&[1500.0]).expect("spread");
        assert_eq!(spread(&one), "1,500");
    }

    #[test]
    fn table_has_medians_spreads_and_ratios() {
        let t = render_table(&report());
        assert!(t.starts_with("| figure | ours | nginx | ours/nginx |"));
        assert!(t.contains("| Keep-alive GET /login req/s, 64 connections (req/s) | 31,000 (30,000–32,000) | 40,000 | **0.78×** | 15 µs | 15 µs | 1.00× |"), "{t}");
        // Header, separator, one row per figure.
        assert_eq!(t.lines().count(), 2 + 4);
    }

    #[test]
    fn markdown_and_json() {
        let r = report();
        let md = render_markdown(&r, "x.svg");
        assert!(md.contains("# Our server vs nginx, 2026-01-02T03-04-05Z (quick)"));
        assert!(md.contains("![keep-alive requests/s vs connections](x.svg)"));
        assert!(md.contains("72,000 and 3,200 full handshakes/s at most"));
        assert!(md.contains("| ka-256 | 20.0 MiB | 20.0 MiB | 1.00× |"));
        assert!(md.contains("Runs with the machine over 90% busy"));
        let json: serde_json::Value = serde_json::to_value(&r).expect("json");
        assert_eq!(json["figures"][0]["figure"]["id"], "hs-ec-mutual");
        assert_eq!(json["figures"][0]["ours"]["rate"]["median"], 31000.0);
    }

    #[test]
    fn without_a_third_server_nothing_changes() {
        let r = report();
        assert_eq!(render_alt_table(&r), None);
        let md = render_markdown(&r, "x.svg");
        assert!(!md.contains("Third server") && !md.contains("| alt |"));
        assert!(md.contains("the two servers alternating"));
        assert!(md.contains("| figure | ceiling | ours, share of it | nginx, share of it |"));
        let json = serde_json::to_value(&r).expect("json");
        assert!(json.get("alt").is_none());
        assert!(json["figures"][0].get("alt").is_none());
    }

    #[test]
    fn third_server_table_and_json() {
        let r = report_with_alt();
        let t = render_alt_table(&r).expect("alt table");
        assert!(
            t.starts_with("| figure | alt | alt/nginx | alt/ours |"),
            "{t}"
        );
        // Header, separator, the two figures it ran.
        assert_eq!(t.lines().count(), 2 + 2, "{t}");
        assert!(t.contains("| ka-64 (req/s) | 48,000 | **1.20×** | 1.55× | 12 µs | 0.80× | 0.80× | 30.0 MiB | 1.50× | 1.50× |"), "{t}");
        // The main table keeps its two-server layout.
        assert!(render_table(&r).starts_with("| figure | ours | nginx | ours/nginx |"));
        let md = render_markdown(&r, "x.svg");
        assert!(md.contains("## Third server: ours, vendored OpenSSL (OpenSSL 3.6.3)"));
        assert!(md.contains("on hs-ec-mutual, ka-64"));
        assert!(md.contains("the order rotated by one"));
        assert!(md.contains("The chart shows ours and nginx only"));
        assert!(md.contains("| ka-64 | alt | 900 µs | 3,000 µs |"), "{md}");
        assert!(
            md.contains("| hs-ec-mutual | 72,000 | 43.1% | 66.7% | 55.6% |"),
            "{md}"
        );
        // Figures the third server did not run have no alt row.
        assert!(!md.contains("| ka-1 | alt |"));
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["alt"]["openssl"], "OpenSSL 3.6.3");
        assert_eq!(json["figures"][0]["alt"]["rate"]["median"], 48000.0);
        assert_eq!(json["figures"][0]["alt"]["samples"][0]["server"], "alt");
        assert!(json["figures"][1].get("alt").is_none());
    }

    #[test]
    fn chart_is_svg_with_both_servers() {
        let svg = chart_svg(&report());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Three connection counts, two servers.
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains(">ours</text>") && svg.contains(">nginx</text>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(nice_ceiling(32000.0), 40000.0);
        assert_eq!(nice_ceiling(53824.0), 60000.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn openssl_speed_output() {
        let out = "version: 3.0.19\n\
                   \x20                 sign    verify    sign/s verify/s\n\
                   rsa 2048 bits 0.000614s 0.000018s   1629.0  55226.0\n\
                   \x20                             sign    verify    sign/s verify/s\n\
                   \x20256 bits ecdsa (nistp256)   0.0000s   0.0001s  36436.4  11928.6\n";
        assert_eq!(parse_speed_sign(out, "rsa 2048 bits"), Some(1629.0));
        assert_eq!(parse_speed_sign(out, "ecdsa (nistp256)"), Some(36436.4));
        assert_eq!(parse_speed_sign(out, "ecdsa (nistp384)"), None);
    }

    #[test]
    fn stamps_are_file_names() {
        let t = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        assert_eq!(stamp(t), "2026-01-02T03-04-05Z");
    }
}
