//! The `pki` binary as a user runs it: nothing lost, nothing leaked, clear errors.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use testkit::{text, tree as snapshot};

fn pki(dir: &Path, args: &[&str]) -> Output {
    support::run(dir, &[], args)
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn init_twice_changes_nothing_and_keys_are_0600() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let o = pki(&dir, &["init"]);
    assert!(o.status.success(), "{}", text(&o));
    let before = snapshot(&dir);
    let names: Vec<_> = before
        .iter()
        .map(|(p, _)| p.strip_prefix(&dir).expect("prefix").to_owned())
        .collect();
    for want in [
        "ca/ca.crt",
        "ca/ca.key",
        "ca/ca.crl",
        "ca/index.txt",
        "server/server.crt",
        "server/server.key",
        "client/client.crt",
        "client/client.key",
        "client/client.p12",
        "client/client.p12.pass",
    ] {
        assert!(
            names.contains(&PathBuf::from(want)),
            "missing {want}: {names:?}"
        );
    }
    for (p, _) in &before {
        let secret = matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("key" | "p12" | "pass")
        );
        assert_eq!(
            mode(p),
            if secret { 0o600 } else { 0o644 },
            "{}",
            p.display()
        );
    }

    let o = pki(&dir, &["init"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    assert_eq!(
        snapshot(&dir),
        before,
        "a second init must leave every byte as it was"
    );
}

#[test]
fn overwrite_is_refused_without_force_and_done_with_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    assert!(pki(&dir, &["init"]).status.success());
    let ca_before = fs::read(dir.join("ca/ca.crt")).expect("ca");
    let server_before = fs::read(dir.join("server/server.key")).expect("key");

    let o = pki(&dir, &["issue", "server"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("server/server.key already exists; pass --force"),
        "{}",
        text(&o)
    );
    assert_eq!(
        fs::read(dir.join("server/server.key")).expect("key"),
        server_before
    );

    let o = pki(
        &dir,
        &[
            "issue",
            "server",
            "--force",
            "--san",
            "api.internal",
            "--san",
            "IP:10.1.2.3",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(
        fs::read(dir.join("server/server.key")).expect("key"),
        server_before
    );
    assert_eq!(
        fs::read(dir.join("ca/ca.crt")).expect("ca"),
        ca_before,
        "issuing never touches the CA"
    );
    let o = pki(
        &dir,
        &[
            "verify",
            dir.join("server/server.crt").to_str().expect("utf8"),
            "--ca",
            dir.join("ca/ca.crt").to_str().expect("utf8"),
            "--purpose",
            "server",
            "--host",
            "10.1.2.3",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));

    let o = pki(&dir, &["init", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(
        fs::read(dir.join("ca/ca.crt")).expect("ca"),
        ca_before,
        "--force makes a new CA"
    );
    assert_eq!(mode(&dir.join("ca/ca.key")), 0o600);
}

#[test]
fn a_symlink_planted_where_a_key_goes_is_never_followed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    assert!(pki(&dir, &["init"]).status.success());
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious").expect("victim");
    std::os::unix::fs::symlink(&victim, dir.join("client/sensor.key")).expect("symlink");
    let o = pki(&dir, &["issue", "client", "--name", "sensor"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("sensor.key already exists"),
        "{}",
        text(&o)
    );
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious");
    assert!(
        !dir.join("client/sensor.crt").exists(),
        "nothing half-written"
    );
}

#[test]
fn a_ca_key_that_does_not_match_is_named_and_nothing_changes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(pki(&a, &["init"]).status.success());
    assert!(pki(&b, &["init"]).status.success());
    fs::copy(b.join("ca/ca.key"), a.join("ca/ca.key")).expect("swap key");
    let before = snapshot(&a);
    let o = pki(&a, &["issue", "client", "--name", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("does not match CA certificate") && t.contains("ca/ca.key"),
        "{t}"
    );
    let o = pki(&a, &["init"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(snapshot(&a), before);
}

#[test]
fn malformed_and_missing_inputs_name_the_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let o = pki(&dir, &["issue", "client", "--name", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("cannot read CA certificate") && text(&o).contains("make certs"),
        "{}",
        text(&o)
    );

    assert!(pki(&dir, &["init"]).status.success());
    fs::write(dir.join("ca/ca.crt"), "garbage").expect("corrupt");
    let o = pki(&dir, &["issue", "client", "--name", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("CA certificate") && text(&o).contains("ca/ca.crt is not valid"),
        "{}",
        text(&o)
    );
    assert!(!dir.join("client/x.key").exists());
}

#[test]
fn an_interrupted_init_is_completed_with_the_same_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    assert!(pki(&dir, &["init"]).status.success());
    // As if the process died after writing the key and before the certificate.
    fs::remove_file(dir.join("server/server.crt")).expect("rm");
    let key = fs::read(dir.join("server/server.key")).expect("key");
    let o = pki(&dir, &["init"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("created") && text(&o).contains("server.crt"),
        "{}",
        text(&o)
    );
    assert_eq!(fs::read(dir.join("server/server.key")).expect("key"), key);
    let o = pki(
        &dir,
        &[
            "verify",
            dir.join("server/server.crt").to_str().expect("utf8"),
            "--ca",
            dir.join("ca/ca.crt").to_str().expect("utf8"),
            "--purpose",
            "server",
            "--host",
            "localhost",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn list_revoke_crl_and_inspect() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    assert!(pki(&dir, &["init"]).status.success());
    assert!(pki(
        &dir,
        &["issue", "client", "--name", "sensor-7", "--days", "30"]
    )
    .status
    .success());
    let o = pki(&dir, &["revoke", "sensor-7", "--reason", "keyCompromise"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = pki(&dir, &["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 3);
    let sensor = rows
        .iter()
        .find(|r| r["file"] == "client/sensor-7.crt")
        .expect("sensor row");
    assert_eq!(sensor["status"], "revoked");
    assert_eq!(sensor["reason"], "keyCompromise");
    assert!(sensor["days_left"].as_i64().expect("days") <= 30);
    assert!(rows.iter().filter(|r| r["status"] == "valid").count() == 2);

    let o = pki(
        &dir,
        &[
            "inspect",
            "--json",
            dir.join("ca/ca.crl").to_str().expect("utf8"),
        ],
    );
    let crl: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(crl["kind"], "CRL");
    assert_eq!(crl["revoked"].as_array().expect("revoked").len(), 1);
    assert_eq!(crl["CRL number"], "2", "init wrote CRL 1, revoke CRL 2");

    let o = pki(&dir, &["revoke", "sensor-7"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("already revoked"), "{}", text(&o));

    let o = pki(
        &dir,
        &[
            "verify",
            dir.join("client/sensor-7.crt").to_str().expect("utf8"),
            "--ca",
            dir.join("ca/ca.crt").to_str().expect("utf8"),
            "--purpose",
            "client",
            "--crl",
            dir.join("ca/ca.crl").to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("revoked by the CA"), "{}", text(&o));

    for (file, kind) in [
        ("server/server.key", "private key"),
        ("client/client.crt", "certificate"),
    ] {
        let o = pki(
            &dir,
            &["inspect", "--json", dir.join(file).to_str().expect("utf8")],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(v["kind"], kind);
    }
    let key = pki(
        &dir,
        &[
            "inspect",
            dir.join("server/server.key").to_str().expect("utf8"),
        ],
    );
    assert!(
        !text(&key).contains("PRIVATE"),
        "inspect never prints key material"
    );
}

/// What `openssl crl -text` says of each serial's entry: its CRL Reason Code, or "" when the
/// entry has none.
fn reasons_by_openssl(crl: &Path) -> std::collections::HashMap<String, String> {
    let o = Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(crl)
        .output()
        .expect("openssl crl");
    assert!(o.status.success(), "{}", text(&o));
    let mut out = std::collections::HashMap::new();
    let mut serial = None;
    let mut lines = String::from_utf8_lossy(&o.stdout).into_owned();
    lines.push('\n');
    let mut it = lines.lines().map(str::trim).peekable();
    while let Some(line) = it.next() {
        if let Some(s) = line.strip_prefix("Serial Number: ") {
            serial = Some(s.to_owned());
            out.insert(s.to_owned(), String::new());
        } else if line.starts_with("X509v3 CRL Reason Code") {
            let reason = it.next().unwrap_or_default().to_owned();
            out.insert(serial.clone().expect("a serial first"), reason);
        }
    }
    out
}

#[test]
fn a_revocation_reason_reaches_the_crl_entry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    assert!(pki(&dir, &["init"]).status.success());
    for name in ["lost-1", "gone-2", "plain-3"] {
        let o = pki(&dir, &["issue", "client", "--name", name]);
        assert!(o.status.success(), "{}", text(&o));
    }
    for (name, reason) in [
        ("lost-1", Some("keyCompromise")),
        ("gone-2", Some("cessationOfOperation")),
        ("plain-3", None),
    ] {
        let mut args = vec!["revoke", name];
        args.extend(reason.map(|r| ["--reason", r]).into_iter().flatten());
        let o = pki(&dir, &args);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = pki(&dir, &["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let serial_of = |name: &str| {
        rows.as_array()
            .expect("rows")
            .iter()
            .find(|r| r["file"] == format!("client/{name}.crt"))
            .and_then(|r| r["serial"].as_str())
            .expect("serial")
            .to_owned()
    };
    let reasons = reasons_by_openssl(&dir.join("ca/ca.crl"));
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[&serial_of("lost-1")], "Key Compromise");
    assert_eq!(reasons[&serial_of("gone-2")], "Cessation Of Operation");
    // Without --reason the entry carries no reasonCode, as `openssl ca -revoke` writes it.
    assert_eq!(reasons[&serial_of("plain-3")], "");
}

/// The URIs of a certificate's crlDistributionPoints, as `openssl x509 -ext` prints them.
fn distribution_points(cert: &Path) -> Vec<String> {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "crlDistributionPoints", "-in"])
        .arg(cert)
        .output()
        .expect("openssl x509");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("URI:").map(str::to_owned))
        .collect()
}

#[test]
fn a_crl_url_set_at_init_or_later_is_in_the_certificates_issued_from_then_on() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let o = pki(&dir, &["init", "--crl-url", "http://crl.example/ca.crl"]);
    assert!(o.status.success(), "{}", text(&o));
    for leaf in ["server/server.crt", "client/client.crt"] {
        assert_eq!(
            distribution_points(&dir.join(leaf)),
            ["http://crl.example/ca.crl"],
            "{leaf}"
        );
    }
    let o = pki(&dir, &["ca", "crl-url", "https://other.example/crl"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(pki(&dir, &["issue", "client", "--name", "d2"])
        .status
        .success());
    assert_eq!(
        distribution_points(&dir.join("client/d2.crt")),
        ["https://other.example/crl"]
    );
    assert_eq!(
        distribution_points(&dir.join("client/client.crt")),
        ["http://crl.example/ca.crl"],
        "issued before: unchanged"
    );
    // A URL that cannot be an IA5 URI is refused, and the one set stays.
    let o = pki(&dir, &["ca", "crl-url", "ftp://x/crl"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = pki(&dir, &["ca", "crl-url"]);
    assert!(
        text(&o).contains("https://other.example/crl"),
        "{}",
        text(&o)
    );
    assert!(pki(&dir, &["ca", "crl-url", "--none"]).status.success());
    assert!(pki(&dir, &["issue", "client", "--name", "d3"])
        .status
        .success());
    assert!(distribution_points(&dir.join("client/d3.crt")).is_empty());
}

#[test]
fn verify_says_what_the_certificate_has_when_it_is_not_what_was_asked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    assert!(pki(&dir, &["init"]).status.success());
    let path = |p: &str| dir.join(p).to_str().expect("utf8").to_owned();
    let (ca, server, client) = (
        path("ca/ca.crt"),
        path("server/server.crt"),
        path("client/client.crt"),
    );
    let o = pki(
        &dir,
        &["verify", &server, "--ca", &ca, "--host", "api.example"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("the certificate names DNS:localhost, IP:127.0.0.1, IP:::1"),
        "{}",
        text(&o)
    );
    let o = pki(
        &dir,
        &["verify", &client, "--ca", &ca, "--purpose", "server"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o)
            .contains("checked for serverAuth; the certificate's extendedKeyUsage has clientAuth"),
        "{}",
        text(&o)
    );
}

#[test]
fn p12_export_uses_the_env_password_and_refuses_an_empty_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    assert!(pki(&dir, &["init"]).status.success());
    let pass = fs::read_to_string(dir.join("client/client.p12.pass")).expect("pass");
    assert_eq!(pass.trim().len(), 32, "a random 128-bit password");
    let run = |pw: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pki"))
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .env("PKI_P12_PASSWORD", pw)
            .output()
            .expect("run")
    };
    let o = run("", &["export-p12", "--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("empty PKCS#12 password"), "{}", text(&o));
    let o = run("s3cret", &["export-p12", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        "s3cret",
        &[
            "inspect",
            "--json",
            dir.join("client/client.p12").to_str().expect("utf8"),
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["kind"], "PKCS#12");
    assert_eq!(v["private key"], true);
    // --legacy: a bundle old importers read, still behind the password.
    let o = run("s3cret", &["export-p12", "--force", "--legacy"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = std::process::Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-passin", "pass:s3cret", "-in"])
        .arg(dir.join("client/client.p12"))
        .output()
        .expect("openssl");
    assert!(
        text(&o).contains("pbeWithSHA1And3-KeyTripleDES-CBC"),
        "{}",
        text(&o)
    );
    let o = run(
        "wrong",
        &[
            "inspect",
            dir.join("client/client.p12").to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("password is wrong"), "{}", text(&o));
}

/// `pki list | head`: the closed pipe ends the command as it ends `ls` (SIGPIPE), without a
/// panic on stderr.
#[test]
fn a_closed_pipe_ends_list_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    assert!(pki(&dir, &["init"]).status.success());
    let o = pki(
        &dir,
        &["issue", "client", "--count", "400", "--prefix", "d-"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut child = testkit::command(env!("CARGO_BIN_EXE_pki"))
        .arg("--dir")
        .arg(&dir)
        .args(["list", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("pki list");
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("a first line");
    // The read end is closed here (dropped), long before 400 records are printed.
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(13),
        "SIGPIPE: {:?} {err}",
        out.status
    );
}
