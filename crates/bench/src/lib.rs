//! `bench`: a load generator that presents client certificates, and the `make bench` driver
//! that runs it against our server and nginx on the same certificates.
//!
//! - [`load`]: `bench load`: connections, modes (`new-conn`, `resume`, `keepalive`), bounds,
//!   rates, latency percentiles, errors by class, and its own CPU share.
//! - [`compare`]: `bench compare`: a benchmark PKI, both servers started alternately, each
//!   figure repeated, the report written by [`report`].
//! - [`nginx`]: nginx's configuration, written for each run.
//! - [`procfs`]: CPU time and peak RSS of process trees, from `/proc`.
//! - [`http`], [`tls`], [`stats`]: the request/response codec, the TLS clients, percentiles.
//!
//! Common load tools (wrk, h2load) cannot present a client certificate; this one can, with
//! chain and host verification always on.
#![forbid(unsafe_code)]

pub mod compare;
pub mod http;
pub mod load;
pub mod nginx;
pub mod procfs;
pub mod report;
pub mod stats;
pub mod tls;
