//! Step 3 of the seed, `openssl x509 -req`: turn a request into a certificate.
//!
//! `x509 -req -signkey ca.key` makes the self-signed CA ([`Issuer::self_sign`]);
//! `x509 -req -CA ca.crt -CAkey ca.key` signs a leaf ([`Issuer::sign`]). Unlike the seed's
//! `-CAcreateserial` (a counter in `ca.srl`), serial numbers are 127 random bits, and the
//! signature uses SHA-256 (SHA-384 for a P-384 CA), never SHA-1.

use std::sync::Arc;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::pkey::{PKey, PKeyRef, Private, Public};
use openssl::x509::extension::{AuthorityKeyIdentifier, CrlNumber};
use openssl::x509::{
    X509Crl, X509CrlBuilder, X509NameRef, X509Ref, X509Req, X509Revoked, X509RevokedBuilder, X509,
};

use crate::error::{CryptoContext, Error, Result};
use crate::index::Reason;
use crate::key::{self, KeyAlgorithm};
use crate::signer::{KeyFile, SigningKey};
use x509::time::{now, unix_time};
use x509::{CertSpec, Profile, Validity};

/// One revoked certificate, as listed in a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Serial number, upper-case hex.
    pub serial: String,
    /// When it was revoked, Unix seconds.
    pub revoked_at: i64,
    /// Why (RFC 5280's reasonCode entry extension); `None` lists the entry without one.
    pub reason: Option<Reason>,
}

/// A certificate authority that signs: its certificate, and the key that matches it behind
/// [`SigningKey`] (a key file, or a PKCS#11 token's key). Cloning shares the key.
#[derive(Clone)]
pub struct Issuer {
    cert: X509,
    key: Arc<dyn SigningKey>,
}

impl std::fmt::Debug for Issuer {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("subject", &self.cert.subject_name())
            .field("key", &self.key.describe())
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// `openssl x509 -req -in ca.req -signkey ca.key`: the self-signed root.
    pub fn self_sign(req: &X509Req, key: PKey<Private>, validity: Validity) -> Result<Issuer> {
        Issuer::self_sign_spec(req, key, &CertSpec::new(Profile::Ca).validity(validity))
    }

    /// [`Issuer::self_sign`] with a spec of profile CA (a pathlen, name constraints).
    pub fn self_sign_spec(req: &X509Req, key: PKey<Private>, spec: &CertSpec) -> Result<Issuer> {
        let signer = KeyFile::new(key.clone())
            .ok_or_else(|| Error::Refused(format!("unsupported CA key type {:?}", key.id())))?
            .shared();
        Issuer::self_sign_with(req, signer, spec)
    }

    /// [`Issuer::self_sign_spec`] with a key that signs where it lives (a token's).
    pub fn self_sign_with(
        req: &X509Req,
        key: Arc<dyn SigningKey>,
        spec: &CertSpec,
    ) -> Result<Issuer> {
        check_request(req)?;
        let public = req.public_key().step("x509 -req")?;
        if !public.public_eq(&*key.public_key()?) {
            return Err(Error::Refused(
                "the request was not made with the CA key".into(),
            ));
        }
        let cert = build(req.subject_name(), &public, spec, None, key.as_ref())?;
        Ok(Issuer { cert, key })
    }

    /// The self-signed root of a key that cannot sign a request (a token's): its self-signature
    /// is the proof of possession.
    pub fn self_sign_key(
        subject: &X509NameRef,
        key: Arc<dyn SigningKey>,
        spec: &CertSpec,
    ) -> Result<Issuer> {
        let public = key.public_key()?;
        let cert = build(subject, &public, spec, None, key.as_ref())?;
        Ok(Issuer { cert, key })
    }

    /// An issuer from a loaded certificate and key file, refusing a key that is not the
    /// certificate's (`paths` name the files in the error).
    pub fn from_parts(
        cert: X509,
        key: PKey<Private>,
        paths: (&std::path::Path, &std::path::Path),
    ) -> Result<Issuer> {
        let (cert_path, key_path) = paths;
        key::algorithm_of(&key, "CA private key", key_path)?;
        let signer = KeyFile::new(key).map(KeyFile::shared);
        match signer.map(|k| Issuer::with_key(cert, k)) {
            Some(Ok(issuer)) => Ok(issuer),
            _ => Err(Error::KeyMismatch {
                key: key_path.to_owned(),
                cert: cert_path.to_owned(),
            }),
        }
    }

