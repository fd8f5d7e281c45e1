//! What every crate of the workspace agrees on: where the PKI lives on disk and the seed's
//! network defaults.
//!
//! The layout is the one the seed's shell script produced (`ca/ca.crt`, `server/server.key`, ...),
//! so someone coming from the blog post finds their files where they expect them.
//!
//! ```
//! use common::Layout;
//! let layout = Layout::new("certs");
//! assert_eq!(layout.ca_cert(), std::path::Path::new("certs/ca/ca.crt"));
//! assert_eq!(layout.leaf_key(common::Role::Server, "server"),
//!            std::path::Path::new("certs/server/server.key"));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};

pub mod credentials;
pub use credentials::{Credentials, CredentialsError};

/// Default folder of the PKI, relative to the working directory (what `make certs` writes).
pub const DEFAULT_PKI_DIR: &str = "certs";

/// Environment variable that overrides [`DEFAULT_PKI_DIR`] for every binary.
pub const PKI_DIR_ENV: &str = "PKI_DIR";

/// The seed's port.
pub const DEFAULT_PORT: u16 = 8091;

/// Loopback by default: listening on every interface must be asked for.
pub const DEFAULT_BIND: &str = "127.0.0.1:8091";

/// File stem of the server certificate `make certs` writes (`server/server.crt`).
pub const DEFAULT_SERVER_NAME: &str = "server";

/// File stem and common name of the client certificate `make certs` writes (`client/client.crt`).
pub const DEFAULT_CLIENT_NAME: &str = "client";

/// The three identities of the seed: who holds a certificate, and so which folder it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The private certificate authority.
    Ca,
    /// A TLS server.
    Server,
    /// A TLS client (the seed's "device").
    Client,
}

impl Role {
    /// Folder name under the PKI root, also the seed's file stem for the default identity.
    pub fn dir_name(self) -> &'static str {
        match self {
            Role::Ca => "ca",
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// Paths of every file of a PKI folder. The only place that knows file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Default for Layout {
    /// [`DEFAULT_PKI_DIR`], relative to the working directory.
    fn default() -> Self {
        Layout::new(DEFAULT_PKI_DIR)
    }
}

impl Layout {
    /// A layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The PKI root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Folder of one role (`ca/`, `server/`, `client/`).
    pub fn dir(&self, role: Role) -> PathBuf {
        self.root.join(role.dir_name())
    }

    /// `ca/ca.crt`: the trust anchor both sides load.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir(Role::Ca).join("ca.crt")
    }

    /// `ca/ca.key`: the CA's private key.
    pub fn ca_key(&self) -> PathBuf {
        self.dir(Role::Ca).join("ca.key")
    }

    /// `ca/intermediate.crt`: the issuing CA of a two-level PKI (signed by `ca/ca.crt`).
    pub fn intermediate_cert(&self) -> PathBuf {
        self.dir(Role::Ca).join("intermediate.crt")
    }

    /// `ca/intermediate.key`: its private key.
    pub fn intermediate_key(&self) -> PathBuf {
        self.dir(Role::Ca).join("intermediate.key")
    }

    /// `ca/root.crl`: the root's CRL in a two-level PKI (the intermediates it revoked).
    pub fn root_crl(&self) -> PathBuf {
        self.dir(Role::Ca).join("root.crl")
    }

    /// `ca/crl-url`: the URL certificates name as their CRL distribution point, if one is set.
    pub fn ca_crl_url(&self) -> PathBuf {
        self.dir(Role::Ca).join("crl-url")
    }

    /// `ca/ca.crl`: the issuing CA's certificate revocation list.
    pub fn ca_crl(&self) -> PathBuf {
        self.dir(Role::Ca).join("ca.crl")
    }

    /// `ca/index.txt`: every certificate the CA issued, in `openssl ca`'s format.
    pub fn ca_index(&self) -> PathBuf {
        self.dir(Role::Ca).join("index.txt")
    }

    /// `ca/crlnumber`: the next CRL number, in hex, as `openssl ca` keeps it.
    pub fn ca_crl_number(&self) -> PathBuf {
        self.dir(Role::Ca).join("crlnumber")
    }

    /// Certificate of a leaf: `server/NAME.crt` or `client/NAME.crt`.
    pub fn leaf_cert(&self, role: Role, name: &str) -> PathBuf {
        self.dir(role).join(format!("{name}.crt"))
    }

    /// Private key of a leaf: `server/NAME.key` or `client/NAME.key`.
    pub fn leaf_key(&self, role: Role, name: &str) -> PathBuf {
        self.dir(role).join(format!("{name}.key"))
    }

    /// PKCS#12 bundle of a client: `client/NAME.p12`.
    pub fn client_p12(&self, name: &str) -> PathBuf {
        self.dir(Role::Client).join(format!("{name}.p12"))
    }

    /// Generated password of a client's PKCS#12 bundle: `client/NAME.p12.pass`.
    pub fn client_p12_pass(&self, name: &str) -> PathBuf {
        self.dir(Role::Client).join(format!("{name}.p12.pass"))
    }

    /// `server/server.crt`, the server certificate `make certs` writes.
    pub fn server_cert(&self) -> PathBuf {
        self.leaf_cert(Role::Server, DEFAULT_SERVER_NAME)
    }

    /// `server/server.key`.
    pub fn server_key(&self) -> PathBuf {
        self.leaf_key(Role::Server, DEFAULT_SERVER_NAME)
    }

    /// `client/client.crt`, the client certificate `make certs` writes.
    pub fn client_cert(&self) -> PathBuf {
        self.leaf_cert(Role::Client, DEFAULT_CLIENT_NAME)
    }

    /// `client/client.key`.
    pub fn client_key(&self) -> PathBuf {
        self.leaf_key(Role::Client, DEFAULT_CLIENT_NAME)
    }

    /// The path of `path` relative to the root, for index entries and messages.
    pub fn relative<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }
}

/// An error and its causes on one line, for a person: `what failed: why`. A cause whose text
/// the message already contains is not repeated.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
