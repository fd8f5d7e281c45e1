//! `bench`: a load generator that presents client certificates, and the `make bench` driver
//! that runs it against our server and nginx on the same certificates.
//!
//! Modules, each using only those above it:
//! - [`stats`], [`usage`], [`http`], [`tls`], [`h2`]: percentiles; CPU and RSS from `/proc`;
//!   the HTTP/1.1 codec; the TLS clients (chain and host verification always on); HTTP/2.
//! - [`load`]: `bench load`: modes `new-conn`, `resume`, `keepalive`, bounded by count and time.
//! - [`figure`], [`model`]: what is measured, and a run's data (run → figures → samples).
//! - [`nginx`], [`servers`]: nginx's config; the servers under test and their PKI.
//! - [`compare`]: `bench compare`: every figure on both servers, taking turns.
//! - [`report`]: the run as JSON, a Markdown summary and an SVG chart.
//!
//! Common load tools (wrk, h2load) cannot present a client certificate; this one can.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod compare;
pub mod error;
pub mod figure;
pub mod h2;
pub mod http;
pub mod load;
pub mod model;
pub mod nginx;
pub mod report;
pub mod servers;
pub mod stats;
pub mod tls;
pub mod usage;

pub use error::{Error, Result};
