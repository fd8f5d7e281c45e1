//! What a request may ask for, as pure functions of its DER: a device certificate is the
//! client profile under the device's name, so a request that asks for serverAuth, for a CA,
//! or for names the CA does not give devices is refused (not silently trimmed: the device
//! would hold a certificate other than the one it asked for). The issued certificate's
//! extensions always come from the profile ([`pki::Folder::sign_request`]), never from here.

use std::collections::BTreeSet;
use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Refusal;

/// What a PKCS#10 request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The subject's CN (the device name), if any.
    pub cn: Option<String>,
    /// Requested subjectAltNames, as `DNS:x`, `IP:x`, `email:x`, `URI:x`.
    pub sans: BTreeSet<String>,
    /// Whether it asks for extendedKeyUsage serverAuth.
    pub server_auth: bool,
    /// Whether it asks for basicConstraints CA:TRUE.
    pub ca: bool,
}

/// Reads what the request in `der` asks for (a 400 when it does not parse).
pub fn asked(der: &[u8]) -> Result<Asked, Refusal> {
    let (rest, req) = X509CertificationRequest::from_der(der).map_err(|_| {
        Refusal::bad("the body is not a DER PKCS#10 certificate request (openssl req -outform DER)")
    })?;
    if !rest.is_empty() {
        return Err(Refusal::bad(format!(
            "{} bytes follow the request's DER: send the request alone (openssl req -outform DER)",
            rest.len()
        )));
    }
    let cn = req
        .certification_request_info
        .subject
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .map(str::to_owned);
    let mut out = Asked {
        cn,
        sans: BTreeSet::new(),
        server_auth: false,
        ca: false,
    };
    for ext in req.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                out.sans.extend(san.general_names.iter().map(general_name));
            }
            ParsedExtension::ExtendedKeyUsage(eku) => out.server_auth |= eku.server_auth,
            ParsedExtension::BasicConstraints(bc) => out.ca |= bc.ca,
            _ => {}
        }
    }
    Ok(out)
}

/// The subjectAltNames of a certificate, in the same form as [`Asked::sans`].
pub fn cert_sans(der: &[u8]) -> BTreeSet<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return BTreeSet::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return BTreeSet::new();
    };
    san.value.general_names.iter().map(general_name).collect()
}

/// A first enrollment: the device's name is the request's CN (it must pass the name rule),
/// and the request asks for nothing a device certificate does not carry.
pub fn first_enrollment(asked: &Asked) -> Result<pki::Name, Refusal> {
    refuse_what_devices_never_get(asked)?;
    if !asked.sans.is_empty() {
        return Err(Refusal::bad(format!(
            "the request asks for subjectAltName {}: device certificates of this CA carry \
             their name as CN only; ask for none",
            list(&asked.sans)
        )));
    }
    let cn = asked.cn.as_deref().ok_or_else(|| {
        Refusal::bad("the request has no CN: put the device name in it (-subj /CN=dev-42)")
    })?;
    pki::Name::parse(cn).map_err(Refusal::from_pki)
}

/// A renewal (RFC 7030 §4.2.2): the same identity (the certificate's subject, or the device's
/// own enrollment template with the same CN) and the same names as the certificate renewed.
pub fn renewal(
    asked: &Asked,
    same_identity: bool,
    cert_sans: &BTreeSet<String>,
) -> Result<(), Refusal> {
    refuse_what_devices_never_get(asked)?;
    if !same_identity {
        return Err(Refusal::bad(
            "a renewal keeps the subject: the request names another device than the \
             certificate being renewed (its CN must be the device's name; RFC 7030 §4.2.2)",
        ));
    }
    if &asked.sans != cert_sans {
        return Err(Refusal::bad(format!(
            "a renewal keeps the names: the request asks for [{}], the certificate has [{}] \
             (RFC 7030 §4.2.2)",
            list(&asked.sans),
            list(cert_sans)
        )));
    }
    Ok(())
}

