//! EST's wire formats (RFC 7030 §4, as clarified by RFC 8951): bodies are base64 of DER
//! whatever `Content-Transfer-Encoding` says; requests are PKCS#10, answers are certs-only
//! CMS SignedData (`openssl crl2pkcs7 -nocrl -certfile …`); HTTP Basic carries the token.
//! Pure functions over untrusted input.

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cms::cert::x509::der::oid::ObjectIdentifier;
use cms::cert::x509::der::{Decode, Encode};
use openssl::x509::X509Ref;

use crate::error::Refusal;

/// id-data (RFC 5652 §4): the content type a certs-only message encapsulates (none).
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");

/// id-signedData (RFC 5652 §5).
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// `Content-Type` of a request body: a PKCS#10 request.
pub const PKCS10: &str = "application/pkcs10";

/// `Content-Type` of `cacerts`.
pub const PKCS7: &str = "application/pkcs7-mime";

/// `Content-Type` of an enrollment's answer.
pub const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";

/// The base64 body of an EST message, ASCII whitespace (line breaks) ignored.
pub fn decode_base64(body: &[u8]) -> Result<Vec<u8>, Refusal> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(Refusal::bad(
            "the body is empty: send a base64-encoded DER PKCS#10 request",
        ));
    }
    STANDARD.decode(&compact).map_err(|e| {
        Refusal::bad(format!(
            "the body is not base64 ({e}): send a base64-encoded DER PKCS#10 request \
             (openssl req -outform DER | openssl base64)"
        ))
    })
}

/// `der` as base64 in lines of 64 characters, as `openssl base64` writes and reads it.
pub fn encode_base64(der: &[u8]) -> String {
    x509::cert::base64_lines(der, "\r\n")
}

/// A degenerate, certs-only SignedData (RFC 5652 §5, no signers) holding `certs`: what
/// `cacerts` and the enrollments answer.
pub fn certs_only(certs: &[&X509Ref]) -> Result<Vec<u8>, String> {
    use cms::cert::x509::der::asn1::SetOfVec;
    use cms::cert::x509::der::Any;
    use cms::cert::CertificateChoices;
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};

    let mut set = Vec::with_capacity(certs.len());
    for c in certs {
        let der = c.to_der().map_err(|e| e.to_string())?;
        let parsed = cms::cert::x509::Certificate::from_der(&der).map_err(|e| e.to_string())?;
        set.push(CertificateChoices::Certificate(parsed));
    }
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(set).map_err(|e| e.to_string())?,
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed).map_err(|e| e.to_string())?,
    }
    .to_der()
    .map_err(|e| e.to_string())
}

/// HTTP Basic credentials (RFC 7617). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Basic {
    /// The user name (for EST enrollment: the device name, or empty).
    pub user: String,
    /// The password (the enrollment token).
    pub password: String,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The Basic credentials of a request: `None` without an `Authorization` header, a 401 for
/// one that is not Basic or not `user:password` in base64.
pub fn basic(headers: &HeaderMap) -> Result<Option<Basic>, Refusal> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        Refusal::unauthorized(
            "the Authorization header is not HTTP Basic user:token in base64 (curl -u NAME:TOKEN)",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let raw = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(raw).map_err(|_| malformed())?;
    let (user, password) = text.split_once(':').ok_or_else(malformed)?;
    Ok(Some(Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn base64_bodies_may_be_wrapped_and_nothing_else() {
        let der = (0u8..=255).collect::<Vec<u8>>();
        let wrapped = encode_base64(&der);
        assert!(wrapped.lines().all(|l| l.len() <= 64), "{wrapped}");
        assert_eq!(decode_base64(wrapped.as_bytes()).expect("decode"), der);
        for bad in [&b""[..], b"  \r\n", b"not base64!", b"AAA"] {
            let r = decode_base64(bad).expect_err("refused");
            assert_eq!(r.status, 400, "{bad:?}");
        }
    }

    #[test]
    fn certs_only_holds_the_certificates_and_no_signer() {
        let pki = testkit::TestPki::new();
        let ca = pki.folder.issuer().expect("ca");
        let leaf = openssl::x509::X509::from_pem(
            &std::fs::read(pki.layout().client_cert()).expect("read"),
        )
        .expect("pem");
        let der = certs_only(&[&leaf, ca.certificate()]).expect("p7");
        let p7 = openssl::pkcs7::Pkcs7::from_der(&der).expect("openssl parses it");
        let signed = p7.signed().expect("signedData");
        let certs = signed.certificates().expect("certificates");
        let mut got: Vec<Vec<u8>> = certs.iter().map(|c| c.to_der().expect("der")).collect();
        let mut want = vec![
            leaf.to_der().expect("der"),
            ca.certificate().to_der().expect("der"),
        ];
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn basic_credentials_are_parsed_and_never_shown() {
        let mut h = HeaderMap::new();
        assert_eq!(basic(&h).expect("none"), None);
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("dev-42:s3cret:x")))
                .expect("value"),
        );
        let b = basic(&h).expect("ok").expect("some");
        assert_eq!(
            (b.user.as_str(), b.password.as_str()),
            ("dev-42", "s3cret:x")
        );
        assert!(!format!("{b:?}").contains("s3cret"));
        for bad in [
            "Bearer x",
            "Basic !!!",
            "Basic",
            &format!("Basic {}", STANDARD.encode("nocolon")),
        ] {
            h.insert(AUTHORIZATION, HeaderValue::from_str(bad).expect("value"));
            assert_eq!(basic(&h).expect_err(bad).status, 401, "{bad}");
        }
    }
}
