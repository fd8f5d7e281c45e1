//! The CA's signing key behind one trait: nothing outside an implementation ever sees private
//! key bytes. A key file is [`KeyFile`]; a key held by a PKCS#11 token (an HSM, a YubiKey, a
//! TPM) is [`TokenKey`](crate::pkcs11::TokenKey), and the [`Issuer`](crate::Issuer), the
//! [`Authority`](crate::Authority) and every front-end above them do not change.
//!
//! Like cfssl's `NewSigner(crypto.Signer, …)`, the issuer takes the key's source from outside;
//! it hands the key what it built (a certificate, a CRL) and gets it back signed.
//!
//! A token cannot sign an OpenSSL builder in place, so the default way is:
//! 1. the builder is signed with a *stand-in* key of the same family (one per process, never
//!    used for anything else): OpenSSL writes the TBSCertificate (or TBSCertList) with the
//!    right signature algorithm, since that identifier does not depend on the key;
//! 2. the TBS bytes are taken out of that draft as they are ([`replace_signature`]) and the
//!    real key signs them ([`SigningKey::sign_tbs`]);
//! 3. the DER is reassembled with the real signature, and checked against the key's public
//!    half before anything is returned (a token that signed wrong writes nothing).
//!
//! [`KeyFile`] keeps signing in place, exactly as `openssl x509 -req -CAkey` does.

use std::sync::{Arc, OnceLock};

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::sign::Signer;
use openssl::x509::{X509Builder, X509Crl, X509CrlBuilder, X509};

use crate::error::{CryptoContext, Error, Result};
use crate::pkcs11::{Pkcs11Uri, TokenFacts};
use x509::KeyAlgorithm;

/// Where a CA key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyLocation {
    /// A PEM file (or a key made in memory), its bytes in this process.
    File,
    /// An object inside a PKCS#11 token, addressed by this URI (never with a PIN).
    Pkcs11(Box<Pkcs11Uri>),
}

/// A CA key that signs certificates and CRLs where it lives.
pub trait SigningKey: Send + Sync {
    /// The key's algorithm: it decides the signature's digest.
    fn algorithm(&self) -> KeyAlgorithm;

    /// The public half, to match the key with its certificate.
    fn public_key(&self) -> Result<PKey<Public>>;

    /// Signs `tbs`, the DER of a TBSCertificate or TBSCertList, with the digest of
    /// [`SigningKey::algorithm`]: the bytes of the signatureValue BIT STRING (an ECDSA-Sig-Value
    /// in DER for ECDSA, PKCS#1 v1.5 for RSA, the raw signature for Ed25519).
    fn sign_tbs(&self, tbs: &[u8]) -> Result<Vec<u8>>;

    /// Where the key lives, for logs and errors (never any of its bytes).
    fn describe(&self) -> String;

    /// Where the key lives, as data (`pki ca status`).
    fn location(&self) -> KeyLocation {
        KeyLocation::File
    }

    /// What the token says about the key (extractable, sensitive, hardware slot); `None` for a
    /// key that is not in a token.
    fn token_facts(&self) -> Result<Option<TokenFacts>> {
        Ok(None)
    }

    /// Signs a certificate being built (`openssl x509 -req … -CAkey`) and returns it.
    fn sign_certificate(&self, builder: X509Builder) -> Result<X509> {
        sign_certificate_by_tbs(self, builder)
    }

    /// Signs a CRL being built (`openssl ca -gencrl`) and returns it.
    fn sign_crl(&self, builder: X509CrlBuilder) -> Result<X509Crl> {
        sign_crl_by_tbs(self, builder)
    }
}

/// A certificate signed through [`SigningKey::sign_tbs`] (see the [module](self) documentation).
pub fn sign_certificate_by_tbs<K: SigningKey + ?Sized>(
    key: &K,
    mut builder: X509Builder,
) -> Result<X509> {
    let step = "x509 -req";
    let algorithm = key.algorithm();
    builder
        .sign(stand_in(algorithm)?, algorithm.signature_digest())
        .step(step)?;
    let draft = builder.build().to_der().step(step)?;
    let der = replace_signature(&draft, |tbs| key.sign_tbs(tbs))?;
    let cert = X509::from_der(&der).step(step)?;
    if !cert.verify(&*key.public_key()?).unwrap_or(false) {
        return Err(Error::BadSignature(key.describe()));
    }
    Ok(cert)
}

