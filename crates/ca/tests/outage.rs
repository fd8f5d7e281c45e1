//! The records' PostgreSQL goes away under the running `ca` binary (a relay in front of the real
//! server is cut) and comes back: devices hear 503 with `Retry-After` and a reason they can act
//! on, `/healthz` says so, and enrollment resumes without a restart once the records return.

mod support;

use std::time::Duration;

use pki::{DbUrl, Folder, InitOptions, Profile};
use support::{call, csr, enroll, CaProcess};
use testkit::postgres::PgDatabase;
use testkit::relay::Relay;

/// A PKI whose records are on PostgreSQL, reached through a relay the test can cut.
struct OnRelay {
    relay: Relay,
    url: String,
    folder: Folder,
    _tmp: tempfile::TempDir,
    _pg: PgDatabase,
}

impl OnRelay {
    fn new(test: &str) -> Option<OnRelay> {
        let pg = PgDatabase::create(test)?;
        let relay = Relay::start(pg.server());
        let url = pg.url_through(relay.addr());
        let tmp = tempfile::tempdir().expect("tmp");
        let folder =
            Folder::new(common::Layout::new(tmp.path())).with_db(DbUrl::Postgres(url.clone()));
        folder.init(&InitOptions::default()).expect("init");
        Some(OnRelay {
            relay,
            url,
            folder,
            _tmp: tmp,
            _pg: pg,
        })
    }

    fn token(&self, name: &str) -> String {
        self.folder
            .create_token(Profile::Client, name, Duration::from_secs(3600))
            .expect("token")
    }

    /// The `ca` binary on these records, and its root.
    fn ca(&self) -> (CaProcess, std::path::PathBuf) {
        let dir = self.folder.layout().root();
        let ca = CaProcess::start(dir, &[], &[("PKI_DB", &self.url)]);
        (ca, self.folder.layout().ca_cert())
    }
}

#[test]
fn a_records_outage_says_retry_and_enrollment_resumes_after_it() {
    let Some(pki) = OnRelay::new("a records outage") else {
        return;
    };
    let (t1, t2) = (pki.token("dev-1"), pki.token("dev-2"));
    let (ca, root) = pki.ca();
    let relay = &pki.relay;
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

/// A burst of enrollments with the records cut in its middle: every device hears 200 or 503
/// (never a 500, never a lost certificate), and each one refused enrolls once they are back.
#[test]
fn a_burst_across_an_outage_loses_nothing() {
    let Some(pki) = OnRelay::new("a burst across an outage") else {
        return;
    };
    let devices: Vec<(String, String, Vec<u8>)> = (0..24)
        .map(|i| {
            let name = format!("dev-{i}");
            let t = pki.token(&name);
            let request = csr("", &name).1;
            (name, t, request)
        })
        .collect();
    let (ca, root) = pki.ca();
    let relay = &pki.relay;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let burst: Vec<_> = devices
            .chunks(6)
            .map(|group| {
                let root = &root;
                s.spawn(move || {
                    group
                        .iter()
                        .map(|(n, t, r)| enroll(ca.addr, root, n, t, r).status)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150));
        relay.cut();
        burst
            .into_iter()
            .flat_map(|h| h.join().expect("join"))
            .collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    relay.restore();
    for ((name, t, request), status) in devices.iter().zip(&statuses) {
        let again = enroll(ca.addr, &root, name, t, request);
        // A device that got its certificate and asks again gets the same one (a retry).
        assert_eq!(again.status, 200, "{name} (was {status}): {}", again.text());
    }
    let on_record = pki
        .folder
        .list()
        .expect("list")
        .into_iter()
        .filter(|r| r.name.starts_with("dev-"))
        .count();
    assert_eq!(on_record, devices.len(), "one certificate per device");
}
