use super::*;
use crate::config::ClientAuth;

fn crl_number(tls: &TlsReloader) -> Option<u64> {
    tls.current().info.crl.as_ref().and_then(|c| c.number)
}

#[test]
fn a_fetched_crl_swaps_in_from_memory_once_and_the_watcher_sees_no_change() {
    let pki = testkit::TestPki::new();
    let mut config = Config::for_pki(pki.dir(), ClientAuth::Required);
    let path = pki.scratch().join("fetched.crl");
    std::fs::copy(pki.layout().ca_crl(), &path).expect("copy");
    config.crl = Some(path.clone());
    let (tls, _acceptor) = TlsReloader::new(&config, None).expect("tls");
    assert_eq!(crl_number(&tls), Some(1));
    // A revocation: CRL number 2, as the feed hands it over (parsed and checked by it).
    pki.folder
        .revoke(&pki.folder.issuer().expect("ca"), "client", None)
        .expect("revoke");
    let pem = std::fs::read(pki.layout().ca_crl()).expect("crl");
    let crl = X509Crl::from_pem(&pem).expect("crl");
    let ca = x509::cert::load_cert("CA", &pki.layout().ca_cert()).expect("ca");
    // The copy on disk is junk: a swap that read any file would fail.
    std::fs::write(&path, b"junk").expect("junk");
    let loaded = tls.swap_crl(crl, &ca, &pem).expect("swap");
    assert_eq!(loaded.generation, 1, "one new context");
    assert_eq!(crl_number(&tls), Some(2));
    assert_eq!(
        std::fs::read(&path).expect("copy"),
        pem,
        "the copy the next start reads"
    );
    assert!(
        !tls.files_changed(),
        "the file watcher would reload a second time"
    );
    // A change made by someone else is still seen.
    std::fs::write(&path, b"another").expect("write");
    assert!(tls.files_changed());
    assert!(tls.reload().is_err(), "junk does not load");
    assert_eq!(
        crl_number(&tls),
        Some(2),
        "the swapped-in CRL keeps serving"
    );
    assert!(
        !tls.files_changed(),
        "a failed reload is not retried until the next change"
    );
}
