//! Where verifiers fetch the CRL: the crlDistributionPoints extension (RFC 5280 §4.2.1.13)
//! that certificates carry while the CA has a public URL (`ca --public-url`), as
//! `crlDistributionPoints = URI:https://ca.example:8443/crl` in an openssl `-extfile`.
//!
//! The openssl crate has no builder for it, and the config-string route
//! (`X509Extension::new_nid`) is deprecated and would split a URL at its commas, so the
//! extension is encoded here from its ASN.1, which is four nested tags around the URL:
//!
//! ```text
//! CRLDistributionPoints ::= SEQUENCE OF DistributionPoint          -- 30
//! DistributionPoint ::= SEQUENCE { distributionPoint [0] ... }     -- 30, A0 (explicit: a CHOICE)
//! DistributionPointName ::= CHOICE { fullName [0] GeneralNames }   -- A0 (implicit SEQUENCE OF)
//! GeneralName ::= CHOICE { uniformResourceIdentifier [6] IA5String } -- 86
//! ```

use openssl::asn1::{Asn1Object, Asn1OctetString};
use openssl::nid::Nid;
use openssl::x509::X509Extension;

use crate::error::{CryptoContext, Error, Result};

/// Checks that `url` can be a distribution point: `http://` or `https://`, printable ASCII
/// (an IA5String), no spaces.
pub fn check_url(url: &str) -> Result<()> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let printable = url.bytes().all(|b| b.is_ascii_graphic());
    if scheme_ok && printable && url.len() < 1024 {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "{:?} cannot be a CRL distribution point: give an http:// or https:// URL of \
             printable ASCII without spaces",
            url.escape_debug().to_string()
        )))
    }
}

/// The crlDistributionPoints extension naming `url` (non-critical, as RFC 5280 recommends).
pub fn extension(url: &str) -> Result<X509Extension> {
    check_url(url)?;
    let uri = tlv(0x86, url.as_bytes());
    let full_name = tlv(0xA0, &uri);
    let point_name = tlv(0xA0, &full_name);
    let point = tlv(0x30, &point_name);
    let points = tlv(0x30, &point);
    let oid = Asn1Object::from_str(Nid::CRL_DISTRIBUTION_POINTS.short_name().step("asn1")?)
        .step("asn1")?;
    let value = Asn1OctetString::new_from_bytes(&points).step("asn1")?;
    X509Extension::new_from_der(&oid, false, &value).step("x509 -extfile")
}

/// One DER tag-length-value (definite length, short or long form).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_that_cannot_be_an_ia5_uri_are_refused() {
        for bad in [
            "ftp://x/crl",
            "https://a b/crl",
            "https://é.example/crl",
            "crl",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:8443/crl").is_ok());
    }
}
