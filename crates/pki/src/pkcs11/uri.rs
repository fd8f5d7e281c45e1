//! RFC 7512 PKCS#11 URIs: which module, which token, which object, and where its PIN comes from.
//!
//! `pkcs11:token=ca;object=issuing?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pki/pin`
//!
//! The PIN itself is never part of a URI we accept (`pin-value` is refused): it comes from the
//! `pin-source` file or from [`PIN_ENV`], so it is never a command-line argument, never written
//! to the PKI folder, and never printed (a URI's `Display` and `Debug` hold no PIN).

use std::fmt;
use std::path::PathBuf;

use crate::error::KeyStoreError;

/// The environment variable read for the PIN when the URI has no `pin-source`.
pub const PIN_ENV: &str = "PKI_PKCS11_PIN";

/// A parsed `pkcs11:` URI (RFC 7512), without a PIN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pkcs11Uri {
    /// `token=`: the token's label.
    pub token: Option<String>,
    /// `object=`: the key's label (CKA_LABEL).
    pub object: Option<String>,
    /// `id=`: the key's CKA_ID.
    pub id: Option<Vec<u8>>,
    /// `serial=`: the token's serial number.
    pub serial: Option<String>,
    /// `manufacturer=`: the token's manufacturer.
    pub manufacturer: Option<String>,
    /// `model=`: the token's model.
    pub model: Option<String>,
    /// `slot-id=`: the slot.
    pub slot_id: Option<u64>,
    /// `module-path=`: the PKCS#11 library to load.
    pub module_path: Option<PathBuf>,
    /// `pin-source=file:…`: the file holding the PIN.
    pub pin_source: Option<PathBuf>,
}

impl Pkcs11Uri {
    /// Parses `text`; refuses a `pin-value` (a PIN in the URI would be on a command line or in a
    /// file of the PKI) and attributes it does not know.
    pub fn parse(text: &str) -> Result<Pkcs11Uri, KeyStoreError> {
        let bad = |m: String| KeyStoreError::Uri(m);
        let rest = text
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("pkcs11:"))
            .map(|_| &text[7..])
            .ok_or_else(|| bad("it must start with pkcs11: (RFC 7512)".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Pkcs11Uri::default();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not name=value")))?;
            let raw = decode(value).map_err(bad)?;
            let text = || {
                String::from_utf8(raw.clone())
                    .map_err(|_| bad(format!("{name}= is not UTF-8 text")))
            };
            match name {
                "token" => uri.token = Some(text()?),
                "object" => uri.object = Some(text()?),
                "id" => uri.id = Some(raw.clone()),
                "serial" => uri.serial = Some(text()?),
                "manufacturer" => uri.manufacturer = Some(text()?),
                "model" => uri.model = Some(text()?),
                "slot-id" => {
                    uri.slot_id = Some(
                        text()?
                            .parse()
                            .map_err(|_| bad("slot-id= must be a number".into()))?,
                    )
                }
                // Keys are what we look for; other types find nothing.
                "type" if matches!(text()?.as_str(), "private" | "public") => {}
                "type" => return Err(bad("type= must be private".into())),
                other => {
                    return Err(bad(format!(
                        "unknown attribute {other}= (we read token, object, id, serial, \
                         manufacturer, model, slot-id, type)"
                    )))
                }
            }
        }
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            match name {
                "module-path" => {
                    let v = String::from_utf8(decode(value).map_err(bad)?)
                        .map_err(|_| bad("module-path= is not UTF-8".into()))?;
                    uri.module_path = Some(PathBuf::from(v));
                }
                "pin-source" => {
                    let v = String::from_utf8(decode(value).map_err(bad)?)
                        .map_err(|_| bad("pin-source= is not UTF-8".into()))?;
                    let path = v.strip_prefix("file:").unwrap_or(&v);
                    let path = path.strip_prefix("//").unwrap_or(path);
                    if !path.starts_with('/') {
                        return Err(bad(
                            "pin-source= must be file:/absolute/path (a file holding the PIN)"
                                .into(),
                        ));
                    }
                    uri.pin_source = Some(PathBuf::from(path));
                }
                "pin-value" => {
                    return Err(bad(format!(
                        "pin-value= would put the PIN on a command line and in the PKI's \
                         records: use pin-source=file:PATH or {PIN_ENV}"
                    )))
                }
                "module-name" => {
                    return Err(bad(
                        "module-name= is not supported: give module-path=/path/to/module.so".into(),
                    ))
                }
                other => return Err(bad(format!("unknown query attribute {other}="))),
            }
        }
        Ok(uri)
    }

    /// The same URI naming another object (its id forgotten): the root's key beside the issuing
    /// one, or the next generation's during a rotation.
    pub fn with_object(&self, object: &str) -> Pkcs11Uri {
        Pkcs11Uri {
            object: Some(object.to_owned()),
            id: None,
            ..self.clone()
        }
    }

    /// The token's label, or `?` when the URI names none, for messages.
    pub fn token_label(&self) -> &str {
        self.token.as_deref().unwrap_or("?")
    }

    /// The object's label, or `?`, for messages.
    pub fn object_label(&self) -> &str {
        self.object.as_deref().unwrap_or("?")
    }
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = KeyStoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pkcs11Uri::parse(s)
    }
}

