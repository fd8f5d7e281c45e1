//! CA rotation without downtime: one server, reloaded (never restarted), keeps talking to
//! clients of the old CA and of the new one through every phase; a revocation under the old CA
//! still works while it is trusted; after retirement, only the old CA's own certificates fail.

use std::path::PathBuf;

use pki::rotation::Phase;
use server::{Background, ClientAuth, Config};

use crate::support::TestPki;
use crate::tls_client::{get, refusal, Opts};

fn keep(pki: &TestPki, pair: &(PathBuf, PathBuf), as_name: &str) -> (PathBuf, PathBuf) {
    let dir = pki.scratch().join("kept");
    std::fs::create_dir_all(&dir).expect("kept");
    let out = (
        dir.join(format!("{as_name}.crt")),
        dir.join(format!("{as_name}.key")),
    );
    std::fs::copy(&pair.0, &out.0).expect("copy cert");
    std::fs::copy(&pair.1, &out.1).expect("copy key");
    out
}

fn accepted(srv: &Background, ca: &std::path::Path, who: &(PathBuf, PathBuf)) {
    let r = get(srv.addr, &Opts::mutual(ca, who), "/whoami")
        .unwrap_or_else(|e| panic!("{} refused: {e}", who.0.display()));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_server_and_clients_of_both_cas_talk_through_every_phase() {
    let pki = TestPki::new();
    let folder = &pki.folder;
    let bundle = pki.layout().ca_cert();
    let srv = Background::spawn(Config::for_pki(pki.dir(), ClientAuth::Required)).expect("server");
    let old_client = keep(&pki, &pki.client(), "old-client");
    accepted(&srv, &bundle, &old_client);

    // Phase 1: a new CA, trusted beside the old one; the old one still issues.
    folder.rotate_introduce(None).expect("introduce");
    assert_eq!(folder.phase(), Phase::Introduced);
    let certs = x509::cert::load_certs("bundle", &bundle).expect("bundle");
    assert_eq!(certs.len(), 2, "ca/ca.crt trusts both");
    let crls = std::fs::read_to_string(pki.layout().ca_crl()).expect("crl");
    assert_eq!(crls.matches("BEGIN X509 CRL").count(), 2, "one CRL per CA");
    srv.tls.reload().expect("reload after introduce");
    accepted(&srv, &bundle, &old_client);
    let doomed = pki.issue_client("doomed");

    // Phase 2: the new CA issues; the old one keeps signing its own CRL.
    folder.rotate_switch().expect("switch");
    srv.tls.reload().expect("reload after switch");
    let new_client = pki.issue_client("new-client");
    accepted(&srv, &bundle, &old_client);
    accepted(&srv, &bundle, &new_client);
    accepted(&srv, &bundle, &doomed);
    let ca = folder.issuer().expect("new CA");
    folder
        .revoke(&ca, "doomed", None)
        .expect("revoke under the old CA");
    srv.tls.reload().expect("reload after revoke");
    let why = refusal(srv.addr, &Opts::mutual(&bundle, &doomed));
    assert!(why.contains("revoked"), "{why}");
    accepted(&srv, &bundle, &old_client);
    // The server itself moves to the new CA; clients trust the bundle, so nothing breaks.
    folder
        .renew(&ca, "server", false, false, None)
        .expect("renew the server");
    srv.tls
        .reload()
        .expect("reload the server's new certificate");
    accepted(&srv, &bundle, &old_client);
    accepted(&srv, &bundle, &new_client);

    // Retiring while certificates of the old CA are in force is refused...
    let e = folder.rotate_retire(false).expect_err("still in force");
    assert!(e.to_string().contains("still chain to the old CA"), "{e}");
    // ...until they are renewed under the new CA.
    assert!(folder.renew_all(&ca).expect("renew all") >= 1);
    let renewed = pki.client();
    accepted(&srv, &bundle, &renewed);
    folder.rotate_retire(false).expect("retire");
    assert_eq!(folder.phase(), Phase::None);
    srv.tls.reload().expect("reload after retire");
    assert_eq!(
        x509::cert::load_certs("bundle", &bundle)
            .expect("bundle")
            .len(),
        1
    );
    accepted(&srv, &bundle, &renewed);
    accepted(&srv, &bundle, &new_client);
    let why = refusal(srv.addr, &Opts::mutual(&bundle, &old_client));
    assert!(
        why.contains("unknown ca") || why.contains("unknown CA"),
        "{why}"
    );
}
