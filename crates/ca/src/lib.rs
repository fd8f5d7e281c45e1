//! The online CA for device fleets: EST (RFC 7030) over TLS, and the CRL as a service, on
//! the records of the [`pki`] library (SQLite, or PostgreSQL for several replicas).
//!
//! | route                                | what                                           |
//! |--------------------------------------|------------------------------------------------|
//! | `GET /.well-known/est/cacerts`       | the CA chain, certs-only PKCS#7, base64        |
//! | `POST /.well-known/est/simpleenroll` | base64 DER PKCS#10 in, the certificate out; a one-time token over HTTP Basic |
//! | `POST /.well-known/est/simplereenroll` | renewal, authenticated by the TLS client certificate being renewed |
//! | `GET /.well-known/est/csrattrs`      | 204: the profile decides every attribute       |
//! | `GET /crl`, `GET /crl.pem`           | the newest CRL on record, with `ETag`/`Last-Modified` |
//!
//! - [`Config`]: a plain struct ([`Config::default`] is `cargo run -p ca`).
//! - [`start`], [`run`], [`Background`]: the service, bound, in the foreground or on a thread.
//! - Decisions are pure where they can be ([`policy`], [`wire`]); issuance goes through
//!   [`pki::Authority::issue`], so the records and the profile rules decide every
//!   certificate in one transaction, and a refusal ([`Refusal`]) changes nothing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ca::CaError> {
//! let started = ca::start(&ca::Config::for_pki("certs"))?;
//! println!("EST at https://{}/.well-known/est/", started.addr);
//! started.server.await.ok();
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
mod config;
mod crl;
mod enroll;
mod error;
pub mod fleet;
mod guard;
mod http;
mod lock;
pub mod metrics;
pub mod policy;
mod service;
mod tls;
pub mod wire;

pub use config::{Config, DEFAULT_PORT, OWN_CERT_NAME};
pub use error::{CaError, Refusal};
pub use service::{run, start, Background, Started};
