//! ACME (RFC 8555) on the CA's [`pki::Authority`]: the second front-end beside EST, so that
//! certbot, Caddy, lego, Traefik and cert-manager get and renew certificates from the private
//! CA by themselves.
//!
//! | what                                   | where                                   |
//! |----------------------------------------|-----------------------------------------|
//! | the JWS of every POST, key thumbprints | [`jws`] (signatures by `josekit`)        |
//! | problem documents (RFC 8555 §6.7)      | [`problem`]                              |
//! | accounts, external account binding, key-change | `account`                       |
//! | orders, finalize, the certificate      | `order`                                  |
//! | authorizations and challenges          | `authz`, validation in [`validate`]      |
//! | renewal information (RFC 9773), revocation | [`renewal`]                          |
//! | the routes and headers                 | [`routes`]                               |
//!
//! Every object lives in the CA's records ([`pki::store::acme`]), so replicas on one
//! PostgreSQL answer every step, and statuses move by compare-and-set: a nonce is good once, a
//! challenge validated once, an order finalized once, whichever replica is asked.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod account;
mod authz;
mod config;
pub mod jws;
pub mod metrics;
pub mod model;
mod order;
pub mod problem;
pub mod renewal;
pub mod routes;
mod service;
mod urls;
pub mod validate;

pub use config::{AcmeProfile, Config, MTLS_CLIENT, TLS_SERVER};
pub use metrics::Metrics;
pub use problem::{Kind, Problem};
pub use service::{Acme, Body, Job, Reply, Route};
pub use urls::{Urls, PREFIX};
pub use validate::Validator;
