//! Every profile and key type, parsed back with x509-parser: extensions, criticality, key,
//! signature algorithm, serial entropy, validity.

use pki::{
    key, request, CertSpec, Issuer, KeyAlgorithm, Profile, Subject, SubjectAltName, Validity,
};
use x509_parser::oid_registry::{
    OID_PKCS1_SHA256WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::*;

const ALL_KEYS: [KeyAlgorithm; 6] = [
    KeyAlgorithm::Rsa2048,
    KeyAlgorithm::Rsa3072,
    KeyAlgorithm::Rsa4096,
    KeyAlgorithm::EcP256,
    KeyAlgorithm::EcP384,
    KeyAlgorithm::Ed25519,
];

fn make_ca(alg: KeyAlgorithm) -> Issuer {
    let k = key::generate(alg).expect("ca key");
    let req = request::build(&k, &pki::init::default_ca_subject()).expect("ca req");
    Issuer::self_sign(&req, k, Validity::days(3650)).expect("self-sign")
}

fn leaf(ca: &Issuer, alg: KeyAlgorithm, profile: Profile, names: Vec<SubjectAltName>) -> Vec<u8> {
    let k = key::generate(alg).expect("leaf key");
    let req =
        request::build(&k, &Subject::new(profile.default_organization(), "leaf")).expect("req");
    ca.sign(&req, &CertSpec::new(profile).names(names))
        .expect("sign")
        .to_der()
        .expect("der")
}

fn expected_sig(alg: KeyAlgorithm) -> x509_parser::der_parser::Oid<'static> {
    match alg {
        KeyAlgorithm::EcP256 => OID_SIG_ECDSA_WITH_SHA256,
        KeyAlgorithm::EcP384 => OID_SIG_ECDSA_WITH_SHA384,
        KeyAlgorithm::Ed25519 => OID_SIG_ED25519,
        _ => OID_PKCS1_SHA256WITHRSA,
    }
}

fn validity_days(c: &X509Certificate<'_>) -> i64 {
    (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86_400
}

fn check_common(c: &X509Certificate<'_>, signer: KeyAlgorithm) {
    assert_eq!(c.version(), X509Version::V3);
    assert_eq!(
        c.signature_algorithm.algorithm,
        expected_sig(signer),
        "signature algorithm"
    );
    let serial = c.serial.clone();
    assert!(
        serial.bits() >= 64 && serial.bits() <= 159,
        "serial of {} bits",
        serial.bits()
    );
    assert!(c.raw_serial()[0] & 0x80 == 0, "serial must be positive");
    let now = ::x509::time::now();
    let nb = c.validity().not_before.timestamp();
    assert!(
        nb < now && nb > now - 3600,
        "not-before slightly in the past"
    );
    assert!(c.subject_key_identifier().is_some(), "SKI present");
}

trait Ski {
    fn subject_key_identifier(&self) -> Option<()>;
}
impl Ski for X509Certificate<'_> {
    fn subject_key_identifier(&self) -> Option<()> {
        self.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(_) => Some(()),
                _ => None,
            })
    }
}

fn aki(c: &X509Certificate<'_>) -> Option<Vec<u8>> {
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

#[test]
fn ca_profile_for_every_key_type() {
    for alg in ALL_KEYS {
        let ca = make_ca(alg);
        let der = ca.certificate().to_der().expect("der");
        let (_, c) = X509Certificate::from_der(&der).expect("parse");
        check_common(&c, alg);
        let bc = c.basic_constraints().expect("bc").expect("bc present");
        assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint == Some(0));
        let ku = c.key_usage().expect("ku").expect("ku present");
        assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(!ku.value.digital_signature());
        assert!(
            c.extended_key_usage().expect("eku").is_none(),
            "a root carries no EKU"
        );
        assert_eq!(c.subject(), c.issuer());
        assert_eq!(validity_days(&c), 3650);
        assert!(c
            .subject()
            .to_string()
            .contains("O=https Project Certificate Authority"));
    }
}

