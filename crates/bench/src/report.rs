//! The files of a [`Run`]: the run itself as JSON, a short Markdown summary rendered from it,
//! and an SVG chart of keep-alive requests/s against connections.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{io, Result};
use crate::figure::{Figure, Unit};
use crate::model::{FigureRun, Metric, Run, Server};
use loadgen::stats::Spread;

/// `12,345` from 100 up, one decimal below (none for whole numbers), `–` for no value.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x.abs() < 100.0 && x.fract() != 0.0 {
        return format!("{x:.1}");
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::from(if x < 0.0 { "-" } else { "" });
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `median (min–max)`, or the median alone when the runs agree or there was one.
fn spread(s: Option<Spread>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.min == s.max => num(s.median),
        Some(s) => format!("{} ({}–{})", num(s.median), num(s.min), num(s.max)),
    }
}

fn times(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{r:.2}×"))
}

/// The main table: rates and server CPU per operation of both servers, with ours/nginx.
pub fn table(run: &Run) -> String {
    let mut s = String::from(
        "| figure | unit | ours | nginx | ours/nginx | ours CPU/op | nginx CPU/op | CPU ours/nginx |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in &run.figures {
        let cpu = |server| {
            let us = f.median(server, Metric::CpuPerOp);
            us.map_or_else(|| "–".into(), |us| format!("{} µs", num(us)))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | **{}** | {} | {} | {} |",
            f.figure.title(),
            f.figure.unit().rate_label(),
            spread(f.spread(Server::Ours, Metric::Rate)),
            spread(f.spread(Server::Nginx, Metric::Rate)),
            times(f.ratio(Metric::Rate)),
            cpu(Server::Ours),
            cpu(Server::Nginx),
            times(f.ratio(Metric::CpuPerOp)),
        );
    }
    s
}

fn details(run: &Run) -> String {
    let mut s = String::from(
        "| figure | server | p50 | p99 | resumed | errors | server cores | load generator cores \
         | other cores | switches/op | peak RSS |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in &run.figures {
        for server in [Server::Ours, Server::Nginx] {
            if f.median(server, Metric::Rate).is_none() {
                continue; // this server did not run (--no-nginx)
            }
            let m = |metric| f.median(server, metric).unwrap_or(f64::NAN);
            let _ = writeln!(
                s,
                "| {} | {} | {} µs | {} µs | {:.0}% | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} MiB |",
                f.figure.id(),
                server.name(),
                num(m(Metric::P50).round()),
                num(m(Metric::P99).round()),
                m(Metric::Resumed) * 100.0,
                f.errors(server),
                m(Metric::ServerCores),
                m(Metric::LoadgenCores),
                m(Metric::OtherCores),
                m(Metric::SwitchesPerOp),
                m(Metric::PeakRss) / 1024.0,
            );
        }
    }
    s
}

fn find(run: &Run, figure: Figure) -> Option<&FigureRun> {
    run.figures.iter().find(|f| f.figure == figure)
}

/// GET /login p99 under the login flood over its idle value, per server.
fn flood(run: &Run) -> Option<String> {
    let (idle, flood) = (find(run, Figure::GetIdle)?, find(run, Figure::GetFlood)?);
    let of = |server| Some(flood.median(server, Metric::P99)? / idle.median(server, Metric::P99)?);
    Some(format!(
        "GET /login p99 under the POST /login1 flood, over its idle value (`get-flood-4` / \
         `get-idle-4`): ours {}, nginx {}.\n",
        times(of(Server::Ours)),
        times(of(Server::Nginx)),
    ))
}

fn crypto(run: &Run) -> String {
    let Some(c) = run.crypto else {
        return "`openssl speed` did not run.\n".into();
    };
    let cores = run.machine.cores;
    let mut s = format!(
        "`openssl speed -seconds 1 ecdsap256 rsa2048`, one core: ECDSA P-256 {} signs/s, RSA-2048 \
         {} signs/s. A full handshake costs the server one signature, so {cores} cores allow at \
         most {} and {} full handshakes/s. Share of that reached:",
        num(c.ecdsa_p256_sign_per_s),
        num(c.rsa2048_sign_per_s),
        num(c.ceiling(crate::figure::KeyKind::EcP256, cores)),
        num(c.ceiling(crate::figure::KeyKind::Rsa2048, cores)),
    );
    let full = run.figures.iter().filter(|f| {
        f.figure.unit() == Unit::Handshakes && f.figure.mode() == loadgen::load::Mode::NewConn
    });
    for f in full {
        let share = |server| {
            let rate = f.median(server, Metric::Rate);
            let ceiling = c.ceiling(f.figure.key(), cores);
            rate.map_or_else(|| "–".into(), |r| format!("{:.1}%", r / ceiling * 100.0))
        };
        let (ours, nginx) = (share(Server::Ours), share(Server::Nginx));
        let _ = write!(s, " {} ours {ours}, nginx {nginx};", f.figure.id());
    }
    s.pop();
    s.push_str(".\n");
    s
}

