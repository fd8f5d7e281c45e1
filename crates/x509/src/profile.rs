//! Which extensions a certificate carries is decided by its role, never by loose flags.
//!
//! The seed signed every certificate with bare `openssl x509 -req`, so none had
//! basicConstraints, keyUsage, extendedKeyUsage or subjectAltName, and today's verifiers refuse
//! them. [`Profile`] is the `-extfile` the seed never wrote, one per role.

use std::fmt;

use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
    SubjectAlternativeName as SanBuilder, SubjectKeyIdentifier,
};
use openssl::x509::{X509Extension, X509v3Context};

use crate::error::{CryptoContext, Error, Result};
use crate::key::KeyAlgorithm;
pub use crate::san::SubjectAltName;
use crate::time::{now, CLOCK_SKEW_SECS};
use common::Role;

/// The role a certificate is issued for; it decides every extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The self-signed root: `CA:TRUE`, keyCertSign + cRLSign; `pathlen:0` when it signs leaves
    /// itself, `pathlen:1` above an issuing intermediate.
    Ca,
    /// The issuing CA under an offline root: `CA:TRUE, pathlen:0`, keyCertSign + cRLSign,
    /// and the name constraints it may sign for.
    Intermediate,
    /// A TLS server: EKU serverAuth, subjectAltName required.
    Server,
    /// A TLS client ("device"): EKU clientAuth, SAN optional.
    Client,
}

impl Profile {
    /// The folder/role this profile's files belong to.
    pub fn role(self) -> Role {
        match self {
            Profile::Ca | Profile::Intermediate => Role::Ca,
            Profile::Server => Role::Server,
            Profile::Client => Role::Client,
        }
    }

    /// The seed's `O=` for this role.
    pub fn default_organization(self) -> &'static str {
        match self {
            Profile::Ca | Profile::Intermediate => "https Project Certificate Authority",
            Profile::Server => "https Project",
            Profile::Client => "https Project Device Certificate",
        }
    }

    /// Default validity in days: 10 years for the CA, 1 year for leaves (Mozilla's maximum for
    /// servers; the seed's 5000 days exceeds what Apple clients accept).
    pub fn default_days(self) -> u32 {
        match self {
            Profile::Ca => 3650,
            Profile::Intermediate => 1825,
            Profile::Server | Profile::Client => 365,
        }
    }

    /// Checks that `names` suit the profile: a server needs at least one DNS name or IP and takes
    /// nothing else; a CA takes none.
    pub fn check_names(self, names: &[SubjectAltName]) -> Result<()> {
        match self {
            Profile::Ca | Profile::Intermediate if !names.is_empty() => Err(Error::Refused(
                "a CA certificate carries no subjectAltName".into(),
            )),
            Profile::Server if names.is_empty() => Err(Error::Refused(
                "a server certificate needs at least one subjectAltName (DNS name or IP): \
                 clients match the host against it, never against the CN"
                    .into(),
            )),
            Profile::Server => match names
                .iter()
                .find(|n| !matches!(n, SubjectAltName::Dns(_) | SubjectAltName::Ip(_)))
            {
                Some(n) => Err(Error::Refused(format!(
                    "{n}: a server certificate names hosts only (DNS: or IP:)"
                ))),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The extensions of a certificate with this profile, in the order `openssl x509` writes them.
    /// `ctx` must carry the subject's public key and (for leaves) the issuer certificate.
    pub fn extensions(
        self,
        subject_key: KeyAlgorithm,
        spec: &CertSpec,
        ctx: &X509v3Context<'_>,
    ) -> Result<Vec<X509Extension>> {
        self.check_names(&spec.names)?;
        match self {
            Profile::Ca | Profile::Intermediate => self.ca_extensions(spec, ctx),
            Profile::Server | Profile::Client => {
                self.leaf_extensions(subject_key, &spec.names, ctx)
            }
        }
    }

    /// basicConstraints CA:TRUE with the pathlen of the level, keyCertSign + cRLSign, SKI,
    /// AKI under a root, and the name constraints.
    fn ca_extensions(self, spec: &CertSpec, ctx: &X509v3Context<'_>) -> Result<Vec<X509Extension>> {
        let step = "x509 -extfile";
        let pathlen = if self == Profile::Ca {
            spec.path_len
        } else {
            0
        };
        let mut exts = vec![
            BasicConstraints::new()
                .critical()
                .ca()
                .pathlen(pathlen)
                .build()
                .step(step)?,
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .step(step)?,
            SubjectKeyIdentifier::new().build(ctx).step(step)?,
        ];
        if self == Profile::Intermediate {
            exts.push(
                AuthorityKeyIdentifier::new()
                    .keyid(true)
                    .build(ctx)
                    .step(step)?,
            );
        }
        if !spec.constraints.is_empty() {
            exts.push(spec.constraints.extension(ctx)?);
        }
        Ok(exts)
    }

    /// CA:FALSE, digitalSignature (+ keyEncipherment for an RSA server), the role's EKU, the
    /// names, SKI and AKI.
    fn leaf_extensions(
        self,
        subject_key: KeyAlgorithm,
        names: &[SubjectAltName],
        ctx: &X509v3Context<'_>,
    ) -> Result<Vec<X509Extension>> {
        let step = "x509 -extfile";
        let mut exts = vec![BasicConstraints::new().critical().build().step(step)?];
        let mut ku = KeyUsage::new();
        ku.critical().digital_signature();
        // TLS 1.2 RSA key transport encrypts to the server key.
        if self == Profile::Server && subject_key.is_rsa() {
            ku.key_encipherment();
        }
        exts.push(ku.build().step(step)?);
        let mut eku = ExtendedKeyUsage::new();
        if self == Profile::Server {
            eku.server_auth();
        } else {
            eku.client_auth();
        }
        exts.push(eku.build().step(step)?);
        if !names.is_empty() {
            let mut san = SanBuilder::new();
            for n in names {
                match n {
                    SubjectAltName::Dns(d) => san.dns(d),
                    SubjectAltName::Ip(ip) => san.ip(&ip.to_string()),
                    SubjectAltName::Email(e) => san.email(e),
                    SubjectAltName::Uri(u) => san.uri(u),
                };
            }
            exts.push(san.build(ctx).step(step)?);
        }
        exts.push(SubjectKeyIdentifier::new().build(ctx).step(step)?);
        exts.push(
            AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(ctx)
                .step(step)?,
        );
        Ok(exts)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.role().dir_name())
    }
}

/// The validity window of a certificate, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: i64,
    /// notAfter.
    pub not_after: i64,
}

