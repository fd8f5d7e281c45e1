//! Start-up and reload errors: each names the file or address and what to do.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can stop the server from starting, or a reload from taking effect.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A PKI file is missing, unreadable or malformed (the message names it).
    #[error(transparent)]
    Pki(#[from] pki::Error),

    /// A file was read but cannot be used.
    #[error("{what} {} cannot be used: {detail}", path.display())]
    Invalid {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },

    /// The users file is wrong.
    #[error(transparent)]
    Users(#[from] common::CredentialsError),

    /// OpenSSL refused the TLS settings.
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] openssl::error::ErrorStack),

    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The reason (in use, permission...).
        source: std::io::Error,
    },
}
