//! The README's EST lines, run as a new user would: on a fresh `make certs` PKI (whose
//! `certs/client/client.*` pair exists, so a line that forgets `--cert/--key` fails), with the
//! release names of the binaries, `ca.example:8443` on an ephemeral loopback port, and `T` the
//! token that the line before printed. Nothing else of the lines is changed.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{s, workspace_bins};

/// The shell lines of the README's EST section: continuations joined, comments dropped.
fn est_lines() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## An online CA for fleets (EST)")
        .nth(1)
        .expect("the README's EST section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its sh block");
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A child killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The words of `line` (no quoting beyond single quotes, which the README's lines use).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut quoted = line.split('\'');
    let mut inside = false;
    for part in quoted.by_ref() {
        if inside {
            out.push(part.to_owned());
        } else {
            out.extend(part.split_whitespace().map(str::to_owned));
        }
        inside = !inside;
    }
    out
}

#[test]
fn the_readme_est_lines_run_as_written_beside_a_make_certs_pki() {
    let [pki, ca, client, server] = workspace_bins(["pki", "ca", "client", "server"]);
    let bin = |name: &str| match name {
        "pki" => pki.clone(),
        "ca" => ca.clone(),
        "client" => client.clone(),
        "server" => server.clone(),
        other => panic!("the README runs {other}, which this test does not know"),
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    // `make certs`, then the device's root (the README's `root.crt`).
    let made = Command::new(&pki)
        .current_dir(cwd)
        .args(["--dir", "certs", "init"])
        .output()
        .expect("pki init");
    assert!(made.status.success(), "{}", testkit::text(&made));
    assert!(cwd.join("certs/client/client.crt").exists());
    std::fs::copy(cwd.join("certs/ca/ca.crt"), cwd.join("root.crt")).expect("root.crt");

    let (ca_port, server_port) = (free_port(), free_port());
    let ca_host = format!("localhost:{ca_port}");
    let lines = est_lines();
    assert_eq!(lines.len(), 5, "the README's EST lines changed: {lines:#?}");
    let mut token = None;
    let mut running = Vec::new();
    for line in &lines {
        let line = line.replace("ca.example:8443", &ca_host);
        let line = match &token {
            Some(t) => line.replace("--token T", &format!("--token {t}")),
            None => line,
        };
        let mut w = words(&line);
        // `cargo run -p NAME --` is NAME's binary.
        if w.starts_with(&["cargo".into(), "run".into(), "-p".into()]) {
            let name = w[3].clone();
            assert_eq!(w[4], "--", "{line}");
            w.splice(0..5, [name]);
        }
        let mut cmd = Command::new(bin(&w[0]));
        cmd.current_dir(cwd).args(&w[1..]);
        let long_running = w[0] == "ca" || w[0] == "server" || w.iter().any(|a| a == "--daemon");
        // Only the ports differ from the README: theirs are the defaults (8443, 8091).
        match w[0].as_str() {
            "ca" => cmd.args(["--bind", &format!("127.0.0.1:{ca_port}")]),
            "server" => cmd.args(["--bind", &format!("127.0.0.1:{server_port}")]),
            _ => &mut cmd,
        };
        if long_running {
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            let mut child = Running(child);
            if w[0] == "ca" {
                wait_for_port(ca_port, &mut child, &line);
            }
            if w.iter().any(|a| a == "--daemon") {
                expect_line(&mut child, "renews after", &line);
            }
            running.push(child);
            continue;
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(out.status.success(), "{line}: {}", testkit::text(&out));
        if w[1] == "token" {
            let printed = String::from_utf8_lossy(&out.stdout);
            token = printed.lines().last().map(str::to_owned);
        }
    }
    // What the lines made: the device's own pair beside the PKI's, and a server whose CRL comes
    // from the CA and that accepts the device.
    let dev = cwd.join("device/dev-42.crt");
    let cert = x509::cert::load_cert("device", &dev).expect("device/dev-42.crt");
    assert_eq!(
        x509::cert::common_name(cert.subject_name()).as_deref(),
        Some("dev-42")
    );
    let health = healthz(&client, cwd, server_port);
    assert!(health.contains("crl feed: number="), "{health}");
    assert!(!health.contains("confirmed_secs_ago=never"), "{health}");
}

/// Waits until `port` accepts, or the child has died (its stderr in the panic).
fn wait_for_port(port: u16, child: &mut Running, line: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("{line}: exited {status}: {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{line}: no port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the child's stderr until a line contains `what`.
fn expect_line(child: &mut Running, what: &str, line: &str) {
    let err = child.0.stderr.take().expect("stderr");
    let mut seen = String::new();
    for l in BufReader::new(err).lines() {
        let l = l.expect("stderr line");
        seen.push_str(&l);
        seen.push('\n');
        if l.contains(what) {
            return;
        }
    }
    panic!("{line}: ended without {what:?}: {seen}");
}

/// The server's `/healthz`, asked with the device's pair, once the server is up.
fn healthz(client: &Path, cwd: &Path, port: u16) -> String {
    let url = format!("https://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let out = Command::new(client)
            .current_dir(cwd)
            .args(["--ca", "root.crt", "--cert", "device/dev-42.crt"])
            .args([
                "--key",
                "device/dev-42.key",
                "--url",
                &url,
                "get",
                "/healthz",
            ])
            .output()
            .expect("client");
        let text = testkit::text(&out);
        if out.status.success() && !text.contains("confirmed_secs_ago=never") {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server at {}: {text}",
            s(cwd)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
