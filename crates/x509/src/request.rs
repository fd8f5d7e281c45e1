//! Step 2 of the seed, `openssl req -new -key X.key -out X.req`: a certificate signing request
//! (CSR) carrying the subject's name and public key, signed with its private key to prove
//! possession.
//!
//! The seed's config left `CN=` empty, and `openssl req` stopped with
//! `ASN1_mbstring_ncopy: string too short`. [`Subject`] refuses empty fields up front instead.

use openssl::pkey::{PKeyRef, Private};
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
}

impl Subject {
    /// A subject with both fields set.
    pub fn new(organization: impl Into<String>, common_name: impl Into<String>) -> Self {
        Subject {
            organization: organization.into(),
            common_name: common_name.into(),
        }
    }

    /// The subject as an OpenSSL name, refusing empty or over-long fields
    /// (RFC 5280 caps O and CN at 64 characters).
    pub fn to_x509_name(&self) -> Result<X509Name> {
        for (field, value) in [("O", &self.organization), ("CN", &self.common_name)] {
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
        name.append_entry_by_text("CN", &self.common_name)
            .step("req -subj")?;
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
