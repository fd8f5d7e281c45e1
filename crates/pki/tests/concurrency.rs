//! Many `pki` processes at once against one CA, on SQLite and on a real PostgreSQL: nothing is
//! lost, nothing is counted twice, a name is taken once, and a command that cannot get a lock
//! says so and changes nothing. Judged through the CLI alone (`list --json`, the CRL, the files).
//!
//! PostgreSQL runs when `PKI_TEST_POSTGRES` names a database whose role may create databases
//! (each test makes its own); otherwise those halves print SKIPPED, or fail when
//! `REQUIRE_POSTGRES=1` (CI sets both).

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use testkit::postgres::PgDatabase;
use testkit::text;

/// One backend under test: SQLite in the folder, or a fresh PostgreSQL database.
struct Backend {
    label: &'static str,
    env: Vec<(&'static str, String)>,
    _pg: Option<PgDatabase>,
}

impl Backend {
    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

fn postgres(test: &str) -> Option<Backend> {
    let pg = PgDatabase::create(test)?;
    Some(Backend {
        label: "PostgreSQL",
        env: vec![("PKI_DB", pg.url().to_owned())],
        _pg: Some(pg),
    })
}

/// SQLite, then PostgreSQL when there is one.
fn backends(test: &str) -> Vec<Backend> {
    let mut out = vec![Backend {
        label: "SQLite",
        env: Vec::new(),
        _pg: None,
    }];
    out.extend(postgres(test));
    out
}

fn pki(dir: &Path, b: &Backend, args: &[&str]) -> Output {
    support::run(dir, &b.env(), args)
}

fn ok(dir: &Path, b: &Backend, args: &[&str]) -> Output {
    let o = pki(dir, b, args);
    assert!(o.status.success(), "{} {args:?}: {}", b.label, text(&o));
    o
}

/// Starts every command at once, then waits for all.
fn all_at_once(dir: &Path, b: &Backend, commands: &[Vec<String>]) -> Vec<Output> {
    let children: Vec<Child> = commands
        .iter()
        .map(|args| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::command(dir, &b.env(), &args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn pki")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect()
}

fn fresh(b: &Backend) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    ok(&dir, b, &["init"]);
    (tmp, dir)
}

fn records(dir: &Path, b: &Backend, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(extra);
    let o = ok(dir, b, &args);
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .expect("json")
        .as_array()
        .expect("array")
        .clone()
}

/// What `pki inspect --json` says of the CRL on disk.
fn crl(dir: &Path, b: &Backend) -> serde_json::Value {
    let path = dir.join("ca/ca.crl");
    let o = ok(dir, b, &["inspect", path.to_str().expect("utf8"), "--json"]);
    serde_json::from_slice(&o.stdout).expect("json")
}

/// Serial and status of each record.
fn serials(rows: &[serde_json::Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| (r["serial"].to_string(), r["status"].to_string()))
        .collect()
}

fn cmd(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

#[test]
fn twenty_distinct_names_at_once_are_all_issued_and_recorded() {
    for b in backends("twenty_distinct_names") {
        let (_tmp, dir) = fresh(&b);
        let names: Vec<String> = (0..20).map(|i| format!("dev{i}")).collect();
        let commands: Vec<_> = names
            .iter()
            .map(|n| cmd(&["issue", "client", "--name", n]))
            .collect();
        for o in all_at_once(&dir, &b, &commands) {
            assert!(o.status.success(), "{}: {}", b.label, text(&o));
        }
        let rows = records(&dir, &b, &["--role", "client"]);
        for n in &names {
            let row = rows.iter().find(|r| r["name"] == n.as_str());
            let row = row.unwrap_or_else(|| panic!("{}: {n} not recorded", b.label));
            assert_eq!(row["status"], "valid");
            assert!(dir.join(format!("client/{n}.crt")).exists());
            assert!(dir.join(format!("client/{n}.key")).exists());
        }
        assert_eq!(
            rows.len(),
            21,
            "{}: 20 devices + the default client",
            b.label
        );
        let index = std::fs::read_to_string(dir.join("ca/index.txt")).expect("index");
        assert_eq!(
            index.lines().count(),
            22,
            "{}: the export holds every record",
            b.label
        );
        assert_no_temp_files(&dir);
    }
}

#[test]
fn the_same_name_at_once_is_issued_exactly_once() {
    for b in backends("the_same_name") {
        let (_tmp, dir) = fresh(&b);
        let commands = vec![cmd(&["issue", "client", "--name", "twin"]); 10];
        let outs = all_at_once(&dir, &b, &commands);
        let won: Vec<_> = outs.iter().filter(|o| o.status.success()).collect();
        assert_eq!(won.len(), 1, "{}: exactly one wins", b.label);
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert_eq!(o.status.code(), Some(2), "{}", text(o));
            assert!(
                text(o).contains("already exists"),
                "{}: {}",
                b.label,
                text(o)
            );
        }
        let rows = records(&dir, &b, &[]);
        let twins: Vec<_> = rows.iter().filter(|r| r["name"] == "twin").collect();
        assert_eq!(twins.len(), 1, "{}: one record", b.label);
        // The files on disk are the recorded certificate and its key.
        let listed = twins[0]["serial"].as_str().expect("serial");
        let cert = dir.join("client/twin.crt");
        let o = ok(
            &dir,
            &b,
            &["inspect", cert.to_str().expect("utf8"), "--json"],
        );
        let shown: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(
            shown["serial"].as_str().map(|s| s.replace(':', "")),
            Some(listed.to_owned())
        );
        assert_no_temp_files(&dir);
    }
}

#[test]
fn ten_revocations_at_once_all_reach_the_records_and_the_crl() {
    for b in backends("ten_revocations") {
        let (_tmp, dir) = fresh(&b);
        ok(
            &dir,
            &b,
            &["issue", "client", "--count", "10", "--prefix", "d-"],
        );
        let commands: Vec<_> = (1..=10)
            .map(|i| cmd(&["revoke", &format!("d-{i}"), "--reason", "keyCompromise"]))
            .collect();
        for o in all_at_once(&dir, &b, &commands) {
            assert!(o.status.success(), "{}: {}", b.label, text(&o));
        }
        assert_eq!(
            records(&dir, &b, &["--status", "revoked"]).len(),
            10,
            "{}",
            b.label
        );
        let c = crl(&dir, &b);
        assert_eq!(
            c["revoked"].as_array().map(Vec::len),
            Some(10),
            "{}: {c}",
            b.label
        );
        assert_eq!(
            c["CRL number"], "11",
            "{}: init's CRL, then one per revocation",
            b.label
        );
        let index = std::fs::read_to_string(dir.join("ca/index.txt")).expect("index");
        assert_eq!(index.lines().filter(|l| l.starts_with('R')).count(), 10);
    }
}

#[test]
fn a_mixed_burst_of_issue_revoke_and_crl_loses_nothing() {
    for b in backends("a_mixed_burst") {
        let (_tmp, dir) = fresh(&b);
        ok(
            &dir,
            &b,
            &["issue", "client", "--count", "8", "--prefix", "old-"],
        );
        let mut commands = Vec::new();
        for i in 1..=8 {
            commands.push(cmd(&["issue", "client", "--name", &format!("new-{i}")]));
            commands.push(cmd(&["revoke", &format!("old-{i}")]));
        }
        commands.extend(std::iter::repeat_n(cmd(&["crl"]), 4));
        for o in all_at_once(&dir, &b, &commands) {
            assert!(o.status.success(), "{}: {}", b.label, text(&o));
        }
        let rows = records(&dir, &b, &[]);
        for i in 1..=8 {
            let status = |n: String| {
                rows.iter()
                    .find(|r| r["name"] == n.as_str())
                    .map(|r| r["status"].clone())
            };
            assert_eq!(
                status(format!("new-{i}")),
                Some("valid".into()),
                "{}",
                b.label
            );
            assert_eq!(
                status(format!("old-{i}")),
                Some("revoked".into()),
                "{}",
                b.label
            );
        }
        let c = crl(&dir, &b);
        assert_eq!(
            c["revoked"].as_array().map(Vec::len),
            Some(8),
            "{}: {c}",
            b.label
        );
        // 1 from init, 8 revocations, 4 crl: the newest is on disk.
        assert_eq!(c["CRL number"], "13", "{}", b.label);
        assert_no_temp_files(&dir);
    }
}

#[test]
fn a_command_that_cannot_get_the_lock_says_so_and_changes_nothing() {
    for b in backends("the_lock_timeout") {
        let (_tmp, dir) = fresh(&b);
        let before = serials(&records(&dir, &b, &[]));
        let hold = Holder::lock(&dir, &b);
        let start = Instant::now();
        let o = pki(
            &dir,
            &b,
            &["--lock-timeout", "1", "issue", "client", "--name", "late"],
        );
        let waited = start.elapsed();
        drop(hold);
        assert_eq!(o.status.code(), Some(2), "{}: {}", b.label, text(&o));
        assert!(
            text(&o).contains("busy") && text(&o).contains("nothing was changed"),
            "{}: {}",
            b.label,
            text(&o)
        );
        assert!(
            waited < Duration::from_secs(6),
            "{}: gave up after {waited:?}",
            b.label
        );
        assert!(!dir.join("client/late.crt").exists() && !dir.join("client/late.key").exists());
        assert_no_temp_files(&dir);
        assert_eq!(serials(&records(&dir, &b, &[])), before, "{}", b.label);
        ok(&dir, &b, &["issue", "client", "--name", "late"]);
    }
}

/// Holds the records' write lock from this process, as a long command would.
enum Holder {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

impl Holder {
    fn lock(dir: &Path, b: &Backend) -> Holder {
        match b.env.first() {
            None => {
                let c = rusqlite::Connection::open(dir.join("ca/ca.db")).expect("open");
                c.execute_batch("BEGIN IMMEDIATE").expect("lock");
                Holder::Sqlite(c)
            }
            Some((_, url)) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                c.batch_execute("BEGIN; LOCK TABLE certificates IN EXCLUSIVE MODE")
                    .expect("lock");
                Holder::Postgres(c)
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        match self {
            Holder::Sqlite(c) => {
                let _ = c.execute_batch("ROLLBACK");
            }
            Holder::Postgres(c) => {
                let _ = c.batch_execute("ROLLBACK");
            }
        }
    }
}

#[test]
fn killed_between_commit_and_file_write_the_next_command_repairs() {
    for b in backends("killed_between_commit_and_file_write") {
        let (_tmp, dir) = fresh(&b);
        let mut env = b.env();
        env.push(("PKI_FAILPOINT", "crash-after-commit"));
        let o = support::run(&dir, &env, &["issue", "client", "--name", "lost"]);
        assert!(!o.status.success(), "the failpoint must kill the process");
        assert!(!dir.join("client/lost.crt").exists());
        // The next command, any command, repairs and says so.
        let o = ok(&dir, &b, &["list"]);
        assert!(
            text(&o).contains("repaired") && text(&o).contains("never reached its file"),
            "{}: {}",
            b.label,
            text(&o)
        );
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("lost.crt"),
            "{}",
            text(&o)
        );
        assert_no_temp_files(&dir);
        // The name is free again.
        ok(&dir, &b, &["issue", "client", "--name", "lost"]);
        assert!(records(&dir, &b, &[]).iter().any(|r| r["name"] == "lost"));
    }
}

#[test]
fn killed_after_renaming_the_record_is_settled_not_lost() {
    // The second rename point of `issue`: key and certificate in place, the process dies before
    // it records them as issued. The certificate was handed out: it must stay recorded.
    for b in backends("killed_after_renaming") {
        let (_tmp, dir) = fresh(&b);
        let mut env = b.env();
        env.push(("PKI_FAILPOINT", "crash-before-settle"));
        let o = support::run(&dir, &env, &["issue", "client", "--name", "kept"]);
        assert!(!o.status.success(), "the failpoint must kill the process");
        assert!(dir.join("client/kept.crt").exists());
        let o = ok(&dir, &b, &["list", "--json"]);
        assert!(text(&o).contains("repaired"), "{}", text(&o));
        let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let kept = rows
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == "kept"))
            .expect("kept is recorded");
        assert_eq!(kept["status"], "valid");
    }
}

fn assert_no_temp_files(dir: &Path) {
    let leftovers: Vec<_> = testkit::snapshot(dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.to_string_lossy().contains(".pki-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}
