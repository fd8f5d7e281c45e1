//! Why a request failed, in classes a person (and a script, by exit code) can act on.

use serde::Serialize;

/// The kinds of failure the client tells apart. Each has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// A local file (CA, certificate, key, PKCS#12) is missing, unreadable or inconsistent.
    LocalFiles,
    /// Nothing accepts connections on that address.
    NotListening,
    /// The connection or handshake took longer than `--timeout`.
    Timeout,
    /// The port speaks plain HTTP, not TLS.
    PlainHttp,
    /// The server's certificate does not chain to our CA.
    UnknownCa,
    /// The server's certificate does not name the host we asked for.
    NameMismatch,
    /// The server's certificate is expired or not valid yet.
    ServerCertDates,
    /// The server demands a client certificate and we sent none.
    ClientCertRequired,
    /// The server refused our client certificate.
    ClientCertRefused,
    /// No TLS version or cipher suite in common.
    NoCommonProtocol,
    /// The server's certificate is revoked by its CA (or, with `--crl-check hard`, its CRL
    /// could not be had).
    ServerCertRevoked,
    /// Anything else.
    Other,
}

impl FailureClass {
    /// The process exit code for this class (documented in the README and `--help`).
    pub fn exit_code(self) -> u8 {
        match self {
            FailureClass::LocalFiles => 2,
            FailureClass::NotListening => 10,
            FailureClass::Timeout => 11,
            FailureClass::PlainHttp => 12,
            FailureClass::UnknownCa => 13,
            FailureClass::NameMismatch => 14,
            FailureClass::ServerCertDates => 15,
            FailureClass::ClientCertRequired => 16,
            FailureClass::ClientCertRefused => 17,
            FailureClass::NoCommonProtocol => 18,
            FailureClass::ServerCertRevoked => 20,
            FailureClass::Other => 19,
        }
    }
}

/// One failure, explained: what happened and what to do, plus OpenSSL's own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message} — {hint}")]
pub struct Failure {
    /// The class (and so the exit code).
    pub class: FailureClass,
    /// What happened, in plain words.
    pub message: String,
    /// What to do about it.
    pub hint: String,
    /// OpenSSL's (or the OS's) code and text, for searching.
    pub detail: String,
}

impl Failure {
    /// A failure of `class`.
    pub fn new(
        class: FailureClass,
        message: impl Into<String>,
        hint: impl Into<String>,
        detail: impl Into<String>,
    ) -> Failure {
        Failure {
            class,
            message: message.into(),
            hint: hint.into(),
            detail: detail.into(),
        }
    }

    /// A local file problem.
    pub fn local(message: impl Into<String>, hint: impl Into<String>) -> Failure {
        Failure::new(FailureClass::LocalFiles, message, hint, "")
    }

    /// The two lines shown to a person: the explanation, then the technical detail.
    pub fn to_lines(&self) -> String {
        if self.detail.is_empty() {
            self.to_string()
        } else {
            format!("{self}\n  ({})", self.detail)
        }
    }
}
