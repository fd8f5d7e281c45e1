//! The fleet's figures (`store::fleet`, which the `ca`'s page and metrics read) count as
//! `pki list` counts, on SQLite and on a real PostgreSQL: by role and status, ending within 7
//! and 30 days, per week, per CA, overdue; the latest; a search by name prefix and by serial.
//!
//! PostgreSQL runs as `testkit::postgres` says (`PKI_TEST_POSTGRES`, `REQUIRE_POSTGRES`).

use pki::files::Overwrite;
use pki::index::Status;
use pki::store::{Db, Filter, State, Take};
use pki::{CertSpec, DbUrl, Folder, InitOptions, Leaf, Profile, Validity};
use testkit::postgres::PgDatabase;

const DAY: i64 = 86_400;

/// A PKI on `db` with: make certs' server and client, dev-1..dev-5 (dev-3 revoked), a device
/// ending in 5 days, one ending in 20, one expired, one past two thirds of its life.
fn fleet(dir: &std::path::Path, db: DbUrl) -> Folder {
    let folder = Folder::new(common::Layout::new(dir)).with_db(db);
    folder.init(&InitOptions::default()).expect("init");
    let ca = folder.issuer().expect("ca");
    for i in 1..=5 {
        folder
            .issue(&ca, &Leaf::client(&format!("dev-{i}")), Overwrite::Never)
            .expect("issue");
    }
    folder.revoke(&ca, "dev-3", None).expect("revoke");
    let now = x509::time::now();
    let aki = x509::cert::key_id(ca.certificate()).expect("aki");
    let mut db = folder.open_db(Some(&ca)).expect("db");
    for (name, nb, na) in [
        ("soon-5d", now - DAY, now + 5 * DAY),
        ("soon-20d", now - DAY, now + 20 * DAY),
        ("gone", now - 60 * DAY, now - DAY),
        ("overdue", now - 80 * DAY, now + 10 * DAY),
    ] {
        // Any validity: signed and recorded as the online CA records a certificate.
        let key = x509::key::generate(x509::KeyAlgorithm::EcP256).expect("key");
        let req = x509::request::build(&key, &Leaf::client(name).subject).expect("req");
        let spec = CertSpec::new(Profile::Client).validity(Validity::between(nb, na));
        let cert = ca.sign(&req, &spec).expect("sign");
        let mut rec = Leaf::client(name)
            .record(&cert, &aki, "client/x.crt")
            .expect("record");
        rec.state = State::Issued;
        rec.claim = None;
        db.record_issued(&rec, Take::New, None, now)
            .expect("recorded");
    }
    folder
}

fn check(folder: &Folder, label: &str) {
    let ca = folder.issuer().expect("ca");
    let mut db: Db = folder.open_db(Some(&ca)).expect("db");
    let at = x509::time::now();
    let c = db.fleet_counts(at).expect("counts");
    for (status, s) in [
        (Status::Valid, "valid"),
        (Status::Expired, "expired"),
        (Status::Revoked, "revoked"),
    ] {
        for role in [common::Role::Client, common::Role::Server] {
            let listed = db
                .count(&Filter {
                    status: Some(status),
                    role: Some(role),
                    at,
                    ..Filter::default()
                })
                .expect("count");
            assert_eq!(
                c.count(role.dir_name(), s),
                listed,
                "{label}: {role} {s}: {c:?}"
            );
        }
    }
    assert_eq!((c.ending_7d, c.ending_30d), (1, 3), "{label}: {c:?}");
    assert_eq!(c.ending_per_week.iter().sum::<i64>(), 3, "{label}");
    assert_eq!(c.ending_per_week[0], 1, "{label}: soon-5d in this week");
    assert_eq!(
        c.overdue, 1,
        "{label}: only `overdue` is past 2/3 of its life"
    );
    let valid: i64 = c.per_ca.iter().map(|(_, n)| n).sum();
    assert_eq!(
        valid,
        c.count("client", "valid") + c.count("server", "valid"),
        "{label}"
    );

    let ending = db.fleet_ending(at, 30 * DAY, 0, 10).expect("ending");
    let names: Vec<&str> = ending.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["soon-5d", "overdue", "soon-20d"],
        "{label}: soonest first"
    );
    let revoked = db.fleet_latest_revoked(10).expect("revoked");
    assert_eq!(
        revoked.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["dev-3"]
    );
    assert!(db.fleet_latest_issued(3).expect("latest").len() == 3);

    let found = db.fleet_search("DEV-", 0, 50).expect("search");
    assert_eq!(found.len(), 5, "{label}: a prefix, case-insensitive");
    let one = db
        .fleet_search(&found[0].serial.to_ascii_lowercase(), 0, 50)
        .expect("serial");
    assert_eq!(
        one.first().map(|r| &r.serial),
        Some(&found[0].serial),
        "{label}: by serial"
    );
    assert!(db.fleet_search("nobody", 0, 50).expect("none").is_empty());
    let page = db.fleet_search("dev-", 2, 2).expect("page");
    assert_eq!(page.len(), 2, "{label}: paged");
}

#[test]
fn the_fleet_counts_as_pki_list_on_sqlite() {
    let tmp = tempfile::tempdir().expect("tmp");
    check(&fleet(&tmp.path().join("certs"), DbUrl::Default), "SQLite");
}

#[test]
fn the_fleet_counts_as_pki_list_on_postgresql() {
    let Some(pg) = PgDatabase::create("fleet_counts") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let db = DbUrl::Postgres(pg.url().to_owned());
    check(&fleet(&tmp.path().join("certs"), db), "PostgreSQL");
}
