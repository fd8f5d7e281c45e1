//! What a leaf certificate is to be, before anyone signs it: its profile, the name of its
//! files and record, its subject and names, its key type and lifetime ([`Leaf`]); and what
//! the issuer signs it with ([`Leaf::spec`]) and records of it ([`Leaf::record`]). The folder
//! (files on disk) and the [`Authority`](crate::Authority) (records only) share both.

use openssl::x509::X509Ref;

use crate::error::{CryptoContext, Error, Result};
use crate::issuer::Issuer;
use crate::name::Days;
use crate::store::{Record, State};
use x509::time::{now, unix_time};
use x509::{CertSpec, KeyAlgorithm, Profile, Subject, SubjectAltName, Validity};

/// The certificate to issue for a leaf: profile, file name and what goes inside.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Server or client.
    pub profile: Profile,
    /// File stem and record key: `server/NAME.crt`, `client/NAME.key` (see [`crate::name`]).
    pub name: String,
    /// `O=`/`CN=`.
    pub subject: Subject,
    /// subjectAltName entries.
    pub names: Vec<SubjectAltName>,
    /// Key type to generate.
    pub key: KeyAlgorithm,
    /// Validity in days (profile default when `None`).
    pub days: Option<u32>,
}

impl Leaf {
    /// A server named `name` (file stem) for hosts `names`; CN = the first name.
    pub fn server(name: &str, names: Vec<SubjectAltName>) -> Leaf {
        let cn = names
            .first()
            .map_or_else(|| name.to_owned(), SubjectAltName::value);
        Leaf {
            profile: Profile::Server,
            name: name.to_owned(),
            subject: Subject::new(Profile::Server.default_organization(), cn),
            names,
            key: KeyAlgorithm::default(),
            days: None,
        }
    }

    /// A client (device) named `name`: CN and file stem.
    pub fn client(name: &str) -> Leaf {
        Leaf {
            profile: Profile::Client,
            name: name.to_owned(),
            subject: Subject::new(Profile::Client.default_organization(), name),
            names: Vec::new(),
            key: KeyAlgorithm::default(),
            days: None,
        }
    }
}

impl Leaf {
    /// The spec `issuer` signs this leaf with: the profile's extensions, the names (checked
    /// against the CA's name constraints), the lifetime (cut to the CA's own notAfter, with a
    /// notice saying so), and the CRL's URL when there is one. Refused when the CA cannot
    /// issue a certificate valid for a day.
    pub fn spec(
        &self,
        issuer: &Issuer,
        crl_url: Option<&str>,
    ) -> Result<(CertSpec, Option<String>)> {
        let days = Days::new(i64::from(self.days.unwrap_or(self.profile.default_days())))?;
        let wanted = Validity::days(days.get());
        let ca_end = unix_time(issuer.certificate().not_after())?;
        if ca_end - now() < 86_400 {
            return Err(Error::Refused(format!(
                "the CA expires on {}: it cannot issue a certificate valid for a day; make a new CA",
                x509::time::date(ca_end)
            )));
        }
        let cut = (wanted.not_after > ca_end).then(|| {
            format!(
                "{}: validity cut to the CA's own expiry, {} (asked for {} days)",
                self.name,
                x509::time::date(ca_end),
                days.get()
            )
        });
        x509::constraints::NameConstraints::of(issuer.certificate())?
            .check(&self.names, &self.subject.common_name)?;
        let mut spec = CertSpec::new(self.profile)
            .names(self.names.clone())
            .validity(wanted);
        spec.crl_url = crl_url.map(str::to_owned);
        Ok((spec, cut))
    }

    /// The record of `cert`, just signed for this leaf by the CA `aki`, whose file is (or
    /// would be, in the folder) `file`: state Issuing, claimed by this process, until its
    /// files are in place.
    pub fn record(&self, cert: &X509Ref, aki: &str, file: &str) -> Result<Record> {
        Ok(Record {
            aki: aki.to_owned(),
            serial: x509::cert::serial_hex(cert)?,
            role: self.profile.role(),
            name: self.name.clone(),
            subject: x509::cert::one_line(cert.subject_name()),
            cn: x509::cert::common_name(cert.subject_name()),
            sans: self.names.clone(),
            not_before: unix_time(cert.not_before())?,
            not_after: unix_time(cert.not_after())?,
            state: State::Issuing,
            revoked: None,
            current: true,
            file: file.to_owned(),
            der: Some(cert.to_der().step("x509 -outform DER")?),
            issued_at: now(),
            claim: Some(crate::claim::mine()),
            renews: None,
        })
    }
}
