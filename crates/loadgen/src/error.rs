//! What can go wrong in the load generator, each saying what failed and, where there is one, what to do.

/// A failure of the load generator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option or input the benchmark cannot use; the text says which and why.
    #[error("{0}")]
    Usage(String),
    /// A file, socket, process or runtime operation failed.
    #[error("cannot {what}")]
    Io {
        /// What was being done, e.g. `read the CA certificate ca.crt`.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The load generator's TLS client refused a setting or file (OpenSSL, rustls or PEM).
    #[error("{what}")]
    Tls {
        /// What was being set up, e.g. `cannot load the CA ca.crt`.
        what: String,
        /// The TLS library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The report could not be encoded.
    #[error("cannot encode the report as JSON")]
    Json(#[from] serde_json::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an I/O error with what was being done.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Wraps a TLS library's error with what was being set up.
pub fn tls<E>(what: impl Into<String>) -> impl FnOnce(E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let what = what.into();
    move |source| Error::Tls {
        what,
        source: Box::new(source),
    }
}
