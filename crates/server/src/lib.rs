//! The seed's Flask server, done right: actix-web with an OpenSSL acceptor, one-way or mutual
//! TLS, on `127.0.0.1:8091` by default.
//!
//! - [`Config`]: a plain struct with the binary's defaults ([`Config::new`] for a deployed
//!   server, [`Config::for_pki`] for tests);
//!   it never reads argv or the environment (the binary's flags live in `main.rs`).
//! - [`Server`]: the hardened listener (Mozilla profiles, client-certificate policy, CRL, hot
//!   reload, lingering close, limits, access list) around the seed's routes or your own
//!   actix-web services ([`Server::app`]); [`start`], [`run`] and [`Background::spawn`] are
//!   its shortcuts for a config alone (the seed's routes, or the front door).
//! - [`ClientIdentity`]: the verified client certificate as an extractor (401 without one;
//!   `Option<ClientIdentity>` serves anonymous clients too).
//! - [`Config::upstream`]: the front door; every request is forwarded to an HTTP application
//!   with the verified client in `X-Client-Cert-*` headers (forged ones removed first), bodies
//!   streamed, 502/504 when the application is down or slow.
//! - [`TlsReloader`]: the TLS state behind a running server, for reloads.
//! - [`metrics`]: Prometheus figures of the trust path (`Config::metrics_bind`, or on the TLS
//!   port for `Config::metrics_allow_cn`), and helpers any other service can expose its own with.
//! - [`log`]: the binary's log set-up, text or one JSON object per line.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use server::{ClientAuth, Config};
//! let started = server::start(&Config::for_pki("certs", ClientAuth::Required))?;
//! println!("listening on {:?}", started.addrs);
//! started.server.await?;
//! # Ok(()) }
//! ```
// One `unsafe` expression, in revocation.rs: an OpenSSL verify code from its constant.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod crl_fetch;
mod error;
mod identity;
mod limits;
mod linger;
mod listener;
pub mod log;
mod login;
mod material;
pub mod metrics;
mod middleware;
mod pages;
mod proxy;
mod proxy_headers;
mod refusal;
mod revocation;
mod routes;
mod tls;
mod trust;
mod workers;

pub use config::{ClientAuth, Config, CrlStale, TlsProfile, Upstream};

/// The README's Rust blocks (the library section's `main.rs`), compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
pub use error::{InvalidUpstream, ServerError};
pub use identity::{ClientIdentity, NoClientCertificate};
pub use listener::{run, start, Background, Server, Started};
pub use refusal::{Reason, Refusal};
pub use tls::{Loaded, TlsReloader};
pub use trust::{CaInfo, CertInfo, CrlInfo, Freshness};
pub use workers::{Handle, Serving};
