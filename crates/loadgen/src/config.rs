//! What one run is asked to do: where, how many, how long, and how connections are used.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde::Serialize;

use crate::error::{io, Error, Result};
use crate::http::{Http, RequestKind};
use crate::tls::{Backend, TlsFiles};

/// How connections are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A new TCP connection and a full TLS handshake for every request.
    NewConn,
    /// A new TCP connection for every request, resuming the worker's previous TLS session.
    Resume,
    /// One connection per worker, many requests on it (HTTP/1.1 keep-alive, no pipelining).
    Keepalive,
}

/// Hard cap on a run when no `-d` is given: without `-n` either, and as a ceiling with `-n`.
pub const DEFAULT_SECS: u64 = 10;
/// Ceiling of a run bounded by `-n` only.
pub const MAX_SECS_WITH_COUNT: u64 = 300;

/// Everything one load run needs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Where to connect (loopback only).
    pub addr: SocketAddr,
    /// Host name or IP checked against the server certificate, and sent as `Host`.
    pub host: String,
    /// Trust anchor and optional client identity.
    pub files: TlsFiles,
    /// TLS library of the client.
    pub backend: Backend,
    /// Connections at once.
    pub concurrency: usize,
    /// Total requests (all connections together), if bounded by count.
    pub requests: Option<u64>,
    /// How long to run, if bounded by time.
    pub duration: Option<Duration>,
    /// Connection use.
    pub mode: Mode,
    /// Request sent.
    pub request: RequestKind,
    /// HTTP version (h2 only with keep-alive).
    pub http: Http,
    /// tokio worker threads.
    pub threads: usize,
    /// Longest a request (with its handshake) may take before it counts as a timeout.
    pub timeout: Duration,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

impl LoadConfig {
    /// The run's time bound: `-d`, else a cap so that every run stops by itself.
    pub fn time_bound(&self) -> Duration {
        match (self.duration, self.requests) {
            (Some(d), _) => d,
            (None, Some(_)) => Duration::from_secs(MAX_SECS_WITH_COUNT),
            (None, None) => Duration::from_secs(DEFAULT_SECS),
        }
    }
}

/// Parses `https://HOST:PORT[/...]` into the socket address and the host name. Only loopback
/// addresses are accepted: this tool floods whatever it points at.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String)> {
    let usage = |why: String| Error::Usage(format!("--url {url}: {why}"));
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| usage("must start with https://".into()))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    // `[::1]:8443`, `127.0.0.1:8443`, `localhost` (port 443).
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| usage("unclosed [".into()))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| usage(format!("bad port {p:?}")))?,
        None => 443,
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(io(format!("resolve {host}")))?
        .collect();
    let Some(addr) = addrs.iter().copied().find(|a| a.ip().is_loopback()) else {
        return Err(usage(format!(
            "{host} is not a loopback address: the load generator only targets this machine"
        )));
    };
    Ok((addr, host.to_owned()))
}
