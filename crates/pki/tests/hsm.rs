//! The CA's keys inside a PKCS#11 token, with SoftHSM: a token made in a temporary directory
//! (`SOFTHSM2_CONF`, `softhsm2-util --init-token`), then the real `pki` binary on it, judged by
//! the openssl CLI and OpenSC's `pkcs11-tool`.
//!
//! Without softhsm2 (and opensc) each test prints SKIPPED, or fails when `REQUIRE_SOFTHSM` is
//! set (CI sets it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

mod support;
use pki::pkcs11::{Pkcs11Uri, TokenKey};
use pki::{Issuer, KeyAlgorithm, SigningKey};
use testkit::text;

/// SoftHSM's module (`SOFTHSM_MODULE` overrides it: another path, or one that is missing to see
/// the SKIPPED path).
fn module() -> &'static str {
    static M: OnceLock<String> = OnceLock::new();
    M.get_or_init(|| {
        std::env::var("SOFTHSM_MODULE").unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into())
    })
}
const PIN: &str = "314159";
const SO_PIN: &str = "27182818";

/// The token directory of this test process: one SoftHSM configuration, because the module
/// reads `SOFTHSM2_CONF` once per process (the in-process test loads it too).
struct Tokens {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    pin_file: PathBuf,
    made: Mutex<u32>,
}

fn tokens(test: &str) -> Option<&'static Tokens> {
    static TOKENS: OnceLock<Option<Tokens>> = OnceLock::new();
    let t = TOKENS.get_or_init(|| {
        let have = Path::new(module()).is_file()
            && Command::new("softhsm2-util")
                .arg("--version")
                .output()
                .is_ok()
            && Command::new("pkcs11-tool").arg("--help").output().is_ok();
        if !have {
            return None;
        }
        let dir = tempfile::tempdir().expect("tmp");
        fs::create_dir(dir.path().join("tokens")).expect("tokens");
        let conf = dir.path().join("softhsm2.conf");
        fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .expect("conf");
        // Set once, before this process loads the module and before any test spawns a command.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let pin_file = dir.path().join("pin");
        fs::write(&pin_file, format!("{PIN}\n")).expect("pin");
        Some(Tokens {
            _dir: dir,
            conf,
            pin_file,
            made: Mutex::new(0),
        })
    });
    if t.is_none() {
        assert!(
            std::env::var_os("REQUIRE_SOFTHSM").is_none(),
            "REQUIRE_SOFTHSM is set but softhsm2 or opensc is missing (apt-get install softhsm2 opensc)"
        );
        eprintln!(
            "SKIPPED ({test}): softhsm2 and opensc are not installed (apt-get install softhsm2 opensc)"
        );
    }
    t.as_ref()
}

impl Tokens {
    /// A new token of its own for one test; its label.
    fn token(&self, name: &str) -> String {
        let mut n = self.made.lock().expect("lock");
        *n += 1;
        let label = format!("{name}{n}");
        let o = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--init-token", "--free", "--label", &label])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .output()
            .expect("softhsm2-util");
        assert!(o.status.success(), "init-token: {}", text(&o));
        label
    }

    /// `pkcs11:token=LABEL;object=OBJECT?module-path=…&pin-source=file:…`
    fn uri(&self, label: &str, object: &str) -> String {
        format!(
            "pkcs11:token={label};object={object}?module-path={}&pin-source=file:{}",
            module(),
            self.pin_file.display()
        )
    }

    /// The same without pin-source: the PIN from PKI_PKCS11_PIN.
    fn uri_without_pin(&self, label: &str, object: &str) -> String {
        format!(
            "pkcs11:token={label};object={object}?module-path={}",
            module()
        )
    }

    fn pki(&self, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
        let conf = self.conf.to_str().expect("utf8");
        let mut all = vec![("SOFTHSM2_CONF", conf)];
        all.extend_from_slice(env);
        support::run(dir, &all, args)
    }

    fn ok(&self, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
        let o = self.pki(dir, env, args);
        assert!(o.status.success(), "pki {args:?}: {}", text(&o));
        text(&o)
    }

    /// `pkcs11-tool --list-objects --login` on the token.
    fn objects(&self, label: &str) -> String {
        let o = Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--module", module(), "--token-label", label])
            .args(["--login", "--pin", PIN, "--list-objects"])
            .output()
            .expect("pkcs11-tool");
        assert!(o.status.success(), "pkcs11-tool: {}", text(&o));
        text(&o)
    }
}

