//! `diagnose URL`: probes a server the way a careful person would with `openssl s_client`, and
//! puts what it saw, what it checked and our own files in one [`Report`].

use openssl::x509::X509;

use crate::error::{Failure, FailureClass};
use crate::facts::Endpoint;
use crate::own::OwnCert;
use crate::probe::{self, Handshake};
use crate::report::{self, Report};
use crate::tls::{self, Identity, TlsOptions};

/// Probes `ep` twice at most: our settings; then TLS 1.2 without a certificate, ended by us once
/// the server's certificate request is read ([`probe::certificate_request_probe`]).
pub fn diagnose(ep: &Endpoint, options: &TlsOptions) -> Result<Report, Failure> {
    let cas = x509::cert::load_certs("CA certificate", &options.ca)
        .map_err(|e| tls::local_file(e, "run `make certs` or pass --ca"))?;
    let own = OwnCert::load(options)?;
    let hs = probe::handshake(ep, options, None)?;
    let mut report = Report {
        endpoint: ep.to_string(),
        name: ep.name.clone(),
        chain_check: Err("no TLS handshake".into()),
        name_check: Err("no TLS handshake".into()),
        accepted_ca_names: vec![],
        client_cert_requested: hs.client_cert_requested,
        client_cert_required: None,
        local: report::local_lines(&options.ca, cas.len(), own.as_ref()),
        handshake: hs,
    };
    if failed_as(
        &report.handshake,
        &[
            FailureClass::NotListening,
            FailureClass::Timeout,
            FailureClass::PlainHttp,
        ],
    ) {
        return Ok(report);
    }
    (report.chain_check, report.name_check) =
        server_checks(&report.handshake.peer_chain, &cas, ep, options);
    report.accepted_ca_names = report.handshake.accepted_ca_names.clone();
    if failed_as(&report.handshake, &[FailureClass::ClientCertRequired]) {
        report.client_cert_required = Some(true);
        report.client_cert_requested = Some(true);
    }
    // Chain problems make every further probe fail the same way: skip them.
    if report.chain_check.is_ok() {
        client_policy(&mut report, ep, options);
    }
    Ok(report)
}

fn failed_as(hs: &Handshake, classes: &[FailureClass]) -> bool {
    hs.failure
        .as_ref()
        .is_some_and(|f| classes.contains(&f.class))
}

/// Whether the presented chain verifies against our CA file, and whether it names `ep.name`.
fn server_checks(
    chain: &[X509],
    cas: &[X509],
    ep: &Endpoint,
    options: &TlsOptions,
) -> (Result<(), String>, Result<(), String>) {
    let Some((leaf, rest)) = chain.split_first() else {
        return (
            Err("the server sent no certificate".into()),
            Err("no certificate".into()),
        );
    };
    let check = |host: Option<String>| {
        let o = x509::verify::Options {
            purpose: Some(x509::verify::Purpose::Server),
            host,
            ..Default::default()
        };
        match x509::verify::verify(leaf, rest, cas, &o) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => Err(f.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let chain = check(None);
    let name = match check(Some(ep.name.clone())) {
        Err(e) if chain.is_ok() => Err(e),
        Err(_) => Err("not checked: the chain does not verify".into()),
        Ok(()) => Ok(()),
    };
    let ca = options.ca.display();
    (chain.map_err(|e| format!("{e} (CA file {ca})")), name)
}

/// Whether the server asks for a client certificate, which CAs it names, and whether it
/// requires one. Diagnosing never makes a server refuse a handshake for its own sake: the
/// request is read from a TLS 1.2 probe that ends itself with `user_canceled` before the server
/// judges anything (counted by our server as canceled, not refused), and "required" is known
/// only from our own handshake when it went without a certificate.
fn client_policy(report: &mut Report, ep: &Endpoint, options: &TlsOptions) {
    if options.identity == Identity::None {
        report.client_cert_required = match report.handshake.failure.as_ref().map(|f| f.class) {
            None => Some(false),
            Some(FailureClass::ClientCertRequired) => Some(true),
            Some(_) => report.client_cert_required,
        };
    }
    let Ok(h12) = probe::certificate_request_probe(ep, options) else {
        return;
    };
    // A TLS 1.3-only server refuses TLS 1.2: its request stays unknown (it is encrypted).
    if h12.failure.is_some() {
        return;
    }
    report.client_cert_requested = h12.client_cert_requested;
    match h12.client_cert_requested {
        Some(true) => report.accepted_ca_names.clone_from(&h12.accepted_ca_names),
        Some(false) => report.client_cert_required = Some(false),
        None => {}
    }
}
