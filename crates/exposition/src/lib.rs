//! The Prometheus text exposition every service of the workspace shares (the `server`, the
//! online CA): make a [`Registry`], [`register`] figures in it and [`build_info`], and mount
//! [`endpoint`] on an app or an [`Exporter`] on a port of its own. The `prometheus` crate's
//! encoder writes the text: nothing hand-written.
//!
//! ```
//! use exposition::prometheus::{IntCounterVec, Opts, Registry};
//! let registry = Registry::new();
//! exposition::build_info(&registry, "ca", env!("CARGO_PKG_VERSION")).expect("build info");
//! let enrollments = exposition::register(
//!     &registry,
//!     IntCounterVec::new(Opts::new("https_ca_enrollments_total", "Enrollments by result."), &["result"])
//!         .expect("valid name"),
//! )
//! .expect("registered once");
//! enrollments.with_label_values(&["issued"]).inc();
//! assert!(String::from_utf8(exposition::encode(&registry)).expect("text")
//!     .contains("https_ca_enrollments_total{result=\"issued\"} 1"));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use actix_web::{web, HttpResponse};
pub use prometheus;
use prometheus::core::Collector;
pub use prometheus::Registry;
use prometheus::{Encoder, IntGaugeVec, Opts, TextEncoder};

/// The `Content-Type` of [`encode`]'s output (the Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Registers `metric` in `registry` and hands it back (metrics are handles: clones count in
/// the same place). Fails on a name registered twice.
pub fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// `https_build_info{service, version, openssl} 1`: what runs, and on which OpenSSL.
pub fn build_info(
    registry: &Registry,
    service: &str,
    version: &str,
) -> Result<(), prometheus::Error> {
    let info = register(
        registry,
        IntGaugeVec::new(
            Opts::new(
                "https_build_info",
                "Always 1: the service, its version and the OpenSSL it runs on.",
            ),
            &["service", "version", "openssl"],
        )?,
    )?;
    info.with_label_values(&[service, version, openssl::version::version()])
        .set(1);
    Ok(())
}

/// `registry` in the Prometheus text format.
pub fn encode(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    out
}

/// `GET /metrics` answering `registry`, for any actix-web app.
pub fn endpoint(registry: Registry) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        let registry = registry.clone();
        cfg.service(web::resource("/metrics").get(move || {
            let body = encode(&registry);
            async move { HttpResponse::Ok().content_type(CONTENT_TYPE).body(body) }
        }));
    }
}

/// A plain-HTTP listener that serves only `GET /metrics` (for a service without the server's
/// own listener). Bind it to loopback or a monitoring network: it has no TLS.
pub struct Exporter;

impl Exporter {
    /// Binds `addr` and returns the server future (await it, or spawn it) and the real address.
    pub fn bind(
        addr: std::net::SocketAddr,
        registry: Registry,
    ) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
        let mount = endpoint(registry);
        let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(&mount))
            .workers(1)
            .disable_signals()
            .bind(addr)?;
        let bound = server.addrs().first().copied().unwrap_or(addr);
        Ok((server.run(), bound))
    }
}