impl fmt::Display for Pkcs11Uri {
    /// The canonical form: path attributes, then the module and the PIN's source (never a PIN).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Vec::new();
        let text = |name: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| format!("{name}={}", encode(v.as_bytes(), false)))
        };
        path.extend(text("token", &self.token));
        path.extend(text("manufacturer", &self.manufacturer));
        path.extend(text("model", &self.model));
        path.extend(text("serial", &self.serial));
        if let Some(s) = self.slot_id {
            path.push(format!("slot-id={s}"));
        }
        path.extend(text("object", &self.object));
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("%{b:02x}")).collect();
            path.push(format!("id={hex}"));
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        let mut query = Vec::new();
        if let Some(m) = &self.module_path {
            query.push(format!(
                "module-path={}",
                encode(m.to_string_lossy().as_bytes(), true)
            ));
        }
        if let Some(p) = &self.pin_source {
            query.push(format!(
                "pin-source=file:{}",
                encode(p.to_string_lossy().as_bytes(), true)
            ));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

/// Percent-decoding.
fn decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Percent-encoding of what RFC 7512 does not allow as is (`/`, `?` and `|` are allowed in
/// query values only).
fn encode(v: &[u8], query: bool) -> String {
    let mut out = String::with_capacity(v.len());
    for &c in v {
        let plain = c.is_ascii_alphanumeric()
            || b"-._~:[]@!$'()*+,=".contains(&c)
            || (query && b"/?|".contains(&c));
        if plain {
            out.push(char::from(c));
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example_and_prints_it_back() {
        let text = "pkcs11:token=ca;object=issuing?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin";
        let uri = Pkcs11Uri::parse(text).expect("parse");
        assert_eq!(uri.token.as_deref(), Some("ca"));
        assert_eq!(uri.object.as_deref(), Some("issuing"));
        assert_eq!(
            uri.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(
            uri.pin_source.as_deref(),
            Some(std::path::Path::new("/run/pin"))
        );
        assert_eq!(uri.to_string(), text);
        assert_eq!(Pkcs11Uri::parse(&uri.to_string()).expect("again"), uri);
    }

    #[test]
    fn percent_encoding_and_ids_round_trip() {
        let uri =
            Pkcs11Uri::parse("pkcs11:token=My%20CA%3Bx;object=a%2Fb;id=%01%ff").expect("parse");
        assert_eq!(uri.token.as_deref(), Some("My CA;x"));
        assert_eq!(uri.object.as_deref(), Some("a/b"));
        assert_eq!(uri.id.as_deref(), Some(&[1u8, 255][..]));
        assert_eq!(Pkcs11Uri::parse(&uri.to_string()).expect("again"), uri);
    }

    #[test]
    fn a_pin_in_the_uri_is_refused_and_never_echoed() {
        let err = Pkcs11Uri::parse("pkcs11:token=ca?pin-value=123456").expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("pin-source"), "{text}");
        assert!(!text.contains("123456"), "{text}");
    }

    #[test]
    fn other_schemes_and_unknown_attributes_are_refused() {
        assert!(Pkcs11Uri::parse("file:/etc/key").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:tokn=ca").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=ca?pin-source=relative/pin").is_err());
        assert!(Pkcs11Uri::parse("PKCS11:token=ca").is_ok());
    }

    #[test]
    fn with_object_forgets_the_id() {
        let uri = Pkcs11Uri::parse("pkcs11:token=ca;object=issuing;id=%01").expect("parse");
        let root = uri.with_object("issuing-root");
        assert_eq!(root.object.as_deref(), Some("issuing-root"));
        assert_eq!(root.id, None);
        assert_eq!(root.token, uri.token);
    }
}
