//! The CA's signing key behind one trait: nothing outside an implementation ever sees private
//! key bytes. A key file is [`KeyFile`]; a key held by a PKCS#11 token (an HSM, a YubiKey, a
//! TPM) is another implementation of [`SigningKey`], and the [`Issuer`](crate::Issuer), the
//! [`Authority`](crate::Authority) and every front-end above them do not change.
//!
//! Like cfssl's `NewSigner(crypto.Signer, …)`, the issuer takes the key's source from outside;
//! it asks the key to sign what it built (a certificate, a CRL) and to say what it is.

use std::sync::Arc;

use openssl::pkey::{PKey, Private, Public};
use openssl::x509::{X509Builder, X509CrlBuilder};

use crate::error::{CryptoContext, Result};
use x509::KeyAlgorithm;

/// A CA key that signs certificates and CRLs where it lives.
pub trait SigningKey: Send + Sync {
    /// The key's algorithm: it decides the signature's digest.
    fn algorithm(&self) -> KeyAlgorithm;

    /// The public half, to match the key with its certificate.
    fn public_key(&self) -> Result<PKey<Public>>;

    /// Signs a certificate being built (`openssl x509 -req … -CAkey`).
    fn sign_certificate(&self, builder: &mut X509Builder) -> Result<()>;

    /// Signs a CRL being built (`openssl ca -gencrl`).
    fn sign_crl(&self, builder: &mut X509CrlBuilder) -> Result<()>;

    /// Where the key lives, for logs and errors (never any of its bytes).
    fn describe(&self) -> String;
}

/// A key loaded from a PEM file (or made in memory by `pki init`).
pub struct KeyFile {
    key: PKey<Private>,
    algorithm: KeyAlgorithm,
}

impl KeyFile {
    /// Wraps `key`; `None` for a key type we do not sign with.
    pub fn new(key: PKey<Private>) -> Option<KeyFile> {
        let algorithm = KeyAlgorithm::of(&key)?;
        Some(KeyFile { key, algorithm })
    }

    /// As a shared signing key for an [`Issuer`](crate::Issuer).
    pub fn shared(self) -> Arc<dyn SigningKey> {
        Arc::new(self)
    }
}

impl std::fmt::Debug for KeyFile {
    // Never the key itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey for KeyFile {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key(&self) -> Result<PKey<Public>> {
        let der = self.key.public_key_to_der().step("pkey -pubout")?;
        PKey::public_key_from_der(&der).step("pkey -pubout")
    }

    fn sign_certificate(&self, builder: &mut X509Builder) -> Result<()> {
        builder
            .sign(&self.key, self.algorithm.signature_digest())
            .step("x509 -req")
    }

    fn sign_crl(&self, builder: &mut X509CrlBuilder) -> Result<()> {
        builder
            .sign(&self.key, self.algorithm.signature_digest())
            .step("ca -gencrl")
    }

    fn describe(&self) -> String {
        format!("{:?} key file", self.algorithm)
    }
}