/// The block `pkcs11-tool` prints for the private key `object`.
fn private_key_block(listing: &str, object: &str) -> String {
    listing
        .split("Private Key Object")
        .skip(1)
        .find(|b| {
            b.lines()
                .any(|l| l.trim() == format!("label:      {object}"))
        })
        .unwrap_or_else(|| panic!("no private key {object} in:\n{listing}"))
        .split("Object;")
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl")
}

/// Every file under `dir/ca`, recursively.
fn ca_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(p).expect("read_dir").flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join("ca"), &mut out);
    out
}

fn assert_no_key_file_under_ca(dir: &Path) {
    let keys: Vec<_> = ca_files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect();
    assert!(keys.is_empty(), "key files under ca/: {keys:?}");
    for f in ca_files(dir) {
        let bytes = fs::read(&f).expect("read");
        assert!(
            !bytes.windows(PIN.len()).any(|w| w == PIN.as_bytes()),
            "{} holds the PIN",
            f.display()
        );
    }
}

fn verify(dir: &Path, cert: &Path) {
    let o = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        s(&dir.join("ca/ca.crt")),
        "-untrusted",
        s(cert),
        s(cert),
    ]);
    assert!(
        o.status.success(),
        "verify {}: {}",
        cert.display(),
        text(&o)
    );
}

/// `openssl crl -verify` of `crl` against `issuer`, and its text.
fn crl_text(crl: &Path, issuer: &Path) -> String {
    let o = openssl(&[
        "crl",
        "-in",
        s(crl),
        "-CAfile",
        s(issuer),
        "-noout",
        "-verify",
        "-text",
    ]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("verify OK"), "crl: {t}");
    t
}

fn serial_of(cert: &Path) -> String {
    let o = openssl(&["x509", "-in", s(cert), "-noout", "-serial"]);
    text(&o).trim().trim_start_matches("serial=").to_owned()
}

#[test]
fn one_level_ca_in_a_token_issues_revokes_and_rotates() {
    let Some(t) = tokens("one_level_ca_in_a_token_issues_revokes_and_rotates") else {
        return;
    };
    let label = t.token("one");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let out = t.ok(&dir, &[], &["init", "--key-store", &t.uri(&label, "ca")]);
    assert!(out.contains("ca/ca.key-store"), "{out}");
    assert_no_key_file_under_ca(&dir);
    let record = fs::read_to_string(dir.join("ca/ca.key-store")).expect("record");
    assert!(
        record.contains(&format!("token={label};object=ca;id=")),
        "{record}"
    );

    // The token holds it, sensitive and never extractable, as OpenSC reads it.
    let block = private_key_block(&t.objects(&label), "ca");
    assert!(block.contains("never extractable"), "{block}");
    assert!(block.contains("always sensitive"), "{block}");

    t.ok(&dir, &[], &["issue", "client", "--name", "dev1"]);
    verify(&dir, &dir.join("client/dev1.crt"));
    verify(&dir, &dir.join("server/server.crt"));

    let serial = serial_of(&dir.join("client/dev1.crt"));
    t.ok(&dir, &[], &["revoke", "dev1", "--reason", "keyCompromise"]);
    let crl = crl_text(&dir.join("ca/ca.crl"), &dir.join("ca/ca.crt"));
    assert!(crl.contains(&serial), "{serial} not in\n{crl}");
    assert!(crl.contains("Key Compromise"), "{crl}");

    let status = t.ok(&dir, &[], &["ca", "status"]);
    assert!(status.contains("key: token pkcs11:"), "{status}");
    assert!(
        status.contains("extractable false, never extractable true, sensitive true"),
        "{status}"
    );
    assert!(!status.contains(PIN), "{status}");
    // SoftHSM is no hardware: it must not be called so.
    assert!(!status.contains("in hardware"), "{status}");

    // A rotation, each new key in the token beside the old one.
    t.ok(&dir, &[], &["ca", "rotate"]);
    t.ok(&dir, &[], &["ca", "rotate", "--switch"]);
    t.ok(&dir, &[], &["renew", "--all"]);
    t.ok(&dir, &[], &["ca", "rotate", "--retire"]);
    assert_no_key_file_under_ca(&dir);
    t.ok(&dir, &[], &["issue", "client", "--name", "dev2"]);
    verify(&dir, &dir.join("client/dev2.crt"));
    crl_text(&dir.join("ca/ca.crl"), &dir.join("ca/ca.crt"));
    let listing = t.objects(&label);
    assert_eq!(
        listing.matches("Private Key Object").count(),
        2,
        "{listing}"
    );
    let record = fs::read_to_string(dir.join("ca/ca.key-store")).expect("record");
    assert!(record.contains("object=ca-"), "{record}");
}