    /// An issuer from a loaded certificate and a key that signs where it lives, refusing a key
    /// that is not the certificate's (`paths` name the certificate and where the key is
    /// recorded in the error).
    pub fn from_signer(
        cert: X509,
        key: Arc<dyn SigningKey>,
        paths: (&std::path::Path, &std::path::Path),
    ) -> Result<Issuer> {
        let public = cert.public_key().step("x509 -pubkey")?;
        if !public.public_eq(&*key.public_key()?) {
            return Err(Error::KeyMismatch {
                key: paths.1.to_owned(),
                cert: paths.0.to_owned(),
            });
        }
        Ok(Issuer { cert, key })
    }

    /// An issuer of `cert` whose key signs where it lives; refused when the key is not the
    /// certificate's.
    pub fn with_key(cert: X509, key: Arc<dyn SigningKey>) -> Result<Issuer> {
        let public = cert.public_key().step("x509 -pubkey")?;
        if !public.public_eq(&*key.public_key()?) {
            return Err(Error::Refused(format!(
                "the {} is not the key of this CA certificate",
                key.describe()
            )));
        }
        Ok(Issuer { cert, key })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &X509Ref {
        &self.cert
    }

    /// The algorithm of the CA key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.key.algorithm()
    }

    /// The CA key, to sign what a caller built by hand (tests of certificates our profiles
    /// never make).
    pub fn signing_key(&self) -> &dyn SigningKey {
        self.key.as_ref()
    }

    /// `openssl x509 -req -in X.req -CA ca.crt -CAkey ca.key -extfile <profile>`: a leaf.
    ///
    /// The request's signature is checked first, as `openssl x509 -req` does. A validity that
    /// would outlive the CA is cut to the CA's notAfter.
    pub fn sign(&self, req: &X509Req, spec: &CertSpec) -> Result<X509> {
        check_request(req)?;
        let key = req.public_key().step("x509 -req")?;
        self.sign_key(req.subject_name(), &key, spec)
    }

    /// A leaf for `subject` and a public key whose possession was proven before: a renewal with
    /// the same key (`openssl x509 -x509toreq` then `-req`), or a device's request signed under
    /// a subject the CA chose. The validity is cut to the CA's notAfter.
    pub fn sign_key(
        &self,
        subject: &X509NameRef,
        key: &PKeyRef<Public>,
        spec: &CertSpec,
    ) -> Result<X509> {
        let ca_end = unix_time(self.cert.not_after())?;
        let mut spec = spec.clone();
        spec.validity.not_after = spec.validity.not_after.min(ca_end);
        build(subject, key, &spec, Some(&self.cert), self.key.as_ref())
    }

    /// `openssl ca -gencrl`: a v2 CRL listing `revoked`, with CRL number `number` and a
    /// nextUpdate `next_update_days` from now.
    pub fn crl(
        &self,
        revoked: &[Revocation],
        number: u64,
        next_update_days: u32,
    ) -> Result<X509Crl> {
        let step = "ca -gencrl";
        let mut crl = X509CrlBuilder::new().step(step)?;
        crl.set_issuer_name(self.cert.subject_name()).step(step)?;
        let now = now();
        crl.set_last_update(&*Asn1Time::from_unix(now).step(step)?)
            .step(step)?;
        crl.set_next_update(
            &*Asn1Time::from_unix(now + i64::from(next_update_days) * 86_400).step(step)?,
        )
        .step(step)?;
        // AKI needs an X509v3 context whose issuer is the CA; a scratch builder provides one.
        let scratch = X509::builder().step(step)?;
        let ctx = scratch.x509v3_context(Some(&self.cert), None);
        crl.append_extension(
            AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&ctx)
                .step(step)?,
        )
        .step(step)?;
        crl.append_extension(
            CrlNumber::new(BigNum::from_dec_str(&number.to_string()).step(step)?)
                .step(step)?
                .build()
                .step(step)?,
        )
        .step(step)?;
        for r in revoked {
            crl.add_revoked(crl_entry(r)?).step(step)?;
        }
        crl.sort().step(step)?;
        self.key.sign_crl(crl)
    }
}

