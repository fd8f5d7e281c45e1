//! The JWS every ACME POST is (RFC 8555 §6.2): flattened JSON, a protected header with `alg`,
//! `nonce`, `url` and exactly one of `jwk` / `kid`, no unprotected header. Signatures are
//! checked by `josekit` (ES256, ES384, RS256, EdDSA; HS256/384/512 for an external account
//! binding); this module decides what a header must hold.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::Jwk;
use josekit::jws::{self, JwsVerifier};
use serde_json::{Map, Value};

use crate::problem::{Kind, Problem};

/// The account-key algorithms accepted, as the directory would list them.
pub const ALGORITHMS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];

/// Who signed: a key given in full (new-account, revokeCert by the certificate's key), or an
/// account's URL.
#[derive(Debug, Clone, PartialEq)]
pub enum Signer {
    /// `jwk`: the key itself.
    Jwk(Map<String, Value>),
    /// `kid`: the account URL.
    Kid(String),
}

/// A parsed, not yet verified, request.
#[derive(Debug, Clone)]
pub struct Signed {
    /// `alg`.
    pub alg: String,
    /// `nonce` (absent only in an inner JWS: key-change, external account binding).
    pub nonce: Option<String>,
    /// `url`.
    pub url: String,
    /// `jwk` or `kid`.
    pub signer: Signer,
    /// The payload, decoded (empty for POST-as-GET).
    pub payload: Vec<u8>,
    raw: Vec<u8>,
}

/// Parses `body` (flattened JSON serialization) and its protected header.
pub fn parse(body: &[u8]) -> Result<Signed, Problem> {
    let outer: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| Problem::malformed(format!("the body is not a JWS in JSON: {e}")))?;
    if outer.contains_key("header") || outer.contains_key("signatures") {
        return Err(Problem::malformed(
            "use the flattened JWS with a protected header only (RFC 8555 §6.2)",
        ));
    }
    let text = |k: &str| -> Result<&str, Problem> {
        outer
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::malformed(format!("the JWS has no {k}")))
    };
    let protected: Map<String, Value> =
        serde_json::from_slice(&b64(text("protected")?, "protected")?)
            .map_err(|e| Problem::malformed(format!("the protected header is not JSON: {e}")))?;
    let payload = b64(text("payload")?, "payload")?;
    b64(text("signature")?, "signature")?;
    let field = |k: &str| protected.get(k).and_then(Value::as_str).map(str::to_owned);
    let alg = field("alg").ok_or_else(|| Problem::malformed("the protected header has no alg"))?;
    let url = field("url").ok_or_else(|| Problem::malformed("the protected header has no url"))?;
    let signer = match (protected.get("jwk"), field("kid")) {
        (Some(Value::Object(jwk)), None) => Signer::Jwk(jwk.clone()),
        (None, Some(kid)) => Signer::Kid(kid),
        _ => {
            return Err(Problem::malformed(
                "the protected header must hold exactly one of jwk and kid",
            ))
        }
    };
    Ok(Signed {
        alg,
        nonce: field("nonce"),
        url,
        signer,
        payload,
        raw: body.to_vec(),
    })
}

impl Signed {
    /// Checks the signature with `jwk` (an account key: one of [`ALGORITHMS`]).
    pub fn verify(&self, jwk: &Map<String, Value>) -> Result<(), Problem> {
        let jwk = Jwk::from_map(jwk.clone())
            .map_err(|e| Problem::new(Kind::BadPublicKey, format!("the key is not a JWK: {e}")))?;
        let verifier = account_verifier(&self.alg, &jwk)?;
        jws::deserialize_json(&self.raw, &*verifier)
            .map(|_| ())
            .map_err(|_| Problem::malformed("the JWS signature does not verify with its key"))
    }

    /// Checks an HMAC signature (an external account binding) with `key`.
    pub fn verify_hmac(&self, key: &[u8]) -> Result<(), Problem> {
        let alg = match self.alg.as_str() {
            "HS256" => jws::HS256,
            "HS384" => jws::HS384,
            "HS512" => jws::HS512,
            other => {
                return Err(Problem::new(
                    Kind::BadSignatureAlgorithm,
                    format!("the external account binding is signed with {other}; use HS256"),
                ))
            }
        };
        let verifier = alg
            .verifier_from_bytes(key)
            .map_err(|e| Problem::malformed(format!("the binding's HMAC key: {e}")))?;
        jws::deserialize_json(&self.raw, &verifier)
            .map(|_| ())
            .map_err(|_| {
                Problem::unauthorized(
                    "the external account binding's MAC does not verify: wrong HMAC key for this key id",
                )
            })
    }
}

fn account_verifier(alg: &str, jwk: &Jwk) -> Result<Box<dyn JwsVerifier>, Problem> {
    let bad_key = |e: josekit::JoseError| {
        Problem::new(
            Kind::BadPublicKey,
            format!("the key does not suit {alg}: {e}"),
        )
    };
    Ok(match alg {
        "ES256" => Box::new(jws::ES256.verifier_from_jwk(jwk).map_err(bad_key)?),
        "ES384" => Box::new(jws::ES384.verifier_from_jwk(jwk).map_err(bad_key)?),
        "RS256" => Box::new(jws::RS256.verifier_from_jwk(jwk).map_err(bad_key)?),
        "EdDSA" => Box::new(jws::EdDSA.verifier_from_jwk(jwk).map_err(bad_key)?),
        other => {
            return Err(Problem::new(
                Kind::BadSignatureAlgorithm,
                format!(
                    "{other} is not accepted for account keys; use one of {}",
                    ALGORITHMS.join(", ")
                ),
            ))
        }
    })
}

