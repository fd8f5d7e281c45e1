//! Faults, with nothing lost: a crash in the middle of a write, a full disk, a read-only folder,
//! corrupted or loose keys. Each leaves the old files intact and says what happened.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use testkit::{snapshot as files, text};

fn pki(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    support::run(dir, env, args)
}

/// Every file but the database (whose bytes change with any transaction, even one rolled back).
fn files_but_db(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_but_db_of(files(dir))
}

fn files_but_db_of(all: Vec<(PathBuf, Vec<u8>)>) -> Vec<(PathBuf, Vec<u8>)> {
    all.into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains("ca.db"))
        .collect()
}

fn init(dir: &Path) {
    let o = pki(dir, &[], &["init"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A PKI made by `pki init` in `certs/` of a fresh temporary folder (removed on drop).
fn initialised() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    init(&dir);
    (tmp, dir)
}

#[test]
fn a_crash_before_the_rename_leaves_the_old_files_and_a_rerun_completes() {
    let (_tmp, dir) = initialised();
    let before = files(&dir);
    // The process dies after writing the new key's temp file, before renaming it.
    let o = pki(
        &dir,
        &[("PKI_FAILPOINT", "crash-before-rename")],
        &["issue", "server", "--force"],
    );
    assert!(!o.status.success(), "the failpoint must kill the process");
    let after: Vec<_> = files_but_db(&dir)
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains(".pki-"))
        .collect();
    assert_eq!(
        after,
        files_but_db_of(before),
        "every real file is the old one"
    );
    let temps: Vec<_> = files(&dir)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains(".pki-"))
        .collect();
    assert_eq!(
        temps.len(),
        2,
        "the crash left its two temp files (key, certificate)"
    );
    let key_temp = temps
        .iter()
        .find(|(_, b)| String::from_utf8_lossy(b).contains("PRIVATE KEY"))
        .expect("the key's temp file");
    assert_eq!(
        fs::metadata(&key_temp.0)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // A rerun removes the leftovers, forgets the certificate that never reached its file, and
    // completes.
    let o = pki(&dir, &[], &["init"]);
    assert!(
        o.status.success()
            && text(&o).contains("removed")
            && text(&o).contains("never reached its file"),
        "{}",
        text(&o)
    );
    let listed = pki(&dir, &[], &["list", "--json", "--role", "server"]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(
        rows.as_array().map(Vec::len),
        Some(1),
        "no record of the lost one: {rows}"
    );
    assert_eq!(
        rows[0]["current"], true,
        "the old server certificate is current again"
    );
    assert!(files(&dir)
        .iter()
        .all(|(p, _)| !p.to_string_lossy().contains(".pki-")));
    let o = pki(&dir, &[], &["issue", "server", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_crash_between_key_and_certificate_is_detected_and_repaired() {
    let (_tmp, dir) = initialised();
    let old_cert = fs::read(dir.join("server/server.crt")).expect("cert");
    // Second write of `issue`: the new key is in place, the new certificate is not.
    let o = pki(
        &dir,
        &[("PKI_FAILPOINT", "crash-before-rename:2")],
        &["issue", "server", "--force"],
    );
    assert!(!o.status.success());
    assert_eq!(
        fs::read(dir.join("server/server.crt")).expect("cert"),
        old_cert,
        "old certificate, whole"
    );
    let o = pki(&dir, &[], &["init"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("does not match") && text(&o).contains("pki issue server --force"),
        "{}",
        text(&o)
    );
    let o = pki(&dir, &[], &["issue", "server", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(pki(&dir, &[], &["init"]).status.success());
}

#[test]
fn a_full_disk_is_an_error_that_changes_nothing() {
    let (_tmp, dir) = initialised();
    let before = files(&dir);
    let o = pki(
        &dir,
        &[("PKI_FAILPOINT", "enospc")],
        &["issue", "client", "--name", "sensor"],
    );
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("No space left on device")
            && t.contains("sensor.key")
            && t.contains("nothing was changed"),
        "{t}"
    );
    assert_eq!(
        files(&dir),
        before,
        "no file added or changed, no temp left"
    );
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A folder that refuses writes: a read-only tmpfs when root (permissions do not stop root),
/// else mode 0555.
struct ReadOnly {
    path: PathBuf,
    mounted: bool,
}

impl ReadOnly {
    fn new(base: &Path) -> ReadOnly {
        let path = base.join("ro");
        fs::create_dir_all(&path).expect("mkdir");
        if is_root() {
            let ok = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
                .arg(&path)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "mount tmpfs (root)");
            ReadOnly {
                path,
                mounted: true,
            }
        } else {
            ReadOnly {
                path,
                mounted: false,
            }
        }
    }
    fn seal(&self) {
        if self.mounted {
            let ok = Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(&self.path)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "remount ro");
        } else {
            for d in [
                self.path.join("certs/client"),
                self.path.join("certs/ca"),
                self.path.join("certs"),
            ] {
                fs::set_permissions(&d, fs::Permissions::from_mode(0o555)).expect("chmod");
            }
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        }
    }
}

#[test]
fn a_read_only_folder_is_one_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ro = ReadOnly::new(tmp.path());
    let dir = ro.path.join("certs");
    init(&dir);
    ro.seal();
    let before = files(&dir);
    let o = pki(&dir, &[], &["issue", "client", "--name", "sensor"]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("cannot write")
            && t.contains("sensor.key")
            && (t.contains("Read-only") || t.contains("Permission denied")),
        "{t}"
    );
    assert_eq!(files(&dir), before);
}

#[test]
fn a_real_full_disk_when_root() {
    if !is_root() {
        // Covered by the `enospc` failpoint above for other users.
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let mnt = tmp.path().join("tiny");
    fs::create_dir_all(&mnt).expect("mkdir");
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12k"])
        .arg("tmpfs")
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success()));
    let dir = mnt.join("certs");
    let o = pki(&dir, &[], &["init"]);
    let t = text(&o);
    let leftovers: Vec<_> = files(&dir)
        .into_iter()
        // (An empty index.txt is a new CA's true content.)
        .filter(|(p, b)| {
            let db = p.to_string_lossy().contains("ca.db") || p.ends_with(".lock");
            p.to_string_lossy().contains(".pki-")
                || (b.is_empty() && !p.ends_with("index.txt") && !db)
        })
        .map(|(p, _)| p)
        .collect();
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("No space left on device"), "{t}");
    // (SQLite's own file may be left empty: an empty file is a valid empty database.)
    assert!(
        leftovers.is_empty(),
        "no torn, empty or temp file: {leftovers:?}"
    );
}

#[test]
fn corrupted_or_mismatched_ca_keys_and_loose_modes() {
    let (_tmp, dir) = initialised();
    let good_key = fs::read(dir.join("ca/ca.key")).expect("key");

    // A PEM frame around garbage (the label is assembled so no key-shaped text sits in git).
    let label = "PRIVATE KEY";
    fs::write(
        dir.join("ca/ca.key"),
        format!("-----BEGIN {label}-----\ngarbage\n-----END {label}-----\n"),
    )
    .expect("corrupt");
    let before = files(&dir);
    let o = pki(&dir, &[], &["issue", "client", "--name", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("CA private key") && text(&o).contains("ca/ca.key is not valid"),
        "{}",
        text(&o)
    );
    assert_eq!(files(&dir), before);

    fs::write(dir.join("ca/ca.key"), &good_key).expect("restore");
    fs::set_permissions(dir.join("ca/ca.key"), fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = pki(&dir, &[], &["list"]);
    assert!(o.status.success());
    assert!(
        text(&o).contains("ca/ca.key has mode 0644") && text(&o).contains("chmod 600"),
        "{}",
        text(&o)
    );
}
