//! ACME against the real `ca` binary on loopback, driven by a client we did not write (the
//! instant-acme crate): an account bound to an external account binding, an order validated
//! by http-01 (an IP identifier: no DNS needed), a pre-authorized order, finalize, the
//! certificate and its chain, key rollover, revocation into the CRL, renewal information, and
//! the refusals (each with the RFC's problem type, and nothing changed). Two replicas on one
//! PostgreSQL answer one client in turn.
//!
//! The malformed requests instant-acme never sends (a replayed nonce, a JWS for another URL, an
//! unknown algorithm, a forged signature, an oversized body) are signed here with josekit.

mod support;
#[path = "support/acme.rs"]
mod transport;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Error, ExternalAccountKey, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy, RevocationReason, RevocationRequest,
};
use pki::store::acme::AcmePolicy;
use pki::{DbUrl, Folder, InitOptions};
use support::CaProcess;
use transport::Alternating;

/// A PKI with a running `ca` (or several on one database).
struct Acme {
    _tmp: tempfile::TempDir,
    folder: Folder,
    dir: PathBuf,
    replicas: Vec<CaProcess>,
    _pg: Option<testkit::postgres::PgDatabase>,
    /// The headers of the last answer any client of this service got.
    last_headers: Arc<Mutex<Vec<(String, String)>>>,
}

impl Acme {
    fn start(args: &[&str]) -> Acme {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("certs");
        let folder = Folder::new(common::Layout::new(&dir));
        folder.init(&InitOptions::default()).expect("init");
        let ca = CaProcess::start(&dir, args, &[]);
        Acme {
            _tmp: tmp,
            folder,
            dir,
            replicas: vec![ca],
            _pg: None,
            last_headers: Arc::default(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("ca/ca.crt")
    }

    /// The directory, as the service names itself to a client that says `Host: localhost`.
    fn directory(&self) -> String {
        "https://localhost/acme/directory".into()
    }

    fn builder(&self) -> instant_acme::AccountBuilder {
        let addrs = self.replicas.iter().map(|r| r.addr).collect();
        let mut transport = Alternating::new(addrs, self.root());
        transport.last_headers = self.last_headers.clone();
        Account::builder_with_http(Box::new(transport))
    }

    fn eab(&self, policy: AcmePolicy) -> ExternalAccountKey {
        let (kid, hmac) = self
            .folder
            .create_acme_eab("test-service", policy, Duration::from_secs(3600))
            .expect("eab");
        ExternalAccountKey::new(kid, &b64(&hmac))
    }

    async fn account(&self, policy: AcmePolicy) -> Account {
        let eab = self.eab(policy);
        let (account, _) = self
            .builder()
            .create(&new_account(), self.directory(), Some(&eab))
            .await
            .expect("account");
        account
    }

    fn log(&self) -> String {
        self.replicas.iter().map(CaProcess::log_text).collect()
    }
}

fn new_account() -> NewAccount<'static> {
    NewAccount {
        contact: &["mailto:ops@example.test"],
        terms_of_service_agreed: true,
        only_return_existing: false,
    }
}

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

fn pre_authorized(dns: &str) -> AcmePolicy {
    AcmePolicy {
        dns: vec![dns.into()],
        ip: vec!["127.0.0.0/8".into()],
        client_profile: true,
        pre_authorized: true,
    }
}

/// The problem type's last word of an instant-acme error (`alreadyRevoked`).
fn problem(e: &Error) -> String {
    match e {
        Error::Api(p) => p
            .r#type
            .as_deref()
            .and_then(|t| t.rsplit(':').next())
            .unwrap_or_default()
            .to_owned(),
        other => format!("not a problem document: {other}"),
    }
}

fn retries() -> RetryPolicy {
    RetryPolicy::default().timeout(Duration::from_secs(30))
}

/// Orders `ids`, finalizes with instant-acme's own key and CSR, and returns the chain (PEM).
async fn issue(account: &Account, ids: &[Identifier], profile: Option<&str>) -> String {
    let mut new = NewOrder::new(ids);
    if let Some(p) = profile {
        new = new.profile(p);
    }
    let mut order = account.new_order(&new).await.expect("order");
    assert_eq!(
        order.poll_ready(&retries()).await.expect("ready"),
        OrderStatus::Ready
    );
    order.finalize().await.expect("finalize");
    order
        .poll_certificate(&retries())
        .await
        .expect("certificate")
}

/// `openssl verify` of the chain's leaf against the PKI's root, for `purpose`.
fn verifies(chain: &str, root: &Path, purpose: &str) -> bool {
    let dir = tempfile::tempdir().expect("tmp");
    let leaf = dir.path().join("chain.pem");
    std::fs::write(&leaf, chain).expect("write");
    std::process::Command::new("openssl")
        .args(["verify", "-purpose", purpose, "-CAfile"])
        .arg(root)
        .arg(&leaf)
        .output()
        .expect("openssl")
        .status
        .success()
}

fn leaf_der(chain: &str) -> Vec<u8> {
    openssl::x509::X509::from_pem(chain.as_bytes())
        .expect("leaf")
        .to_der()
        .expect("der")
}

#[tokio::test(flavor = "current_thread")]
async fn instant_acme_gets_a_certificate_rolls_its_key_revokes_and_sees_renewal_info() {
    let s = Acme::start(&[]);
    let eab = s.eab(pre_authorized(".test"));
    let (mut account, creds) = s
        .builder()
        .create(&new_account(), s.directory(), Some(&eab))
        .await
        .expect("account");
    let ids = [Identifier::Dns("svc.test".into())];
    let chain = issue(&account, &ids, None).await;
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf and root: {chain}"
    );
    assert!(verifies(&chain, &s.root(), "sslserver"), "{chain}");
    let cert = openssl::x509::X509::from_pem(chain.as_bytes()).expect("leaf");
    let left = x509::time::unix_time(cert.not_after()).expect("t") - x509::time::now();
    assert!(
        (7 * 86_400 - 300..=7 * 86_400).contains(&left),
        "ACME certificates last 7 days by default: {left} s left"
    );
    let der = leaf_der(&chain);

