//! Where the folder keeps a CA key: a PEM file (`ca/ca.key`, 0600), or, for a key inside a
//! PKCS#11 token, a one-line record of its URI where the file would be, with the extension
//! `key-store` (`ca/ca.key-store`, `ca/intermediate.key-store`). The record names the module,
//! the token, the object and its id, and where the PIN comes from: never the PIN.
//!
//! Every command, and the online CA, finds the CA's key the same way (`load_issuer`): the
//! record first, else the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::pkey::{PKey, Private, Public};
use openssl::x509::X509;

use crate::error::{Error, KeyStoreError, Result};
use crate::files::{self, Overwrite, Secrecy};
use crate::issuer::Issuer;
use crate::key::{self, KeyAlgorithm};
use crate::pkcs11::{Pkcs11Uri, TokenFacts, TokenKey};
use crate::signer::{KeyLocation, SigningKey};

/// The record of a token key kept where the key file `key_path` would be.
pub fn store_record(key_path: &Path) -> PathBuf {
    key_path.with_extension("key-store")
}

/// Whether the CA key of `key_path` is here, as a file or as a token's record.
pub(crate) fn present(key_path: &Path) -> bool {
    files::exists(key_path) || files::exists(&store_record(key_path))
}

/// The token URI recorded for `key_path`, if its key is in a token.
pub fn recorded_store(key_path: &Path) -> Result<Option<Pkcs11Uri>> {
    let record = store_record(key_path);
    if !files::exists(&record) {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&record).map_err(|source| x509::Error::Read {
        what: "CA key store record",
        path: record.clone(),
        source,
    })?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| KeyStoreError::Uri(format!("{} holds no pkcs11: URI", record.display())))?;
    Pkcs11Uri::parse(line)
        .map(Some)
        .map_err(|e| KeyStoreError::Uri(format!("{}: {e}", record.display())).into())
}

/// A CA key just made or found, before it becomes a signer.
pub(crate) enum CaKey {
    /// Its bytes, from or for a PEM file.
    File(PKey<Private>),
    /// Inside a token.
    Token(Arc<TokenKey>),
}

impl CaKey {
    /// A new key: in the token `store` names (its `object` the label), or in memory for a file.
    pub(crate) fn generate(
        algorithm: KeyAlgorithm,
        store: Option<&Pkcs11Uri>,
        replace: bool,
    ) -> Result<CaKey> {
        match store {
            Some(uri) => Ok(CaKey::Token(Arc::new(TokenKey::generate(
                uri, algorithm, replace,
            )?))),
            None => Ok(CaKey::File(key::generate(algorithm)?)),
        }
    }

    /// The key of `key_path`: its token's, when a record is there, else the file's.
    pub(crate) fn load(what: &'static str, key_path: &Path) -> Result<CaKey> {
        match recorded_store(key_path)? {
            Some(uri) => Ok(CaKey::Token(Arc::new(TokenKey::open(&uri)?))),
            None => Ok(CaKey::File(key::load(what, key_path)?)),
        }
    }

    /// As a signer.
    pub(crate) fn signer(&self) -> Result<Arc<dyn SigningKey>> {
        match self {
            CaKey::File(k) => crate::signer::KeyFile::new(k.clone())
                .map(crate::signer::KeyFile::shared)
                .ok_or_else(|| Error::Refused(format!("unsupported CA key type {:?}", k.id()))),
            CaKey::Token(t) => Ok(t.clone()),
        }
    }

    /// The public half.
    pub(crate) fn public(&self) -> Result<PKey<Public>> {
        match self {
            CaKey::File(k) => Ok(x509::key::public_of(k)?),
            CaKey::Token(t) => t.public_key(),
        }
    }

    /// Writes the key file (0600), or the token's record, for `key_path`; the other form, left
    /// by an earlier CA, is removed so that it cannot shadow this one.
    pub(crate) fn write(&self, what: &'static str, key_path: &Path, ow: Overwrite) -> Result<()> {
        let record = store_record(key_path);
        let (written, other) = match self {
            CaKey::File(k) => {
                files::write(what, key_path, &key::to_pem(k)?, Secrecy::Secret, ow)?;
                (key_path.to_owned(), record)
            }
            CaKey::Token(t) => {
                let text = format!(
                    "# {what}: inside a PKCS#11 token; the PIN comes from pin-source or {}\n{}\n",
                    crate::pkcs11::PIN_ENV,
                    t.uri()
                );
                files::write(what, &record, text.as_bytes(), Secrecy::Public, ow)?;
                (record, key_path.to_owned())
            }
        };
        if files::exists(&other) {
            std::fs::remove_file(&other).map_err(|source| x509::Error::Write {
                what,
                path: other.clone(),
                source,
            })?;
            files::sync_dir(what, &written)?;
        }
        Ok(())
    }
}

/// The issuer of `cert_path`, with its key from `key_path` (file) or its record (token);
/// refused when the key is not the certificate's.
pub(crate) fn load_issuer(
    cert_what: &'static str,
    cert_path: &Path,
    key_what: &'static str,
    key_path: &Path,
) -> Result<Issuer> {
    let cert = x509::cert::load_cert(cert_what, cert_path)?;
    issuer_of(cert, cert_path, key_what, key_path)
}

/// [`load_issuer`] with the certificate loaded.
pub(crate) fn issuer_of(
    cert: X509,
    cert_path: &Path,
    key_what: &'static str,
    key_path: &Path,
) -> Result<Issuer> {
    match CaKey::load(key_what, key_path)? {
        CaKey::File(k) => Issuer::from_parts(cert, k, (cert_path, key_path)),
        token => Issuer::from_signer(cert, token.signer()?, (cert_path, &store_record(key_path))),
    }
}

/// Where a CA key lives, and how well it is kept: one line of `pki ca status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyReport {
    /// `file`, `token`, or `offline` (not on this host: `pki root export`).
    pub store: &'static str,
    /// The key file, or the token's URI (never a PIN).
    pub location: String,
    /// What the token says of the key (a token key that answered).
    pub token: Option<TokenFacts>,
    /// In words: how the key is kept; "in hardware" only when the token's facts say so.
    pub protection: String,
}

/// The report for the CA key of `key_path` (its token asked, with the PIN, when it is in one).
pub fn key_report(key_path: &Path) -> KeyReport {
    let record = store_record(key_path);
    if files::exists(&record) {
        let asked = recorded_store(key_path).and_then(|uri| {
            let uri = uri.ok_or(Error::Assembly("the record vanished"))?;
            let key = TokenKey::open(&uri)?;
            let facts = key.token_facts()?;
            Ok((key.location(), facts))
        });
        return match asked {
            Ok((KeyLocation::Pkcs11(uri), Some(facts))) => KeyReport {
                store: "token",
                location: uri.to_string(),
                protection: facts.protection(),
                token: Some(facts),
            },
            Ok(_) => KeyReport {
                store: "token",
                location: record.display().to_string(),
                token: None,
                protection: "unknown: the token said nothing about the key".into(),
            },
            Err(e) => KeyReport {
                store: "token",
                location: recorded_store(key_path)
                    .ok()
                    .flatten()
                    .map_or_else(|| record.display().to_string(), |u| u.to_string()),
                token: None,
                protection: format!("unknown: {}", common::error_chain(&e)),
            },
        };
    }
    if files::exists(key_path) {
        return KeyReport {
            store: "file",
            location: key_path.display().to_string(),
            token: None,
            protection: "a key file: whoever can read or copy it can sign".into(),
        };
    }
    KeyReport {
        store: "offline",
        location: key_path.display().to_string(),
        token: None,
        protection: "not on this host".into(),
    }
}
