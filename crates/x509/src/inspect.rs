//! `openssl x509 -text` / `req -text` / `crl -text` / `pkcs12 -info`, but short: a readable
//! summary of any PKI file, or JSON for scripts. Private key material is never printed.

use std::net::IpAddr;
use std::path::Path;

use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::x509::{X509Crl, X509Ref, X509Req, X509};
use serde_json::{json, Value};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::cert::{one_line, serial_hex};
use crate::error::{CryptoContext, Error, Result};
use crate::key::KeyAlgorithm;
use crate::time::{date, now, unix_time};

/// A summary: what the file is, and named fields in display order.
#[derive(Debug, Clone)]
pub struct Summary {
    /// "certificate", "certificate request", "private key", "CRL" or "PKCS#12".
    pub kind: &'static str,
    /// Field name and value; values are strings, numbers or lists.
    pub fields: Vec<(&'static str, Value)>,
}

impl Summary {
    /// The summary as one JSON object (`kind` plus every field).
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("kind".into(), json!(self.kind));
        for (k, v) in &self.fields {
            map.insert((*k).into(), v.clone());
        }
        Value::Object(map)
    }

    /// The value of a field, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.kind)?;
        for (k, v) in &self.fields {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            writeln!(f, "  {k:<18} {text}")?;
        }
        Ok(())
    }
}

/// Summarises the PKI file at `path` (PEM or DER). A PKCS#12 file needs `p12_password`.
pub fn inspect_file(path: &Path, p12_password: Option<&str>) -> Result<Summary> {
    let bytes = crate::files::read("file", path)?;
    inspect(&bytes, p12_password).map_err(|detail| Error::Malformed {
        what: "PKI file",
        path: path.to_owned(),
        detail,
    })
}

/// Summarises PEM or DER bytes; the error says what the bytes are not.
pub fn inspect(bytes: &[u8], p12_password: Option<&str>) -> std::result::Result<Summary, String> {
    let text = std::str::from_utf8(bytes).ok();
    let label = text.and_then(|t| {
        let start = t.find("-----BEGIN ")? + "-----BEGIN ".len();
        let end = t[start..].find("-----")?;
        Some(&t[start..start + end])
    });
    let shown = |e: Error| e.to_string();
    match label {
        Some("CERTIFICATE") => X509::from_pem(bytes)
            .map_err(|e| format!("unreadable PEM certificate ({e})"))
            .and_then(|c| certificate(&c).map_err(shown)),
        Some("CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST") => X509Req::from_pem(bytes)
            .map_err(|e| format!("unreadable PEM request ({e})"))
            .and_then(|r| request(&r).map_err(shown)),
        Some("X509 CRL") => X509Crl::from_pem(bytes)
            .map_err(|e| format!("unreadable PEM CRL ({e})"))
            .and_then(|c| crl(&c).map_err(shown)),
        Some(l) if l.ends_with("PRIVATE KEY") => PKey::private_key_from_pem(bytes)
            .map_err(|e| {
                format!("unreadable PEM private key ({e}); encrypted keys are not supported")
            })
            .map(|k| private_key(&k)),
        Some(l) => Err(format!(
            "PEM block {l:?} is not a certificate, request, key or CRL"
        )),
        None => {
            if let Ok(c) = X509::from_der(bytes) {
                certificate(&c).map_err(shown)
            } else if let Ok(c) = X509Crl::from_der(bytes) {
                crl(&c).map_err(shown)
            } else if let Ok(r) = X509Req::from_der(bytes) {
                request(&r).map_err(shown)
            } else if let Ok(k) = PKey::private_key_from_der(bytes) {
                Ok(private_key(&k))
            } else if let Ok(p12) = Pkcs12::from_der(bytes) {
                let pass =
                    p12_password.ok_or("a PKCS#12 file: give its password (PKI_P12_PASSWORD)")?;
                let parsed = p12.parse2(pass).map_err(|_| {
                    "a PKCS#12 file, but the password is wrong or it is corrupt".to_owned()
                })?;
                let mut fields = vec![];
                if let Some(c) = parsed.cert {
                    let inner = certificate(&c).map_err(shown)?;
                    fields.extend(inner.fields.into_iter().filter(|(k, _)| {
                        ["subject", "issuer", "serial", "not after", "sha256"].contains(k)
                    }));
                }
                fields.push(("private key", json!(parsed.pkey.is_some())));
                fields.push(("CA certificates", json!(parsed.ca.map_or(0, |s| s.len()))));
                Ok(Summary {
                    kind: "PKCS#12",
                    fields,
                })
            } else {
                Err("neither PEM nor a DER certificate, request, key, CRL or PKCS#12".into())
            }
        }
    }
}

fn key_description<T: openssl::pkey::HasPublic>(key: &PKeyRef<T>) -> String {
    KeyAlgorithm::of(key).map_or_else(
        || format!("{:?} {} bits", key.id(), key.bits()),
        |a| a.to_string(),
    )
}

fn private_key(key: &PKeyRef<Private>) -> Summary {
    let public = key.public_key_to_der().ok();
    let fp = public
        .and_then(|d| openssl::hash::hash(MessageDigest::sha256(), &d).ok())
        .map(|h| hex(&h))
        .unwrap_or_default();
    Summary {
        kind: "private key",
        fields: vec![
            ("key", json!(key_description(key))),
            ("public key sha256", json!(fp)),
        ],
    }
}

