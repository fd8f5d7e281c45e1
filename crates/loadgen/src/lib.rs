//! An HTTPS load generator that presents client certificates (which wrk and h2load cannot):
//! full handshakes, resumptions or kept-alive connections, HTTP/1.1 or HTTP/2, bounded by
//! count and time, loopback only. `bench load` is its command line; `bench compare` drives it.
//!
//! Modules, each using only those above it:
//! - [`error`], [`stats`], [`usage`]: errors; percentiles; CPU and RSS from `/proc`.
//! - [`http`], [`tls`], [`h2`]: the HTTP/1.1 codec; the TLS clients (chain and host
//!   verification always on); HTTP/2.
//! - [`config`], `worker`, [`load`]: what a run is asked; one worker's connections and
//!   requests; one run and its figures.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod h2;
pub mod http;
pub mod load;
pub mod stats;
pub mod tls;
pub mod usage;
mod worker;

pub use error::{Error, Result};