    // Key rollover: the account goes on with the new key; the old one finds no account.
    let _new_credentials = account.update_key().await.expect("key-change");
    issue(&account, &ids, None).await;
    let pkcs8 = creds.private_key().clone_key();
    let old_key = instant_acme::Key::from_pkcs8_der(pkcs8.clone_key()).expect("old key");
    let err = s
        .builder()
        .from_key((old_key, pkcs8.into()), s.directory())
        .await
        .err()
        .expect("the old key is no account's");
    assert_eq!(problem(&err), "accountDoesNotExist");

    // Renewal information: a window in the future, then in the past once revoked.
    let cert_der = rustls_pki_types::CertificateDer::from(der.clone());
    let id = instant_acme::CertificateIdentifier::try_from(&cert_der).expect("cert id");
    let (info, _) = account.renewal_info(&id).await.expect("renewal info");
    assert!(info.suggested_window.start > time::OffsetDateTime::now_utc());

    let revoke = RevocationRequest {
        certificate: &cert_der,
        reason: Some(RevocationReason::KeyCompromise),
    };
    account.revoke(&revoke).await.expect("revoke");
    let again = account.revoke(&revoke).await.expect_err("twice");
    assert_eq!(problem(&again), "alreadyRevoked");

    let (info, _) = account.renewal_info(&id).await.expect("renewal info");
    assert!(
        info.suggested_window.end < time::OffsetDateTime::now_utc(),
        "renew now: {info:?}"
    );

    // The CRL on record lists it, with its reason, at once.
    let crl = support::call(
        s.replicas[0].addr,
        &s.root(),
        None,
        "GET /crl HTTP/1.1",
        b"",
    );
    let crl = openssl::x509::X509Crl::from_der(&crl.body).expect("crl");
    let serial = cert.serial_number().to_bn().expect("bn");
    let listed = crl
        .get_revoked()
        .into_iter()
        .flatten()
        .any(|r| r.serial_number().to_bn().is_ok_and(|b| b == serial));
    assert!(listed, "the revoked certificate is in the CRL");
    assert!(s.log().contains("reason=\"keyCompromise\""), "{}", s.log());
}

