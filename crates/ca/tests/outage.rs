//! The records' PostgreSQL goes away under the running `ca` binary (a relay in front of the real
//! server is cut) and comes back: devices hear 503 with `Retry-After` and a reason they can act
//! on, `/healthz` says so, and enrollment resumes without a restart once the records return.

mod support;

use std::time::Duration;

use pki::{DbUrl, Folder, InitOptions, Profile};
use support::{call, csr, enroll, CaProcess};
use testkit::relay::Relay;

#[test]
fn a_records_outage_says_retry_and_enrollment_resumes_after_it() {
    let Some(pg) = testkit::postgres::PgDatabase::create("a records outage") else {
        return;
    };
    let relay = Relay::start(pg.server());
    let url = pg.url_through(relay.addr());
    let tmp = tempfile::tempdir().expect("tmp");
    let folder = Folder::new(common::Layout::new(tmp.path())).with_db(DbUrl::Postgres(url.clone()));
    folder.init(&InitOptions::default()).expect("init");
    let token = |name: &str| {
        folder
            .create_token(Profile::Client, name, Duration::from_secs(3600))
            .expect("token")
    };
    let (t1, t2) = (token("dev-1"), token("dev-2"));
    let ca = CaProcess::start(tmp.path(), &[], &[("PKI_DB", &url)]);
    let root = common::Layout::new(tmp.path()).ca_cert();
    assert_eq!(
        enroll(ca.addr, &root, "dev-1", &t1, &csr("", "dev-1").1).status,
        200
    );

    relay.cut();
    let request = csr("", "dev-2").1;
    let r = enroll(ca.addr, &root, "dev-2", &t2, &request);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(
        r.text().contains("cannot reach its records"),
        "{}",
        r.text()
    );
    assert!(
        !r.text().contains("host="),
        "no connection string to the device: {}",
        r.text()
    );
    let h = call(ca.addr, &root, None, "GET /healthz HTTP/1.1", b"");
    assert_eq!(h.status, 503, "{}", h.text());
    assert!(h.text().contains("records: unreachable"), "{}", h.text());
    assert!(
        ca.log_text().contains("the records are unreachable"),
        "{}",
        ca.log_text()
    );

    relay.restore();
    let r = enroll(ca.addr, &root, "dev-2", &t2, &request);
    assert_eq!(r.status, 200, "{}", r.text());
    let h = call(ca.addr, &root, None, "GET /healthz HTTP/1.1", b"");
    assert_eq!(h.status, 200, "{}", h.text());
}