/// A CRL signed through [`SigningKey::sign_tbs`] (see the [module](self) documentation).
pub fn sign_crl_by_tbs<K: SigningKey + ?Sized>(
    key: &K,
    mut builder: X509CrlBuilder,
) -> Result<X509Crl> {
    let step = "ca -gencrl";
    let algorithm = key.algorithm();
    builder
        .sign(stand_in(algorithm)?, algorithm.signature_digest())
        .step(step)?;
    let draft = builder.build().step(step)?.to_der().step(step)?;
    let der = replace_signature(&draft, |tbs| key.sign_tbs(tbs))?;
    let crl = X509Crl::from_der(&der).step(step)?;
    if !crl.verify(&*key.public_key()?).unwrap_or(false) {
        return Err(Error::BadSignature(key.describe()));
    }
    Ok(crl)
}

/// The key a draft is signed with before the real key signs its TBS bytes: one per family, made
/// once per process. Only its signature algorithm matters (`ecdsa-with-SHA256/384`,
/// `sha256WithRSAEncryption`, `Ed25519`: none of them names the key's size or curve).
fn stand_in(algorithm: KeyAlgorithm) -> Result<&'static PKey<Private>> {
    static EC: OnceLock<PKey<Private>> = OnceLock::new();
    static RSA: OnceLock<PKey<Private>> = OnceLock::new();
    static ED: OnceLock<PKey<Private>> = OnceLock::new();
    let (cell, family) = match algorithm {
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => (&EC, KeyAlgorithm::EcP256),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            (&RSA, KeyAlgorithm::Rsa2048)
        }
        KeyAlgorithm::Ed25519 => (&ED, KeyAlgorithm::Ed25519),
    };
    if let Some(k) = cell.get() {
        return Ok(k);
    }
    let made = x509::key::generate(family)?;
    Ok(cell.get_or_init(|| made))
}

/// Takes the signed structure `draft` (`SEQUENCE { tbs, signatureAlgorithm, signatureValue }`,
/// a Certificate or a CertificateList), has `sign` sign its TBS bytes exactly as they are, and
/// returns the DER with that signature in place of the draft's.
pub fn replace_signature(
    draft: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let (header, len) = tlv(draft, 0x30)?;
    let content = draft
        .get(header..header + len)
        .ok_or(Error::Assembly("the draft is shorter than its length"))?;
    let (h, l) = tlv(content, 0x30)?;
    let tbs = &content[..h + l];
    let rest = &content[h + l..];
    let (h, l) = tlv(rest, 0x30)?;
    let algorithm = &rest[..h + l];
    let signature = sign(tbs)?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&signature);
    let mut body = Vec::with_capacity(tbs.len() + algorithm.len() + bits.len() + 8);
    body.extend_from_slice(tbs);
    body.extend_from_slice(algorithm);
    push_tlv(&mut body, 0x03, &bits);
    let mut out = Vec::with_capacity(body.len() + 8);
    push_tlv(&mut out, 0x30, &body);
    Ok(out)
}

