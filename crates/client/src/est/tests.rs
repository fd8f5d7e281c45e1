use super::*;

#[test]
fn est_urls_default_to_the_well_known_path() {
    let s = |u: &str| split_url(u).expect(u);
    assert_eq!(
        s("https://ca:8443"),
        ("https://ca:8443".into(), "/.well-known/est".into())
    );
    assert_eq!(
        s("https://ca:8443/"),
        ("https://ca:8443".into(), "/.well-known/est".into())
    );
    assert_eq!(
        s("https://ca:8443/.well-known/est/fleet/"),
        ("https://ca:8443".into(), "/.well-known/est/fleet".into())
    );
    assert!(split_url("http://ca:8443").is_err());
}

#[test]
fn only_refusals_that_retrying_cannot_change_stop_a_daemon() {
    let refused = |status| EstError::Refused {
        status,
        reason: String::new(),
        retry_after: None,
    };
    assert!(refused(403).permanent());
    assert!(refused(400).permanent());
    assert!(!refused(503).permanent());
    assert!(!refused(429).permanent());
    assert!(!refused(408).permanent());
    assert!(!EstError::BadAnswer(String::new()).permanent());
    assert_eq!(format!("{:?}", Token("s3cret".into())), "Token(<redacted>)");
}

#[test]
fn a_renewal_request_asks_for_the_same_subject_and_names() {
    let key = x509::key::generate(KeyAlgorithm::EcP256).expect("key");
    let subject = x509::Subject::new("O", "dev-1")
        .to_x509_name()
        .expect("name");
    let sans = vec!["DNS:dev-1.example".to_owned(), "IP:10.0.0.7".to_owned()];
    let csr = request(&key, &subject, &sans).expect("csr");
    assert!(csr.verify(&csr.public_key().expect("pub")).expect("verify"));
    let der = csr.to_der().expect("der");
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .expect("parse");
    let mut names = Vec::new();
    for ext in parsed.requested_extensions().into_iter().flatten() {
        if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
            names.extend(san.general_names.iter().map(|g| g.to_string()));
        }
    }
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(csr
        .subject_name()
        .try_cmp(&subject)
        .is_ok_and(|o| o.is_eq()));
}
