//! The X.509 facts (`x509`) on certificates this crate's issuer signs: the CRL distribution
//! point as x509-parser reads it back, and each verification failure as a typed problem.

use openssl::x509::{X509Ref, X509};
use pki::verify::{verify, Options, Problem, Purpose};
use pki::{key, request, CertSpec, Issuer, KeyAlgorithm, Profile, Subject, Validity};
use x509::time::now;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// What x509-parser (not our encoder) reads back out of a signed certificate.
fn points_of(url: &str) -> Vec<String> {
    let key = key::generate(KeyAlgorithm::EcP256).expect("key");
    let req = request::build(&key, &Subject::new("O", "ca")).expect("req");
    let ca = Issuer::self_sign(&req, key, Validity::days(2)).expect("ca");
    let leaf_key = key::generate(KeyAlgorithm::EcP256).expect("key");
    let leaf_req = request::build(&leaf_key, &Subject::new("O", "dev")).expect("req");
    let mut spec = CertSpec::new(Profile::Client);
    spec.crl_url = Some(url.to_owned());
    let cert = ca.sign(&leaf_req, &spec).expect("sign");
    let der = cert.to_der().expect("der");
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&der).expect("parse");
    let mut out = Vec::new();
    for ext in parsed.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            assert!(!ext.critical);
            for p in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(u) = n {
                            out.push((*u).to_owned());
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn a_certificate_names_the_url_as_its_only_distribution_point() {
    assert_eq!(
        points_of("https://ca.example:8443/crl"),
        ["https://ca.example:8443/crl"]
    );
    // Long enough for the long length form, with a comma that a config string would split.
    let long = format!("http://ca.example/{},x/crl", "a".repeat(200));
    assert_eq!(points_of(&long), [long]);
}

fn ca(name: &str) -> Issuer {
    let k = key::generate(KeyAlgorithm::EcP256).expect("key");
    let req = request::build(&k, &Subject::new("test", name)).expect("req");
    Issuer::self_sign(&req, k, Validity::days(30)).expect("ca")
}

fn client(ca: &Issuer, validity: Validity) -> X509 {
    let k = key::generate(KeyAlgorithm::EcP256).expect("key");
    let req = request::build(&k, &Subject::new("test", "client")).expect("req");
    let spec = CertSpec::new(Profile::Client).validity(validity);
    ca.sign(&req, &spec).expect("sign")
}

fn problem(cert: &X509Ref, ca: &Issuer) -> Option<Problem> {
    let options = Options {
        purpose: Some(Purpose::Client),
        ..Options::default()
    };
    let cas = [ca.certificate().to_owned()];
    verify(cert, &[], &cas, &options)
        .expect("runs")
        .err()
        .map(|f| {
            assert_eq!(f.plain, f.problem.explain(), "{f}");
            f.problem
        })
}

#[test]
fn each_failure_is_a_typed_problem() {
    let (ours, theirs) = (ca("ours"), ca("theirs"));
    let t = now();
    let good = client(&ours, Validity::days(10));
    assert_eq!(problem(&good, &ours), None);
    assert_eq!(problem(&good, &theirs), Some(Problem::UnknownIssuer));
    let old = client(&ours, Validity::between(t - 20 * 86_400, t - 86_400));
    assert_eq!(problem(&old, &ours), Some(Problem::Expired));
    let early = client(&ours, Validity::between(t + 86_400, t + 20 * 86_400));
    assert_eq!(problem(&early, &ours), Some(Problem::NotYetValid));
    // Our CA certificate has no clientAuth: OpenSSL already refuses it for that.
    assert_eq!(
        problem(ours.certificate(), &ours),
        Some(Problem::WrongPurpose)
    );
}
