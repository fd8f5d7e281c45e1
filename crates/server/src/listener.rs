//! The hardened listener: TLS with lingering close, HTTP with its timeouts, the guards of
//! [`crate::middleware`], and whatever app is mounted inside; started here, on a background
//! thread, or as the binary runs it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, Protocol};
use actix_service::{fn_service, map_config, ServiceFactoryExt};
use actix_tls::accept::openssl::{Acceptor, TlsStream};
use actix_tls::accept::TlsError;
use actix_web::dev::{AppConfig, Extensions};
use actix_web::rt::net::TcpStream;
use actix_web::{web, App, HttpRequest, HttpResponse};

use crate::config::Config;
use crate::error::ServerError;
use crate::identity::{self, Acl, Connection, Gate};
use crate::limits::{BACKLOG, CLIENT_DISCONNECT_TIMEOUT};
use crate::linger::Lingering;
use crate::metrics::{self, HandshakeResult, Metrics, Shared};
use crate::middleware;
use crate::proxy;
use crate::refusal::Reason;
use crate::routes::{self, Health};
use crate::tls::TlsReloader;
use crate::trust::Freshness;
use crate::workers::{self, Handle, Serving, StopSignal};

/// What a server mounts: a function that registers services, called once per worker.
type AppFactory = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A bound server, not yet awaited.
pub struct Started {
    /// The addresses it listens on (the real port when 0 was asked for).
    pub addrs: Vec<SocketAddr>,
    /// The workers; await them to serve. Their handle stops them.
    pub server: Serving,
    /// The TLS state, for reloads.
    pub tls: Arc<TlsReloader>,
    /// The plain-HTTP metrics listener's address (`metrics_bind`).
    pub metrics_addr: Option<SocketAddr>,
    /// The figures, when they are on (add your own to their registry).
    pub metrics: Shared,
}

/// The hardened listener around an app: [`Server::new`] mounts the seed's routes,
/// [`Server::app`] mounts yours instead, through the same TLS (profile, client-certificate
/// policy, CRL, reload, lingering close), limits and guards (access list, header limit,
/// cross-site posts, access log).
///
/// ```no_run
/// use actix_web::web;
/// use server::{ClientAuth, ClientIdentity, Config, Server};
///
/// async fn hello(client: ClientIdentity) -> String {
///     format!("hello, {}", client.subject)
/// }
///
/// # async fn demo() -> Result<(), server::ServerError> {
/// Server::new(Config::for_pki("certs", ClientAuth::Required))
///     .app(|cfg: &mut web::ServiceConfig| {
///         cfg.route("/hello", web::get().to(hello));
///     })
///     .run()
///     .await
/// # }
/// ```
pub struct Server {
    config: Config,
    app: Option<AppFactory>,
}

impl Server {
    /// A server for `config`: the front door to `config.upstream` when it is set, else the
    /// seed's routes, unless [`Server::app`] says otherwise.
    pub fn new(config: Config) -> Server {
        Server { config, app: None }
    }

    /// Mounts `app` instead of the seed's routes (or the upstream): it registers services, app data and a default
    /// service on actix-web's `ServiceConfig`, once per worker (as `App::configure` does).
    pub fn app<F>(mut self, app: F) -> Server
    where
        F: Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    {
        self.app = Some(Arc::new(app));
        self
    }

    /// Loads certificates (and, for the seed's routes, users), binds, and returns the server
    /// ready to run. Every file problem is an error naming the file. Call it inside an actix
    /// (tokio) runtime.
    pub fn start(mut self) -> Result<Started, ServerError> {
        let metrics = match self.config.metrics_enabled() {
            true => Some(Arc::new(Metrics::new()?)),
            false => None,
        };
        let feed = crate::crl_fetch::prepare(&mut self.config, metrics.clone())?;
        let app: AppFactory = match (self.app, &self.config.upstream) {
            (Some(app), _) => app,
            (None, Some(upstream)) => Arc::new(proxy::proxy_app(&self.config, upstream)?),
            (None, None) => {
                let seed = routes::seed_app(&self.config, metrics.clone())?;
                Arc::new(move |cfg: &mut web::ServiceConfig| seed.configure(cfg))
            }
        };
        let started = bind(
            &self.config,
            crate::crl_fetch::with_feed(app, feed.clone()),
            metrics,
            feed.clone(),
        )?;
        crate::crl_fetch::spawn(feed, started.tls.clone());
        Ok(started)
    }