/// The JWK thumbprint (RFC 7638): SHA-256 of the key's required members in lexicographic
/// order, base64url. It names an account's key, and ends every key authorization.
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<String, Problem> {
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        other => {
            return Err(Problem::new(
                Kind::BadPublicKey,
                format!("key type {other:?} is not accepted; use EC, RSA or OKP"),
            ))
        }
    };
    let mut canonical = Map::new();
    for m in members {
        let v = jwk
            .get(*m)
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::new(Kind::BadPublicKey, format!("the JWK has no {m}")))?;
        canonical.insert((*m).to_owned(), Value::String(v.to_owned()));
    }
    // serde_json keeps insertion order here, and the members were inserted sorted.
    let text = serde_json::to_string(&canonical)
        .map_err(|e| Problem::new(Kind::ServerInternal, e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(openssl::sha::sha256(text.as_bytes())))
}

/// The key authorization for `token` and an account key's thumbprint (RFC 8555 §8.1).
pub fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

/// base64url without padding, as ACME encodes every binary field.
pub fn b64(text: &str, what: &str) -> Result<Vec<u8>, Problem> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| Problem::malformed(format!("the {what} is not base64url")))
}

/// Encodes `bytes` base64url without padding.
pub fn b64_encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::alg::ec::EcCurve;
    use josekit::jws::{JwsHeaderSet, ES256};

    fn signed(header: &JwsHeaderSet, payload: &[u8], key: &Jwk) -> Vec<u8> {
        let signer = ES256.signer_from_jwk(key).expect("signer");
        jws::serialize_flattened_json(payload, header, &signer)
            .expect("sign")
            .into_bytes()
    }

    fn header(url: &str, jwk: &Jwk) -> JwsHeaderSet {
        let mut h = JwsHeaderSet::new();
        h.set_algorithm("ES256", true);
        h.set_claim("nonce", Some(Value::String("bm9uY2Ux".into())), true)
            .expect("nonce");
        h.set_url(url, true);
        h.set_jwk(jwk.to_public_key().expect("public"), true);
        h
    }

    #[test]
    fn a_signed_request_parses_and_verifies_and_an_altered_one_does_not() {
        let key = Jwk::generate_ec_key(EcCurve::P256).expect("key");
        let body = signed(&header("https://ca/acme/new-order", &key), b"{}", &key);
        let req = parse(&body).expect("parse");
        assert_eq!(req.url, "https://ca/acme/new-order");
        assert_eq!(req.nonce.as_deref(), Some("bm9uY2Ux"));
        let Signer::Jwk(jwk) = &req.signer else {
            panic!("expected a jwk")
        };
        req.verify(jwk).expect("verifies");

        let other = Jwk::generate_ec_key(EcCurve::P256).expect("key");
        let other_public: Map<String, Value> = other.to_public_key().expect("public").into();
        let err = req.verify(&other_public).expect_err("another key");
        assert_eq!(err.kind, Kind::Malformed);
    }

    #[test]
    fn both_jwk_and_kid_and_an_unprotected_header_are_refused() {
        let key = Jwk::generate_ec_key(EcCurve::P256).expect("key");
        let mut h = header("https://ca/x", &key);
        h.set_key_id("https://ca/acme/account/1", true);
        let err = parse(&signed(&h, b"", &key)).expect_err("both");
        assert!(err.detail.contains("exactly one"), "{err}");

        let body = signed(&header("https://ca/x", &key), b"", &key);
        let mut v: Value = serde_json::from_slice(&body).expect("json");
        v["header"] = serde_json::json!({"kid": "x"});
        let err = parse(v.to_string().as_bytes()).expect_err("unprotected");
        assert!(err.detail.contains("flattened"), "{err}");
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s_example() {
        // RFC 7638 §3.1.
        let jwk: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .expect("jwk");
        assert_eq!(
            thumbprint(&jwk).expect("thumbprint"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn an_hmac_binding_verifies_only_with_its_key() {
        let mut h = JwsHeaderSet::new();
        h.set_algorithm("HS256", true);
        h.set_key_id("kid-1", true);
        h.set_url("https://ca/acme/new-account", true);
        let signer = jws::HS256
            .signer_from_bytes(b"0123456789abcdef0123456789abcdef")
            .expect("hmac");
        let body = jws::serialize_flattened_json(b"{}", &h, &signer).expect("sign");
        let eab = parse(body.as_bytes()).expect("parse");
        eab.verify_hmac(b"0123456789abcdef0123456789abcdef")
            .expect("right key");
        let err = eab
            .verify_hmac(b"another key, quite long enough!!")
            .expect_err("wrong");
        assert_eq!(err.kind, Kind::Unauthorized);
    }
}
