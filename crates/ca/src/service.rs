//! Start-up: the CA and its chain loaded, the service certificate made if missing, a CRL
//! on record, the re-signing task started, and the listener bound; run in the foreground
//! ([`run`]) or on a thread of its own ([`Background`], for tests and embedding).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use pki::{Authority, Folder, Records};

use crate::config::Config;
use crate::crl::{self, Refresh};
use crate::enroll::Ca;
use crate::error::CaError;
use crate::guard::TokenGuard;
use crate::http::{self, CaCerts, Limits};
use crate::metrics::{self, CaMetrics};
use crate::{tls, wire};

/// A bound service, not yet awaited.
pub struct Started {
    /// The address it listens on (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The server future; await it to serve. Its handle stops it.
    pub server: actix_web::dev::Server,
}

/// Loads everything, binds and returns the service ready to run (inside an actix runtime).
pub fn start(config: &Config) -> Result<Started, CaError> {
    // The records may be PostgreSQL, whose client blocks: never on the runtime's own thread.
    let (ca, identity, cacerts) = std::thread::scope(|s| {
        s.spawn(|| load(config))
            .join()
            .unwrap_or_else(|_| Err(CaError::Config("loading the CA crashed".into())))
    })?;
    let acceptor = tls::acceptor(&identity, &ca.chain)?;
    let refresh = Refresh {
        before: config.crl_refresh_before,
        every: config.crl_check_every,
    };
    crl::spawn_refresher(ca.clone(), refresh, config.lock_timeout);
    let metrics = CaMetrics::new().map_err(|e| CaError::Config(format!("metrics: {e}")))?;
    metrics::spawn_refresher(metrics.clone(), ca.clone(), config.metrics_refresh);
    if let Some(addr) = config.metrics_bind {
        let (exporter, bound) = exposition::Exporter::bind(addr, metrics.registry().clone())
            .map_err(|source| CaError::Bind { addr, source })?;
        tracing::info!(addr = %bound, "metrics in plain HTTP at /metrics");
        actix_web::rt::spawn(exporter);
    }
    bind(
        config,
        ca,
        CaCerts(Arc::new(wire::encode_base64(&cacerts))),
        acceptor,
        metrics,
    )
}

/// The CA, its chain and records, the service certificate, and a CRL on record.
pub(crate) fn load(config: &Config) -> Result<(Arc<Ca>, tls::Identity, Vec<u8>), CaError> {
    if let Some(url) = config.crl_url() {
        pki::distribution::check_url(&url)?;
    }
    let folder = Folder::new(config.layout())
        .with_db(config.db.clone())
        .with_lock_timeout(config.lock_timeout);
    // --public-url names this service's /crl; without it, the PKI's own (`pki ca crl-url`).
    let crl_url = config.crl_url().or(folder.crl_url()?);
    let folder = folder.with_crl_url(crl_url.clone());
    let issuer = folder.issuer()?;
    let chain = folder.ca_chain()?;
    let identity = tls::identity(config, &folder, &issuer)?;
    let chain_refs: Vec<_> = chain.iter().map(|c| c.as_ref()).collect();
    let cacerts = wire::certs_only(&chain_refs).map_err(CaError::Config)?;
    // The CAs in force beside the issuing one (a rotation): each signs its own CRL.
    let others = folder.issuers(&issuer)?.into_iter().skip(1).collect();
    let records = Records::new(
        config.db.clone(),
        config.default_db_path(),
        config.lock_timeout,
    );
    let authority = Authority::new(issuer, others, records)?.with_crl_url(crl_url);
    let ca = Arc::new(Ca {
        authority: Arc::new(authority),
        chain,
        days: config.days,
        enroll_with_certificate: config.enroll_with_certificate,
    });
    let refresh = Refresh {
        before: config.crl_refresh_before,
        every: config.crl_check_every,
    };
    if crl::refresh_once(&ca, &refresh, config.lock_timeout)? {
        crl::log_signed(&ca, "at start, none was on record or it was due");
    }
    Ok((ca, identity, cacerts))
}

fn bind(
    config: &Config,
    ca: Arc<Ca>,
    cacerts: CaCerts,
    acceptor: openssl::ssl::SslAcceptorBuilder,
    metrics: CaMetrics,
) -> Result<Started, CaError> {
    let ca = web::Data::from(ca);
    let limits = web::Data::new(Limits {
        max_body: config.max_body,
        body_timeout: config.body_timeout,
    });
    let cacerts = web::Data::new(cacerts);
    let mut acme_config = config.acme.clone();
    acme_config.origin = config.public_url.clone().or(acme_config.origin);
    let acme = web::Data::new(
        acme::Acme::new(ca.authority.clone(), &ca.chain, acme_config)
            .with_metrics(metrics.acme.clone()),
    );
    let metrics = web::Data::new(metrics);
    let admin = web::Data::new(config.admin.clone());
    let max_body = config.max_body;
    // One tally for every worker: a peer is slowed whichever worker it reaches.
    let guard = web::Data::new(TokenGuard::new(config.wrong_token_limit));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(ca.clone())
            .app_data(limits.clone())
            .app_data(cacerts.clone())
            .app_data(guard.clone())
            .app_data(acme.clone())
            .app_data(metrics.clone())
            .app_data(admin.clone())
            .configure(|c| acme::routes::configure(c, max_body))
            .configure(http::configure)
    })
    .on_connect(tls::on_connect)
    .client_request_timeout(config.request_timeout)
    .tls_handshake_timeout(config.handshake_timeout)
    .disable_signals();
    if let Some(n) = config.workers {
        server = server.workers(n);
    }
    let bind_error = |source| CaError::Bind {
        addr: config.bind,
        source,
    };
    let server = server
        .bind_openssl(config.bind, acceptor)
        .map_err(bind_error)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| bind_error(std::io::Error::other("bound to no address")))?;
    Ok(Started {
        addr,
        server: server.run(),
    })
}

/// What `cargo run -p ca` does: starts, prints the start-up line, serves until SIGINT or
/// SIGTERM (in-flight requests finish first).
pub async fn run(config: Config) -> Result<(), CaError> {
    let started = start(&config)?;
    println!(
        "listening on https://{} — EST at /.well-known/est/, ACME at /acme/directory, CRL at /crl{}",
        started.addr,
        config
            .crl_url()
            .map(|u| format!("; certificates name {u} as their CRL distribution point"))
            .unwrap_or_default()
    );
    let handle = started.server.handle();
    actix_web::rt::spawn(async move {
        stop_on_signal().await;
        handle.stop(true).await;
    });
    started.server.await.map_err(|source| CaError::Bind {
        addr: config.bind,
        source,
    })
}

async fn stop_on_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// The service on its own thread (with its own actix runtime); stopped when dropped.
pub struct Background {
    /// The address it listens on.
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Starts `config` on a new thread and waits until it listens.
    pub fn spawn(config: Config) -> Result<Background, CaError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match start(&config) {
                    Ok(s) => {
                        if tx.send(Ok((s.addr, s.server.handle()))).is_ok() {
                            let _ = s.server.await;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        let (addr, handle) = rx.recv().unwrap_or_else(|_| {
            Err(CaError::Config(
                "the CA thread ended before listening".into(),
            ))
        })?;
        Ok(Background {
            addr,
            handle,
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
