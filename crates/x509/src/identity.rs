//! Who holds a certificate, as plain data: what the server hands its handlers (and `/whoami`
//! shows) once a client certificate has been verified.

use openssl::x509::X509Ref;
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The verified client certificate, as JSON for `/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientIdentity {
    /// Subject, one-line form (`/O=.../CN=client`).
    pub subject: String,
    /// The CN, if any.
    pub common_name: Option<String>,
    /// subjectAltName entries (`DNS:x`, `URI:x`, `email:x`, `IP:x`).
    pub sans: Vec<String>,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// SHA-256 fingerprint of the DER certificate, lower-case hex.
    pub sha256: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
}

impl ClientIdentity {
    /// Reads the identity out of a certificate (None if it cannot be parsed).
    pub fn from_cert(cert: &X509Ref) -> Option<ClientIdentity> {
        let der = cert.to_der().ok()?;
        let (_, parsed) = X509Certificate::from_der(&der).ok()?;
        // Of the DER already encoded (X509::digest would encode it again).
        let sha256 = openssl::sha::sha256(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let not_after =
            time::OffsetDateTime::from_unix_timestamp(parsed.validity().not_after.timestamp())
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()?;
        let subject = crate::cert::one_line(cert.subject_name());
        let common_name = crate::cert::common_name(cert.subject_name());
        Some(ClientIdentity {
            subject,
            common_name,
            sans: crate::inspect::names(&parsed),
            serial: crate::cert::serial_hex(cert).ok()?,
            sha256,
            not_after,
        })
    }
}
