//! `bench`: the `make bench` driver that runs the load generator ([`loadgen`]) against our
//! server and nginx on the same certificates, taking turns, and writes the report.
//!
//! Modules, each using only those above it:
//! - [`figure`], [`model`]: what is measured, and a run's data (run → figures → samples).
//! - [`nginx`], [`servers`]: nginx's config; the servers under test and their PKI.
//! - [`compare`]: `bench compare`: every figure on both servers, taking turns.
//! - [`report`]: the run as JSON, a Markdown summary and an SVG chart.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod compare;
pub mod error;
pub mod figure;
pub mod model;
pub mod nginx;
pub mod report;
pub mod servers;

pub use error::{Error, Result};
