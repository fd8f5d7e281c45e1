//! Renewal information (RFC 9773) and revocation (RFC 8555 §7.6). A certificate's renewal
//! window sits in the last third of its life, and moves into the past when it is revoked or
//! its CA is no longer the issuing one (a rotation switched it out), so clients renew at their
//! next check. A revocation reaches the CRL in the same transaction.

use openssl::bn::BigNumContext;
use openssl::ec::PointConversionForm;
use openssl::pkey::{Id, PKeyRef, Public};
use openssl::x509::X509;
use pki::index::Reason;
use pki::store::acme::AcmeObject;
use pki::store::State;
use serde_json::{json, Map, Value};

use crate::jws::{b64, b64_encode, thumbprint};
use crate::model::rfc3339;
use crate::problem::{Kind, Problem};
use crate::service::{Acme, Authed, Body, Reply};

/// How often a client should ask again (`Retry-After` of renewalInfo).
pub const RENEWAL_INFO_RETRY_SECS: u64 = 6 * 3600;

/// The ARI certificate id of (issuer key id, serial), both upper-case hex as the records
/// keep them: `base64url(keyIdentifier) "." base64url(serial's DER content octets)`.
pub fn cert_id(aki: &str, serial: &str) -> Option<String> {
    let key = hex(aki)?;
    let mut serial = hex(serial)?;
    if serial.first().is_some_and(|b| b & 0x80 != 0) {
        serial.insert(0, 0);
    }
    Some(format!("{}.{}", b64_encode(key), b64_encode(serial)))
}

/// The (issuer key id, serial) of an ARI certificate id.
pub fn parse_cert_id(id: &str) -> Result<(String, String), Problem> {
    let (key, serial) = id.split_once('.').ok_or_else(|| {
        Problem::malformed(format!(
            "{id:?} is not a certificate id (keyIdentifier.serial)"
        ))
    })?;
    let key = b64(key, "certificate id")?;
    let serial = b64(serial, "certificate id")?;
    let serial: Vec<u8> = serial.into_iter().skip_while(|b| *b == 0).collect();
    if key.is_empty() || serial.is_empty() {
        return Err(Problem::malformed(format!(
            "{id:?} is not a certificate id"
        )));
    }
    Ok((upper_hex(&key), upper_hex(&serial)))
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let s = if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_owned()
    };
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn upper_hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02X}")).collect()
}

