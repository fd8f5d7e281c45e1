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
    #[error("cannot listen on {addr}: {}", bind_reason(io))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The reason (in use, permission...): said in words by the message, so not a
        /// `source` that would repeat it in the OS's words.
        io: std::io::Error,
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

/// Why a bind failed, in words, with what to do for the usual two.
fn bind_reason(e: &std::io::Error) -> String {
    // Our own words (another copy of this server holds the port) stand as they are.
    if e.get_ref().is_some() {
        return e.to_string();
    }
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another program listens there: stop it, or pass another --bind ADDR:PORT".into()
        }
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges: use a port above 1024, or give the binary \
             CAP_NET_BIND_SERVICE"
                .into()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "no interface of this host has that address: use 127.0.0.1, ::1 or one of its own"
                .into()
        }
        _ => e.to_string(),
    }
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
            io: std::io::Error::from_raw_os_error(98),
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
        assert!(shown.contains("another program listens there"), "{shown}");
        assert_eq!(common::error_chain(&e), shown, "said once");
        let ours = ServerError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 8091)),
            io: std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "port 8091 is already served by another copy of this server",
            ),
        };
        assert!(format!("{ours}").ends_with("another copy of this server"));
    }
}