/// The request must be signed by the key it carries (proof of possession).
fn check_request(req: &X509Req) -> Result<()> {
    let public = req.public_key().step("req -verify")?;
    if !req.verify(&public).step("req -verify")? {
        return Err(Error::Refused(
            "the request's signature does not verify (it was altered or is corrupt)".into(),
        ));
    }
    Ok(())
}

/// id-ce-cRLReasons (RFC 5280 §5.3.1).
const CRL_REASON: x509_cert::spki::ObjectIdentifier =
    x509_cert::spki::ObjectIdentifier::new_unwrap("2.5.29.21");

/// One CRL entry: serial, date and, when known, the reasonCode. OpenSSL's entry builder has no
/// extensions, so the entry is completed with x509-cert's types and handed back as DER.
fn crl_entry(r: &Revocation) -> Result<X509Revoked> {
    use x509_cert::der::{asn1::OctetString, Decode, Encode};
    let step = "ca -gencrl";
    let mut entry = X509RevokedBuilder::new().step(step)?;
    let serial = BigNum::from_hex_str(&r.serial).step(step)?;
    entry
        .set_serial_number(&*Asn1Integer::from_bn(&serial).step(step)?)
        .step(step)?;
    entry
        .set_revocation_date(&*Asn1Time::from_unix(r.revoked_at).step(step)?)
        .step(step)?;
    let entry = entry.build();
    let Some(reason) = r.reason else {
        return Ok(entry);
    };
    let der_error =
        |e: x509_cert::der::Error| Error::Refused(format!("CRL entry {}: {e}", r.serial));
    let mut parsed =
        x509_cert::crl::RevokedCert::from_der(&entry.to_der().step(step)?).map_err(der_error)?;
    let code = reason.crl_reason().to_der().map_err(der_error)?;
    parsed.crl_entry_extensions = Some(vec![x509_cert::ext::Extension {
        extn_id: CRL_REASON,
        critical: false,
        extn_value: OctetString::new(code).map_err(der_error)?,
    }]);
    X509Revoked::from_der(&parsed.to_der().map_err(der_error)?).step(step)
}

fn build(
    subject: &X509NameRef,
    subject_key: &PKeyRef<Public>,
    spec: &CertSpec,
    issuer: Option<&X509Ref>,
    key: &dyn SigningKey,
) -> Result<X509> {
    let step = "x509 -req";
    let subject_algorithm = KeyAlgorithm::of(subject_key).ok_or_else(|| {
        Error::Refused(format!(
            "unsupported key type {:?} of {} bits: we issue for RSA 2048/3072/4096, EC P-256/P-384 and Ed25519 only",
            subject_key.id(),
            subject_key.bits()
        ))
    })?;
    if spec.validity.not_after <= spec.validity.not_before {
        return Err(Error::Refused(
            "notAfter must be later than notBefore".into(),
        ));
    }
    let mut b = X509::builder().step(step)?;
    b.set_version(2).step(step)?; // v3
    b.set_serial_number(&*random_serial()?).step(step)?;
    b.set_subject_name(subject).step(step)?;
    b.set_issuer_name(issuer.map_or(subject, |i| i.subject_name()))
        .step(step)?;
    b.set_pubkey(subject_key).step(step)?;
    b.set_not_before(&*Asn1Time::from_unix(spec.validity.not_before).step(step)?)
        .step(step)?;
    b.set_not_after(&*Asn1Time::from_unix(spec.validity.not_after).step(step)?)
        .step(step)?;
    let exts = {
        let ctx = b.x509v3_context(issuer, None);
        spec.profile.extensions(subject_algorithm, spec, &ctx)?
    };
    for e in exts {
        b.append_extension(e).step(step)?;
    }
    if let Some(url) = &spec.crl_url {
        b.append_extension(crate::distribution::extension(url)?)
            .step(step)?;
    }
    key.sign_certificate(b)
}

/// 127 random bits with the top one set: positive, always 16 bytes, 126 bits of entropy
/// (RFC 5280 and the CA/B Forum want at least 64).
fn random_serial() -> Result<Asn1Integer> {
    let mut bn = BigNum::new().step("rand serial")?;
    bn.rand(127, MsbOption::ONE, false).step("rand serial")?;
    bn.to_asn1_integer().step("rand serial")
}
