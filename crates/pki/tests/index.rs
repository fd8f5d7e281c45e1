//! `index.txt`: imported on first use from a folder an older `pki` made (every record kept), and
//! exported in `openssl ca`'s format so `openssl ca -gencrl` and `openssl ocsp -index` read it.

use std::fs;
use std::path::Path;
use std::process::Command;

mod support;
use testkit::text;

fn ok(dir: &Path, args: &[&str]) -> std::process::Output {
    let o = support::run(dir, &[], args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

fn list(dir: &Path) -> Vec<serde_json::Value> {
    let o = ok(dir, &["list", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .expect("json")
        .as_array()
        .expect("array")
        .clone()
}

#[test]
fn a_folder_with_only_index_txt_is_imported_with_every_record() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    ok(&dir, &["init"]);
    ok(&dir, &["issue", "client", "--name", "gone"]);
    ok(&dir, &["revoke", "gone", "--reason", "keyCompromise"]);
    ok(&dir, &["issue", "client", "--name", "twice"]);
    ok(&dir, &["issue", "client", "--name", "twice", "--force"]);
    // What an older pki left: index.txt, crlnumber, no database; plus a record whose file no
    // longer exists, as `openssl ca` writes it (file "unknown").
    let mut index = fs::read_to_string(dir.join("ca/index.txt")).expect("index");
    index.push_str(
        "R\t300101000000Z\t260101000000Z,superseded\t0ABC\tunknown\t/O=Old/CN=from-openssl-ca\n",
    );
    fs::write(dir.join("ca/index.txt"), &index).expect("index");
    fs::write(dir.join("ca/crlnumber"), "2A\n").expect("crlnumber");
    for f in ["ca.db", "ca.db-wal", "ca.db-shm", "index.txt.attr"] {
        let _ = fs::remove_file(dir.join("ca").join(f));
    }

    let o = ok(&dir, &["list"]);
    assert!(text(&o).contains("imported 6 records"), "{}", text(&o));
    let rows = list(&dir);
    for line in index.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let row = rows
            .iter()
            .find(|r| r["serial"] == f[3])
            .unwrap_or_else(|| panic!("serial {} lost in the import", f[3]));
        let status = if f[0] == "R" { "revoked" } else { "valid" };
        assert_eq!(row["status"], status, "{line}");
        assert_eq!(row["subject"], f[5], "{line}");
        if let Some((_, reason)) = f[2].split_once(',') {
            assert_eq!(row["reason"], reason, "{line}");
        }
    }
    let twice: Vec<_> = rows.iter().filter(|r| r["name"] == "twice").collect();
    assert_eq!(twice.len(), 2);
    assert_eq!(twice.iter().filter(|r| r["current"] == true).count(), 1);
    // The CRL numbering goes on from the old crlnumber.
    ok(&dir, &["crl"]);
    let crl = dir.join("ca/ca.crl");
    let o = ok(&dir, &["inspect", crl.to_str().expect("utf8"), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["CRL number"], "42", "{v}");
    // The export is still a superset of the old index, line for line.
    let after = fs::read_to_string(dir.join("ca/index.txt")).expect("index");
    for line in index.lines() {
        assert!(after.lines().any(|l| l == line), "{line} not in\n{after}");
    }
}

#[test]
fn openssl_ca_and_ocsp_read_the_exported_index() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    ok(&dir, &["init"]);
    ok(&dir, &["issue", "client", "--name", "bad"]);
    ok(&dir, &["issue", "client", "--name", "good"]);
    let o = ok(&dir, &["revoke", "bad", "--reason", "keyCompromise"]);
    let bad = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .expect("serial")
        .to_owned();
    // openssl ca keeps its own state next to the index: give it a copy of ca/.
    let copy = tmp.path().join("openssl-ca");
    fs::create_dir_all(&copy).expect("copy");
    for f in [
        "index.txt",
        "index.txt.attr",
        "crlnumber",
        "ca.crt",
        "ca.key",
    ] {
        fs::copy(dir.join("ca").join(f), copy.join(f)).expect("copy");
    }
    let conf = copy.join("openssl.cnf");
    fs::write(
        &conf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {0}/index.txt\ncrlnumber = {0}/crlnumber\n\
             certificate = {0}/ca.crt\nprivate_key = {0}/ca.key\ndefault_md = sha256\n\
             default_crl_days = 30\n",
            copy.display()
        ),
    )
    .expect("conf");
    let out = copy.join("openssl.crl");
    let o = Command::new("openssl")
        .args(["ca", "-gencrl", "-batch", "-config"])
        .arg(&conf)
        .arg("-out")
        .arg(&out)
        .output()
        .expect("openssl ca");
    assert!(o.status.success(), "openssl ca -gencrl: {}", text(&o));
    let o = Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(&out)
        .output()
        .expect("openssl crl");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&bad),
        "{bad} missing from openssl's CRL: {}",
        text(&o)
    );

    // openssl ocsp -index answers from the same file: revoked for one, good for the other.
    let ca = dir.join("ca/ca.crt");
    let good = dir.join("client/good.crt");
    let status = |cert_args: &[&str]| {
        let req = copy.join("req.der");
        let resp = copy.join("resp.der");
        let run = |args: Vec<&str>| {
            let o = Command::new("openssl")
                .args(&args)
                .output()
                .expect("openssl ocsp");
            assert!(o.status.success(), "{args:?}: {}", text(&o));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let (ca, req, resp) = (
            ca.to_str().expect("utf8"),
            req.to_str().expect("utf8"),
            resp.to_str().expect("utf8"),
        );
        let mut ask = vec!["ocsp", "-issuer", ca, "-no_nonce", "-reqout", req];
        ask.extend_from_slice(cert_args);
        run(ask);
        let index = copy.join("index.txt");
        let key = copy.join("ca.key");
        run(vec![
            "ocsp",
            "-index",
            index.to_str().expect("utf8"),
            "-CA",
            ca,
            "-rsigner",
            ca,
            "-rkey",
            key.to_str().expect("utf8"),
            "-reqin",
            req,
            "-respout",
            resp,
        ]);
        let mut read = vec!["ocsp", "-respin", resp, "-issuer", ca, "-CAfile", ca];
        read.extend_from_slice(cert_args);
        run(read)
    };
    let serial = format!("0x{bad}");
    assert!(status(&["-serial", &serial]).contains(": revoked"));
    assert!(status(&["-cert", good.to_str().expect("utf8")]).contains(": good"));
}