impl Validity {
    /// From a few minutes ago ([`CLOCK_SKEW_SECS`]) until `days` from now.
    pub fn days(days: u32) -> Validity {
        let now = now();
        Validity {
            not_before: now - CLOCK_SKEW_SECS,
            not_after: now + i64::from(days) * 86_400,
        }
    }

    /// An explicit window, for tests of expired or not-yet-valid certificates.
    pub fn between(not_before: i64, not_after: i64) -> Validity {
        Validity {
            not_before,
            not_after,
        }
    }
}

/// What to put in a certificate besides the request's name and key.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// The role, which decides the extensions.
    pub profile: Profile,
    /// subjectAltName entries (required for a server).
    pub names: Vec<SubjectAltName>,
    /// The validity window.
    pub validity: Validity,
    /// A root's pathlen: 0 when it signs leaves itself, 1 above an issuing intermediate.
    pub path_len: u32,
    /// What a CA certificate may sign for (empty: no nameConstraints extension).
    pub constraints: crate::constraints::NameConstraints,
    /// A URL where the CRL is published, carried as crlDistributionPoints
    /// ([`crate::distribution`]).
    pub crl_url: Option<String>,
}

impl CertSpec {
    /// A spec with the profile's default validity and no names.
    pub fn new(profile: Profile) -> CertSpec {
        CertSpec {
            profile,
            names: Vec::new(),
            validity: Validity::days(profile.default_days()),
            path_len: 0,
            constraints: crate::constraints::NameConstraints::default(),
            crl_url: None,
        }
    }

    /// Sets the subjectAltNames.
    pub fn names(mut self, names: Vec<SubjectAltName>) -> CertSpec {
        self.names = names;
        self
    }

    /// Sets the validity window.
    pub fn validity(mut self, validity: Validity) -> CertSpec {
        self.validity = validity;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typed_and_bare_names() {
        let p = |s: &str| s.parse::<SubjectAltName>();
        assert_eq!(
            p("DNS:Example.com").expect("dns"),
            SubjectAltName::Dns("example.com".into())
        );
        assert_eq!(
            p("localhost").expect("bare dns"),
            SubjectAltName::Dns("localhost".into())
        );
        assert_eq!(
            p("::1").expect("bare ip"),
            SubjectAltName::Ip("::1".parse().expect("ip"))
        );
        assert_eq!(p("IP:10.0.0.1").expect("ip").to_string(), "IP:10.0.0.1");
        assert!(matches!(
            p("email:a@b.c").expect("email"),
            SubjectAltName::Email(_)
        ));
        assert!(matches!(
            p("URI:spiffe://x/y").expect("uri"),
            SubjectAltName::Uri(_)
        ));
        assert!(p("*.example.com").is_ok());
    }

    #[test]
    fn refuses_what_verifiers_would_not_match() {
        for bad in [
            "DNS:127.0.0.1",
            "IP:not-an-ip",
            "bad_host",
            "email:nobody",
            "DNS:",
            "a..b",
        ] {
            assert!(bad.parse::<SubjectAltName>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn server_profile_requires_host_names() {
        assert!(Profile::Server.check_names(&[]).is_err());
        let email = vec!["email:a@b".parse().expect("email")];
        assert!(Profile::Server.check_names(&email).is_err());
        assert!(Profile::Client.check_names(&email).is_ok());
        assert!(Profile::Server
            .check_names(&SubjectAltName::localhost())
            .is_ok());
    }
}
