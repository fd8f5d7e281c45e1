//! The browser side without a browser: the page at `/`, its headers, the HTML or JSON answer of
//! `/login1`, and the cross-site guard, through real TLS connections. (`browser.rs` drives
//! Chromium through the same paths.)

use pki::{CertSpec, Profile};
use server::{ClientAuth, Config};

use crate::support::{TestPki, TestServer};
use crate::tls_client::{self as tc, Opts};

fn serve(pki: &TestPki, auth: ClientAuth) -> TestServer {
    TestServer::spawn(Config::for_pki(pki.layout().root(), auth)).expect("server starts")
}

/// `POST /login1` with the seed's form and extra header lines.
fn login(srv: &TestServer, o: &Opts<'_>, password: &str, extra: &str) -> tc::Reply {
    let body = format!("username=name&password={password}");
    tc::request(
        srv.addr,
        o,
        &format!(
            "POST /login1 HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{extra}\
             Content-Length: {}\r\n\r\n{body}",
            body.len(),
            port = srv.addr.port()
        ),
    )
    .expect("POST /login1")
}

fn header<'a>(r: &'a tc::Reply, name: &str) -> Option<&'a str> {
    r.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn the_page_names_the_verified_client_with_security_headers() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let o = Opts::mutual(&ca, &pair);
    let r = tc::get(srv.addr, &o, "/").expect("GET /");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(r#"<span id="cn">client</span>"#),
        "{}",
        r.body
    );
    let serial = x509::cert::serial_hex(&x509::cert::load_cert("client", &pair.0).expect("cert"))
        .expect("serial");
    assert!(r.body.contains(&serial), "{}", r.body);
    assert!(r.body.contains(r#"action="/login1""#), "{}", r.body);
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    let csp = header(&r, "content-security-policy").expect("CSP");
    for directive in [
        "default-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    // The one inline style is admitted by its hash, and nothing else is.
    let style = r
        .body
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .expect("inline style")
        .0;
    let hash = openssl::base64::encode_block(&openssl::sha::sha256(style.as_bytes()));
    assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
    assert!(!r.body.contains("<script"), "{}", r.body);
    assert!(header(&r, "strict-transport-security").is_some_and(|v| v.starts_with("max-age=")));
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&r, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
}

#[test]
fn certificate_fields_are_escaped_on_the_page() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let ca = pki.layout().ca_cert();
    let pair = pki.make_cert("<script>x&\"", &CertSpec::new(Profile::Client));
    let o = Opts::mutual(&ca, &pair);
    let r = tc::get(srv.addr, &o, "/").expect("GET /");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("<script"), "{}", r.body);
    // The CN is there, as character references (`&#60;` or `&lt;`: either is right).
    let cn = r
        .body
        .split_once(r#"<span id="cn">"#)
        .and_then(|(_, rest)| rest.split_once("</span>"))
        .expect("cn")
        .0;
    assert!(cn.contains("script") && cn.contains('&'), "{cn}");
    assert!(!cn.contains(['<', '>', '"']), "{cn}");
}

#[test]
fn optional_and_one_way_pages_say_why_there_is_no_certificate() {
    let pki = TestPki::new();
    let ca = pki.layout().ca_cert();
    let o = Opts {
        ca: Some(&ca),
        ..Opts::default()
    };
    for (auth, why) in [
        (ClientAuth::Optional, "optional mode"),
        (ClientAuth::None, "one-way TLS"),
    ] {
        let srv = serve(&pki, auth);
        let r = tc::get(srv.addr, &o, "/").expect("GET /");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains(r#"id="no-cert""#), "{}", r.body);
        assert!(r.body.contains(why), "{auth:?}: {}", r.body);
    }
}

#[test]
fn login1_answers_json_to_api_clients_and_a_page_to_browsers() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let o = Opts::mutual(&ca, &pair);
    // The seed's client (Python requests): Accept */*, no Origin.
    let r = login(&srv, &o, "pwd1", "Accept: */*\r\n");
    assert_eq!((r.status, r.body.as_str()), (200, "true"));
    assert_eq!(header(&r, "vary"), Some("accept"));
    let r = login(&srv, &o, "wrong", "");
    assert_eq!((r.status, r.body.as_str()), (200, "false"));

    // A browser's same-origin form post.
    let browser =
        "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\nSec-Fetch-Site: same-origin\r\n";
    let r = login(&srv, &o, "pwd1", browser);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.contains("Signed in as name."), "{}", r.body);
    assert!(header(&r, "content-security-policy").is_some());
    let r = login(&srv, &o, "wrong", browser);
    assert!(
        r.body.contains("Wrong user name or password."),
        "{}",
        r.body
    );
    // An older browser sends Origin only; it must name this server.
    let origin = format!("Origin: https://localhost:{}\r\n", srv.addr.port());
    let r = login(&srv, &o, "pwd1", &origin);
    assert_eq!((r.status, r.body.as_str()), (200, "true"));
}

#[test]
fn cross_site_posts_are_refused_before_any_password_check() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let o = Opts::mutual(&ca, &pair);
    for (extra, says) in [
        ("Sec-Fetch-Site: cross-site\r\n", "another site"),
        ("Sec-Fetch-Site: same-site\r\n", "another site"),
        ("Origin: https://evil.example\r\n", "another origin"),
        ("Origin: null\r\n", "another origin"),
        // Same host, plain http: another origin.
        ("Origin: http://localhost\r\n", "another origin"),
    ] {
        let r = login(&srv, &o, "pwd1", extra);
        assert_eq!(r.status, 403, "{extra}: {}", r.body);
        assert!(r.body.contains(says), "{extra}: {}", r.body);
        let page = login(&srv, &o, "pwd1", &format!("{extra}Accept: text/html\r\n"));
        assert_eq!(page.status, 403, "{extra}: {}", page.body);
        assert!(
            page.body.contains("posted from another site"),
            "{}",
            page.body
        );
    }
    // Refusals are not failed logins: the brakes (5 failures) have not been touched.
    let r = login(&srv, &o, "pwd1", "");
    assert_eq!((r.status, r.body.as_str()), (200, "true"));
}
