//! `openssl pkcs12 -export`: a client's key, certificate and CA in one password-protected
//! bundle, for browsers and `requests-pkcs12`.

use std::path::PathBuf;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::stack::Stack;

use crate::error::{CryptoContext, Error, Result};
use crate::files::{self, Overwrite, Secrecy};
use crate::folder::Folder;
use crate::issuer::Issuer;
use crate::key;
use common::Role;
use x509::cert::load_cert;

/// How a PKCS#12 bundle is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum P12Encryption {
    /// PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC, SHA-256 MAC (`openssl pkcs12 -export` since
    /// 3.0). Chromium and Firefox (NSS), current Windows and macOS, Python and Java read it.
    #[default]
    Modern,
    /// PKCS#12 PBE with SHA-1 and 3DES, SHA-1 MAC (`openssl pkcs12 -legacy`, without its RC2):
    /// for importers that predate PBES2, such as older macOS Keychains and Windows releases.
    /// Weak: use it only where Modern is refused.
    Legacy,
}

impl Folder {
    /// Writes `client/NAME.p12` (key, certificate and CA) protected by `password`, encrypted
    /// as `encryption` says.
    pub fn export_p12(
        &self,
        ca: &Issuer,
        name: &str,
        password: &str,
        encryption: P12Encryption,
        overwrite: Overwrite,
    ) -> Result<PathBuf> {
        if password.is_empty() {
            return Err(Error::Declined(
                "an empty PKCS#12 password protects nothing".into(),
            ));
        }
        let (cert_path, key_path) = self.leaf_paths(Role::Client, name)?;
        let cert = load_cert("client certificate", &cert_path)?;
        let key = key::load("client private key", &key_path)?;
        if !key::matches(&key, &*cert.public_key().step("x509 -pubkey")?) {
            return Err(Error::KeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        let mut chain = Stack::new().step("pkcs12 -export")?;
        for c in self.ca_chain()? {
            chain.push(c).step("pkcs12 -export")?;
        }
        self.note_if_revoked(ca, &cert, name)?;
        // Set explicitly rather than taken from the linked OpenSSL, whose defaults changed in 3.0.
        let (cipher, mac) = match encryption {
            P12Encryption::Modern => (Nid::AES_256_CBC, MessageDigest::sha256()),
            P12Encryption::Legacy => (
                Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC,
                MessageDigest::sha1(),
            ),
        };
        let p12 = Pkcs12::builder()
            .name(name)
            .pkey(&key)
            .cert(&cert)
            .ca(chain)
            .key_algorithm(cipher)
            .cert_algorithm(cipher)
            .mac_md(mac)
            .build2(password)
            .step("pkcs12 -export")?;
        let out = self.layout().client_p12(name);
        files::write(
            "PKCS#12 bundle",
            &out,
            &p12.to_der().step("pkcs12 -export")?,
            Secrecy::Secret,
            overwrite,
        )?;
        Ok(out)
    }

    /// A bundle of a revoked certificate is made (a browser may still want the old one), and
    /// said: every server that checks the CRL refuses it.
    fn note_if_revoked(
        &self,
        ca: &Issuer,
        cert: &openssl::x509::X509Ref,
        name: &str,
    ) -> Result<()> {
        let serial = x509::cert::serial_hex(cert)?;
        let aki = x509::cert::key_id(ca.certificate())?;
        let mut db = self.open_db(Some(ca))?;
        let revoked = db
            .find(&aki, &serial)?
            .into_iter()
            .find(|r| r.serial == serial && r.state == crate::store::State::Revoked);
        if let Some(r) = revoked {
            self.notice(format!(
                "client/{name}.crt (serial {serial}) was revoked on {}: servers that check the \
                 CRL refuse this bundle; `pki issue client --name {name} --force` makes a new one",
                r.revoked_on()
            ));
        }
        Ok(())
    }
}