    /// Starts the server on a new thread with its own runtime; it stops when the returned
    /// [`Background`] is dropped.
    pub fn spawn(self) -> Result<Background, ServerError> {
        Background::spawn_with(move || self.start())
    }

    /// Starts, prints the start-up line, reloads on SIGHUP (and file changes), and serves until
    /// SIGINT/SIGTERM (in-flight requests finish first).
    pub async fn run(self) -> Result<(), ServerError> {
        let config = self.config.clone();
        let started = self.start()?;
        serve(&config, started).await
    }
}

/// [`Server::start`] with the seed's routes.
pub fn start(config: &Config) -> Result<Started, ServerError> {
    Server::new(config.clone()).start()
}

/// What `cargo run -p server` does: [`Server::run`] with the seed's routes.
pub async fn run(config: Config) -> Result<(), ServerError> {
    Server::new(config).run().await
}

fn bind(
    config: &Config,
    app: AppFactory,
    metrics: Shared,
    feed: Option<Arc<crate::crl_fetch::CrlFeed>>,
) -> Result<Started, ServerError> {
    let (tls, acceptor) = TlsReloader::new(config, metrics.clone())?;
    if let Some(m) = &metrics {
        m.loaded(&tls.current().info);
    }
    let bind_error = |addr| move |io| ServerError::Bind { addr, io };
    let workers = config.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let (sockets, lock) =
        workers::listen_shared(config.bind, workers, BACKLOG).map_err(bind_error(config.bind))?;
    let addr = sockets[0].local_addr().map_err(bind_error(config.bind))?;
    let tls_metrics = match (&metrics, config.metrics_on_tls()) {
        (Some(m), true) => Some(Arc::new(TlsMetrics {
            acl: Acl {
                cns: config.metrics_allow_cn.clone(),
                sans: config.metrics_allow_san.clone(),
            },
            metrics: m.clone(),
        })),
        _ => None,
    };
    let switch = workers::Switch::new();
    let worker = Worker {
        shutdown: switch.signal(),
        acceptor,
        addr,
        app,
        gate: Gate {
            acl: Arc::new(Acl {
                cns: config.allow_cn.clone(),
                sans: config.allow_san.clone(),
            }),
            client_auth: config.client_auth,
            metrics: metrics.clone(),
        },
        health: Health {
            tls: tls.clone(),
            crl_stale: config.crl_stale,
        },
        healthz_path: config.healthz_path.clone(),
        tls_metrics,
        handshake: config.handshake_timeout(),
        request: Duration::from_secs(config.request_timeout_secs),
        keep_alive: Duration::from_secs(config.keep_alive_secs),
    };
    let mut ports = vec![workers::Port {
        sockets,
        make: Arc::new(move || workers::pipeline(worker.clone().service())),
    }];
    let mut metrics_addr = None;
    if let (Some(m), Some(want)) = (&metrics, config.metrics_bind) {
        // Scrapes are rare: one socket, served by the first worker.
        let listener = workers::socket(want, BACKLOG, false).map_err(bind_error(want))?;
        let at = listener.local_addr().map_err(bind_error(want))?;
        let plain = PlainMetrics {
            metrics: m.clone(),
            health: Health {
                tls: tls.clone(),
                crl_stale: config.crl_stale,
            },
            healthz_path: config.healthz_path.clone(),
            feed,
        };
        ports.push(workers::Port {
            sockets: vec![listener],
            make: Arc::new(move || workers::pipeline(plain.clone().service(at))),
        });
        metrics_addr = Some(at);
    }
    let settings = workers::Settings {
        workers,
        max_connections: config.max_connections,
        shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
    };
    let server = workers::start(&settings, ports, lock, switch).map_err(bind_error(config.bind))?;
    Ok(Started {
        addrs: vec![addr],
        server,
        tls,
        metrics_addr,
        metrics,
    })
}