fn refuse_what_devices_never_get(asked: &Asked) -> Result<(), Refusal> {
    if asked.server_auth {
        return Err(Refusal::bad(
            "the request asks for extendedKeyUsage serverAuth: a device certificate is for TLS \
             clients only (clientAuth)",
        ));
    }
    if asked.ca {
        return Err(Refusal::bad(
            "the request asks for basicConstraints CA:TRUE: this CA issues no CA certificates",
        ));
    }
    Ok(())
}

fn list(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// openssl's `TYPE:value` form of one name.
fn general_name(g: &GeneralName<'_>) -> String {
    match g {
        GeneralName::DNSName(d) => format!("DNS:{}", d.to_ascii_lowercase()),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
            Ok(v4) => format!("IP:{}", IpAddr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(*b) {
                Ok(v6) => format!("IP:{}", IpAddr::from(v6)),
                Err(_) => format!("IP:<{} bytes>", b.len()),
            },
        },
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};

    /// A request for CN=`cn` with `exts` requested, DER.
    fn csr(cn: &str, exts: &[&str]) -> Vec<u8> {
        let key = pki::key::generate(pki::KeyAlgorithm::EcP256).expect("key");
        let mut b = openssl::x509::X509Req::builder().expect("builder");
        let mut name = openssl::x509::X509Name::builder().expect("name");
        name.append_entry_by_text("CN", cn).expect("cn");
        b.set_subject_name(&name.build()).expect("subject");
        b.set_pubkey(&key).expect("key");
        let mut stack = openssl::stack::Stack::new().expect("stack");
        for e in exts {
            let ext = match *e {
                "san" => SubjectAlternativeName::new()
                    .dns("Evil.example")
                    .ip("10.0.0.1")
                    .build(&b.x509v3_context(None))
                    .expect("san"),
                "server" => ExtendedKeyUsage::new().server_auth().build().expect("eku"),
                "ca" => BasicConstraints::new().ca().build().expect("bc"),
                _ => unreachable!(),
            };
            stack.push(ext).expect("push");
        }
        if !exts.is_empty() {
            b.add_extensions(&stack).expect("exts");
        }
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .expect("sign");
        b.build().to_der().expect("der")
    }

    #[test]
    fn a_plain_device_request_passes_under_its_cn() {
        let a = asked(&csr("dev-42", &[])).expect("parse");
        assert_eq!(first_enrollment(&a).expect("ok").as_str(), "dev-42");
    }

    #[test]
    fn what_a_device_never_gets_is_refused_with_its_reason() {
        for (exts, words) in [
            (&["server"][..], "serverAuth"),
            (&["ca"][..], "CA:TRUE"),
            (&["san"][..], "DNS:evil.example, IP:10.0.0.1"),
        ] {
            let a = asked(&csr("dev-42", exts)).expect("parse");
            let r = first_enrollment(&a).expect_err("refused");
            assert_eq!(r.status, 400);
            assert!(r.reason.contains(words), "{}", r.reason);
        }
        let r = first_enrollment(&asked(&csr("../etc", &[])).expect("parse")).expect_err("name");
        assert!(r.reason.contains("refused the name"), "{}", r.reason);
        assert_eq!(asked(b"\x30\x03junk").expect_err("junk").status, 400);
    }

    #[test]
    fn a_renewal_keeps_subject_and_names() {
        let a = asked(&csr("dev-42", &["san"])).expect("parse");
        let same: BTreeSet<String> = ["DNS:evil.example", "IP:10.0.0.1"]
            .into_iter()
            .map(String::from)
            .collect();
        assert!(renewal(&a, true, &same).is_ok());
        assert!(renewal(&a, false, &same)
            .expect_err("subject")
            .reason
            .contains("subject"));
        let r = renewal(&a, true, &BTreeSet::new()).expect_err("names");
        assert!(r.reason.contains("keeps the names"), "{}", r.reason);
    }
}