#[test]
fn server_profile_for_every_key_type() {
    for alg in ALL_KEYS {
        let ca = make_ca(KeyAlgorithm::EcP256);
        let der = leaf(&ca, alg, Profile::Server, SubjectAltName::localhost());
        let (_, c) = X509Certificate::from_der(&der).expect("parse");
        check_common(&c, KeyAlgorithm::EcP256);
        let bc = c.basic_constraints().expect("bc").expect("bc present");
        assert!(bc.critical && !bc.value.ca);
        let ku = c.key_usage().expect("ku").expect("ku present");
        assert!(ku.critical && ku.value.digital_signature());
        assert_eq!(
            ku.value.key_encipherment(),
            alg.is_rsa(),
            "keyEncipherment only for RSA ({alg})"
        );
        assert!(!ku.value.key_cert_sign());
        let eku = c.extended_key_usage().expect("eku").expect("eku present");
        assert!(!eku.critical && eku.value.server_auth && !eku.value.client_auth);
        let san = c
            .subject_alternative_name()
            .expect("san")
            .expect("san present");
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|g| g.to_string())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(
            matches!(san.value.general_names[1], GeneralName::IPAddress(b) if b == [127, 0, 0, 1])
        );
        assert!(matches!(san.value.general_names[2], GeneralName::IPAddress(b) if b.len() == 16));
        let ca_ski = {
            let der = ca.certificate().to_der().expect("der");
            let (_, cac) = X509Certificate::from_der(&der).expect("parse");
            cac.extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                    _ => None,
                })
        };
        assert_eq!(aki(&c), ca_ski, "AKI names the CA's SKI");
        assert_eq!(validity_days(&c), 365);
    }
}

#[test]
fn client_profile_and_optional_names() {
    let ca = make_ca(KeyAlgorithm::EcP384);
    let names = vec![
        "URI:spiffe://example.org/device/7".parse().expect("uri"),
        "email:ops@example.org".parse().expect("email"),
    ];
    for names in [vec![], names] {
        let der = leaf(&ca, KeyAlgorithm::EcP256, Profile::Client, names.clone());
        let (_, c) = X509Certificate::from_der(&der).expect("parse");
        check_common(&c, KeyAlgorithm::EcP384);
        let eku = c.extended_key_usage().expect("eku").expect("eku present");
        assert!(eku.value.client_auth && !eku.value.server_auth);
        let ku = c.key_usage().expect("ku").expect("ku");
        assert!(ku.value.digital_signature() && !ku.value.key_encipherment());
        let san = c.subject_alternative_name().expect("san");
        assert_eq!(san.map_or(0, |s| s.value.general_names.len()), names.len());
        assert!(aki(&c).is_some());
    }
}

#[test]
fn a_server_without_names_is_refused() {
    let ca = make_ca(KeyAlgorithm::EcP256);
    let k = key::generate(KeyAlgorithm::EcP256).expect("key");
    let req = request::build(&k, &Subject::new("https Project", "localhost")).expect("req");
    let e = ca
        .sign(&req, &CertSpec::new(Profile::Server))
        .expect_err("must fail");
    assert!(
        e.to_string().contains("needs at least one subjectAltName"),
        "{e}"
    );
}

#[test]
fn serials_are_random_not_sequential() {
    let ca = make_ca(KeyAlgorithm::EcP256);
    let serials: Vec<_> = (0..8)
        .map(|_| {
            let der = leaf(&ca, KeyAlgorithm::EcP256, Profile::Client, vec![]);
            X509Certificate::from_der(&der)
                .expect("parse")
                .1
                .serial
                .clone()
        })
        .collect();
    for (i, a) in serials.iter().enumerate() {
        for b in &serials[i + 1..] {
            let diff = if a > b { a - b } else { b - a };
            assert!(diff.bits() > 64, "serials too close: {a:x} {b:x}");
        }
    }
}

#[test]
fn a_leaf_never_outlives_its_ca() {
    let k = key::generate(KeyAlgorithm::EcP256).expect("key");
    let req = request::build(&k, &pki::init::default_ca_subject()).expect("req");
    let ca = Issuer::self_sign(&req, k, Validity::days(30)).expect("ca");
    let der = leaf(&ca, KeyAlgorithm::EcP256, Profile::Client, vec![]);
    let (_, c) = X509Certificate::from_der(&der).expect("parse");
    let ca_der = ca.certificate().to_der().expect("der");
    let (_, cac) = X509Certificate::from_der(&ca_der).expect("parse");
    assert_eq!(c.validity().not_after, cac.validity().not_after);
}