#[tokio::test(flavor = "current_thread")]
async fn an_ip_identifier_is_validated_by_http_01_on_the_configured_port() {
    let responder = TcpListener::bind("127.0.0.1:0").expect("responder");
    let port = responder.local_addr().expect("addr").port().to_string();
    let s = Acme::start(&["--acme-http-port", &port]);
    let account = s.account(AcmePolicy::default()).await;
    let ids = [Identifier::Ip("127.0.0.1".parse().expect("ip"))];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .expect("order");
    let mut authzs = order.authorizations();
    let mut authz = authzs.next().await.expect("one").expect("authz");
    assert_eq!(authz.status, AuthorizationStatus::Pending);
    let mut challenge = authz
        .challenge(ChallengeType::Http01)
        .expect("http-01 offered");
    let answer = challenge.key_authorization().as_str().to_owned();
    let token = answer.split('.').next().expect("token").to_owned();
    let served = std::thread::spawn(move || serve_once(&responder, &token, &answer));
    challenge.set_ready().await.expect("ready");
    assert_eq!(
        order.poll_ready(&retries()).await.expect("poll"),
        OrderStatus::Ready
    );
    let asked = served.join().expect("responder");
    assert!(
        asked.starts_with("GET /.well-known/acme-challenge/"),
        "{asked}"
    );
    assert!(
        asked.to_ascii_lowercase().contains("host: 127.0.0.1"),
        "{asked}"
    );
    order.finalize().await.expect("finalize");
    let chain = order.poll_certificate(&retries()).await.expect("cert");
    let cert = openssl::x509::X509::from_pem(chain.as_bytes()).expect("leaf");
    let ips: Vec<_> = cert
        .subject_alt_names()
        .expect("sans")
        .iter()
        .filter_map(|n| n.ipaddress().map(<[u8]>::to_vec))
        .collect();
    assert_eq!(
        ips,
        vec![vec![127, 0, 0, 1]],
        "an iPAddress, not a DNS name"
    );
}

