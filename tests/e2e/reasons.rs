//! Why a client certificate was refused, on both sides: the plain words an `optional` server
//! gives the client it serves as anonymous, the counters by reason, `/metrics` behind its own
//! access list on the TLS port, and `--crl-stale` with a CRL past its nextUpdate.

use std::path::PathBuf;

use openssl::asn1::Asn1Time;
use openssl::x509::{X509CrlBuilder, X509RevokedBuilder};
use pki::{CertSpec, Profile, Validity};
use server::{ClientAuth, Config, CrlStale};

use crate::support::{capture_logs, server_log, TestPki, TestServer};
use crate::tls_client::{self as tc, Opts};

const DAY: i64 = 86_400;

/// The count of `https_tls_handshakes_total{result, reason, session="full"}` in `srv`'s
/// exposition (0 when absent).
pub fn handshakes(srv: &TestServer, result: &str, reason: &str) -> u64 {
    let text =
        String::from_utf8(srv.metrics.as_ref().expect("metrics on").encode()).expect("utf-8");
    let series = format!(
        "https_tls_handshakes_total{{reason=\"{reason}\",result=\"{result}\",session=\"full\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |n| n.parse().expect("a count"))
}

/// What `fetch` returns once it holds `line` (request figures reach the exposition within
/// 100 ms: each worker adds its own to the shared ones on a timer); 5 s at most.
fn eventually(fetch: impl Fn() -> String, line: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = fetch();
        if text.contains(line) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn expired(pki: &TestPki, name: &str) -> (PathBuf, PathBuf) {
    let now = x509::time::now();
    pki.make_cert(
        name,
        &CertSpec::new(Profile::Client).validity(Validity::between(now - 90 * DAY, now - DAY)),
    )
}

#[test]
fn an_optional_server_tells_a_refused_client_why_and_counts_it() {
    let pki = TestPki::new();
    let mut config = Config::for_pki(pki.layout().root(), ClientAuth::Optional);
    config.metrics_allow_cn = vec!["prometheus".into()];
    let srv = TestServer::spawn(config).expect("server");
    let ca = pki.layout().ca_cert();
    let old = expired(&pki, "old-device");

    let r = tc::get(srv.addr, &Opts::mutual(&ca, &old), "/whoami").expect("GET /whoami");
    assert_eq!(r.status, 401, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["reason"], "expired");
    let date = x509::time::date(x509::time::now() - DAY);
    let said = v["error"].as_str().expect("error");
    assert!(
        said.contains(&format!("your certificate expired on {}", &date[..10])),
        "{said}"
    );

    // The browser's page says it in the same words.
    let page = tc::request(
        srv.addr,
        &Opts::mutual(&ca, &old),
        "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
    )
    .expect("GET /");
    assert!(page.body.contains("id=\"refused\""), "{}", page.body);
    assert!(
        page.body.contains("your certificate expired on"),
        "{}",
        page.body
    );

    let stranger = TestPki::new();
    let foreign = stranger.client();
    let r = tc::get(srv.addr, &Opts::mutual(&ca, &foreign), "/whoami").expect("GET /whoami");
    assert!(
        r.body.contains("not issued by this server's CA"),
        "{}",
        r.body
    );

    assert_eq!(handshakes(&srv, "anonymous", "expired"), 2);
    assert_eq!(handshakes(&srv, "anonymous", "unknown_ca"), 1);
    assert_eq!(handshakes(&srv, "refused", "expired"), 0);

    // /metrics on the TLS port: only for its own access list.
    let r = tc::get(srv.addr, &Opts::mutual(&ca, &pki.client()), "/metrics").expect("GET");
    assert_eq!(r.status, 403, "{}", r.body);
    let prometheus = pki.issue_client("prometheus");
    let scrape = || {
        let r = tc::get(srv.addr, &Opts::mutual(&ca, &prometheus), "/metrics").expect("GET");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    };
    let denied = "https_http_requests_total{route=\"/metrics\",status=\"403\"} 1";
    let text = eventually(scrape, denied);
    assert!(text.contains(denied), "{text}");
    assert!(
        text.contains(
            "https_tls_handshakes_total{reason=\"unknown_ca\",result=\"anonymous\",session=\"full\"} 1"
        ),
        "{text}"
    );
}

#[test]
fn a_required_server_counts_and_logs_each_refusal_by_reason() {
    capture_logs();
    let pki = TestPki::new();
    let mut config = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    config.metrics_bind = Some("127.0.0.1:0".parse().expect("addr"));
    let srv = TestServer::spawn(config).expect("server");
    let ca = pki.layout().ca_cert();
    let e = tc::refusal(srv.addr, &Opts::mutual(&ca, &expired(&pki, "log-old")));
    assert!(e.contains("alert certificate expired"), "{e}");
    let e = tc::refusal(
        srv.addr,
        &Opts {
            ca: Some(&ca),
            ..Opts::default()
        },
    );
    assert!(e.contains("alert certificate required"), "{e}");
    assert_eq!(handshakes(&srv, "refused", "expired"), 1);
    assert_eq!(handshakes(&srv, "refused", "no_certificate"), 1);
    let log = server_log();
    assert!(
        log.contains("CN=log-old") && log.contains("label=\"expired\""),
        "{log}"
    );
    assert!(log.contains("label=\"no_certificate\""), "{log}");

    // The plain-HTTP listener of metrics_bind serves the same figures.
    let at = srv.metrics_addr.expect("metrics listener");
    let locked = "https_http_requests_total{route=\"/login1\",status=\"429\"} 1";
    let text = eventually(|| crate::prometheus::http_get(at, "/metrics"), locked);
    assert!(
        text.contains(
            "https_tls_handshakes_total{reason=\"expired\",result=\"refused\",session=\"full\"} 1"
        ),
        "{text}"
    );
}

/// A CRL signed by the PKI's CA whose nextUpdate passed ten days ago, listing `revoked`.
fn write_stale_crl(pki: &TestPki, revoked: &[&PathBuf]) {
    let ca = pki.folder.issuer().expect("ca");
    let now = x509::time::now();
    let mut b = X509CrlBuilder::new().expect("crl");
    b.set_issuer_name(ca.certificate().subject_name())
        .expect("issuer");
    b.set_last_update(&Asn1Time::from_unix(now - 40 * DAY).expect("t"))
        .expect("last");
    b.set_next_update(&Asn1Time::from_unix(now - 10 * DAY).expect("t"))
        .expect("next");
    for cert in revoked {
        let cert = x509::cert::load_cert("revoked", cert).expect("cert");
        let mut entry = X509RevokedBuilder::new().expect("entry");
        entry
            .set_serial_number(cert.serial_number())
            .expect("serial");
        entry
            .set_revocation_date(&Asn1Time::from_unix(now - 35 * DAY).expect("t"))
            .expect("date");
        b.add_revoked(entry.build()).expect("add");
    }
    // rust-openssl's builder wants an authorityKeyIdentifier and a cRLNumber, as `pki crl`
    // writes them.
    let scratch = openssl::x509::X509::builder().expect("scratch");
    let ctx = scratch.x509v3_context(Some(ca.certificate()), None);
    let aki = openssl::x509::extension::AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&ctx)
        .expect("aki");
    b.append_extension(aki).expect("aki");
    let number = openssl::bn::BigNum::from_u32(7).expect("bn");
    let number = openssl::x509::extension::CrlNumber::new(number)
        .expect("number")
        .build()
        .expect("number");
    b.append_extension(number).expect("number");
    let crl = ca.signing_key().sign_crl(b).expect("sign");
    let pem = crl.to_pem().expect("pem");
    std::fs::write(pki.layout().ca_crl(), pem).expect("write crl");
}

fn stale_server(pki: &TestPki, mode: CrlStale) -> TestServer {
    let mut config = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    config.crl_stale = mode;
    config.metrics_bind = Some("127.0.0.1:0".parse().expect("addr"));
    TestServer::spawn(config).expect("server")
}

#[test]
fn a_stale_crl_still_refuses_what_it_lists_under_warn_and_everything_under_refuse() {
    capture_logs();
    let pki = TestPki::new();
    let ca = pki.layout().ca_cert();
    let (good, gone) = (
        pki.issue_client("stale-good"),
        pki.issue_client("stale-gone"),
    );
    write_stale_crl(&pki, &[&gone.0]);

    let warn = stale_server(&pki, CrlStale::Warn);
    let r = tc::get(warn.addr, &Opts::mutual(&ca, &good), "/whoami").expect("accepted");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("stale-good"), "{}", r.body);
    let e = tc::refusal(warn.addr, &Opts::mutual(&ca, &gone));
    assert!(
        e.contains("alert certificate revoked"),
        "listed, so refused: {e}"
    );
    assert_eq!(handshakes(&warn, "accepted", "crl_stale"), 1);
    assert_eq!(handshakes(&warn, "refused", "revoked"), 1);
    let log = server_log();
    assert!(
        log.contains("accepted on a CRL past its nextUpdate") && log.contains("CN=stale-good"),
        "{log}"
    );
    let health = tc::get(warn.addr, &Opts::mutual(&ca, &good), "/healthz").expect("healthz");
    assert!(
        health.body.starts_with("ok\ncrl: STALE since"),
        "{}",
        health.body
    );
    assert!(health.body.contains("--crl-stale warn"), "{}", health.body);

    let refuse = stale_server(&pki, CrlStale::Refuse);
    // OpenSSL sends a stale CRL as the alert "certificate expired".
    let e = tc::refusal(refuse.addr, &Opts::mutual(&ca, &good));
    assert!(e.contains("alert certificate expired"), "{e}");
    assert_eq!(handshakes(&refuse, "refused", "crl_stale"), 1);
}

#[test]
fn a_failed_reload_shows_in_the_figures_until_a_good_one() {
    let pki = TestPki::new();
    let mut config = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    config.metrics_allow_cn = vec!["prometheus".into()];
    let srv = TestServer::spawn(config).expect("server");
    let text = || String::from_utf8(srv.metrics.as_ref().expect("on").encode()).expect("utf-8");
    assert!(
        text().contains("https_tls_last_reload_successful 1"),
        "{}",
        text()
    );
    let cert = pki.layout().server_cert();
    let good = std::fs::read(&cert).expect("read");
    std::fs::write(&cert, "not a certificate").expect("break");
    assert!(srv.tls.reload().is_err());
    let t = text();
    assert!(t.contains("https_tls_last_reload_successful 0"), "{t}");
    assert!(
        t.contains("https_tls_reloads_total{result=\"failure\"} 1"),
        "{t}"
    );
    std::fs::write(&cert, good).expect("mend");
    srv.tls.reload().expect("reload");
    let t = text();
    assert!(t.contains("https_tls_last_reload_successful 1"), "{t}");
    assert!(
        t.contains("https_tls_reloads_total{result=\"success\"} 1"),
        "{t}"
    );
}
