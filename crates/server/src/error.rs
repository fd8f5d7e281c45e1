//! Start-up and reload errors: each names the file or address and what to do.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can stop the server from starting, or a reload from taking effect. Its `Debug` is its
/// sentence too, so that `main() -> Result<(), ServerError>` prints `Error: cannot listen on
/// …`, not the enum's fields.
#[derive(thiserror::Error)]
pub enum ServerError {
    /// A PKI file is missing, unreadable or malformed (the message names it).
    #[error(transparent)]
    Pki(#[from] x509::Error),

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

    /// The identity header prefix cannot start a header name.
    #[error("identity header prefix {prefix:?} cannot start a header name: use letters, digits and '-', like X-Client-Cert-")]
    HeaderPrefix {
        /// The prefix given.
        prefix: String,
    },

    /// The metrics could not be set up (a bug: every name is fixed).
    #[error("metrics set-up failed: {0}")]
    Metrics(#[from] prometheus::Error),

    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The reason (in use, permission...).
        source: std::io::Error,
    },
}

/// Why an upstream URL was refused (`--upstream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUpstream {
    /// Not a URL at all.
    #[error("not a URL; give one like http://127.0.0.1:5000")]
    NotAUrl,
    /// Another scheme than `http`.
    #[error("only http:// upstreams are supported (the application is reached on loopback or a private network, without TLS)")]
    NotHttp,
    /// No host.
    #[error("the URL names no host; give one like http://127.0.0.1:5000")]
    NoHost,
    /// A path or query: every request goes to the same path on the upstream.
    #[error("the URL has a path or query; give only http://host:port (every request keeps its own path)")]
    HasPath,
}

impl std::fmt::Debug for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `main() -> Result<(), ServerError>` prints `Error: {:?}`: a sentence, not the fields.
    #[test]
    fn debug_is_the_sentence_a_person_reads() {
        let e = ServerError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 8091)),
            source: std::io::Error::from_raw_os_error(98),
        };
        let shown = format!("{e:?}");
        assert!(
            shown.starts_with("cannot listen on 127.0.0.1:8091: "),
            "{shown}"
        );
        assert!(
            !shown.contains("Bind {") && !shown.contains("Os {"),
            "{shown}"
        );
    }
}
