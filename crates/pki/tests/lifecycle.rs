//! After day 0, through the CLI: a device's own request signed (its key never travels),
//! renewal with and without a new key, `needs-renewal` for systemd, a CRL rewritten only when
//! due, and enrollment tokens kept only as digests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use testkit::{text, tree as snapshot};

fn ok(dir: &Path, args: &[&str]) -> Output {
    let o = support::run(dir, &[], args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

fn fresh() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    ok(&dir, &["init"]);
    (tmp, dir)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// `openssl req -new` as a device runs it, asking for extensions a CA must not grant.
fn device_csr(dir: &Path, key_spec: &[&str], der: bool) -> PathBuf {
    let csr = dir.join(if der { "dev.der" } else { "dev.csr" });
    let o = Command::new("openssl")
        .args(["req", "-new", "-nodes"])
        .args(key_spec)
        .args([
            "-keyout",
            s(&dir.join("dev.key")),
            "-subj",
            "/O=Evil/CN=admin",
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "extendedKeyUsage=serverAuth,codeSigning"])
        .args(["-addext", "subjectAltName=DNS:bank.example"])
        .args(["-outform", if der { "DER" } else { "PEM" }, "-out", s(&csr)])
        .output()
        .expect("openssl req");
    assert!(o.status.success(), "{}", text(&o));
    csr
}

fn x509_text(cert: &Path) -> String {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", s(cert)])
        .output()
        .expect("openssl x509");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn pubkey(cert: &Path) -> Vec<u8> {
    Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in", s(cert)])
        .output()
        .expect("openssl")
        .stdout
}

#[test]
fn a_device_request_is_signed_on_the_profile_never_on_its_own_extensions() {
    let (tmp, dir) = fresh();
    for der in [false, true] {
        let csr = device_csr(
            tmp.path(),
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            der,
        );
        let name = if der { "dev-der" } else { "dev-pem" };
        ok(&dir, &["sign", "--csr", s(&csr), "client", "--name", name]);
        let cert = dir.join(format!("client/{name}.crt"));
        assert!(
            !dir.join(format!("client/{name}.key")).exists(),
            "the key never travels"
        );
        let t = x509_text(&cert);
        assert!(
            t.contains("CA:FALSE") && t.contains("TLS Web Client Authentication"),
            "{t}"
        );
        for refused in [
            "bank.example",
            "Code Signing",
            "TLS Web Server",
            "CN = admin",
            "Evil",
        ] {
            assert!(
                !t.contains(refused),
                "{refused} copied from the request:\n{t}"
            );
        }
        assert!(t.contains(&format!("CN = {name}")), "{t}");
        // It is the device's key that is certified.
        let from_key = Command::new("openssl")
            .args(["pkey", "-pubout", "-in", s(&tmp.path().join("dev.key"))])
            .output()
            .expect("openssl pkey")
            .stdout;
        assert_eq!(pubkey(&cert), from_key);
    }
    let rows = ok(&dir, &["list", "--json"]);
    assert!(text(&rows).contains("dev-pem") && text(&rows).contains("dev-der"));
}

#[test]
fn weak_keys_and_altered_requests_are_refused_writing_nothing() {
    let (tmp, dir) = fresh();
    let weak = device_csr(tmp.path(), &["-newkey", "rsa:1024"], false);
    let before = snapshot(&dir);
    let o = support::run(
        &dir,
        &[],
        &["sign", "--csr", s(&weak), "client", "--name", "w"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("RSA-1024: too weak"), "{}", text(&o));
    assert_eq!(snapshot(&dir), before);

    let csr = device_csr(
        tmp.path(),
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        true,
    );
    let mut der = fs::read(&csr).expect("csr");
    let last = der.len() - 2;
    der[last] ^= 0x55; // inside the signature
    fs::write(&csr, &der).expect("tamper");
    let o = support::run(
        &dir,
        &[],
        &["sign", "--csr", s(&csr), "client", "--name", "t"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("signature does not verify"),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(&dir), before);

    let curve = device_csr(
        tmp.path(),
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
        false,
    );
    let o = support::run(
        &dir,
        &[],
        &["sign", "--csr", s(&curve), "client", "--name", "k"],
    );
    assert!(
        text(&o).contains("curve we do not issue for"),
        "{}",
        text(&o)
    );
    let good = device_csr(
        tmp.path(),
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        false,
    );
    let o = support::run(
        &dir,
        &[],
        &["sign", "--csr", s(&good), "server", "--name", "srv"],
    );
    assert!(
        text(&o).contains("needs at least one subjectAltName"),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn renewal_keeps_the_key_archives_the_old_one_and_leaves_it_valid() {
    let (_tmp, dir) = fresh();
    let cert = dir.join("client/client.crt");
    let (old_pem, old_key) = (fs::read(&cert).expect("cert"), pubkey(&cert));
    let o = ok(&dir, &["renew", "client"]);
    let t = text(&o);
    assert!(
        t.contains("valid until it expires") && t.contains("export-p12"),
        "{t}"
    );
    assert_ne!(fs::read(&cert).expect("cert"), old_pem);
    assert_eq!(pubkey(&cert), old_key, "same key");
    let archived: Vec<_> = fs::read_dir(dir.join("client/archive"))
        .expect("archive")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(fs::read(&archived[0]).expect("old"), old_pem);
    let o = ok(&dir, &["list", "--json", "--role", "client"]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let valid = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["status"] == "valid")
        .count();
    assert_eq!(valid, 2, "old and new are both valid: {rows}");

    ok(&dir, &["renew", "client", "--rekey", "--revoke-old"]);
    assert_ne!(pubkey(&cert), old_key, "a new key");
    let o = ok(&dir, &["list", "--json", "--status", "revoked"]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    assert_eq!(rows[0]["reason"], "superseded");
    // The renewed pair verifies.
    let o = ok(
        &dir,
        &[
            "verify",
            s(&cert),
            "--ca",
            s(&dir.join("ca/ca.crt")),
            "--purpose",
            "client",
        ],
    );
    assert!(text(&o).contains("OK"));
}

#[test]
fn a_revoked_certificate_is_not_renewed_and_its_bundle_says_so() {
    let (_tmp, dir) = fresh();
    ok(&dir, &["issue", "client", "--name", "sensor-7"]);
    ok(&dir, &["revoke", "sensor-7"]);
    let before = snapshot(&dir);
    let o = support::run(&dir, &[], &["renew", "sensor-7"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("was revoked on"), "{t}");
    assert!(
        t.contains("pki issue client --name sensor-7 --force"),
        "{t}"
    );
    assert_eq!(snapshot(&dir), before, "a refused renewal changes nothing");
    // A bundle of it is still made (a browser may want it), with a note that it is revoked.
    let o = support::run(
        &dir,
        &[("PKI_P12_PASSWORD", "correct horse")],
        &["export-p12", "--name", "sensor-7"],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("was revoked on") && t.contains("refuse this bundle"),
        "{t}"
    );
}

#[test]
fn needs_renewal_speaks_execcondition_and_renew_if_due_is_quiet() {
    let (_tmp, dir) = fresh();
    let cert = dir.join("client/client.crt");
    let code = |args: &[&str]| support::run(&dir, &[], args).status.code();
    assert_eq!(
        code(&["needs-renewal", s(&cert)]),
        Some(1),
        "a new certificate is not due"
    );
    assert_eq!(
        code(&["needs-renewal", s(&cert), "--within", "400d"]),
        Some(0)
    );
    assert_eq!(
        code(&["needs-renewal", s(&dir.join("nope.crt"))]),
        Some(255)
    );
    let before = fs::read(&cert).expect("cert");
    let o = ok(&dir, &["renew", "client", "--if-due"]);
    assert!(o.stdout.is_empty(), "{}", text(&o));
    assert_eq!(fs::read(&cert).expect("cert"), before);
    ok(&dir, &["renew", "client", "--if-due", "--within", "400d"]);
    assert_ne!(fs::read(&cert).expect("cert"), before);
}

#[test]
fn crl_if_due_rewrites_only_near_next_update() {
    let (_tmp, dir) = fresh();
    let crl = dir.join("ca/ca.crl");
    let before = fs::read(&crl).expect("crl");
    let o = ok(&dir, &["crl", "--if-due"]);
    assert!(o.stdout.is_empty(), "silent when not due: {}", text(&o));
    assert_eq!(fs::read(&crl).expect("crl"), before);
    let o = ok(&dir, &["crl", "--if-due", "--before", "31d"]);
    assert!(text(&o).contains("was due"), "{}", text(&o));
    let o = ok(&dir, &["inspect", s(&crl), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["CRL number"], "2");
}

#[test]
fn tokens_are_shown_once_and_kept_as_digests() {
    let (_tmp, dir) = fresh();
    let o = ok(
        &dir,
        &["token", "create", "--name", "dev-42", "--ttl", "1h"],
    );
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert_eq!(token.len(), 40, "160 random bits: {token}");
    let db = fs::read(dir.join("ca/ca.db")).expect("db");
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token itself is in the database"
    );
    let o = ok(&dir, &["token", "list"]);
    assert!(text(&o).contains("dev-42") && text(&o).contains("unused"));
    assert!(!text(&o).contains(&token));
    let o = support::run(&dir, &[], &["token", "create", "--name", "../x"]);
    assert_eq!(o.status.code(), Some(2));
    // A name that holds a valid certificate (make certs' client): made, and said.
    let o = ok(
        &dir,
        &["token", "create", "--name", "client", "--ttl", "1h"],
    );
    let t = text(&o);
    assert!(
        t.contains("client holds a valid certificate") && t.contains("refused"),
        "{t}"
    );
}

#[test]
fn the_shipped_systemd_units_verify() {
    let Ok(analyze) = which("systemd-analyze") else {
        assert!(
            std::env::var_os("REQUIRE_SYSTEMD_ANALYZE").is_none(),
            "REQUIRE_SYSTEMD_ANALYZE is set but systemd-analyze is missing"
        );
        eprintln!("SKIPPED: systemd-analyze is not installed (Debian's systemd)");
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd");
    for e in fs::read_dir(&units).expect("contrib/systemd") {
        let p = e.expect("entry").path();
        let text = fs::read_to_string(&p).expect("unit");
        // Point the units at the binary under test: verify checks that executables exist.
        let text = text.replace("/usr/local/bin/pki", env!("CARGO_BIN_EXE_pki"));
        fs::write(tmp.path().join(p.file_name().expect("name")), text).expect("copy");
    }
    let o = Command::new(analyze)
        .current_dir(tmp.path())
        .args(["verify", "--man=no", "pki-crl.service", "pki-crl.timer"])
        .args(["pki-renew@sensor-7.service", "pki-renew@sensor-7.timer"])
        .output()
        .expect("systemd-analyze");
    assert!(o.status.success() && o.stderr.is_empty(), "{}", text(&o));
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}