/// The header length and content length of the DER element at the start of `der`, whose tag
/// must be `tag` (a one-byte tag).
fn tlv(der: &[u8], tag: u8) -> Result<(usize, usize)> {
    let short = Error::Assembly("a DER element is cut short");
    match der {
        [t, ..] if *t != tag => Err(Error::Assembly("unexpected DER tag")),
        [_, l, ..] if *l < 0x80 => fits(der, 2, usize::from(*l)),
        [_, l, rest @ ..] => {
            let n = usize::from(l & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(short);
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            fits(der, 2 + n, len)
        }
        _ => Err(short),
    }
}

fn fits(der: &[u8], header: usize, len: usize) -> Result<(usize, usize)> {
    if der.len() < header + len {
        return Err(Error::Assembly("a DER element is cut short"));
    }
    Ok((header, len))
}

/// Appends the DER element `tag` with `content`.
fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
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

    fn sign_tbs(&self, tbs: &[u8]) -> Result<Vec<u8>> {
        let step = "pkeyutl -sign";
        let digest = self.algorithm.signature_digest();
        let mut signer = if digest == MessageDigest::null() {
            Signer::new_without_digest(&self.key).step(step)?
        } else {
            Signer::new(digest, &self.key).step(step)?
        };
        signer.sign_oneshot_to_vec(tbs).step(step)
    }

    fn sign_certificate(&self, mut builder: X509Builder) -> Result<X509> {
        builder
            .sign(&self.key, self.algorithm.signature_digest())
            .step("x509 -req")?;
        Ok(builder.build())
    }

    fn sign_crl(&self, mut builder: X509CrlBuilder) -> Result<X509Crl> {
        builder
            .sign(&self.key, self.algorithm.signature_digest())
            .step("ca -gencrl")?;
        builder.build().step("ca -gencrl")
    }

    fn describe(&self) -> String {
        format!("{:?} key file", self.algorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file signing through the TBS path, as a token does.
    struct ByTbs(KeyFile);

    impl SigningKey for ByTbs {
        fn algorithm(&self) -> KeyAlgorithm {
            self.0.algorithm()
        }
        fn public_key(&self) -> Result<PKey<Public>> {
            self.0.public_key()
        }
        fn sign_tbs(&self, tbs: &[u8]) -> Result<Vec<u8>> {
            self.0.sign_tbs(tbs)
        }
        fn describe(&self) -> String {
            "by TBS".into()
        }
    }

    fn issuer(alg: KeyAlgorithm) -> crate::Issuer {
        let key = x509::key::generate(alg).expect("key");
        let req = x509::request::build(&key, &x509::Subject::new("T", "TBS root")).expect("req");
        let signer = KeyFile::new(key).expect("alg");
        crate::Issuer::self_sign_with(
            &req,
            Arc::new(ByTbs(signer)),
            &x509::CertSpec::new(x509::Profile::Ca),
        )
        .expect("self-sign by TBS")
    }

    #[test]
    fn every_algorithm_signs_certificates_and_crls_by_tbs() {
        for alg in [
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::Rsa3072,
            KeyAlgorithm::Ed25519,
        ] {
            let ca = issuer(alg);
            let public = ca.certificate().public_key().expect("pub");
            assert!(ca.certificate().verify(&public).expect("verify"), "{alg:?}");
            let crl = ca.crl(&[], 1, 7).expect("crl");
            assert!(crl.verify(&public).expect("verify crl"), "{alg:?}");
        }
    }

    #[test]
    fn a_wrong_signature_is_refused_not_returned() {
        struct Liar(KeyFile, KeyFile);
        impl SigningKey for Liar {
            fn algorithm(&self) -> KeyAlgorithm {
                self.0.algorithm()
            }
            fn public_key(&self) -> Result<PKey<Public>> {
                self.0.public_key()
            }
            fn sign_tbs(&self, tbs: &[u8]) -> Result<Vec<u8>> {
                self.1.sign_tbs(tbs) // another key's signature
            }
            fn describe(&self) -> String {
                "liar".into()
            }
        }
        let key = x509::key::generate(KeyAlgorithm::EcP256).expect("k");
        let other = x509::key::generate(KeyAlgorithm::EcP256).expect("k");
        let req = x509::request::build(&key, &x509::Subject::new("T", "liar")).expect("req");
        let liar = Liar(
            KeyFile::new(key).expect("a"),
            KeyFile::new(other).expect("b"),
        );
        let err = crate::Issuer::self_sign_with(
            &req,
            Arc::new(liar),
            &x509::CertSpec::new(x509::Profile::Ca),
        )
        .expect_err("refused");
        assert!(matches!(err, Error::BadSignature(_)), "{err}");
    }

    #[test]
    fn long_lengths_round_trip() {
        let mut out = Vec::new();
        push_tlv(&mut out, 0x30, &[7u8; 300]);
        assert_eq!(&out[..4], &[0x30, 0x82, 0x01, 0x2c]);
        assert_eq!(tlv(&out, 0x30).expect("tlv"), (4, 300));
        assert!(tlv(&out[..100], 0x30).is_err());
        assert!(tlv(&out, 0x03).is_err());
    }
}
