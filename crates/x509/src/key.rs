//! Step 1 of the seed, `openssl genrsa -out X.key`: make a private key.
//!
//! The seed used RSA-1024, which OpenSSL 3 refuses at its default security level
//! (`EE_KEY_TOO_SMALL`). We default to EC P-256: accepted by every current TLS stack, and a
//! handshake costs a fraction of RSA's.

use std::fmt;
use std::path::Path;

use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private, Public};
use openssl::rsa::Rsa;

use crate::error::{CryptoContext, Error, Result};
use crate::files;

/// The key types we generate. Anything weaker is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum KeyAlgorithm {
    /// RSA, 2048-bit modulus (`openssl genrsa 2048`).
    #[cfg_attr(feature = "clap", value(name = "rsa2048"))]
    Rsa2048,
    /// RSA, 3072-bit modulus.
    #[cfg_attr(feature = "clap", value(name = "rsa3072"))]
    Rsa3072,
    /// RSA, 4096-bit modulus.
    #[cfg_attr(feature = "clap", value(name = "rsa4096"))]
    Rsa4096,
    /// ECDSA on NIST P-256 (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
    #[default]
    #[cfg_attr(feature = "clap", value(name = "p256"))]
    EcP256,
    /// ECDSA on NIST P-384.
    #[cfg_attr(feature = "clap", value(name = "p384"))]
    EcP384,
    /// Ed25519 (`openssl genpkey -algorithm ed25519`). Not accepted by browsers.
    #[cfg_attr(feature = "clap", value(name = "ed25519"))]
    Ed25519,
}

impl KeyAlgorithm {
    /// The algorithm of an existing key, or `None` for one we would not generate.
    pub fn of<T: HasPublic>(key: &PKeyRef<T>) -> Option<KeyAlgorithm> {
        match key.id() {
            Id::RSA => match key.bits() {
                2048 => Some(KeyAlgorithm::Rsa2048),
                3072 => Some(KeyAlgorithm::Rsa3072),
                4096 => Some(KeyAlgorithm::Rsa4096),
                _ => None,
            },
            Id::EC => {
                let nid = key.ec_key().ok()?.group().curve_name()?;
                match nid {
                    Nid::X9_62_PRIME256V1 => Some(KeyAlgorithm::EcP256),
                    Nid::SECP384R1 => Some(KeyAlgorithm::EcP384),
                    _ => None,
                }
            }
            Id::ED25519 => Some(KeyAlgorithm::Ed25519),
            _ => None,
        }
    }

    /// True for RSA keys (which also need keyEncipherment on a server for TLS 1.2 RSA kex).
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }

    /// The digest a key of this type signs with: SHA-256, SHA-384 for P-384, none for Ed25519
    /// (EdDSA hashes internally and OpenSSL wants a null digest).
    pub fn signature_digest(self) -> MessageDigest {
        match self {
            KeyAlgorithm::EcP384 => MessageDigest::sha384(),
            KeyAlgorithm::Ed25519 => MessageDigest::null(),
            _ => MessageDigest::sha256(),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Rsa2048 => "RSA-2048",
            KeyAlgorithm::Rsa3072 => "RSA-3072",
            KeyAlgorithm::Rsa4096 => "RSA-4096",
            KeyAlgorithm::EcP256 => "EC P-256",
            KeyAlgorithm::EcP384 => "EC P-384",
            KeyAlgorithm::Ed25519 => "Ed25519",
        })
    }
}

/// `openssl genrsa` / `openssl genpkey`: a fresh private key.
pub fn generate(algorithm: KeyAlgorithm) -> Result<PKey<Private>> {
    let ec = |nid| {
        let group = EcGroup::from_curve_name(nid)?;
        PKey::from_ec_key(EcKey::generate(&group)?)
    };
    let rsa = |bits| PKey::from_rsa(Rsa::generate(bits)?);
    match algorithm {
        KeyAlgorithm::Rsa2048 => rsa(2048),
        KeyAlgorithm::Rsa3072 => rsa(3072),
        KeyAlgorithm::Rsa4096 => rsa(4096),
        KeyAlgorithm::EcP256 => ec(Nid::X9_62_PRIME256V1),
        KeyAlgorithm::EcP384 => ec(Nid::SECP384R1),
        KeyAlgorithm::Ed25519 => PKey::generate_ed25519(),
    }
    .step("genpkey")
}

/// The algorithm of `key`, or an error naming `path` when it is one we do not use.
pub fn algorithm_of<T: HasPublic>(
    key: &PKeyRef<T>,
    what: &'static str,
    path: &Path,
) -> Result<KeyAlgorithm> {
    KeyAlgorithm::of(key).ok_or_else(|| Error::Malformed {
        what,
        path: path.to_owned(),
        detail: format!(
            "unsupported key type {:?} of {} bits (use RSA 2048-4096, EC P-256/P-384 or Ed25519)",
            key.id(),
            key.bits()
        ),
    })
}

/// Serialises a private key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`), the most portable form.
pub fn to_pem(key: &PKeyRef<Private>) -> Result<Vec<u8>> {
    key.private_key_to_pem_pkcs8().step("pkey -out")
}

/// Reads a PEM private key (PKCS#8, or legacy PKCS#1/SEC1) from `path`.
pub fn load(what: &'static str, path: &Path) -> Result<PKey<Private>> {
    let pem = files::read(what, path)?;
    PKey::private_key_from_pem(&pem).map_err(|e| Error::Malformed {
        what,
        path: path.to_owned(),
        detail: format!("not a PEM private key ({e})"),
    })
}

/// True when `public` is the public half of `private`.
pub fn matches(private: &PKeyRef<Private>, public: &PKeyRef<Public>) -> bool {
    public.public_eq(private)
}

/// The public half of `key`.
pub fn public_of(key: &PKeyRef<Private>) -> Result<PKey<Public>> {
    let der = key.public_key_to_der().step("pkey -pubout")?;
    PKey::public_key_from_der(&der).step("pkey -pubout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_through_pem() {
        for alg in [
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::Ed25519,
        ] {
            let key = generate(alg).expect("generate");
            assert_eq!(KeyAlgorithm::of(&key), Some(alg));
            let pem = to_pem(&key).expect("pem");
            // PKCS#8, not the legacy "BEGIN EC/RSA PRIVATE KEY" forms.
            assert!(pem.starts_with(b"-----BEGIN PRIVATE KEY"));
            let back = PKey::private_key_from_pem(&pem).expect("parse");
            assert_eq!(KeyAlgorithm::of(&back), Some(alg));
        }
    }
}
