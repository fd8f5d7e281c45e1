//! The error of the X.509 facts: each variant carries what failed, on which file, and why.

use std::path::PathBuf;

/// What can go wrong reading, building or writing keys, requests and certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

    /// A subjectAltName given on the command line or to the API cannot be used.
    #[error("invalid subjectAltName {value:?}: {reason}")]
    InvalidName {
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A key, request or extension that we will not put in a certificate.
    #[error("cannot sign this request: {0}")]
    Refused(String),

    /// A name (of a certificate, its files and its record) breaks the rule of [`crate::name`].
    #[error("refused the name \"{name}\": {why}; {rule}")]
    BadName {
        /// The name as given (escaped).
        name: String,
        /// What is wrong with it.
        why: String,
        /// The rule it breaks, in words.
        rule: &'static str,
    },

    /// A validity that would not give a certificate valid now and for at least a day.
    #[error("{0}")]
    BadDays(String),

    /// OpenSSL reported an error during a step.
    #[error("{step} failed: {source}")]
    Crypto {
        /// The step, in openssl CLI terms ("genpkey", "x509 -req", ...).
        step: &'static str,
        /// OpenSSL's error stack.
        source: openssl::error::ErrorStack,
    },
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => " (run `make certs` to create the PKI)",
        std::io::ErrorKind::PermissionDenied => " (check the file's owner and mode)",
        _ => "",
    }
}

/// Attaches the openssl step name to an [`openssl::error::ErrorStack`].
pub trait CryptoContext<T> {
    /// Names the step that failed.
    fn step(self, step: &'static str) -> Result<T>;
}

impl<T> CryptoContext<T> for std::result::Result<T, openssl::error::ErrorStack> {
    fn step(self, step: &'static str) -> Result<T> {
        self.map_err(|source| Error::Crypto { step, source })
    }
}
