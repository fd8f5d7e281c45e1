//! Two `ca` processes on one set of records: PostgreSQL with a folder each (two hosts), and
//! SQLite with one folder (one host). Enrollments sent to both at once are each recorded once,
//! a token raced to both is spent once, each CRL is signed by one replica, and both serve the
//! newest. Prints the enrollment rate (requests made beforehand: key generation excluded).
//!
//! PostgreSQL runs as `testkit::postgres` says (`PKI_TEST_POSTGRES`, `REQUIRE_POSTGRES`).

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pki::{DbUrl, Folder, InitOptions, Profile};
use support::{call, csr, enroll, CaProcess};

/// Copies the files of `from` to `to` (another host's copy of the CA folder).
fn copy_tree(from: &Path, to: &Path) {
    for (path, bytes) in testkit::snapshot(from) {
        let rel = path.strip_prefix(from).expect("inside");
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::write(dest, bytes).expect("copy");
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    folder: Folder,
    dirs: [PathBuf; 2],
    env: Vec<(&'static str, String)>,
    db: DbUrl,
    _pg: Option<testkit::postgres::PgDatabase>,
}

fn sqlite() -> Setup {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let folder = Folder::new(common::Layout::new(&dir));
    folder.init(&InitOptions::default()).expect("init");
    Setup {
        _tmp: tmp,
        folder,
        dirs: [dir.clone(), dir],
        env: Vec::new(),
        db: DbUrl::Default,
        _pg: None,
    }
}

fn postgresql(test: &str) -> Option<Setup> {
    let pg = testkit::postgres::PgDatabase::create(test)?;
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("host-a"), tmp.path().join("host-b"));
    let db = DbUrl::Postgres(pg.url().to_owned());
    let folder = Folder::new(common::Layout::new(&a)).with_db(db.clone());
    folder.init(&InitOptions::default()).expect("init");
    copy_tree(&a.join("ca"), &b.join("ca"));
    Some(Setup {
        _tmp: tmp,
        folder,
        dirs: [a, b],
        env: vec![("PKI_DB", pg.url().to_owned())],
        db,
        _pg: Some(pg),
    })
}

/// CRLs due 3 s after signing, checked every 300 ms by each replica.
const CRL_ARGS: [&str; 4] = [
    "--crl-refresh-before",
    "2591997s",
    "--crl-check-every",
    "300ms",
];

fn run(s: &Setup, label: &str) {
    let env: Vec<(&str, &str)> = s.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let replicas = [
        CaProcess::start(&s.dirs[0], &CRL_ARGS, &env),
        CaProcess::start(&s.dirs[1], &CRL_ARGS, &env),
    ];
    let root = s.folder.layout().ca_cert();
    enroll_at_once(s, &replicas, &root, label);
    race_one_token(s, &replicas, &root);
    crls_signed_once(s, &replicas, &root, label);
}

fn enroll_at_once(s: &Setup, replicas: &[CaProcess; 2], root: &Path, label: &str) {
    const N: usize = 40;
    let jobs: Vec<(String, String, Vec<u8>)> = (0..N)
        .map(|i| {
            let name = format!("dev-{i}");
            let t = s
                .folder
                .create_token(Profile::Client, &name, Duration::from_secs(600))
                .expect("token");
            let (_, der) = csr("", &name);
            (name, t, der)
        })
        .collect();
    let jobs = Arc::new(jobs);
    let addrs = [replicas[0].addr, replicas[1].addr];
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (jobs, root) = (jobs.clone(), root.to_owned());
            std::thread::spawn(move || {
                for (i, (name, token, der)) in jobs.iter().enumerate().skip(t).step_by(4) {
                    let r = enroll(addrs[i % 2], &root, name, token, der);
                    assert_eq!(r.status, 200, "{name}: {}", r.text());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label}: {N} enrollments over 2 replicas in {secs:.2} s: {:.1} enrollments/s (key generation excluded)",
        N as f64 / secs
    );
    let devices: Vec<_> = s
        .folder
        .list()
        .expect("list")
        .into_iter()
        .filter(|r| r.role == common::Role::Client && r.name.starts_with("dev-"))
        .collect();
    assert_eq!(devices.len(), N, "a record lost or doubled");
    let serials: HashSet<_> = devices.iter().map(|r| r.serial.clone()).collect();
    let names: HashSet<_> = devices.iter().map(|r| r.name.clone()).collect();
    assert_eq!((serials.len(), names.len()), (N, N));
    let ca = s.folder.issuer().expect("ca");
    let tokens = s
        .folder
        .open_db(Some(&ca))
        .expect("db")
        .tokens()
        .expect("tokens");
    let spent: HashSet<_> = tokens
        .iter()
        .filter_map(|t| t.used_serial.clone())
        .collect();
    assert_eq!(spent, serials, "each token spent on its own certificate");
}

fn race_one_token(s: &Setup, replicas: &[CaProcess; 2], root: &Path) {
    let t = s
        .folder
        .create_token(Profile::Client, "race-1", Duration::from_secs(600))
        .expect("token");
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = replicas
        .iter()
        .map(|r| {
            let (addr, root, t, b) = (r.addr, root.to_owned(), t.clone(), barrier.clone());
            let der = csr("", "race-1").1;
            std::thread::spawn(move || {
                b.wait();
                enroll(addr, &root, "race-1", &t, &der)
            })
        })
        .collect();
    let mut statuses: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("thread").status)
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(matches!(statuses[1], 401 | 409), "{statuses:?}");
    let raced = s
        .folder
        .list()
        .expect("list")
        .into_iter()
        .filter(|r| r.name == "race-1")
        .count();
    assert_eq!(raced, 1, "one token, one certificate");
}

/// The served CRL's number and thisUpdate (Last-Modified).
fn served(addr: std::net::SocketAddr, root: &Path) -> (i64, String) {
    let r = call(addr, root, None, "GET /crl HTTP/1.1", b"");
    assert_eq!(r.status, 200);
    let crl = openssl::x509::X509Crl::from_der(&r.body).expect("crl");
    let der = crl.to_der().expect("der");
    use x509_parser::prelude::FromDer;
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&der).expect("parse");
    let n = parsed
        .crl_number()
        .expect("number")
        .to_u64_digits()
        .first()
        .copied()
        .unwrap_or(0);
    (
        n as i64,
        r.header("last-modified").expect("date").to_owned(),
    )
}

