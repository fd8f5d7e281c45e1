//! Two levels, an offline root, name constraints and CA names of their own, judged by the
//! openssl CLI (`verify -x509_strict`, CRL checks) on what the `pki` binary wrote.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use testkit::{text, tree};

fn ok(dir: &Path, args: &[&str]) -> Output {
    let o = support::run(dir, &[], args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

fn two_level(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let mut args = vec!["init", "--intermediate"];
    args.extend_from_slice(extra);
    ok(&dir, &args);
    (tmp, dir)
}

/// `openssl verify -x509_strict` of `cert` against the root, with the file's own chain.
fn verify(dir: &Path, cert: &Path, extra: &[&str]) -> (bool, String) {
    let o = Command::new("openssl")
        .args([
            "verify",
            "-x509_strict",
            "-CAfile",
            s(&dir.join("ca/ca.crt")),
        ])
        .args(["-untrusted", s(cert)])
        .args(extra)
        .arg(cert)
        .output()
        .expect("openssl verify");
    (o.status.success(), text(&o))
}

fn ext(cert: &Path, name: &str) -> String {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-ext", name, "-in", s(cert)])
        .output()
        .expect("openssl x509");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn two_levels_chain_to_the_root_and_the_intermediate_signs_the_crl() {
    let (_tmp, dir) = two_level(&[]);
    assert!(ext(&dir.join("ca/ca.crt"), "basicConstraints").contains("pathlen:1"));
    assert!(ext(&dir.join("ca/intermediate.crt"), "basicConstraints").contains("pathlen:0"));
    for leaf in ["server/server.crt", "client/client.crt"] {
        let cert = dir.join(leaf);
        let pem = fs::read_to_string(&cert).expect("leaf");
        assert_eq!(
            pem.matches("BEGIN CERTIFICATE").count(),
            2,
            "{leaf}: leaf + intermediate"
        );
        let (good, out) = verify(&dir, &cert, &[]);
        assert!(good, "{leaf}: {out}");
    }
    let crl = dir.join("ca/ca.crl");
    let client = dir.join("client/client.crt");
    let crl_args = ["-crl_check", "-CRLfile", s(&crl)];
    let (good, out) = verify(&dir, &client, &crl_args);
    assert!(good, "{out}");
    ok(&dir, &["revoke", "client"]);
    let (good, out) = verify(&dir, &client, &crl_args);
    assert!(!good && out.contains("revoked"), "{out}");
    // The bundle carries the whole chain for browsers.
    let o = Command::new("openssl")
        .args([
            "pkcs12",
            "-in",
            s(&dir.join("client/client.p12")),
            "-nokeys",
            "-passin",
        ])
        .arg(format!("file:{}", s(&dir.join("client/client.p12.pass"))))
        .output()
        .expect("openssl pkcs12");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches("BEGIN CERTIFICATE")
            .count(),
        3
    );
    // A second init changes nothing.
    let before = tree(&dir);
    let o = ok(&dir, &["init"]);
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    assert_eq!(tree(&dir), before);
}

#[test]
fn the_root_key_goes_offline_and_everything_but_a_new_intermediate_works() {
    let (tmp, dir) = two_level(&[]);
    let away = tmp.path().join("usb/root.key");
    fs::create_dir_all(away.parent().expect("dir")).expect("usb");
    ok(&dir, &["root", "export", "--to", s(&away)]);
    assert!(!dir.join("ca/ca.key").exists());
    assert_eq!(
        fs::metadata(&away).expect("key").permissions().mode() & 0o777,
        0o600
    );
    // Issuing, revoking, CRLs, renewal and init work without it.
    ok(&dir, &["issue", "client", "--name", "dev-1"]);
    ok(&dir, &["revoke", "dev-1"]);
    ok(&dir, &["crl"]);
    ok(&dir, &["renew", "server"]);
    let o = ok(&dir, &["init"]);
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    let (good, out) = verify(&dir, &dir.join("server/server.crt"), &[]);
    assert!(good, "{out}");
    // Never over an existing file; back in when needed.
    let o = support::run(&dir, &[], &["root", "export", "--to", s(&away)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    ok(&dir, &["root", "import", s(&away)]);
    assert!(dir.join("ca/ca.key").exists());
}

#[test]
fn a_single_level_root_cannot_go_offline() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    ok(&dir, &["init"]);
    let o = support::run(
        &dir,
        &[],
        &["root", "export", "--to", s(&tmp.path().join("k"))],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--intermediate"), "{}", text(&o));
    assert!(dir.join("ca/ca.key").exists() && !tmp.path().join("k").exists());
}

#[test]
fn name_constraints_refuse_outside_names_and_openssl_agrees() {
    let (tmp, dir) = two_level(&[
        "--permit-dns",
        ".internal",
        "--permit-dns",
        "localhost",
        "--permit-ip",
        "127.0.0.1",
        "--permit-ip",
        "::1",
        "--permit-ip",
        "10.0.0.0/8",
    ]);
    let nc = ext(&dir.join("ca/intermediate.crt"), "nameConstraints");
    assert!(
        nc.contains("critical") && nc.contains("DNS:.internal"),
        "{nc}"
    );
    let before = tree(&dir);
    let o = support::run(
        &dir,
        &[],
        &[
            "issue",
            "server",
            "--name",
            "bank",
            "--san",
            "bank.example.com",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("outside the CA's name constraints"),
        "{}",
        text(&o)
    );
    assert_eq!(tree(&dir), before, "nothing written");
    ok(
        &dir,
        &[
            "issue",
            "server",
            "--name",
            "api",
            "--san",
            "api.internal",
            "--san",
            "IP:10.9.8.7",
        ],
    );
    let (good, out) = verify(&dir, &dir.join("server/api.crt"), &[]);
    assert!(good, "{out}");

    // A certificate outside, made by hand with the intermediate's key: OpenSSL refuses it.
    let folder = pki::Folder::new(common::Layout::new(&dir));
    let ca = folder.issuer().expect("intermediate");
    let key = pki::key::generate(pki::KeyAlgorithm::EcP256).expect("key");
    let req =
        pki::request::build(&key, &pki::Subject::new("Evil", "bank.example.com")).expect("req");
    let spec = pki::CertSpec::new(pki::Profile::Server)
        .names(vec!["bank.example.com".parse().expect("san")]);
    let cert = ca.sign(&req, &spec).expect("sign by hand");
    let outside = tmp.path().join("outside.crt");
    let mut pem = cert.to_pem().expect("pem");
    pem.extend(fs::read(dir.join("ca/intermediate.crt")).expect("inter"));
    fs::write(&outside, pem).expect("write");
    let (good, out) = verify(&dir, &outside, &[]);
    assert!(
        !good && out.contains("permitted subtree violation"),
        "{out}"
    );
}

#[test]
fn every_pki_names_its_ca_differently() {
    let tmp = tempfile::tempdir().expect("tmp");
    let subject = |d: &str| {
        let dir = tmp.path().join(d);
        ok(&dir, &["init"]);
        let o = Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject",
                "-in",
                s(&dir.join("ca/ca.crt")),
            ])
            .output()
            .expect("openssl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (a, b) = (subject("a"), subject("b"));
    assert_ne!(a, b);
    assert!(a.contains("https Project Root CA") && b.contains("https Project Root CA"));
    let dir = tmp.path().join("named");
    ok(&dir, &["init", "--ca-name", "Lab 7 Root"]);
    let o = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-in",
            s(&dir.join("ca/ca.crt")),
        ])
        .output()
        .expect("openssl");
    assert!(String::from_utf8_lossy(&o.stdout).contains("CN = Lab 7 Root"));
}

/// `pki --dir DIR ARGS` expected to be refused: exit 2, a message without a borrowed prefix,
/// and not one byte of the folder changed.
fn refused(dir: &Path, args: &[&str]) -> String {
    let before = tree(dir);
    let o = support::run(dir, &[], args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
    assert!(
        !t.contains("cannot sign this request") && !t.contains("pki init:"),
        "{args:?}: {t}"
    );
    assert_eq!(tree(dir), before, "{args:?} changed the folder: {t}");
    t
}

#[test]
fn init_asked_for_another_ca_shape_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    ok(&dir, &["init"]);
    for args in [
        &["init", "--intermediate"][..],
        &[
            "init",
            "--intermediate",
            "--crl-url",
            "http://ca.internal/ca.crl",
        ],
    ] {
        let t = refused(&dir, args);
        assert!(
            t.contains("is a single-level CA") && t.contains("--force"),
            "{t}"
        );
    }
    let t = refused(&dir, &["init", "--permit-dns", ".internal"]);
    assert!(t.contains("permits any name, not DNS:.internal"), "{t}");
    let t = refused(&dir, &["init", "--ca-name", "Another Root"]);
    assert!(t.contains("not \"Another Root\""), "{t}");
    assert!(!dir.join("ca/intermediate.crt").exists());
    // The one-level CA still works as before.
    ok(&dir, &["issue", "client", "--name", "dev-1"]);
    let (good, out) = verify(&dir, &dir.join("client/dev-1.crt"), &[]);
    assert!(good, "{out}");
}

#[test]
fn init_without_options_keeps_a_two_level_ca_and_refuses_other_constraints() {
    let (_tmp, dir) = two_level(&["--permit-dns", ".internal", "--permit-dns", "localhost"]);
    let before = tree(&dir);
    // Asking for nothing, or for what the CA already is, keeps it.
    for args in [
        &["init"][..],
        &["init", "--intermediate"],
        &[
            "init",
            "--permit-dns",
            "localhost",
            "--permit-dns",
            ".INTERNAL",
        ],
    ] {
        let o = ok(&dir, args);
        assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    }
    assert_eq!(tree(&dir), before);
    let t = refused(&dir, &["init", "--permit-dns", ".other"]);
    assert!(
        t.contains("ca/intermediate.crt permits DNS:.internal, DNS:localhost, not DNS:.other"),
        "{t}"
    );
}

#[test]
fn init_force_to_one_level_retires_the_old_intermediate() {
    let (_tmp, dir) = two_level(&[]);
    let o = ok(&dir, &["init", "--force"]);
    assert!(
        text(&o).contains("removed") && text(&o).contains("intermediate.crt"),
        "{}",
        text(&o)
    );
    for gone in ["ca/intermediate.crt", "ca/intermediate.key", "ca/root.crl"] {
        assert!(!dir.join(gone).exists(), "{gone} is still there");
    }
    ok(&dir, &["issue", "client", "--name", "dev-1"]);
    for leaf in ["client/dev-1.crt", "server/server.crt", "client/client.crt"] {
        let cert = dir.join(leaf);
        let pem = fs::read_to_string(&cert).expect("leaf");
        assert_eq!(
            pem.matches("BEGIN CERTIFICATE").count(),
            1,
            "{leaf}: no chain"
        );
        let o = ok(
            &dir,
            &["verify", "--ca", s(&dir.join("ca/ca.crt")), s(&cert)],
        );
        assert!(text(&o).contains("OK"), "{}", text(&o));
        let (good, out) = verify(&dir, &cert, &[]);
        assert!(good, "{leaf}: {out}");
    }
    // And a second init keeps the new one-level CA.
    let o = ok(&dir, &["init"]);
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
}

#[test]
fn root_export_to_a_medium_that_is_not_mounted_is_refused_and_the_key_stays() {
    let (tmp, dir) = two_level(&[]);
    let media = tmp.path().join("media/usb");
    let t = refused(
        &dir,
        &["root", "export", "--to", s(&media.join("root.key"))],
    );
    assert!(
        t.contains(&format!(
            "{} does not exist: mount the medium first",
            media.display()
        )),
        "{t}"
    );
    assert!(!tmp.path().join("media").exists(), "no folder made");
    assert!(dir.join("ca/ca.key").exists());
    // A file where the medium's folder should be is no medium either.
    let file = tmp.path().join("not-a-folder");
    fs::write(&file, "x").expect("file");
    let t = refused(&dir, &["root", "export", "--to", s(&file.join("root.key"))]);
    assert!(t.contains("is not a folder"), "{t}");
    assert!(dir.join("ca/ca.key").exists());
}