/// `/metrics` on the TLS port, for the clients of its own access list.
struct TlsMetrics {
    acl: Acl,
    metrics: Arc<Metrics>,
}

async fn tls_metrics(req: HttpRequest, exposure: web::Data<TlsMetrics>) -> HttpResponse {
    let client = req
        .conn_data::<Connection>()
        .and_then(|c| c.client.as_deref());
    if !exposure.acl.allows(client) {
        return HttpResponse::Forbidden().json(serde_json::json!({
            "error": "this client certificate may not read /metrics (--metrics-allow-cn, --metrics-allow-san)"
        }));
    }
    HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(exposure.metrics.encode())
}

/// What the plain-HTTP listener of `metrics_bind` serves: `GET /metrics` and the health route.
#[derive(Clone)]
struct PlainMetrics {
    metrics: Arc<Metrics>,
    health: Health,
    healthz_path: Option<String>,
    feed: Option<Arc<crate::crl_fetch::CrlFeed>>,
}

impl PlainMetrics {
    fn service(
        self,
        addr: SocketAddr,
    ) -> impl actix_service::ServiceFactory<TcpStream, Config = (), Response = (), InitError = ()>
    {
        let m = self.metrics;
        let mut app = App::new().app_data(web::Data::new(self.health)).route(
            "/metrics",
            web::get().to(move || {
                let body = m.encode();
                async move {
                    HttpResponse::Ok()
                        .content_type(metrics::CONTENT_TYPE)
                        .body(body)
                }
            }),
        );
        if let Some(feed) = self.feed {
            app = app.app_data(web::Data::from(feed));
        }
        if let Some(path) = &self.healthz_path {
            app = app.route(path, web::get().to(routes::healthz));
        }
        HttpService::build()
            .client_request_timeout(Duration::from_secs(10))
            .finish(map_config(app, move |_| {
                AppConfig::__priv_test_new(false, addr.to_string(), addr)
            }))
            .tcp()
    }
}

/// What each worker thread builds its connection pipeline from.
#[derive(Clone)]
struct Worker {
    shutdown: StopSignal,
    acceptor: openssl::ssl::SslAcceptor,
    addr: SocketAddr,
    app: AppFactory,
    gate: Gate,
    health: Health,
    healthz_path: Option<String>,
    tls_metrics: Option<Arc<TlsMetrics>>,
    handshake: Duration,
    request: Duration,
    keep_alive: Duration,
}