fn crls_signed_once(s: &Setup, replicas: &[CaProcess; 2], root: &Path, label: &str) {
    let ca = s.folder.issuer().expect("ca");
    let aki = x509::cert::key_id(ca.certificate()).expect("aki");
    let mut db = pki::store::Db::open(
        &s.db,
        &s.folder.layout().dir(common::Role::Ca).join("ca.db"),
        Duration::from_secs(10),
    )
    .expect("db");
    let first = db.next_crl_number(&aki).expect("next");
    let window = Duration::from_secs(7);
    let started = Instant::now();
    let mut seen: Vec<(i64, String)> = Vec::new();
    while started.elapsed() < window {
        for r in replicas {
            let got = served(r.addr, root);
            if !seen.contains(&got) {
                seen.push(got);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let signed = db.next_crl_number(&aki).expect("next") - first;
    println!(
        "{label}: {signed} CRLs signed in {} s by two replicas (due every 3 s)",
        window.as_secs()
    );
    // Due every 3 s: at most one signature per due time, whoever checks first.
    assert!(
        (1..=4).contains(&signed),
        "{signed} CRLs in 7 s: signed twice when due? {seen:?}"
    );
    let dates: HashSet<_> = seen.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(
        dates.len(),
        seen.len(),
        "two CRL numbers signed in the same second: {seen:?}"
    );
    // Both serve the newest.
    let newest = db.latest_crl(&aki).expect("latest").expect("a CRL").number;
    let (a, b) = (
        served(replicas[0].addr, root).0,
        served(replicas[1].addr, root).0,
    );
    assert!(
        a >= newest && b >= newest,
        "served {a} and {b}, newest on record {newest}"
    );
}

#[test]
fn two_replicas_on_postgresql_enroll_at_once_and_sign_each_crl_once() {
    if let Some(s) = postgresql("pg") {
        run(&s, "PostgreSQL");
    }
}

#[test]
fn two_replicas_on_one_sqlite_folder_enroll_at_once_and_sign_each_crl_once() {
    run(&sqlite(), "SQLite");
}
