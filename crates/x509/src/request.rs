//! Step 2 of the seed, `openssl req -new -key X.key -out X.req`: a certificate signing request
//! (CSR) carrying the subject's name and public key, signed with its private key to prove
//! possession.
//!
//! The seed's config left `CN=` empty, and `openssl req` stopped with
//! `ASN1_mbstring_ncopy: string too short`. [`Subject`] refuses empty fields up front instead.

use openssl::pkey::{Id, PKey, PKeyRef, Private, Public};
use openssl::x509::{X509Name, X509Req};

use crate::error::{CryptoContext, Error, Result};
use crate::key::KeyAlgorithm;

/// The distinguished name of a certificate: `O=<organization>, CN=<common name>`, as in the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `O=`: who runs the PKI ("https Project" in the seed).
    pub organization: String,
    /// `CN=`: the host or device name. TLS clients ignore it for hostnames (the SAN counts).
    pub common_name: String,
    /// Whether the CN is left out ([`Subject::hosts_only`]).
    hosts_only: bool,
}

impl Subject {
    /// A subject with both fields set.
    pub fn new(organization: impl Into<String>, common_name: impl Into<String>) -> Self {
        Subject {
            organization: organization.into(),
            common_name: common_name.into(),
            hosts_only: false,
        }
    }

    /// `O=` only: the subjectAltNames name the host. For an address (clients that read a CN
    /// take it for a DNS name) or a name longer than a CN may be (64 characters).
    pub fn hosts_only(organization: impl Into<String>) -> Self {
        Subject {
            organization: organization.into(),
            common_name: String::new(),
            hosts_only: true,
        }
    }

    /// The subject as an OpenSSL name, refusing empty or over-long fields
    /// (RFC 5280 caps O and CN at 64 characters).
    pub fn to_x509_name(&self) -> Result<X509Name> {
        let fields = if self.hosts_only {
            vec![("O", &self.organization)]
        } else {
            vec![("O", &self.organization), ("CN", &self.common_name)]
        };
        for (field, value) in fields {
            if value.trim().is_empty() {
                return Err(Error::Refused(format!("subject {field}= is empty")));
            }
            if value.chars().count() > 64 {
                return Err(Error::Refused(format!(
                    "subject {field}= is longer than 64 characters"
                )));
            }
        }
        let mut name = X509Name::builder().step("req -subj")?;
        name.append_entry_by_text("O", &self.organization)
            .step("req -subj")?;
        if !self.hosts_only {
            name.append_entry_by_text("CN", &self.common_name)
                .step("req -subj")?;
        }
        Ok(name.build())
    }
}

/// `openssl req -new -key KEY -subj SUBJECT`: a CSR for `key`, self-signed with it.
pub fn build(key: &PKeyRef<Private>, subject: &Subject) -> Result<X509Req> {
    let algorithm = KeyAlgorithm::of(key)
        .ok_or_else(|| Error::Refused(format!("unsupported key type {:?}", key.id())))?;
    let name = subject.to_x509_name()?;
    let mut req = X509Req::builder().step("req -new")?;
    req.set_version(0).step("req -new")?;
    req.set_subject_name(&name).step("req -new")?;
    req.set_pubkey(key).step("req -new")?;
    req.sign(key, algorithm.signature_digest())
        .step("req -new")?;
    Ok(req.build())
}

/// A request whose signature verified with its own key (proof of possession) and whose key
/// we issue for: what an issuer may sign, checked once. Only [`Verified::check`] makes one.
pub struct Verified<'a> {
    csr: &'a X509Req,
    public: PKey<Public>,
    algorithm: KeyAlgorithm,
}

impl<'a> Verified<'a> {
    /// `openssl req -verify`, and the key's strength: refuses a request whose signature does
    /// not verify, or whose key is RSA under 2048 bits or on another curve than P-256/P-384.
    pub fn check(csr: &'a X509Req) -> Result<Verified<'a>> {
        let public = csr.public_key().step("req -verify")?;
        let algorithm = check_key(&public)?;
        if !csr.verify(&public).step("req -verify")? {
            return Err(Error::Refused(
                "the request's signature does not verify: it was altered, or not signed by its own key"
                    .into(),
            ));
        }
        Ok(Verified {
            csr,
            public,
            algorithm,
        })
    }

    /// The request.
    pub fn csr(&self) -> &X509Req {
        self.csr
    }

    /// Its public key.
    pub fn public_key(&self) -> &PKeyRef<Public> {
        &self.public
    }

    /// Its key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
}

/// Refuses a request whose signature does not verify (no proof of possession) or whose key we
/// would not issue for ([`Verified::check`]).
pub fn check_request(req: &X509Req) -> Result<()> {
    Verified::check(req).map(|_| ())
}

/// A key we issue for, or a refusal that says what to make instead.
pub fn check_key(public: &PKeyRef<Public>) -> Result<KeyAlgorithm> {
    if let Some(alg) = KeyAlgorithm::of(public) {
        return Ok(alg);
    }
    Err(Error::Refused(match public.id() {
        Id::RSA if public.bits() < 2048 => format!(
            "the request's key is RSA-{}: too weak (OpenSSL 3 and browsers refuse it); make an \
             EC P-256 or an RSA-2048 key",
            public.bits()
        ),
        Id::RSA => format!(
            "the request's key is RSA-{}: we issue for RSA 2048, 3072 and 4096 only",
            public.bits()
        ),
        Id::EC => "the request's key is on a curve we do not issue for: use P-256 or P-384".into(),
        other => format!("the request's key type {other:?} is not one we issue for"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key;

    #[test]
    fn request_is_signed_by_its_own_key() {
        let k = key::generate(KeyAlgorithm::EcP256).expect("key");
        let req = build(&k, &Subject::new("https Project", "localhost")).expect("req");
        assert!(req.verify(&req.public_key().expect("pub")).expect("verify"));
    }

    #[test]
    fn empty_common_name_is_refused_as_the_seed_should_have_been() {
        let k = key::generate(KeyAlgorithm::EcP256).expect("key");
        let Err(e) = build(&k, &Subject::new("https Project", "")) else {
            panic!("an empty CN must be refused");
        };
        assert!(e.to_string().contains("CN= is empty"), "{e}");
    }
}
