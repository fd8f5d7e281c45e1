//! An app of our own on the server library, through real handshakes: the `ClientIdentity`
//! extractor (401 without a certificate, `Option` for anonymous clients), shared state, and the
//! listener's guards around services the library never saw.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{web, HttpResponse};
use server::{ClientAuth, ClientIdentity, Config, Server};

use crate::support::{assert_refused_without_a_certificate, TestPki, TestServer};
use crate::tls_client::{self as tc, Opts};

/// `/me` needs a certificate, `/maybe` greets anyone, `/count` counts calls across workers,
/// `/post` takes a form post; anything else is the app's own 404.
fn own_app(config: Config, calls: web::Data<AtomicUsize>) -> TestServer {
    Server::new(config)
        .app(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(calls.clone())
                .route("/me", web::get().to(me))
                .route("/maybe", web::get().to(maybe))
                .route("/count", web::get().to(count))
                .route("/post", web::post().to(|| async { "posted" }))
                .default_service(web::to(|| async {
                    HttpResponse::NotFound().body("not ours")
                }));
        })
        .spawn()
        .expect("server starts")
}

async fn me(client: ClientIdentity) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "cn": client.common_name,
        "serial": client.serial,
        "whole": client,
    }))
}

async fn maybe(client: Option<ClientIdentity>) -> String {
    client.map_or_else(|| "anonymous".into(), |c| c.subject.clone())
}

async fn count(calls: web::Data<AtomicUsize>) -> String {
    (calls.fetch_add(1, Ordering::SeqCst) + 1).to_string()
}

#[test]
fn the_identity_extractor_knows_the_client_and_refuses_without_one() {
    let pki = TestPki::new();
    let calls = web::Data::new(AtomicUsize::new(0));
    let mut config = Config::for_pki(pki.layout().root(), ClientAuth::Optional);
    config.workers = Some(2);
    let srv = own_app(config, calls.clone());
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let with_cert = Opts::mutual(&ca, &pair);
    let anonymous = Opts {
        ca: Some(&ca),
        ..Opts::default()
    };

    let r = tc::get(srv.addr, &with_cert, "/me").expect("GET /me");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let cert = x509::cert::load_cert("client", &pair.0).expect("cert");
    assert_eq!(v["cn"], "client");
    assert_eq!(v["serial"], x509::cert::serial_hex(&cert).expect("serial"));
    // Serialized as `/whoami` shows it.
    assert_eq!(
        v["whole"]["subject"],
        "/O=https Project Device Certificate/CN=client"
    );
    let r = tc::get(srv.addr, &with_cert, "/maybe").expect("GET /maybe");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "/O=https Project Device Certificate/CN=client")
    );

    let r = tc::get(srv.addr, &anonymous, "/me").expect("GET /me");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.body, r#"{"error":"no client certificate was presented"}"#);
    let r = tc::get(srv.addr, &anonymous, "/maybe").expect("GET /maybe");
    assert_eq!((r.status, r.body.as_str()), (200, "anonymous"));

    // Optional still verifies what is sent: a certificate from another CA is not taken, the
    // client is served as anonymous, and told why.
    let stranger = TestPki::new();
    let foreign = stranger.client();
    let r = tc::get(srv.addr, &Opts::mutual(&ca, &foreign), "/me").expect("GET /me");
    assert_eq!(r.status, 401, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["reason"], "unknown_ca", "{}", r.body);
    assert_eq!(
        v["error"],
        "your client certificate was refused: your certificate was not issued by this server's CA"
    );
    let r = tc::get(srv.addr, &Opts::mutual(&ca, &foreign), "/maybe").expect("GET /maybe");
    assert_eq!((r.status, r.body.as_str()), (200, "anonymous"));

    // One state for every worker: the app data was made once, outside the factory.
    for n in 1..=4 {
        let r = tc::get(srv.addr, &anonymous, "/count").expect("GET /count");
        assert_eq!(r.body, n.to_string());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let r = tc::get(srv.addr, &anonymous, "/login").expect("GET /login");
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "not ours"),
        "the seed's routes are not mounted beside an app of our own"
    );
}

#[test]
fn an_own_app_stands_behind_the_same_guards() {
    let pki = TestPki::new();
    let sensor = pki.issue_client("sensor-1");
    let mut config = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    config.allow_cn = vec!["sensor-1".into()];
    let srv = own_app(config, web::Data::new(AtomicUsize::new(0)));
    let ca = pki.layout().ca_cert();
    let listed = Opts::mutual(&ca, &sensor);
    let client = pki.client();

    let r = tc::get(srv.addr, &listed, "/me").expect("GET /me");
    assert_eq!(r.status, 200, "{}", r.body);
    // Not on the access list: 403 before the app, on its routes and its 404 alike.
    for path in ["/me", "/maybe", "/nowhere"] {
        let r = tc::get(srv.addr, &Opts::mutual(&ca, &client), path).expect("GET");
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("access list"), "{}", r.body);
    }
    // Required means required, whatever the app's extractors say.
    assert_refused_without_a_certificate(srv.addr, &ca);

    let big = format!(
        "GET /me HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let r = tc::request(srv.addr, &listed, &big).expect("answer");
    assert_eq!(r.status, 431, "{}", r.body);

    let cross = "POST /post HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                 Sec-Fetch-Site: cross-site\r\nContent-Length: 0\r\n\r\n";
    let r = tc::request(srv.addr, &listed, cross).expect("answer");
    assert_eq!(r.status, 403, "{}", r.body);
    let same = cross.replace("cross-site", "same-origin");
    let r = tc::request(srv.addr, &listed, &same).expect("answer");
    assert_eq!((r.status, r.body.as_str()), (200, "posted"));
}
