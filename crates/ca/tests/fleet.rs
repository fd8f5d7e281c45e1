//! The fleet page, `/fleet.json` and `/metrics` of the real `ca`: for admin certificates only
//! (403 and why for everyone else), counting as `pki list` counts, and moving with what the
//! service does (an EST enrollment, a wrong token).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use pki::index::Status;
use pki::store::Filter;
use support::{call, csr, enroll, CaProcess, Reply};
use testkit::TestPki;

fn get(
    addr: std::net::SocketAddr,
    root: &Path,
    who: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    path: &str,
) -> Reply {
    let identity = who.map(|(c, k)| (c.as_path(), k.as_path()));
    call(addr, root, identity, &format!("GET {path} HTTP/1.1"), b"")
}

fn pki_list_count(pki: &TestPki, status: Status) -> i64 {
    let ca = pki.folder.issuer().expect("ca");
    let filter = Filter {
        status: Some(status),
        role: Some(common::Role::Client),
        at: x509::time::now(),
        ..Filter::default()
    };
    pki.folder
        .open_db(Some(&ca))
        .expect("db")
        .count(&filter)
        .expect("count")
}

/// The value of a sample line `name value` in a scrape.
fn sample(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[test]
fn the_fleet_and_the_metrics_are_for_admins_and_agree_with_pki_list() {
    let pki = TestPki::new();
    let root = pki.layout().ca_cert();
    let admin = pki.issue_client("ops");
    let device = pki.issue_client("dev-1");
    pki.issue_client("dev-2");
    let ca = pki.folder.issuer().expect("ca");
    pki.folder.revoke(&ca, "dev-2", None).expect("revoke");
    let token = pki
        .folder
        .create_token(pki::Profile::Client, "dev-9", Duration::from_secs(3600))
        .expect("token");
    let service = CaProcess::start(
        pki.dir(),
        &["--admin-allow-cn", "ops", "--metrics-refresh", "1s"],
        &[],
    );
    let addr = service.addr;

    // Who may look.
    let none = get(addr, &root, None, "/fleet");
    assert_eq!(none.status, 403, "{}", none.text());
    assert!(
        none.text().contains("admin client certificate"),
        "{}",
        none.text()
    );
    let other = get(addr, &root, Some(&device), "/fleet.json");
    assert_eq!(other.status, 403);
    assert!(
        other
            .text()
            .contains("dev-1 is not on the admin allow-list"),
        "{}",
        other.text()
    );
    assert_eq!(get(addr, &root, Some(&device), "/metrics").status, 403);

    // What the service does moves the figures. (Records keep seconds: a second later, the
    // enrollment is strictly the newest.)
    std::thread::sleep(Duration::from_millis(1100));
    let (_, der) = csr("", "dev-9");
    assert_eq!(enroll(addr, &root, "dev-9", &token, &der).status, 200);
    let (_, der) = csr("", "dev-10");
    assert_eq!(
        enroll(addr, &root, "dev-10", "not-a-token", &der).status,
        401
    );

    // The page and the JSON count as `pki list` does.
    let valid = pki_list_count(&pki, Status::Valid);
    let revoked = pki_list_count(&pki, Status::Revoked);
    let page = get(addr, &root, Some(&admin), "/fleet");
    assert_eq!(page.status, 200, "{}", page.text());
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.starts_with("default-src 'none'") && !csp.contains("script"),
        "{csp}"
    );
    let json = get(addr, &root, Some(&admin), "/fleet.json");
    let v: serde_json::Value = serde_json::from_slice(&json.body).expect("json");
    let count = |status: &str| {
        v["counts"]["by_role_status"]
            .as_array()
            .expect("counts")
            .iter()
            .find(|r| r[0] == "client" && r[1] == status)
            .and_then(|r| r[2].as_i64())
            .unwrap_or(0)
    };
    assert_eq!((count("valid"), count("revoked")), (valid, revoked), "{v}");
    let newest = &v["latest_issued"][0];
    assert_eq!(newest["name"], "dev-9", "the enrollment is the latest: {v}");
    assert_eq!(v["latest_revoked"][0]["name"], "dev-2");

    // A search by name prefix, and by serial.
    let found = get(addr, &root, Some(&admin), "/fleet.json?q=dev-9");
    let found: serde_json::Value = serde_json::from_slice(&found.body).expect("json");
    assert_eq!(found["list"].as_array().map(Vec::len), Some(1), "{found}");
    let serial = found["list"][0]["serial"]
        .as_str()
        .expect("serial")
        .to_owned();
    let by_serial = get(addr, &root, Some(&admin), &format!("/fleet?q={serial}"));
    assert!(by_serial.text().contains("dev-9"), "{}", by_serial.text());

    // The metrics: the enrollment and the wrong token counted; the records' figures read.
    let deadline = Instant::now() + Duration::from_secs(20);
    let scrape = loop {
        let s = get(addr, &root, Some(&admin), "/metrics").text();
        let read = sample(
            &s,
            "https_ca_certificates{role=\"client\",status=\"valid\"}",
        );
        if read == Some(valid as f64) || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let line = |name: &str| sample(&scrape, name).unwrap_or_else(|| panic!("{name} in:\n{scrape}"));
    assert_eq!(
        line("https_ca_certificates{role=\"client\",status=\"valid\"}"),
        valid as f64
    );
    assert_eq!(
        line("https_ca_certificates{role=\"client\",status=\"revoked\"}"),
        revoked as f64
    );
    assert_eq!(
        line("https_ca_enrollments_total{protocol=\"est\",reason=\"none\",result=\"issued\"}"),
        1.0
    );
    assert_eq!(
        line("https_ca_enrollments_total{protocol=\"est\",reason=\"token_unknown\",result=\"refused\"}"),
        1.0
    );
    assert_eq!(
        line("https_ca_token_refusals_total{reason=\"unknown\"}"),
        1.0
    );
    assert_eq!(line("https_ca_records_up"), 1.0);
}