impl Worker {
    /// What actix-web's `HttpServer::bind_openssl` assembles, with one difference: the socket is
    /// wrapped before the TLS layer sees it, so a refused handshake closes gracefully
    /// (linger.rs).
    fn service(
        self,
    ) -> impl actix_service::ServiceFactory<TcpStream, Config = (), Response = (), InitError = ()>
    {
        let Worker {
            app,
            addr,
            gate,
            health,
            healthz_path,
            tls_metrics: exposure,
            ..
        } = self.clone();
        let mut base = App::new().app_data(web::Data::new(health));
        // The server's own health, whatever the app behind (the front door forwards the rest).
        if let Some(path) = &healthz_path {
            base = base.route(path, web::get().to(routes::healthz));
        }
        // Ours first: a route registered earlier wins, even over an app's default service.
        if let Some(exposure) = exposure {
            base = base
                .app_data(web::Data::from(exposure))
                .route("/metrics", web::get().to(tls_metrics));
        }
        let app = middleware::harden(base.configure(move |cfg| app(cfg)), gate.metrics.clone());
        let counted = gate.metrics.clone();
        let connections = gate.metrics.clone();
        let shutdown = self.shutdown;
        let http = HttpService::build()
            .graceful_shutdown_signal(move || shutdown.clone().stopping())
            .keep_alive(self.keep_alive)
            .client_request_timeout(self.request)
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            .local_addr(addr)
            .on_connect_ext(move |io: &TlsStream<Lingering>, ext: &mut Extensions| {
                identity::on_connect(io.ssl(), ext, &gate)
            })
            .finish(map_config(app, move |_| {
                // actix-web keeps AppConfig's constructor crate-private; this is the public,
                // doc-hidden one actix-test uses (the version is pinned by Cargo.lock).
                AppConfig::__priv_test_new(true, addr.to_string(), addr)
            }));
        let mut tls = Acceptor::new(self.acceptor);
        tls.set_handshake_timeout(self.handshake);
        fn_service(move |tcp: TcpStream| {
            let metrics = connections.clone();
            async move { Ok(Lingering::new(tcp, metrics)) }
        })
        .and_then(tls.map_err(move |e| {
            count_tls_failure(&counted, &e);
            TlsError::into_service_error(e)
        }))
        .map(|io: TlsStream<Lingering>| {
            io.get_ref().established();
            let proto = match io.ssl().selected_alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            let peer = io.get_ref().tcp().peer_addr().ok();
            (io, proto, peer)
        })
        .and_then(http.map_err(TlsError::Service))
    }
}

/// Counts (and for a missing certificate, logs) a handshake the TLS layer failed; the verify
/// callback counted the certificates it refused.
fn count_tls_failure(
    metrics: &Shared,
    e: &TlsError<openssl::ssl::Error, std::convert::Infallible>,
) {
    let Some(reason) = Reason::of_tls_error(e) else {
        return;
    };
    let result = match reason {
        Reason::NoCertificate => {
            tracing::warn!(
                reason = "no client certificate",
                label = reason.label(),
                "client certificate refused"
            );
            HandshakeResult::Refused
        }
        // A probe that read what it came for (our `client diagnose`): nothing was refused.
        Reason::UserCanceled => {
            tracing::debug!(
                label = reason.label(),
                "TLS handshake canceled by the client"
            );
            HandshakeResult::Canceled
        }
        _ => {
            tracing::debug!(label = reason.label(), error = %e, "TLS handshake failed");
            HandshakeResult::Refused
        }
    };
    if let Some(m) = metrics {
        m.handshake(result, reason, false);
    }
}

/// A server running on its own thread (with its own actix runtime); stopped when dropped.
/// For tests, examples and embedding.
pub struct Background {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its TLS state, for reloads.
    pub tls: Arc<TlsReloader>,
    /// The plain-HTTP metrics listener's address (`metrics_bind`).
    pub metrics_addr: Option<SocketAddr>,
    /// The figures, when they are on.
    pub metrics: Shared,
    handle: Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Starts `config` with the seed's routes on a new thread and waits until it listens
    /// ([`Server::spawn`] for another app).
    pub fn spawn(config: Config) -> Result<Background, ServerError> {
        Server::new(config).spawn()
    }

