//! Every CA has a name of its own, and that is what lets a client holding certificates of two
//! of our CAs send the right one to each server: Java's key manager (like Firefox's) chooses by
//! the CA names the server lists. With two CAs of the same name it sends one certificate to
//! both, and one server refuses it (the negative control).

use std::path::Path;
use std::process::Command;

use server::{Background, ClientAuth, Config};

use crate::support::{run, s, TestPki};

fn java_tools() -> Option<()> {
    let found = |t: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if found("java") && found("keytool") {
        return Some(());
    }
    assert!(
        std::env::var_os("REQUIRE_JAVA").is_none(),
        "REQUIRE_JAVA is set but java/keytool are missing (Debian: default-jdk-headless)"
    );
    eprintln!("SKIPPED: pki_two_cas needs java and keytool (Debian: default-jdk-headless)");
    None
}

/// Both clients' bundles in one key store (aliases a, b), both CAs in one trust store.
fn stores(dir: &Path, a: &TestPki, b: &TestPki) {
    for (alias, pki) in [("a", a), ("b", b)] {
        let p12 = pki.layout().client_p12("client");
        let (ok, out) = run(
            "keytool",
            &[
                "-importkeystore",
                "-noprompt",
                "-srckeystore",
                s(&p12),
                "-srcstoretype",
                "PKCS12",
                "-srcstorepass",
                "test-pass",
                "-srcalias",
                "client",
                "-destalias",
                alias,
                "-destkeystore",
                s(&dir.join("keys.p12")),
                "-deststoretype",
                "PKCS12",
                "-deststorepass",
                "test-pass",
            ],
        );
        assert!(ok, "{out}");
        let (ok, out) = run(
            "keytool",
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                alias,
                "-file",
                s(&pki.layout().ca_cert()),
                "-keystore",
                s(&dir.join("trust.p12")),
                "-storetype",
                "PKCS12",
                "-storepass",
                "test-pass",
            ],
        );
        assert!(ok, "{out}");
    }
}

/// What the Java client got from each server: one line per URL.
fn java_calls(a: &TestPki, b: &TestPki) -> Vec<String> {
    let tmp = tempfile::tempdir().expect("tmp");
    stores(tmp.path(), a, b);
    let sa = Background::spawn(Config::for_pki(a.dir(), ClientAuth::Required)).expect("server a");
    let sb = Background::spawn(Config::for_pki(b.dir(), ClientAuth::Required)).expect("server b");
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/java/TwoCas.java");
    let urls = [sa.addr, sb.addr].map(|addr| format!("https://localhost:{}/whoami", addr.port()));
    let (ok, out) = run(
        "java",
        &[
            s(&program),
            s(&tmp.path().join("keys.p12")),
            "test-pass",
            s(&tmp.path().join("trust.p12")),
            &urls[0],
            &urls[1],
        ],
    );
    assert!(ok, "{out}");
    out.lines()
        .filter(|l| l.starts_with("https://"))
        .map(str::to_owned)
        .collect()
}

fn named(cn: &str) -> TestPki {
    let mut opts = pki::InitOptions {
        p12_password: Some("test-pass".into()),
        ..pki::InitOptions::default()
    };
    opts.ca_subject.common_name = cn.into();
    TestPki::with_options(opts)
}

#[test]
fn a_client_holding_two_cas_certificates_offers_each_server_the_right_one() {
    if java_tools().is_none() {
        return;
    }
    // Two PKIs made by `pki init` as it is: each CA has a name of its own.
    let (a, b) = (TestPki::new(), TestPki::new());
    let got = java_calls(&a, &b);
    assert_eq!(got.len(), 2, "{got:?}");
    for line in &got {
        assert!(line.contains(" 200 "), "refused: {got:?}");
    }
    // The negative control: two CAs of the same name, and one server gets the wrong one.
    let (a, b) = (named("Same Name CA"), named("Same Name CA"));
    let got = java_calls(&a, &b);
    assert!(
        got.iter().any(|l| !l.contains(" 200 ")),
        "with one name for both CAs, Java still chose right: {got:?}"
    );
}
