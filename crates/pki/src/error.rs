//! The one error type of the library: each variant says what failed, on which file, and what
//! to do about it.

use std::path::PathBuf;

/// Everything that can go wrong in the PKI library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fact about a key, request, certificate or file ([`x509::Error`]): unreadable,
    /// malformed, already there, refused by the profile, or an OpenSSL step that failed.
    #[error(transparent)]
    X509(#[from] x509::Error),

    /// The CA private key is not the key of the CA certificate.
    #[error("CA key {} does not match CA certificate {}: restore the right pair, or remake the CA with --force (every issued certificate then becomes invalid)", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },

    /// A certificate request was refused before signing.
    #[error("cannot sign this request: {0}")]
    Refused(String),

    /// `revoke` found nothing to revoke, or more than one certificate.
    #[error("{0}")]
    NotInIndex(String),

    /// Another certificate is already recorded under this name (maybe issued a moment ago by
    /// another command).
    #[error("a {role} certificate named {name} already exists: pass --force to replace it, or pick another name")]
    NameTaken {
        /// `server` or `client`.
        role: String,
        /// The name.
        name: String,
    },

    /// A valid certificate holds the name (the online CA refuses to enroll over it).
    #[error("{name} holds a valid certificate (serial {serial}, until {}): renew it, or revoke it before enrolling again", x509::time::date(*not_after))]
    NameHeld {
        /// The name.
        name: String,
        /// The holder's serial.
        serial: String,
        /// The holder's notAfter, Unix seconds.
        not_after: i64,
    },

    /// The CA's database stayed locked by another command for longer than the lock timeout.
    #[error("the CA database {0} is busy: another pki command has held it longer than the lock timeout; nothing was changed; retry, or raise --lock-timeout")]
    Busy(String),

    /// The CA's database refused or failed an operation.
    #[error("CA database {place}: {detail}")]
    Database {
        /// The file or server (never with a password).
        place: String,
        /// What went wrong.
        detail: String,
    },

    /// An enrollment token was refused; nothing was issued and the token is unchanged.
    #[error("{0}")]
    Token(TokenRefusal),

    /// An ACME external account binding was refused; no account was created.
    #[error("{0}")]
    Eab(EabRefusal),
}

/// Why an ACME external account binding could not bind an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EabRefusal {
    /// No binding has this key id.
    Unknown,
    /// It bound another account already.
    Used,
    /// Its time ran out.
    Expired,
}

impl std::fmt::Display for EabRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EabRefusal::Unknown => "the external account binding's key id is not known",
            EabRefusal::Used => "the external account binding was used already",
            EabRefusal::Expired => "the external account binding has expired",
        })
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRefusal {
    /// No such token.
    Unknown,
    /// Used already.
    Used,
    /// Past its expiry.
    Expired,
    /// Made for another name or role.
    OtherName,
}

impl std::fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenRefusal::Unknown => "the enrollment token is not known",
            TokenRefusal::Used => "the enrollment token was used already",
            TokenRefusal::Expired => "the enrollment token has expired",
            TokenRefusal::OtherName => "the enrollment token was made for another name",
        })
    }
}

/// Shorthand used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The openssl step name on an [`openssl::error::ErrorStack`], as this crate's [`Error`].
pub(crate) trait CryptoContext<T> {
    /// Names the step that failed.
    fn step(self, step: &'static str) -> Result<T>;
}

impl<T> CryptoContext<T> for std::result::Result<T, openssl::error::ErrorStack> {
    fn step(self, step: &'static str) -> Result<T> {
        self.map_err(|source| Error::X509(x509::Error::Crypto { step, source }))
    }
}
