//! Hostile names, by design: each is refused with the rule named, and nothing is written
//! anywhere (the whole temporary tree is compared, and the places a traversal would reach).

use std::fs;
use std::path::{Path, PathBuf};

mod support;
use testkit::{text, tree as snapshot};

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("deep/certs");
    let o = support::run(&dir, &[], &["init"]);
    assert!(o.status.success(), "{}", text(&o));
    (tmp, dir)
}

/// Runs `pki issue client ARGS` and asserts a refusal that changed nothing under `tmp`.
fn refused(tmp: &Path, dir: &Path, args: &[&str], expect: &str) {
    let before = snapshot(tmp);
    let mut all = vec!["issue", "client"];
    all.extend_from_slice(args);
    let o = support::run(dir, &[], &all);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?} must be refused: {}",
        text(&o)
    );
    assert!(text(&o).contains(expect), "{args:?}: {}", text(&o));
    assert_eq!(snapshot(tmp), before, "{args:?} wrote something");
}

#[test]
fn traversal_separators_controls_and_flags_are_refused_writing_nothing() {
    let (tmp, dir) = setup();
    let absolute = format!("/tmp/pki-hostile-{}", std::process::id());
    let overlong = "a".repeat(65);
    let rule = "a name is 1 to 64 characters";
    for name in [
        "../../evil",
        "../evil",
        "..",
        ".",
        absolute.as_str(),
        "a/b",
        "a\\b",
        "%2e%2e%2fevil",
        "..%2f..%2fevil",
        "a\nb",
        "a\tb",
        "a\rb",
        "a\u{7f}b",
        "\u{202e}gpj.exe",
        "é",
        "a b",
        ".hidden",
        overlong.as_str(),
        "",
    ] {
        refused(tmp.path(), &dir, &[&format!("--name={name}")], rule);
    }
    // A leading dash cannot pass as a flag either.
    refused(tmp.path(), &dir, &["--name=-rf"], rule);
    for p in [format!("{absolute}.key"), format!("{absolute}.crt")] {
        assert!(!Path::new(&p).exists(), "{p} was written");
    }
    assert!(!tmp.path().join("deep/evil.key").exists());
    assert!(!tmp.path().join("evil.key").exists());
}

#[test]
fn names_differing_only_in_case_are_one_name() {
    let (tmp, dir) = setup();
    let o = support::run(&dir, &[], &["issue", "client", "--name", "Dev-1"]);
    assert!(o.status.success(), "{}", text(&o));
    refused(tmp.path(), &dir, &["--name", "dev-1"], "already exists");
}

#[test]
fn a_names_file_with_one_bad_line_is_refused_as_a_whole() {
    let (tmp, dir) = setup();
    let list = tmp.path().join("names.txt");
    fs::write(&list, "ok-1\nok-2\n../escape\nok-3\n").expect("names");
    refused(
        tmp.path(),
        &dir,
        &["--names", list.to_str().expect("utf8")],
        "../escape",
    );
    fs::write(&list, "ok-1\nwith\0nul\n").expect("names");
    refused(
        tmp.path(),
        &dir,
        &["--names", list.to_str().expect("utf8")],
        "not allowed",
    );
    fs::write(&list, "twin\nTWIN\n").expect("names");
    refused(
        tmp.path(),
        &dir,
        &["--names", list.to_str().expect("utf8")],
        "given twice",
    );
}

#[test]
fn a_folder_that_is_a_symlink_to_elsewhere_is_refused() {
    let (tmp, dir) = setup();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).expect("outside");
    fs::rename(dir.join("client"), tmp.path().join("client.real")).expect("move");
    std::os::unix::fs::symlink(&outside, dir.join("client")).expect("symlink");
    refused(tmp.path(), &dir, &["--name", "x"], "outside the PKI folder");
    assert_eq!(fs::read_dir(&outside).expect("ls").count(), 0);
}

#[test]
fn validity_must_be_at_least_a_day_and_the_cap_is_said() {
    let (tmp, dir) = setup();
    for days in ["0", "-1", "-365", "abc", "1.5"] {
        let before = snapshot(tmp.path());
        let o = support::run(
            &dir,
            &[],
            &["issue", "client", "--name", "d", "--days", days],
        );
        assert_eq!(o.status.code(), Some(2), "--days {days}: {}", text(&o));
        assert!(
            text(&o).contains("at least a day") || text(&o).contains("whole number of days"),
            "--days {days}: {}",
            text(&o)
        );
        assert_eq!(snapshot(tmp.path()), before);
    }
    let o = support::run(
        &dir,
        &[],
        &["issue", "client", "--name", "d", "--days", "1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = support::run(
        &dir,
        &[],
        &["issue", "client", "--name", "long", "--days", "36500"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("validity cut to the CA's own expiry"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_cn_may_say_more_than_the_name_but_no_control_characters() {
    let (tmp, dir) = setup();
    let o = support::run(
        &dir,
        &[],
        &[
            "issue",
            "client",
            "--name",
            "sensor-7",
            "--cn",
            "Sensor 7 (Lab B)",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let cert = dir.join("client/sensor-7.crt");
    let o = support::run(
        &dir,
        &[],
        &["inspect", cert.to_str().expect("utf8"), "--json"],
    );
    assert!(text(&o).contains("CN=Sensor 7 (Lab B)"), "{}", text(&o));
    refused(
        tmp.path(),
        &dir,
        &["--name", "s8", "--cn", "line\nbreak"],
        "control character",
    );
}
