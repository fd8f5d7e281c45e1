//! What can go wrong in `bench compare`: the load generator's failures, and the servers, the
//! PKI and the report of the comparison.

/// A failure of `bench compare`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The load generator's (an option, a file, a socket, TLS, JSON).
    #[error(transparent)]
    Load(#[from] loadgen::Error),
    /// A server under test exited or did not listen at start-up.
    #[error("{server} {why}; the end of its log:\n{log}")]
    ServerStart {
        /// `ours` or `nginx`.
        server: &'static str,
        /// What happened.
        why: String,
        /// The last lines of its log.
        log: String,
    },
    /// The benchmark PKI could not be made.
    #[error("cannot make the benchmark PKI")]
    Pki(#[from] pki::Error),
    /// The chart could not be drawn.
    #[error("cannot draw the chart")]
    Chart(#[from] plotters::drawing::DrawingAreaErrorKind<std::io::Error>),
}

impl Error {
    /// An option or input the comparison cannot use.
    pub fn usage(why: impl Into<String>) -> Error {
        Error::Load(loadgen::Error::Usage(why.into()))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Load(loadgen::Error::Json(e))
    }
}

/// Wraps an I/O error with what was being done.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let wrap = loadgen::error::io(what);
    move |source| Error::Load(wrap(source))
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
