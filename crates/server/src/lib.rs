//! The seed's Flask server, done right: actix-web with an OpenSSL acceptor, one-way or mutual
//! TLS, on `127.0.0.1:8091` by default.
//!
//! - [`Config`]: a plain struct with the binary's defaults ([`Config::for_pki`] for tests);
//!   it never reads argv or the environment (the binary's flags live in `main.rs`).
//! - [`Server`]: the hardened listener (Mozilla profiles, client-certificate policy, CRL, hot
//!   reload, lingering close, limits, access list) around the seed's routes or your own
//!   actix-web services ([`Server::app`]); [`start`], [`run`] and [`Background::spawn`] are
//!   its shortcuts for the seed's routes.
//! - [`ClientIdentity`]: the verified client certificate as an extractor (401 without one;
//!   `Option<ClientIdentity>` serves anonymous clients too).
//! - [`TlsReloader`]: the TLS state behind a running server, for reloads.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use server::{ClientAuth, Config};
//! let started = server::start(&Config::for_pki("certs", ClientAuth::Required))?;
//! println!("listening on {:?}", started.addrs);
//! started.server.await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod identity;
mod limits;
mod linger;
mod listener;
mod login;
mod middleware;
mod pages;
mod routes;
mod tls;

pub use config::{ClientAuth, Config, TlsProfile};
pub use error::ServerError;
pub use identity::{ClientIdentity, NoClientCertificate};
pub use listener::{run, start, Background, Server, Started};
pub use tls::{CertInfo, Loaded, TlsReloader};
