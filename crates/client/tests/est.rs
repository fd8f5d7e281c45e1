//! The `client` binary as a device of a fleet: with only a token and the CA's root it enrolls
//! over EST, calls two server replicas over mutual TLS, renews through simplereenroll, and
//! after `pki revoke` is refused by both within a CRL poll. Then the renewal daemon against
//! the traps of smallstep/cli#573 and #676, with its clock moved by faketime: it renews once
//! when due and does not loop when its clock runs ahead, it survives the CA being down, and
//! it stops (leaving its pair as it was) once its certificate has expired.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pki::Profile;
use testkit::{text, TestPki};

/// The CA service on an ephemeral port, issuing day-long device certificates.
fn ca_service(pki: &TestPki, bind: Option<SocketAddr>) -> ca::Background {
    let mut c = ca::Config::for_pki(pki.dir());
    c.days = Some(1);
    if let Some(addr) = bind {
        c.bind = addr;
    }
    ca::Background::spawn(c).expect("ca")
}

/// A server replica in mutual TLS whose CRL comes from the CA service, polled every second.
fn replica(pki: &TestPki, ca: &ca::Background, n: usize) -> server::Background {
    let mut c = server::Config::for_pki(pki.dir(), server::ClientAuth::Required);
    c.crl_url = Some(format!("{}/crl", ca.url()));
    c.crl_poll_secs = 1;
    c.crl = Some(pki.scratch().join(format!("replica-{n}.crl")));
    server::Background::spawn(c).expect("server")
}

/// A device's folder: the CA's root, nothing else.
fn device(pki: &TestPki) -> PathBuf {
    let dev = pki.scratch().join("device");
    std::fs::create_dir_all(dev.join("ca")).expect("mkdir");
    std::fs::copy(pki.layout().ca_cert(), dev.join("ca/ca.crt")).expect("root");
    dev
}

fn client_cmd(dev: &Path) -> Command {
    let mut c = testkit::command(env!("CARGO_BIN_EXE_client"));
    c.arg("--pki-dir").arg(dev).args(["--timeout", "5"]);
    c.stdin(Stdio::null());
    c
}

fn client(dev: &Path, args: &[&str]) -> Output {
    client_cmd(dev).args(args).output().expect("run client")
}