    /// Runs `start` on a new thread, inside its own actix runtime, and waits until it listens.
    fn spawn_with(
        start: impl FnOnce() -> Result<Started, ServerError> + Send + 'static,
    ) -> Result<Background, ServerError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match start() {
                    Ok(s) => {
                        let handle = s.server.handle();
                        let up = (s.addrs[0], s.tls, s.metrics_addr, s.metrics, handle);
                        if tx.send(Ok(up)).is_ok() {
                            let _ = s.server.await;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        let started = rx.recv().unwrap_or_else(|_| {
            Err(ServerError::Bind {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                io: std::io::Error::other("the server thread ended before listening"),
            })
        });
        let (addr, tls, metrics_addr, metrics, handle) = started?;
        Ok(Background {
            addr,
            tls,
            metrics_addr,
            metrics,
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion,
        // which joining the thread does too.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reloads the TLS context on SIGHUP and, every `watch_secs` (0 = never), when a file changed.
/// A failed reload is logged and the old context keeps serving.
fn spawn_reloader(tls: Arc<TlsReloader>, watch_secs: u64) {
    let on_signal = tls.clone();
    actix_web::rt::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reload by file watch only");
            return;
        };
        while hup.recv().await.is_some() {
            reload(&on_signal, "SIGHUP");
        }
    });
    if watch_secs > 0 {
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(watch_secs));
            loop {
                tick.tick().await;
                // Against the files as the last load or CRL swap saw them: a fetched CRL's
                // copy, written by the swap itself, is no change.
                if tls.files_changed() {
                    reload(&tls, "files changed");
                }
            }
        });
    }
}

/// One reload, logged (and counted by the reloader) either way.
fn reload(tls: &TlsReloader, why: &str) {
    match tls.reload() {
        Ok(l) => tracing::info!(
            why,
            generation = l.generation,
            certificate = %l.info.subject,
            serial = %l.info.serial,
            "TLS context reloaded"
        ),
        Err(e) => {
            tracing::error!(why, error = %e, "reload failed; still serving the previous certificates")
        }
    }
}

/// Warns of a CRL near or past its nextUpdate, at start and then once a day.
fn spawn_crl_watch(tls: Arc<TlsReloader>, mode: crate::config::CrlStale) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(86_400));
        loop {
            tick.tick().await;
            let info = tls.current().info.clone();
            let Some(crl) = info.crl else { continue };
            let now = x509::time::now();
            let words = crl.describe(now, mode);
            match crl.freshness(now) {
                Freshness::Fresh => {}
                Freshness::Due { .. } => tracing::warn!("{words}"),
                Freshness::Stale { .. } => tracing::error!("{words}"),
            }
        }
    });
}

/// Stops gracefully on SIGTERM or SIGINT (in-flight requests finish, up to the shutdown
/// timeout); a second signal stops at once.
fn spawn_stop_on_signal(handle: Handle) {
    use tokio::signal::unix::{signal, SignalKind};
    actix_web::rt::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot listen for SIGTERM/SIGINT");
            return;
        };
        let mut graceful = true;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!(graceful, "stopping");
            drop(handle.stop(graceful));
            graceful = false;
        }
    });
}

/// Prints the start-up line, warns of a certificate near its end, and serves.
async fn serve(config: &Config, started: Started) -> Result<(), ServerError> {
    let info = started.tls.current().info.clone();
    let days = (info.not_after - x509::time::now()).div_euclid(86_400);
    let expiry = time::OffsetDateTime::from_unix_timestamp(info.not_after)
        .map(|t| t.date().to_string())
        .unwrap_or_default();
    let forwarding = config
        .upstream
        .as_ref()
        .map(|u| format!("; forwarding to {u}"))
        .unwrap_or_default();
    for addr in &started.addrs {
        println!(
            "listening on https://{addr} — {}; certificate {} expires {expiry} ({days} days){}{forwarding}",
            config.client_auth.describe(),
            info.subject,
            info.revoked
                .map(|n| format!("; CRL with {n} revoked"))
                .unwrap_or_default(),
        );
    }
    if days < 0 {
        tracing::error!("the server certificate has EXPIRED: clients will refuse it (run `pki issue server --force`)");
    } else if days < 30 {
        tracing::warn!(days, "the server certificate expires soon");
    }
    if let Some(at) = started.metrics_addr {
        println!("metrics on http://{at}/metrics");
    }
    spawn_reloader(started.tls.clone(), config.watch_secs);
    spawn_crl_watch(started.tls.clone(), config.crl_stale);
    spawn_stop_on_signal(started.server.handle());
    started.server.await.map_err(|io| ServerError::Bind {
        addr: config.bind,
        io,
    })
}