#[test]
fn a_revocation_patches_index_txt_to_what_a_full_export_writes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    ok(&dir, &["init"]);
    ok(&dir, &["issue", "client", "--count", "5", "--prefix", "d-"]);
    let index = dir.join("ca/index.txt");
    let before = fs::read_to_string(&index).expect("index");
    ok(&dir, &["revoke", "d-2"]);
    ok(&dir, &["revoke", "d-4", "--reason", "keyCompromise"]);
    let patched = fs::read_to_string(&index).expect("index");
    assert_ne!(patched, before);
    assert_eq!(patched.lines().filter(|l| l.starts_with("R\t")).count(), 2);
    assert!(patched.contains(",keyCompromise\t"), "{patched}");
    // Without index.txt, the next command writes it whole from the records.
    fs::remove_file(&index).expect("rm");
    ok(&dir, &["crl"]);
    assert_eq!(fs::read_to_string(&index).expect("index"), patched);
}

#[test]
fn the_records_keep_the_newest_crls_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    ok(&dir, &["init"]);
    for _ in 0..12 {
        ok(&dir, &["crl"]);
    }
    let db = rusqlite::Connection::open(dir.join("ca/ca.db")).expect("db");
    let (count, newest): (i64, i64) = db
        .query_row("SELECT count(*), max(number) FROM crls", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("crls");
    assert_eq!(count, 8);
    // The newest is the one on disk.
    let next = fs::read_to_string(dir.join("ca/crlnumber")).expect("crlnumber");
    assert_eq!(
        i64::from_str_radix(next.trim(), 16).expect("hex"),
        newest + 1
    );
}