fn ok(o: &Output) -> String {
    let t = text(o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    t
}

fn token(pki: &TestPki, name: &str) -> String {
    pki.folder
        .create_token(Profile::Client, name, Duration::from_secs(3600))
        .expect("token")
}

fn serial_of(path: &Path) -> String {
    let pem = std::fs::read(path).expect("read cert");
    x509::cert::serial_hex(&openssl::x509::X509::from_pem(&pem).expect("pem")).expect("serial")
}

fn enroll(pki: &TestPki, ca: &ca::Background, dev: &Path, name: &str) {
    let t = token(pki, name);
    ok(&client(
        dev,
        &["enroll", "--est", &ca.url(), "--token", &t, "--name", name],
    ));
}

#[test]
fn a_device_enrolls_calls_renews_and_is_refused_by_both_replicas_after_revocation() {
    let pki = TestPki::new();
    let ca = ca_service(&pki, None);
    let replicas = [replica(&pki, &ca, 0), replica(&pki, &ca, 1)];
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| format!("https://127.0.0.1:{}", r.addr.port()))
        .collect();
    let dev = device(&pki);

    enroll(&pki, &ca, &dev, "dev-1");
    let (cert, key) = (dev.join("client/client.crt"), dev.join("client/client.key"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is the device's own");
    assert!(
        !pki.layout()
            .leaf_key(common::Role::Client, "dev-1")
            .exists(),
        "a key reached the CA"
    );
    for u in &urls {
        let t = ok(&client(&dev, &["--url", u, "whoami"]));
        assert!(t.contains("\"common_name\":\"dev-1\""), "{t}");
    }

    // Renewal: a new certificate, the old one still accepted until it expires.
    let old = pki.scratch().join("old");
    std::fs::create_dir_all(&old).expect("mkdir");
    std::fs::copy(&cert, old.join("dev-1.crt")).expect("copy");
    std::fs::copy(&key, old.join("dev-1.key")).expect("copy");
    let first = serial_of(&cert);
    let hook = pki.scratch().join("hook.txt");
    let exec = format!("echo $EST_SERIAL > {}", hook.display());
    let said = ok(&client(
        &dev,
        &["renew", "--est", &ca.url(), "--force", "--exec", &exec],
    ));
    // It says what became of the old certificate, and how to end it.
    let old_words = format!("the old certificate (serial {first}) was not revoked").to_lowercase();
    assert!(said.to_lowercase().contains(&old_words), "{said}");
    assert!(said.contains("--reason superseded"), "{said}");
    let second = serial_of(&cert);
    assert_ne!(first, second);
    assert_eq!(std::fs::read_to_string(&hook).expect("hook").trim(), second);
    let (old_cert, old_key) = (old.join("dev-1.crt"), old.join("dev-1.key"));
    for u in &urls {
        let t = ok(&client(&dev, &["--url", u, "whoami"]));
        assert!(t.contains(&second), "the renewed one is accepted: {t}");
        let old_pair = [
            "--cert",
            old_cert.to_str().expect("utf-8"),
            "--key",
            old_key.to_str().expect("utf-8"),
        ];
        let t = ok(&client(
            &dev,
            &[&old_pair[..], &["--url", u, "whoami"]].concat(),
        ));
        assert!(t.contains(&first), "the old one too, until it expires: {t}");
    }

    // Revocation: both replicas refuse the device after their next poll.
    let revoked_at = Instant::now();
    pki.folder
        .revoke(&pki.folder.issuer().expect("ca"), "dev-1", None)
        .expect("revoke");
    let mut refused_after = Vec::new();
    for u in &urls {
        let t = text(&until_revoked(&dev, &["--url", u, "whoami"], revoked_at));
        refused_after.push(revoked_at.elapsed());
        assert!(t.contains("revoked"), "{t}");
        // It enrolled over EST: the advice is a new token, not `pki issue`.
        assert!(t.contains("enroll again with a new token"), "{t}");
        assert!(!t.contains("pki issue"), "{t}");
    }
    println!(
        "pki revoke → refused by replica 1 after {:?}, by replica 2 after {:?} (poll: 1 s ± 10 %)",
        refused_after[0], refused_after[1]
    );
    assert!(
        refused_after
            .iter()
            .all(|d| *d < Duration::from_millis(2500)),
        "not within a poll interval (and the client's own start-up): {refused_after:?}"
    );

    // A revoked device cannot renew, and hears why.
    let o = client(&dev, &["renew", "--est", &ca.url(), "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("was revoked on"), "{}", text(&o));
}

/// Runs `client ARGS` until it is refused as revoked (exit 17), at most 10 s after `since`.
fn until_revoked(dev: &Path, args: &[&str], since: Instant) -> Output {
    loop {
        let o = client(dev, args);
        if o.status.code() == Some(17) {
            return o;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "still accepted: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `POST /revoke-superseded` with `pair` as the client certificate: the CA's status and line.
fn ask_revoke_superseded(pki: &TestPki, ca: &ca::Background, cert: &Path, key: &Path) -> String {
    let o = client::est::EstOptions {
        url: ca.url(),
        ca: pki.layout().ca_cert(),
        pair: client::est::pair::Pair::new(cert.to_owned(), key.to_owned()).expect("pair"),
        server_name: None,
        timeout: Duration::from_secs(5),
        key_type: None,
    };
    let mut old = client::est::Superseded {
        serial: String::new(),
        not_after: 0,
        fate: client::est::Fate::Kept,
    };
    actix_web::rt::System::new().block_on(client::est::revoke_superseded(&o, &mut old));
    match old.fate {
        client::est::Fate::Revoked => "revoked".into(),
        client::est::Fate::NotRevoked(why) => why,
        client::est::Fate::Kept => unreachable!("asked"),
    }
}

#[test]
fn renew_with_revoke_old_ends_the_predecessor_and_only_it() {
    let pki = TestPki::new();
    let ca = ca_service(&pki, None);
    let replica = replica(&pki, &ca, 0);
    let url = format!("https://127.0.0.1:{}", replica.addr.port());
    let dev = device(&pki);
    enroll(&pki, &ca, &dev, "dev-7");
    let (cert, key) = (dev.join("client/client.crt"), dev.join("client/client.key"));

    // A first certificate renews nothing: there is nothing it may revoke.
    let said = ask_revoke_superseded(&pki, &ca, &cert, &key);
    assert!(
        said.contains("409") && said.contains("renews no other certificate"),
        "{said}"
    );

    let old = pki.scratch().join("old");
    std::fs::create_dir_all(&old).expect("mkdir");
    let (old_cert, old_key) = (old.join("dev-7.crt"), old.join("dev-7.key"));
    std::fs::copy(&cert, &old_cert).expect("copy");
    std::fs::copy(&key, &old_key).expect("copy");
    let first = serial_of(&cert);
    let hook = pki.scratch().join("hook.txt");
    let exec = format!("echo $EST_SERIAL > {}", hook.display());
    let out = client(
        &dev,
        &[
            "--json",
            "renew",
            "--est",
            &ca.url(),
            "--force",
            "--revoke-old",
            "--exec",
            &exec,
        ],
    );
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(shown["superseded"]["serial"], first.as_str(), "{json}");
    assert_eq!(shown["superseded"]["revoked"], true, "{json}");
    let second = serial_of(&cert);
    assert_eq!(
        std::fs::read_to_string(&hook).expect("hook").trim(),
        second,
        "the hook ran"
    );

    // The records say superseded, and the replica refuses the old pair after its next poll.
    let records = pki.folder.list().expect("records");
    let rec = records.into_iter().find(|r| r.serial == first);
    let reason = rec.and_then(|r| r.revoked).and_then(|(_, reason)| reason);
    assert_eq!(reason, Some(pki::index::Reason::Superseded));
    let old_pair = [
        "--cert",
        old_cert.to_str().expect("utf-8"),
        "--key",
        old_key.to_str().expect("utf-8"),
    ];
    let args = [&old_pair[..], &["--url", &url, "whoami"]].concat();
    until_revoked(&dev, &args, Instant::now());
    let t = ok(&client(&dev, &["--url", &url, "whoami"]));
    assert!(t.contains(&second), "the new pair is served: {t}");

    // Asked again (an answer lost): the same, nothing more revoked.
    assert_eq!(ask_revoke_superseded(&pki, &ca, &cert, &key), "revoked");
    let t = ok(&client(&dev, &["--url", &url, "whoami"]));
    assert!(t.contains(&second), "{t}");
    // The old certificate cannot ask for anything: it is revoked.
    let said = ask_revoke_superseded(&pki, &ca, &old_cert, &old_key);
    assert!(said.contains("403") && said.contains("revoked"), "{said}");

    // Without --revoke-old the old one is kept, and the client says how to end it.
    let said = ok(&client(&dev, &["renew", "--est", &ca.url(), "--force"]));
    assert!(
        said.contains(&format!("serial {second}) was not revoked")),
        "{said}"
    );
    assert!(said.contains("--revoke-old"), "{said}");
}

/// `client renew --daemon` with its clock at OFFSET (libfaketime), its log in a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(dev: &Path, url: &str, offset: &str, extra: &[&str]) -> Daemon {
        let library = testkit::faketime::find()
            .expect("these tests need libfaketime (apt-get install faketime)");
        let log = dev.join(format!("daemon{offset}.log"));
        let program = Path::new(env!("CARGO_BIN_EXE_client"));
        let mut c = testkit::faketime::command_at(&library, offset, program);
        c.arg("--pki-dir")
            .arg(dev)
            .args(["--timeout", "3", "renew", "--daemon", "--est", url])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        Daemon {
            child: c.spawn().expect("faketime"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `pred(log)` holds, up to `secs`.
    fn wait_for(&mut self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while !pred(&self.log()) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the daemon stopped ({status}) before {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "no {what} in {secs} s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pair on disk belongs together (the key is the certificate's).
fn assert_pair_matches(dev: &Path) {
    let id = client::tls::Identity::Pem {
        cert: dev.join("client/client.crt"),
        key: dev.join("client/client.key"),
    };
    client::tls::load_identity(&id).expect("a matching pair");
}

#[test]
fn the_daemon_renews_once_when_due_and_does_not_loop_when_its_clock_runs_ahead() {
    let pki = TestPki::new();
    let ca = ca_service(&pki, None);
    let dev = device(&pki);
    enroll(&pki, &ca, &dev, "dev-2");
    let hooks = dev.join("hooks.txt");
    let exec = format!("echo $EST_SERIAL >> {}", hooks.display());
    // 20 h into a day-long certificate: past 2/3 + the largest spread (16 h + 2 h).
    let mut d = Daemon::start(&dev, &ca.url(), "+20h", &["--exec", &exec]);
    d.wait_for(30, "renewal", |log| log.contains("renewed: serial"));
    d.wait_for(10, "hook", |log| log.contains("hook ran"));
    // Its successor is "due" by the daemon's clock too: it must wait, not renew again.
    std::thread::sleep(Duration::from_secs(3));
    let log = d.log();
    assert_eq!(log.matches("renewed: serial").count(), 1, "{log}");
    assert!(log.contains("already due by this host's clock"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&hooks)
            .expect("hooks")
            .lines()
            .count(),
        1
    );
    assert!(d.running(), "{log}");
    assert_pair_matches(&dev);
}

#[test]
fn the_daemon_survives_the_ca_being_down_and_renews_when_it_is_back() {
    let pki = TestPki::new();
    let dev = device(&pki);
    let addr = {
        let first = ca_service(&pki, None);
        enroll(&pki, &first, &dev, "dev-3");
        first.addr
    }; // the CA stops here
    let before = serial_of(&dev.join("client/client.crt"));
    let url = format!("https://{addr}");
    let mut d = Daemon::start(
        &dev,
        &url,
        "+20h",
        &["--retry-min", "1s", "--retry-max", "2s"],
    );
    d.wait_for(20, "two failed tries", |log| {
        log.matches("renewal failed").count() >= 2
    });
    assert!(d.log().contains("retrying in"), "{}", d.log());
    assert_eq!(
        serial_of(&dev.join("client/client.crt")),
        before,
        "the pair is untouched"
    );
    assert_pair_matches(&dev);
    let _back = ca_service(&pki, Some(addr));
    d.wait_for(20, "renewal once the CA is back", |log| {
        log.contains("renewed: serial")
    });
    assert_ne!(serial_of(&dev.join("client/client.crt")), before);
    assert_pair_matches(&dev);
    assert!(d.running());
}

#[test]
fn the_daemon_stops_on_an_expired_certificate_and_leaves_its_pair() {
    let pki = TestPki::new();
    let ca = ca_service(&pki, None);
    let dev = device(&pki);
    enroll(&pki, &ca, &dev, "dev-4");
    let files_before = testkit::snapshot(&dev.join("client"));
    let mut d = Daemon::start(&dev, &ca.url(), "+2d", &[]);
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = d.child.try_wait() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still running:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(3), "{}", d.log());
    assert!(d.log().contains("expired on"), "{}", d.log());
    assert!(d.log().contains("enroll again"), "{}", d.log());
    assert_eq!(testkit::snapshot(&dev.join("client")), files_before);
}
