//! The one error type of the library: each variant says what failed, on which file, and what
//! to do about it.

use std::path::PathBuf;

/// Everything that can go wrong in the PKI library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file we would write already exists.
    #[error("{what} {} already exists; pass --force to replace it", path.display())]
    Exists {
        /// What the file holds ("CA private key", ...).
        what: &'static str,
        /// Where it is.
        path: PathBuf,
    },

    /// A file could not be read.
    #[error("cannot read {what} {}: {source}{}", path.display(), hint(source))]
    Read {
        /// What the file holds.
        what: &'static str,
        /// Where it is.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// A file could not be written; nothing was changed at `path`.
    #[error("cannot write {what} {}: {source} (nothing was changed there)", path.display())]
    Write {
        /// What the file holds.
        what: &'static str,
        /// Where it should have gone.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// A file was read but its content is not what it should be.
    #[error("{what} {} is not valid: {detail}", path.display())]
    Malformed {
        /// What the file should hold.
        what: &'static str,
        /// Where it is.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// The CA private key is not the key of the CA certificate.
    #[error("CA key {} does not match CA certificate {}: restore the right pair, or remake the CA with --force (every issued certificate then becomes invalid)", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },

    /// A subjectAltName given on the command line or to the API cannot be used.
    #[error("invalid subjectAltName {value:?}: {reason}")]
    InvalidName {
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A certificate request was refused before signing.
    #[error("cannot sign this request: {0}")]
    Refused(String),

    /// `revoke` found nothing to revoke, or more than one certificate.
    #[error("{0}")]
    NotInIndex(String),

    /// A name (of a certificate, its files and its record) breaks the rule of [`crate::name`].
    #[error("refused the name \"{name}\": {why}; {}", crate::name::RULE)]
    BadName {
        /// The name as given (escaped).
        name: String,
        /// What is wrong with it.
        why: String,
    },

    /// A validity that would not give a certificate valid now and for at least a day.
    #[error("{0}")]
    BadDays(String),

    /// Another certificate is already recorded under this name (maybe issued a moment ago by
    /// another command).
    #[error("a {role} certificate named {name} already exists: pass --force to replace it, or pick another name")]
    NameTaken {
        /// `server` or `client`.
        role: String,
        /// The name.
        name: String,
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
    Token(crate::store::TokenRefusal),

    /// OpenSSL reported an error during a step.
    #[error("{step} failed: {source}")]
    Crypto {
        /// The step, in openssl CLI terms ("genpkey", "x509 -req", ...).
        step: &'static str,
        /// OpenSSL's error stack.
        source: openssl::error::ErrorStack,
    },
}

/// Shorthand used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => " (run `make certs` to create the PKI)",
        std::io::ErrorKind::PermissionDenied => " (check the file's owner and mode)",
        _ => "",
    }
}

/// Attaches the openssl step name to an [`openssl::error::ErrorStack`].
pub(crate) trait CryptoContext<T> {
    /// Names the step that failed.
    fn step(self, step: &'static str) -> Result<T>;
}

impl<T> CryptoContext<T> for std::result::Result<T, openssl::error::ErrorStack> {
    fn step(self, step: &'static str) -> Result<T> {
        self.map_err(|source| Error::Crypto { step, source })
    }
}