/// Answers one HTTP request with `answer`; returns what was asked.
fn serve_once(listener: &TcpListener, token: &str, answer: &str) -> String {
    listener.set_nonblocking(false).expect("blocking");
    let (mut s, _) = listener.accept().expect("validation connects");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("read");
    let asked = String::from_utf8_lossy(&buf[..n]).into_owned();
    let body = if asked.contains(token) {
        answer
    } else {
        "wrong"
    };
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    asked
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_validation_makes_the_order_invalid_with_the_rfcs_problem() {
    // Nothing listens on the http-01 port: a connection problem, recorded on the challenge.
    let closed = TcpListener::bind("127.0.0.1:0").expect("port");
    let port = closed.local_addr().expect("addr").port().to_string();
    drop(closed);
    let s = Acme::start(&["--acme-http-port", &port]);
    let account = s.account(AcmePolicy::default()).await;
    let ids = [Identifier::Ip("127.0.0.1".parse().expect("ip"))];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .expect("order");
    let mut authzs = order.authorizations();
    let mut authz = authzs.next().await.expect("one").expect("authz");
    authz
        .challenge(ChallengeType::Http01)
        .expect("http-01")
        .set_ready()
        .await
        .expect("ready");
    let err = order.poll_ready(&retries()).await.expect_err("invalid");
    assert_eq!(problem(&err), "connection", "the order says why: {err}");
    assert_eq!(order.state().status, OrderStatus::Invalid);
    let mut authzs = order.authorizations();
    let authz = authzs.next().await.expect("one").expect("authz");
    let error = authz.challenges[0]
        .error
        .as_ref()
        .expect("the challenge says why");
    assert_eq!(
        error.r#type.as_deref(),
        Some("urn:ietf:params:acme:error:connection")
    );
    assert!(s.log().contains("ACME validation failed"), "{}", s.log());
}

#[tokio::test(flavor = "current_thread")]
async fn refusals_carry_the_rfcs_problem_and_change_nothing() {
    let s = Acme::start(&[]);
    // No binding: externalAccountRequired.
    let err = s
        .builder()
        .create(&new_account(), s.directory(), None)
        .await
        .err()
        .expect("no EAB");
    assert_eq!(problem(&err), "externalAccountRequired");
    // A wrong HMAC key: unauthorized, and the binding is still unused.
    let (kid, _) = s
        .folder
        .create_acme_eab("wrong", AcmePolicy::default(), Duration::from_secs(60))
        .expect("eab");
    let wrong = ExternalAccountKey::new(kid.clone(), b"thirty-two bytes of the wrong key");
    let err = s
        .builder()
        .create(&new_account(), s.directory(), Some(&wrong))
        .await
        .err()
        .expect("wrong key");
    assert_eq!(problem(&err), "unauthorized");
    let ca = s.folder.issuer().expect("ca");
    let eabs = s
        .folder
        .open_db(Some(&ca))
        .expect("db")
        .acme_eabs()
        .expect("eabs");
    assert!(
        eabs.iter().any(|e| e.kid == kid && e.bound.is_none()),
        "{eabs:?}"
    );

    // A binding binds once.
    let eab = s.eab(AcmePolicy {
        dns: vec![".internal".into()],
        ..AcmePolicy::default()
    });
    let (account, _) = s
        .builder()
        .create(&new_account(), s.directory(), Some(&eab))
        .await
        .expect("account");
    let err = s
        .builder()
        .create(&new_account(), s.directory(), Some(&eab))
        .await
        .err()
        .expect("second account");
    assert_eq!(problem(&err), "unauthorized");

    // Names outside the binding's policy; a profile the binding does not allow.
    let outside = [Identifier::Dns("web.example".into())];
    let err = account
        .new_order(&NewOrder::new(&outside))
        .await
        .err()
        .expect("outside");
    assert_eq!(problem(&err), "rejectedIdentifier");
    let inside = [Identifier::Dns("web.internal".into())];
    let err = account
        .new_order(&NewOrder::new(&inside).profile("mtls-client"))
        .await
        .err()
        .expect("profile");
    assert_eq!(problem(&err), "invalidProfile");
    let err = account
        .new_order(&NewOrder::new(&[Identifier::Dns("*.internal".into())]))
        .await
        .err()
        .expect("wildcard");
    assert_eq!(problem(&err), "rejectedIdentifier");

    // Finalizing an order that is not ready; then a malformed CSR on a ready one.
    let mut order = account
        .new_order(&NewOrder::new(&inside))
        .await
        .expect("order");
    let err = order.finalize().await.expect_err("not ready");
    assert_eq!(problem(&err), "orderNotReady");
    let pre = s.account(pre_authorized(".internal")).await;
    let mut order = pre.new_order(&NewOrder::new(&inside)).await.expect("order");
    let err = order
        .finalize_csr(b"not a request")
        .await
        .expect_err("garbage");
    assert_eq!(problem(&err), "badCSR");
    let other = csr_for(&["other.internal"]);
    let err = order.finalize_csr(&other).await.expect_err("other names");
    assert_eq!(problem(&err), "badCSR");
    // Still ready: a refused CSR changes nothing.
    assert_eq!(
        order.refresh().await.expect("refresh").status,
        OrderStatus::Ready
    );
    let issued = s
        .folder
        .open_db(Some(&ca))
        .expect("db")
        .count(&pki::Filter::default())
        .expect("count");
    assert_eq!(
        issued, 3,
        "only make certs' server, client and the CA service's own"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_account_past_its_order_limit_hears_429_with_retry_after() {
    let s = Acme::start(&["--acme-orders-per-hour", "2"]);
    let account = s.account(pre_authorized(".test")).await;
    let ids = [Identifier::Dns("limited.test".into())];
    for _ in 0..2 {
        account
            .new_order(&NewOrder::new(&ids))
            .await
            .expect("within the limit");
    }
    let err = account
        .new_order(&NewOrder::new(&ids))
        .await
        .err()
        .expect("past the limit");
    assert_eq!(problem(&err), "rateLimited");
    let last = s.last_headers.lock().expect("headers").clone();
    let retry = last
        .iter()
        .find(|(n, _)| n == "retry-after")
        .map(|(_, v)| v.clone());
    assert_eq!(retry.as_deref(), Some("60"), "{last:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn mtls_client_gives_a_client_certificate_only_where_the_binding_allows_it() {
    let s = Acme::start(&[]);
    let account = s.account(pre_authorized(".svc.internal")).await;
    let ids = [Identifier::Dns("billing.svc.internal".into())];
    let chain = issue(&account, &ids, Some("mtls-client")).await;
    assert!(verifies(&chain, &s.root(), "sslclient"), "{chain}");
    assert!(!verifies(&chain, &s.root(), "sslserver"), "clientAuth only");
}

/// A PKCS#10 request for `names` with a fresh P-256 key.
fn csr_for(names: &[&str]) -> Vec<u8> {
    let key = x509::key::generate(x509::KeyAlgorithm::EcP256).expect("key");
    let mut b = openssl::x509::X509ReqBuilder::new().expect("req");
    b.set_pubkey(&key).expect("key");
    let mut san = openssl::x509::extension::SubjectAlternativeName::new();
    for n in names {
        san.dns(n);
    }
    let ext = san.build(&b.x509v3_context(None)).expect("san");
    let mut stack = openssl::stack::Stack::new().expect("stack");
    stack.push(ext).expect("push");
    b.add_extensions(&stack).expect("extensions");
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .expect("sign");
    b.build().to_der().expect("der")
}

mod raw {
    //! Requests instant-acme never sends, signed here.
    use super::*;
    use josekit::jwk::alg::ec::EcCurve;
    use josekit::jwk::Jwk;
    use josekit::jws::{self, JwsHeaderSet};
    use serde_json::{json, Value};

    pub(crate) fn nonce(addr: SocketAddr, root: &Path) -> String {
        let r = support::call(addr, root, None, "HEAD /acme/new-nonce HTTP/1.1", b"");
        r.header("replay-nonce").expect("nonce").to_owned()
    }

    pub(crate) fn signed(key: &Jwk, alg: &str, nonce: &str, url: &str, payload: &Value) -> Vec<u8> {
        let mut h = JwsHeaderSet::new();
        h.set_algorithm(alg, true);
        h.set_claim("nonce", Some(json!(nonce)), true)
            .expect("nonce");
        h.set_url(url, true);
        h.set_jwk(key.to_public_key().expect("public"), true);
        let signer: Box<dyn jws::JwsSigner> = match alg {
            "ES384" => Box::new(jws::ES384.signer_from_jwk(key).expect("signer")),
            "RS256" => Box::new(jws::RS256.signer_from_jwk(key).expect("signer")),
            "EdDSA" => Box::new(jws::EdDSA.signer_from_jwk(key).expect("signer")),
            _ => Box::new(jws::ES256.signer_from_jwk(key).expect("signer")),
        };
        jws::serialize_flattened_json(payload.to_string().as_bytes(), &h, &*signer)
            .expect("sign")
            .into_bytes()
    }

    pub(crate) fn post(addr: SocketAddr, root: &Path, path: &str, body: &[u8]) -> support::Reply {
        let head = format!("POST {path} HTTP/1.1\r\nContent-Type: application/jose+json");
        support::call(addr, root, None, &head, body)
    }

    pub(crate) fn kind(r: &support::Reply) -> (u16, String) {
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let t = v["type"]
            .as_str()
            .unwrap_or_default()
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        (r.status, t)
    }

    #[test]
    fn account_keys_of_each_algorithm_register_and_a_key_of_the_wrong_curve_does_not() {
        use josekit::jwk::alg::ed::EdCurve;
        let s = Acme::start(&["--acme-without-eab"]);
        let (addr, root) = (s.replicas[0].addr, s.root());
        let url = "https://localhost/acme/new-account";
        let payload = json!({"termsOfServiceAgreed": true});
        let keys = [
            ("ES256", Jwk::generate_ec_key(EcCurve::P256).expect("key")),
            ("ES384", Jwk::generate_ec_key(EcCurve::P384).expect("key")),
            ("RS256", Jwk::generate_rsa_key(2048).expect("key")),
            (
                "EdDSA",
                Jwk::generate_ed_key(EdCurve::Ed25519).expect("key"),
            ),
        ];
        for (alg, key) in &keys {
            let body = signed(key, alg, &nonce(addr, &root), url, &payload);
            let r = post(addr, &root, "/acme/new-account", &body);
            assert_eq!(r.status, 201, "{alg}: {}", r.text());
            assert!(r
                .header("location")
                .is_some_and(|l| l.contains("/acme/account/")));
        }
        // The same key again: its account, 200.
        let body = signed(&keys[0].1, "ES256", &nonce(addr, &root), url, &payload);
        assert_eq!(post(addr, &root, "/acme/new-account", &body).status, 200);
        // A P-256 key signing as ES384: refused for the key, not registered.
        let p256 = Jwk::generate_ec_key(EcCurve::P256).expect("key");
        let public: serde_json::Map<String, Value> = p256.to_public_key().expect("public").into();
        let header =
            json!({"alg": "ES384", "nonce": nonce(addr, &root), "url": url, "jwk": public});
        let protected = crate::b64_text(header.to_string().as_bytes());
        let body64 = crate::b64_text(payload.to_string().as_bytes());
        let signer = jws::ES256.signer_from_jwk(&p256).expect("signer");
        let sig = signer
            .sign(format!("{protected}.{body64}").as_bytes())
            .expect("sign");
        let v =
            json!({"protected": protected, "payload": body64, "signature": crate::b64_text(&sig)});
        let r = post(addr, &root, "/acme/new-account", v.to_string().as_bytes());
        assert_eq!(kind(&r), (400, "badPublicKey".into()), "{}", r.text());
    }

    /// A JWS by the account `kid` (POST-as-GET when `payload` is None).
    fn signed_kid(
        key: &Jwk,
        kid: &str,
        nonce: &str,
        url: &str,
        payload: Option<&Value>,
    ) -> Vec<u8> {
        let mut h = JwsHeaderSet::new();
        h.set_algorithm("ES256", true);
        h.set_claim("nonce", Some(json!(nonce)), true)
            .expect("nonce");
        h.set_url(url, true);
        h.set_key_id(kid, true);
        let signer = jws::ES256.signer_from_jwk(key).expect("signer");
        let body = payload.map(Value::to_string).unwrap_or_default();
        jws::serialize_flattened_json(body.as_bytes(), &h, &signer)
            .expect("sign")
            .into_bytes()
    }

    #[test]
    fn an_account_lists_its_orders() {
        let s = Acme::start(&["--acme-without-eab"]);
        let (addr, root) = (s.replicas[0].addr, s.root());
        let key = Jwk::generate_ec_key(EcCurve::P256).expect("key");
        let made = post(
            addr,
            &root,
            "/acme/new-account",
            &signed(
                &key,
                "ES256",
                &nonce(addr, &root),
                "https://localhost/acme/new-account",
                &json!({}),
            ),
        );
        let kid = made.header("location").expect("account URL").to_owned();
        let order = json!({"identifiers": [{"type": "dns", "value": "listed.test"}]});
        let body = signed_kid(
            &key,
            &kid,
            &nonce(addr, &root),
            "https://localhost/acme/new-order",
            Some(&order),
        );
        let created = post(addr, &root, "/acme/new-order", &body);
        assert_eq!(created.status, 201, "{}", created.text());
        let order_url = created.header("location").expect("order URL").to_owned();
        let orders_url = format!("{kid}/orders");
        let path = orders_url.trim_start_matches("https://localhost");
        let body = signed_kid(&key, &kid, &nonce(addr, &root), &orders_url, None);
        let listed = post(addr, &root, path, &body);
        assert_eq!(listed.status, 200, "{}", listed.text());
        let v: Value = serde_json::from_slice(&listed.body).expect("json");
        assert_eq!(v["orders"], json!([order_url]), "{v}");
    }

    #[test]
    fn a_replayed_nonce_another_url_a_bad_alg_a_forged_signature_and_a_big_body_are_refused() {
        let s = Acme::start(&["--max-body", "4096"]);
        let (addr, root) = (s.replicas[0].addr, s.root());
        let key = Jwk::generate_ec_key(EcCurve::P256).expect("key");
        let url = "https://localhost/acme/new-account";
        let payload = json!({"termsOfServiceAgreed": true});

        let n = nonce(addr, &root);
        let body = signed(&key, "ES256", &n, url, &payload);
        let first = post(addr, &root, "/acme/new-account", &body);
        assert_eq!(
            kind(&first),
            (400, "externalAccountRequired".into()),
            "the nonce was spent here"
        );
        let again = post(addr, &root, "/acme/new-account", &body);
        assert_eq!(kind(&again), (400, "badNonce".into()));
        assert!(
            again.header("replay-nonce").is_some(),
            "a fresh nonce to retry with"
        );

        let other_url = signed(
            &key,
            "ES256",
            &nonce(addr, &root),
            "https://localhost/acme/new-order",
            &payload,
        );
        assert_eq!(
            kind(&post(addr, &root, "/acme/new-account", &other_url)),
            (403, "unauthorized".into())
        );

        let mut forged: Value =
            serde_json::from_slice(&signed(&key, "ES256", &nonce(addr, &root), url, &payload))
                .expect("json");
        forged["payload"] = json!(crate::b64_text(br#"{"termsOfServiceAgreed":false}"#));
        assert_eq!(
            kind(&post(
                addr,
                &root,
                "/acme/new-account",
                forged.to_string().as_bytes()
            )),
            (400, "malformed".into())
        );

        let mut none: Value =
            serde_json::from_slice(&signed(&key, "ES256", &nonce(addr, &root), url, &payload))
                .expect("json");
        let public: serde_json::Map<String, Value> = key.to_public_key().expect("pub").into();
        let header = json!({"alg": "none", "nonce": nonce(addr, &root), "url": url, "jwk": public});
        none["protected"] = json!(crate::b64_text(header.to_string().as_bytes()));
        assert_eq!(
            kind(&post(
                addr,
                &root,
                "/acme/new-account",
                none.to_string().as_bytes()
            )),
            (400, "badSignatureAlgorithm".into())
        );

        let unknown = {
            let mut h = JwsHeaderSet::new();
            h.set_algorithm("ES256", true);
            h.set_claim("nonce", Some(json!(nonce(addr, &root))), true)
                .expect("nonce");
            h.set_url("https://localhost/acme/new-order", true);
            h.set_key_id("https://localhost/acme/account/nobody", true);
            let signer = jws::ES256.signer_from_jwk(&key).expect("signer");
            jws::serialize_flattened_json(b"{}", &h, &signer).expect("sign")
        };
        assert_eq!(
            kind(&post(addr, &root, "/acme/new-order", unknown.as_bytes())),
            (400, "accountDoesNotExist".into())
        );

        let big = vec![b'x'; 8192];
        assert_eq!(post(addr, &root, "/acme/new-account", &big).status, 413);
        let plain = support::call(
            addr,
            &root,
            None,
            "POST /acme/new-account HTTP/1.1\r\nContent-Type: application/json",
            &body,
        );
        assert_eq!(kind(&plain), (415, "malformed".into()));
    }
}

fn b64_text(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn two_replicas_on_one_postgresql_answer_one_client_in_turn() {
    // The set-up speaks to PostgreSQL with its blocking client: before the runtime starts.
    let Some(pg) = testkit::postgres::PgDatabase::create("acme_replicas") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("host-a"), tmp.path().join("host-b"));
    let db = DbUrl::Postgres(pg.url().to_owned());
    let folder = Folder::new(common::Layout::new(&a)).with_db(db);
    folder.init(&InitOptions::default()).expect("init");
    for (path, bytes) in testkit::snapshot(&a.join("ca")) {
        let dest = b
            .join("ca")
            .join(path.strip_prefix(a.join("ca")).expect("inside"));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::write(dest, bytes).expect("copy");
    }
    let env = [("PKI_DB", pg.url())];
    let replicas = vec![
        CaProcess::start(&a, &[], &env),
        CaProcess::start(&b, &[], &env),
    ];
    let s = Acme {
        _tmp: tmp,
        folder,
        dir: a,
        replicas,
        _pg: Some(pg),
        last_headers: Arc::default(),
    };
    let transport = Alternating::new(s.replicas.iter().map(|r| r.addr).collect(), s.root());
    let answered = transport.answered.clone();
    let eab = s.eab(pre_authorized(".test"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (account, _) = Account::builder_with_http(Box::new(transport))
            .create(&new_account(), s.directory(), Some(&eab))
            .await
            .expect("account on one replica, orders on both");
        for i in 0..3 {
            let ids = [Identifier::Dns(format!("r{i}.test"))];
            let chain = issue(&account, &ids, None).await;
            assert!(verifies(&chain, &s.root(), "sslserver"));
        }
    });
    // One nonce sent to both replicas at once is good on exactly one of them.
    let (a, b) = (s.replicas[0].addr, s.replicas[1].addr);
    let key =
        josekit::jwk::Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256).expect("key");
    let url = "https://localhost/acme/new-account";
    let body = raw::signed(
        &key,
        "ES256",
        &raw::nonce(a, &s.root()),
        url,
        &serde_json::json!({}),
    );
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let sent: Vec<_> = [a, b]
            .into_iter()
            .map(|addr| {
                let (root, body) = (s.root(), body.clone());
                scope.spawn(move || raw::kind(&raw::post(addr, &root, "/acme/new-account", &body)))
            })
            .collect();
        sent.into_iter().map(|h| h.join().expect("post")).collect()
    });
    let bad = answers.iter().filter(|(_, t)| t == "badNonce").count();
    assert_eq!(
        bad, 1,
        "the nonce is spent once across replicas: {answers:?}"
    );
    let counts: Vec<usize> = answered
        .iter()
        .map(|n| n.load(std::sync::atomic::Ordering::SeqCst))
        .collect();
    assert!(
        counts.iter().all(|n| *n >= 5),
        "each replica answered a share: {counts:?}"
    );
}