fn request(req: &X509Req) -> Result<Summary> {
    let key = req.public_key().step("req -text")?;
    let ok = req.verify(&key).step("req -verify")?;
    Ok(Summary {
        kind: "certificate request",
        fields: vec![
            ("subject", json!(one_line(req.subject_name()))),
            ("key", json!(key_description(&key))),
            (
                "signature",
                json!(if ok {
                    "valid (proves possession of the key)"
                } else {
                    "INVALID"
                }),
            ),
        ],
    })
}

fn crl(crl: &X509Crl) -> Result<Summary> {
    let mut fields = vec![("issuer", json!(one_line(crl.issuer_name())))];
    fields.push(("this update", json!(date(unix_time(crl.last_update())?))));
    if let Some(next) = crl.next_update() {
        fields.push(("next update", json!(date(unix_time(next)?))));
    }
    if let Some(n) = crate::cert::crl_number(crl) {
        fields.push(("CRL number", json!(n.to_string())));
    }
    let revoked: Vec<Value> = crl
        .get_revoked()
        .map(|s| {
            s.iter()
                .map(|r| {
                    let serial = r
                        .serial_number()
                        .to_bn()
                        .and_then(|b| b.to_hex_str().map(|h| h.to_string()))
                        .unwrap_or_default();
                    let at = unix_time(r.revocation_date()).map(date).unwrap_or_default();
                    json!(format!("{serial} ({at})"))
                })
                .collect()
        })
        .unwrap_or_default();
    fields.push(("revoked", Value::Array(revoked)));
    Ok(Summary {
        kind: "CRL",
        fields,
    })
}

fn certificate(cert: &X509Ref) -> Result<Summary> {
    let der = cert.to_der().step("x509 -outform DER")?;
    let key = cert.public_key().step("x509 -pubkey")?;
    let not_before = unix_time(cert.not_before())?;
    let not_after = unix_time(cert.not_after())?;
    let days_left = (not_after - now()).div_euclid(86_400);
    let mut fields = vec![
        ("subject", json!(one_line(cert.subject_name()))),
        ("issuer", json!(one_line(cert.issuer_name()))),
        ("serial", json!(serial_hex(cert)?)),
        ("not before", json!(date(not_before))),
        ("not after", json!(date(not_after))),
        ("days left", json!(days_left)),
        ("key", json!(key_description(&key))),
        (
            "signature",
            json!(cert
                .signature_algorithm()
                .object()
                .nid()
                .long_name()
                .unwrap_or("?")),
        ),
    ];
    if let Ok((_, x)) = X509Certificate::from_der(&der) {
        let sans = names(&x);
        if !sans.is_empty() {
            fields.push((
                "subject alt names",
                Value::Array(sans.into_iter().map(Value::from).collect()),
            ));
        }
        if let Ok(Some(bc)) = x.basic_constraints() {
            let mut v = format!("CA:{}", if bc.value.ca { "TRUE" } else { "FALSE" });
            if let Some(n) = bc.value.path_len_constraint {
                v.push_str(&format!(", pathlen:{n}"));
            }
            fields.push(("basic constraints", json!(critical(bc.critical, v))));
        }
        if let Ok(Some(ku)) = x.key_usage() {
            fields.push((
                "key usage",
                json!(critical(ku.critical, ku.value.to_string())),
            ));
        }
        if let Ok(Some(eku)) = x.extended_key_usage() {
            let e = eku.value;
            let mut v = vec![];
            for (on, name) in [
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.any, "anyExtendedKeyUsage"),
                (e.code_signing, "codeSigning"),
                (e.email_protection, "emailProtection"),
            ] {
                if on {
                    v.push(name.to_owned());
                }
            }
            v.extend(e.other.iter().map(|o| o.to_id_string()));
            fields.push((
                "extended key usage",
                json!(critical(eku.critical, v.join(", "))),
            ));
        }
    }
    let fp = cert
        .digest(MessageDigest::sha256())
        .step("x509 -fingerprint")?;
    fields.push(("sha256", json!(hex(&fp))));
    Ok(Summary {
        kind: "certificate",
        fields,
    })
}

fn critical(is: bool, v: String) -> String {
    if is {
        format!("critical, {v}")
    } else {
        v
    }
}

/// subjectAltName entries of a DER certificate in openssl's `TYPE:value` form.
pub fn names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .map(|g| match g {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::RFC822Name(e) => format!("email:{e}"),
            GeneralName::URI(u) => format!("URI:{u}"),
            GeneralName::IPAddress(b) => match b.len() {
                4 => format!(
                    "IP:{}",
                    IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())
                ),
                16 => format!(
                    "IP:{}",
                    IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                ),
                _ => format!("IP:<{} bytes>", b.len()),
            },
            other => format!("{other}"),
        })
        .collect()
}

/// True when the DER certificate says `CA:TRUE` (unparseable input counts as not a CA).
pub fn is_ca(der: &[u8]) -> bool {
    X509Certificate::from_der(der).is_ok_and(|(_, c)| c.is_ca())
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