/// The Markdown report; `svg_name` is the chart's file name beside it.
pub fn markdown(run: &Run, svg_name: &str) -> String {
    let (m, set) = (&run.machine, &run.settings);
    let unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    let mut s = format!(
        "# Our server vs nginx, {}{}{}\n\n\
         {} cores ({}), Linux {}; system {}; {}; {}; commit {}; load average before the run {}.\n\
         {} run(s) of {} s per server and figure, the servers taking turns (the order swapped every \
         repetition), each run on a freshly started server with {} workers. Load generator: {} \
         threads, {:?} client (rustls for resumption). Medians, with (min–max) over the runs. \
         Total {:.0} s.\n\n## Rates and server CPU per operation\n\n{}\n\
         ours/nginx > 1: we serve more. CPU/op: user + system time of every server process over \
         the run, per handshake (handshake figures) or request; CPU ours/nginx < 1: we spend less.\n\n\
         ![keep-alive requests/s vs connections]({svg_name})\n\n\
         ## Latency, errors, CPU, memory (medians)\n\n{}\n",
        run.started_utc,
        if set.quick { " (quick)" } else { "" },
        set.label.as_ref().map(|l| format!(": {l}")).unwrap_or_default(),
        m.cores,
        m.cpu_model,
        m.kernel,
        unknown(&m.openssl),
        unknown(&m.server),
        m.nginx.as_deref().unwrap_or("no nginx"),
        unknown(&m.commit),
        unknown(&m.load_average),
        set.reps,
        set.secs,
        set.workers,
        set.threads,
        set.tls,
        run.duration_s,
        table(run),
        details(run),
    );
    s.push_str(
        "Latency includes connect and handshake in the handshake figures. *Other cores*: the \
         machine's busy time minus server and load generator; above ~0.15 the run was disturbed. \
         *Switches/op*: context switches of every server thread (voluntary and not) in the \
         measured window, per handshake or request. \
         Peak RSS: VmHWM, nginx's master and workers summed.\n\n",
    );
    if let Some(line) = flood(run) {
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str("## Crypto ceiling\n\n");
    s.push_str(&crypto(run));
    s
}

/// Keep-alive `GET /login` req/s against connections (log scale), one line per server, bars
/// from the slowest to the fastest run.
pub fn chart_svg(run: &Run) -> Result<String> {
    let points = |server| -> Vec<(f64, Spread)> {
        [Figure::Ka1, Figure::Ka64, Figure::Ka256]
            .into_iter()
            .filter_map(|fig| {
                Some((
                    fig.conns() as f64,
                    find(run, fig)?.spread(server, Metric::Rate)?,
                ))
            })
            .collect()
    };
    let series = [(Server::Ours, BLUE), (Server::Nginx, RED)].map(|(s, c)| (s, c, points(s)));
    let top = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, s)| s.max))
        .fold(1.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Keep-alive GET /login: requests/s vs connections",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (0.8f64..320.0)
                    .log_scale()
                    .with_key_points(vec![1.0, 4.0, 16.0, 64.0, 256.0]),
                0.0..top * 1.15,
            )?;
        chart
            .configure_mesh()
            .x_desc("connections (log scale)")
            .y_desc("requests/s (median, bars: min–max)")
            .light_line_style(WHITE)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| num(*y))
            .draw()?;
        for (server, color, pts) in series {
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|(x, s)| (*x, s.median)),
                    color,
                ))?
                .label(server.name())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            chart.draw_series(pts.iter().map(|(x, s)| {
                ErrorBar::new_vertical(*x, s.min, s.median, s.max, color.filled(), 8)
            }))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE)
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// Writes `<stamp>.json`, `.md` and `.svg` (prefixed `quick-` for `--quick`) into `dir`.
pub fn write(run: &Run, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let base = format!(
        "{}{}",
        if run.settings.quick { "quick-" } else { "" },
        run.started_utc
    );
    let svg = format!("{base}.svg");
    let files = [
        (
            format!("{base}.json"),
            serde_json::to_string_pretty(run)? + "\n",
        ),
        (format!("{base}.md"), markdown(run, &svg)),
        (svg.clone(), chart_svg(run)?),
    ];
    let mut out = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(format!("write {}", path.display())))?;
        out.push(path);
    }
    Ok(out)
}