#[test]
fn two_levels_keep_root_and_issuing_keys_in_objects_of_their_own() {
    let Some(t) = tokens("two_levels_keep_root_and_issuing_keys_in_objects_of_their_own") else {
        return;
    };
    let label = t.token("two");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let env = [("PKI_PKCS11_PIN", PIN)];
    let uri = t.uri_without_pin(&label, "issuing");
    t.ok(
        &dir,
        &env,
        &[
            "init",
            "--intermediate",
            "--key",
            "p384",
            "--key-store",
            &uri,
        ],
    );
    assert_no_key_file_under_ca(&dir);
    let listing = t.objects(&label);
    for object in ["issuing", "issuing-root"] {
        let block = private_key_block(&listing, object);
        assert!(block.contains("never extractable"), "{object}: {block}");
    }
    t.ok(
        &dir,
        &env,
        &["issue", "server", "--name", "web", "--san", "DNS:web.test"],
    );
    verify(&dir, &dir.join("server/web.crt"));
    let o = openssl(&[
        "x509",
        "-in",
        s(&dir.join("ca/intermediate.crt")),
        "-noout",
        "-text",
    ]);
    assert!(text(&o).contains("ecdsa-with-SHA384"), "{}", text(&o));
    t.ok(&dir, &env, &["revoke", "web"]);
    crl_text(&dir.join("ca/ca.crl"), &dir.join("ca/intermediate.crt"));
    crl_text(&dir.join("ca/root.crl"), &dir.join("ca/ca.crt"));

    // A key that cannot leave the token cannot be exported.
    let o = t.pki(
        &dir,
        &env,
        &["root", "export", "--to", s(&tmp.path().join("root.key"))],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot be exported"), "{}", text(&o));
    assert!(!tmp.path().join("root.key").exists());

    let status = t.ok(&dir, &env, &["ca", "status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status).expect("json");
    let current = &json["cas"][0];
    assert_eq!(current["key"]["store"], "token");
    assert_eq!(current["key"]["token"]["object"], "issuing");
    assert_eq!(current["root_key"]["token"]["object"], "issuing-root");
    assert_eq!(current["root_key"]["token"]["extractable"], false);
}

#[test]
fn an_rsa_3072_ca_key_signs_in_the_token() {
    let Some(t) = tokens("an_rsa_3072_ca_key_signs_in_the_token") else {
        return;
    };
    let label = t.token("rsa");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    t.ok(
        &dir,
        &[],
        &[
            "init",
            "--key",
            "rsa3072",
            "--key-store",
            &t.uri(&label, "ca"),
        ],
    );
    verify(&dir, &dir.join("client/client.crt"));
    let o = openssl(&["x509", "-in", s(&dir.join("ca/ca.crt")), "-noout", "-text"]);
    let ca = text(&o);
    assert!(ca.contains("sha256WithRSAEncryption"), "{ca}");
    assert!(ca.contains("Public-Key: (3072 bit)"), "{ca}");
    crl_text(&dir.join("ca/ca.crl"), &dir.join("ca/ca.crt"));
}

#[test]
fn token_failures_are_one_line_and_change_nothing() {
    let Some(t) = tokens("token_failures_are_one_line_and_change_nothing") else {
        return;
    };
    let label = t.token("fail");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let uri = t.uri_without_pin(&label, "ca");
    t.ok(
        &dir,
        &[("PKI_PKCS11_PIN", PIN)],
        &["init", "--key-store", &uri],
    );
    let before = testkit::tree(&dir);

    let refused = |env: &[(&str, &str)], words: &str| {
        let o = t.pki(&dir, env, &["issue", "client", "--name", "x"]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(words), "expected {words:?} in: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!dir.join("client/x.crt").exists() && !dir.join("client/x.key").exists());
    };
    refused(&[], "no PIN for token");
    refused(&[("PKI_PKCS11_PIN", "000000")], "is wrong");
    let wrong = "000000";
    let o = t.pki(
        &dir,
        &[("PKI_PKCS11_PIN", wrong)],
        &["issue", "client", "--name", "x"],
    );
    assert!(
        !text(&o).contains(wrong),
        "the PIN is never printed: {}",
        text(&o)
    );

    // The token gone (the record names another label), then the module gone.
    let record = dir.join("ca/ca.key-store");
    let saved = fs::read_to_string(&record).expect("record");
    fs::write(
        &record,
        saved.replace(&format!("token={label}"), "token=unplugged"),
    )
    .expect("w");
    refused(
        &[("PKI_PKCS11_PIN", PIN)],
        "no token labelled \"unplugged\"",
    );
    fs::write(
        &record,
        saved.replace(module(), "/nonexistent/libpkcs11.so"),
    )
    .expect("w");
    refused(&[("PKI_PKCS11_PIN", PIN)], "cannot load the PKCS#11 module");
    fs::write(&record, &saved).expect("restore");
    assert_eq!(
        testkit::tree(&dir),
        before,
        "a refused command changed the folder"
    );

    // A label the token holds already is refused by a new init, and nothing is written.
    let other = tmp.path().join("other");
    let o = t.pki(
        &other,
        &[("PKI_PKCS11_PIN", PIN)],
        &["init", "--key-store", &uri],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("already holds an object labelled \"ca\""),
        "{}",
        text(&o)
    );
    assert!(!other.join("ca/ca.crt").exists());
    t.ok(
        &dir,
        &[("PKI_PKCS11_PIN", PIN)],
        &["issue", "client", "--name", "x"],
    );

    // The URI's id is the key's (a PIV token maps ids to slots); an id taken is refused too.
    let with_id = tmp.path().join("with-id");
    let uri = |object: &str| {
        format!(
            "pkcs11:token={label};object={object};id=%07?module-path={}",
            module()
        )
    };
    t.ok(
        &with_id,
        &[("PKI_PKCS11_PIN", PIN)],
        &["init", "--key-store", &uri("sevens")],
    );
    let record = fs::read_to_string(with_id.join("ca/ca.key-store")).expect("record");
    assert!(record.contains("object=sevens;id=%07?"), "{record}");
    let again = tmp.path().join("again");
    let o = t.pki(
        &again,
        &[("PKI_PKCS11_PIN", PIN)],
        &["init", "--key-store", &uri("eights")],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("already holds an object"), "{}", text(&o));
    assert!(!again.join("ca/ca.crt").exists());
}

#[test]
fn an_interrupted_init_finishes_with_the_key_already_in_the_token() {
    let Some(t) = tokens("an_interrupted_init_finishes_with_the_key_already_in_the_token") else {
        return;
    };
    let label = t.token("again");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let uri = t.uri(&label, "ca");
    t.ok(&dir, &[], &["init", "--key-store", &uri]);
    let out = t.ok(&dir, &[], &["init"]);
    assert!(out.contains("nothing changed"), "{out}");
    // A run that stopped after making the key in the token, before writing the certificate.
    fs::remove_file(dir.join("ca/ca.crt")).expect("rm");
    fs::remove_file(dir.join("server/server.crt")).expect("rm");
    let out = t.ok(&dir, &[], &["init"]);
    assert!(
        out.contains("kept") && out.contains("ca/ca.key-store"),
        "{out}"
    );
    assert!(
        out.contains("created") && out.contains("ca/ca.crt"),
        "{out}"
    );
    verify(&dir, &dir.join("server/server.crt"));
    let listing = t.objects(&label);
    assert_eq!(
        listing.matches("Private Key Object").count(),
        1,
        "{listing}"
    );
    assert_no_key_file_under_ca(&dir);
}

#[test]
fn a_lost_session_is_reopened_and_a_leaky_key_is_not_called_protected() {
    let Some(t) = tokens("a_lost_session_is_reopened_and_a_leaky_key_is_not_called_protected")
    else {
        return;
    };
    let label = t.token("lib");
    let uri = Pkcs11Uri::parse(&t.uri(&label, "issuing")).expect("uri");
    let key = Arc::new(TokenKey::generate(&uri, KeyAlgorithm::EcP256, false).expect("generate"));
    assert!(!format!("{key:?}").contains(PIN));
    let spec = x509::CertSpec::new(x509::Profile::Ca);
    let name = x509::Subject::new("T", "token root")
        .to_x509_name()
        .expect("name");
    let ca = Issuer::self_sign_key(&name, key.clone(), &spec).expect("self-sign in the token");
    let public = ca.certificate().public_key().expect("pub");
    assert!(ca.certificate().verify(&public).expect("verify"));

    // The token forgets the login (as a restart does): the next signature logs in again.
    assert_eq!(key.reconnects(), 0);
    key.logout().expect("logout");
    let crl = ca.crl(&[], 2, 7).expect("signed after reconnecting");
    assert!(crl.verify(&public).expect("verify crl"));
    assert_eq!(
        key.reconnects(),
        1,
        "the lost login was found and the session reopened"
    );

    let facts = key.token_facts().expect("facts").expect("token");
    assert!(facts.kept_inside(), "{facts:?}");
    assert!(!facts.extractable && facts.sensitive && facts.local);

    // A key made extractable and readable by another tool: never called protected.
    let o = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &t.conf)
        .args([
            "--module",
            module(),
            "--token-label",
            &label,
            "--login",
            "--pin",
            PIN,
        ])
        .args([
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "leaky",
        ])
        .args(["--extractable", "--id", "0102"])
        .output()
        .expect("pkcs11-tool");
    assert!(o.status.success(), "{}", text(&o));
    let leaky = TokenKey::open(&uri.with_object("leaky")).expect("open leaky");
    let facts = leaky.token_facts().expect("facts").expect("token");
    assert!(facts.extractable, "{facts:?}");
    assert!(!facts.kept_inside());
    let words = facts.protection();
    assert!(words.starts_with("NOT PROTECTED"), "{words}");
    assert!(!words.contains("in hardware"), "{words}");

    // Another key of the same token signs too (one module, one login, two keys).
    let spec_leaf = x509::CertSpec::new(x509::Profile::Client);
    let leaf_key = x509::key::generate(KeyAlgorithm::EcP256).expect("leaf key");
    let leaf_pub = x509::key::public_of(&leaf_key).expect("pub");
    let leaf_name = x509::Subject::new("T", "leaf")
        .to_x509_name()
        .expect("name");
    let cert = ca
        .sign_key(&leaf_name, &leaf_pub, &spec_leaf)
        .expect("leaf");
    assert!(cert.verify(&public).expect("verify leaf"));
}

/// Signatures per second through SoftHSM against a key file, per algorithm: the rows of
/// `make bench-hsm` (`HSM_BENCH_SIGNATURES`, default 2000 per row). Ignored in a plain run.
#[test]
#[ignore = "a measurement: make bench-hsm"]
fn bench_signatures_per_second() {
    let Some(t) = tokens("bench_signatures_per_second") else {
        return;
    };
    let n: u32 = std::env::var("HSM_BENCH_SIGNATURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let label = t.token("bench");
    let mut tbs = vec![0u8; 600]; // about a leaf's TBSCertificate
    openssl::rand::rand_bytes(&mut tbs).expect("rand");
    let rate = |key: &dyn SigningKey| {
        let start = std::time::Instant::now();
        for _ in 0..n {
            key.sign_tbs(&tbs).expect("sign");
        }
        f64::from(n) / start.elapsed().as_secs_f64()
    };
    println!("| key | key file (signatures/s) | SoftHSM token (signatures/s) | token / file |");
    println!("|---|---:|---:|---:|");
    for (alg, object) in [
        (KeyAlgorithm::EcP256, "p256"),
        (KeyAlgorithm::EcP384, "p384"),
        (KeyAlgorithm::Rsa3072, "rsa3072"),
    ] {
        let file = pki::KeyFile::new(x509::key::generate(alg).expect("key")).expect("file");
        let uri = Pkcs11Uri::parse(&t.uri(&label, object)).expect("uri");
        let token = TokenKey::generate(&uri, alg, false).expect("token key");
        let (f, k) = (rate(&file), rate(&token));
        println!("| {alg} | {f:.0} | {k:.0} | {:.2} |", k / f);
    }
}
