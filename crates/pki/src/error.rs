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

    /// A command refused before anything changed, for a reason other than the request to sign:
    /// the folder's state does not allow it (its CA is of another shape, a key is missing or
    /// offline, a rotation stands elsewhere) or an option cannot work. The message says what is
    /// there and what to run instead.
    #[error("{0}")]
    Declined(String),

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

    /// The CA key's PKCS#11 token (or its module, its PIN, its session) failed; nothing was
    /// signed or written.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),

    /// A key returned a signature that does not verify with its own public key; nothing was
    /// written.
    #[error(
        "the {0} returned a signature that does not verify with its public key: nothing was signed"
    )]
    BadSignature(String),

    /// A certificate or CRL signed by a key elsewhere could not be reassembled.
    #[error("cannot assemble the signed certificate or CRL: {0}")]
    Assembly(&'static str),
}

/// Why the CA key's PKCS#11 token could not be used. Each says which token or object, never a
/// PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The key store URI is not one we can use.
    #[error("key store URI: {0}")]
    Uri(String),

    /// No PIN: neither `pin-source` in the URI nor the environment variable.
    #[error("no PIN for token {token:?}: set {env}, or add pin-source=file:PATH to the key store URI (a file outside the PKI folder, 0600)")]
    NoPin {
        /// The token's label.
        token: String,
        /// The environment variable read.
        env: &'static str,
    },

    /// The PIN file could not be read.
    #[error("cannot read the PIN file {}: {source}", path.display())]
    PinSource {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The PKCS#11 module could not be loaded or initialised.
    #[error("cannot load the PKCS#11 module {}: {detail}", path.display())]
    Module {
        /// The module (`module-path`).
        path: PathBuf,
        /// What failed.
        detail: String,
    },

    /// No token with this label (it is unplugged, or the label is wrong).
    #[error("no token labelled {token:?} in {} (plugged in? `pkcs11-tool --module {} --list-slots` shows the tokens{})", module.display(), module.display(), if seen.is_empty() { String::new() } else { format!("; found: {}", seen.join(", ")) })]
    TokenNotFound {
        /// The label asked for.
        token: String,
        /// The module.
        module: PathBuf,
        /// The labels of the tokens present.
        seen: Vec<String>,
    },

    /// The token refused the PIN.
    #[error("the PIN of token {token:?} is wrong: nothing was signed (check pin-source or the PIN variable)")]
    WrongPin {
        /// The token's label.
        token: String,
    },

    /// The token's user PIN is locked after too many wrong tries.
    #[error("the user PIN of token {token:?} is locked: unlock it with the SO PIN (`pkcs11-tool --init-pin --login --login-type so`)")]
    PinLocked {
        /// The token's label.
        token: String,
    },

    /// No private key with this label (and id) in the token.
    #[error("token {token:?} holds no private key {object:?}: `pkcs11-tool --list-objects --login` shows what it holds")]
    KeyNotFound {
        /// The token's label.
        token: String,
        /// The object's label.
        object: String,
    },

    /// Several private keys answer to the URI.
    #[error("token {token:?} holds {count} private keys labelled {object:?}: add id= to the key store URI")]
    Ambiguous {
        /// The token's label.
        token: String,
        /// The object's label.
        object: String,
        /// How many.
        count: usize,
    },

    /// `pki init` would make a key under a label the token already holds.
    #[error("token {token:?} already holds an object labelled {object:?} (or with the URI's id=): choose another object= (or id=) in the key store URI, or remake the PKI with --force (which destroys it)")]
    KeyExists {
        /// The token's label.
        token: String,
        /// The object's label.
        object: String,
    },

    /// The key is of a type or size we do not sign with in a token.
    #[error("token {token:?}: {detail}")]
    Unsupported {
        /// The token's label.
        token: String,
        /// What is not supported.
        detail: String,
    },

    /// The session with the token was lost (the token restarted or was unplugged) and could not
    /// be opened again.
    #[error("the session with token {token:?} was lost and could not be reopened: {detail}")]
    SessionLost {
        /// The token's label.
        token: String,
        /// Why reopening failed.
        detail: String,
    },

    /// A PKCS#11 call failed.
    #[error("token {token:?}: {operation} failed ({code})")]
    Device {
        /// The token's label.
        token: String,
        /// What was being done.
        operation: &'static str,
        /// The PKCS#11 return value, by name.
        code: String,
    },

    /// The key cannot leave the token (`pki root export`).
    #[error("the {what} is inside token {token:?} ({}): it cannot be exported; keep the token itself offline instead", record.display())]
    NotExportable {
        /// Which key.
        what: &'static str,
        /// The token's label.
        token: String,
        /// The file that records where it is.
        record: PathBuf,
    },
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