impl Acme {
    /// `renewal-info/{id}`: the window in which to renew that certificate.
    pub fn renewal_info(&self, id: &str) -> Result<Reply, Problem> {
        let (aki, serial) = parse_cert_id(id)?;
        let record = self
            .authority
            .records()
            .certificate(&aki, &serial)?
            .ok_or_else(|| {
                Problem::new(
                    Kind::NotFound,
                    format!("no certificate {serial} of this CA"),
                )
            })?;
        let now = x509::time::now();
        let replaced_ca = aki != self.authority.aki();
        let (start, end, why) = if record.state == State::Revoked {
            (now - 2 * 86_400, now - 86_400, Some("it was revoked"))
        } else if replaced_ca {
            (
                now - 2 * 86_400,
                now - 86_400,
                Some("its CA was switched out in a rotation"),
            )
        } else {
            let life = (record.not_after - record.not_before).max(1);
            (
                record.not_before + life * 2 / 3,
                record.not_before + life * 5 / 6,
                None,
            )
        };
        let body = json!({"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}});
        if let Some(why) = why {
            tracing::debug!(serial = %serial, why, "ACME renewal info: renew now");
        }
        let mut reply = Reply::json(body);
        reply.retry_after = Some(RENEWAL_INFO_RETRY_SECS);
        Ok(reply)
    }

    /// `revoke-cert`: by the account that ordered it, or signed by the certificate's own key.
    pub(crate) fn revoke(&self, a: &Authed) -> Result<Reply, Problem> {
        let payload = a.payload()?;
        let der = b64(
            payload
                .get("certificate")
                .and_then(Value::as_str)
                .ok_or_else(|| Problem::malformed("the payload has no certificate"))?,
            "certificate",
        )?;
        let cert =
            X509::from_der(&der).map_err(|_| Problem::malformed("the certificate is not DER"))?;
        let reason = reason(payload.get("reason"))?;
        let aki = cert
            .authority_key_id()
            .map(|k| upper_hex(k.as_slice()))
            .ok_or_else(|| Problem::unauthorized("the certificate was not issued by this CA"))?;
        let serial = x509::cert::serial_hex(&cert).map_err(|e| Problem::from_pki(e.into()))?;
        let record = self.authority.records().certificate(&aki, &serial)?;
        if record.and_then(|r| r.der).as_deref() != Some(der.as_slice()) {
            return Err(Problem::unauthorized(
                "the certificate was not issued by this CA",
            ));
        }
        match (&a.account, &a.jwk) {
            (Some(account), _) => {
                let owner = self
                    .authority
                    .records()
                    .with(|db| db.acme_get(&[&cert_object_id(&aki, &serial)]))?;
                if !owner.iter().any(|o| o.account == account.id) {
                    return Err(Problem::unauthorized(
                        "this account did not order the certificate: sign with the certificate's key instead",
                    ));
                }
            }
            (None, Some(jwk)) => {
                let public = cert
                    .public_key()
                    .map_err(|_| Problem::malformed("the certificate's key"))?;
                if thumbprint(&jwk_of(&public)?)? != thumbprint(jwk)? {
                    return Err(Problem::unauthorized(
                        "the request is not signed by the certificate's key",
                    ));
                }
            }
            (None, None) => return Err(Problem::unauthorized("nobody signed this request")),
        }
        if !self.authority.revoke(&aki, &serial, reason)? {
            return Err(Problem::new(
                Kind::AlreadyRevoked,
                format!("certificate {serial} was revoked already"),
            ));
        }
        tracing::info!(serial = %serial, reason = reason.map_or("unspecified", |r| r.as_str()), "ACME certificate revoked; CRL re-signed");
        let mut reply = Reply::json(Value::Null);
        reply.body = Body::Empty;
        Ok(reply)
    }

    /// Remembers which account ordered a certificate (for revocation by that account).
    pub(crate) fn record_owner(
        &self,
        account: &str,
        aki: &str,
        serial: &str,
        order: &str,
        not_after: i64,
    ) -> Result<(), Problem> {
        let id = cert_object_id(aki, serial);
        // A retried finalization may get the same certificate back: it is on record already.
        if !self
            .authority
            .records()
            .with(|db| db.acme_get(&[&id]))?
            .is_empty()
        {
            return Ok(());
        }
        let row = AcmeObject {
            id,
            kind: "cert".into(),
            account: account.into(),
            status: "valid".into(),
            created_at: x509::time::now(),
            expires_at: not_after,
            body: json!({"order": order}).to_string(),
        };
        Ok(self.authority.records().with(|db| db.acme_put(&[row]))?)
    }
}

fn cert_object_id(aki: &str, serial: &str) -> String {
    format!("cert.{aki}.{serial}")
}

/// RFC 5280 reason codes ACME clients send; the CA's own (CACompromise) and the removal
/// codes are not theirs to give.
fn reason(v: Option<&Value>) -> Result<Option<Reason>, Problem> {
    let Some(v) = v else { return Ok(None) };
    Ok(Some(match v.as_u64() {
        Some(0) => Reason::Unspecified,
        Some(1) => Reason::KeyCompromise,
        Some(3) => Reason::AffiliationChanged,
        Some(4) => Reason::Superseded,
        Some(5) => Reason::CessationOfOperation,
        _ => {
            return Err(Problem::new(
                Kind::BadRevocationReason,
                format!("reason {v}: use 0, 1, 3, 4 or 5 (RFC 5280)"),
            ))
        }
    }))
}

/// The JWK of a public key (EC P-256/P-384, RSA, Ed25519), to compare with a request's.
fn jwk_of(key: &PKeyRef<Public>) -> Result<Map<String, Value>, Problem> {
    let bad = || {
        Problem::new(
            Kind::BadPublicKey,
            "the certificate's key type is not one ACME signs with",
        )
    };
    let mut m = Map::new();
    match key.id() {
        Id::EC => {
            let ec = key.ec_key().map_err(|_| bad())?;
            let (crv, len) = match ec.group().curve_name() {
                Some(openssl::nid::Nid::X9_62_PRIME256V1) => ("P-256", 32),
                Some(openssl::nid::Nid::SECP384R1) => ("P-384", 48),
                _ => return Err(bad()),
            };
            let mut ctx = BigNumContext::new().map_err(|_| bad())?;
            let point = ec
                .public_key()
                .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
                .map_err(|_| bad())?;
            if point.len() != 1 + 2 * len {
                return Err(bad());
            }
            m.insert("kty".into(), json!("EC"));
            m.insert("crv".into(), json!(crv));
            m.insert("x".into(), json!(b64_encode(&point[1..=len])));
            m.insert("y".into(), json!(b64_encode(&point[1 + len..])));
        }
        Id::RSA => {
            let rsa = key.rsa().map_err(|_| bad())?;
            m.insert("kty".into(), json!("RSA"));
            m.insert("n".into(), json!(b64_encode(rsa.n().to_vec())));
            m.insert("e".into(), json!(b64_encode(rsa.e().to_vec())));
        }
        Id::ED25519 => {
            let raw = key.raw_public_key().map_err(|_| bad())?;
            m.insert("kty".into(), json!("OKP"));
            m.insert("crv".into(), json!("Ed25519"));
            m.insert("x".into(), json!(b64_encode(raw)));
        }
        _ => return Err(bad()),
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_id_goes_both_ways() {
        // RFC 9773 §4.1's example: keyIdentifier 69:88:5B:6B…, serial 00:87:65:43:21.
        let aki = "69885B6B87464041E1B37B847BA0AE2CDE01C8D4";
        let id = cert_id(aki, "87654321").expect("id");
        assert_eq!(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
        assert_eq!(
            parse_cert_id(&id).expect("parse"),
            (aki.into(), "87654321".into())
        );
        assert!(parse_cert_id("nodot").is_err());
    }

    #[test]
    fn only_the_subscribers_reasons_are_taken() {
        assert_eq!(reason(None).expect("none"), None);
        assert_eq!(
            reason(Some(&json!(1))).expect("1"),
            Some(Reason::KeyCompromise)
        );
        assert_eq!(
            reason(Some(&json!(2))).expect_err("2").kind,
            Kind::BadRevocationReason
        );
        assert_eq!(
            reason(Some(&json!("1"))).expect_err("text").kind,
            Kind::BadRevocationReason
        );
    }

    #[test]
    fn a_certificates_key_gives_the_jwk_its_holder_signs_with() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .expect("group"),
        )
        .expect("key");
        let private = openssl::pkey::PKey::from_ec_key(ec).expect("pkey");
        let public =
            openssl::pkey::PKey::public_key_from_der(&private.public_key_to_der().expect("der"))
                .expect("public");
        let jwk = josekit::jwk::Jwk::from_bytes(
            josekit::jwk::alg::ec::EcKeyPair::from_der(
                private.private_key_to_pkcs8().expect("der"),
                None,
            )
            .expect("pair")
            .to_jwk_public_key()
            .to_string(),
        )
        .expect("jwk");
        let theirs: Map<String, Value> = jwk.into();
        assert_eq!(
            thumbprint(&jwk_of(&public).expect("jwk")).expect("t"),
            thumbprint(&theirs).expect("t")
        );
    }
}
