//! The seed's routes, as one set of services: [`seed_app`] builds their state from the config
//! and [`AppState::configure`] mounts them, the way any other app is mounted.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::config::{ClientAuth, Config, CrlStale};
use crate::error::ServerError;
use crate::identity::{ClientIdentity, Connection};
use crate::limits::MAX_FORM_BYTES;
use crate::login::{Brakes, Hasher, VerifiedCache};
use crate::metrics::{LoginResult, Shared};
use crate::middleware::{read_small_body, BodyRefusal};
use crate::pages;
use crate::tls::TlsReloader;

/// What `/healthz` reads: the TLS state being served. Registered by the listener on every app.
#[derive(Debug, Clone)]
pub struct Health {
    /// The TLS state.
    pub tls: Arc<TlsReloader>,
    /// What a stale CRL does, for the words.
    pub crl_stale: CrlStale,
}

/// What the seed's handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Failed-login counting per client.
    pub brakes: Arc<Brakes>,
    /// Recently verified logins.
    pub cache: Arc<VerifiedCache>,
    /// The password-hashing threads: a login flood queues there instead of taking every core
    /// (and a hash's memory per request) from the event loops that serve everything else.
    pub hasher: Hasher,
    /// Whether client certificates are asked for (the page says why there is none).
    pub client_auth: ClientAuth,
    /// Where logins are counted.
    pub metrics: Shared,
}

/// Loads the users and starts the hashing threads for the seed's routes.
pub fn seed_app(config: &Config, metrics: Shared) -> Result<AppState, ServerError> {
    let users = Arc::new(match &config.users {
        Some(path) => common::Credentials::load(path)?,
        None => common::Credentials::default(),
    });
    let cache = Arc::new(VerifiedCache::new(Duration::from_secs(
        config.login_cache_secs,
    ))?);
    let hash_threads = config.hash_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    });
    Ok(AppState {
        hasher: Hasher::new(users, cache.clone(), hash_threads),
        brakes: Arc::new(Brakes::new(
            config.login_max_failures,
            Duration::from_secs(config.login_lockout_secs),
        )),
        cache,
        client_auth: config.client_auth,
        metrics,
    })
}

impl AppState {
    /// Registers the seed's routes and a JSON 404 for the rest.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone()))
            // Resources answer 405 to a wrong method (a bare route would fall through to 404).
            .service(web::resource("/").get(index))
            .service(web::resource("/login").get(login))
            .service(web::resource("/login1").post(login1))
            .service(web::resource("/whoami").get(whoami))
            .service(web::resource("/healthz").get(healthz))
            .default_service(web::to(not_found));
    }
}

/// `GET /login`: the seed's greeting.
async fn login() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body("Hello World!")
}

/// `GET /`: the browser's page (see [`crate::pages`]).
async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    pages::index(&req, state.client_auth)
}

/// What a `/login1` request came to; answered as JSON or, to a browser, as a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The form was read and the password checked (or the form lacked a field: `false`).
    Checked {
        /// The user name from the form.
        user: String,
        /// Whether the password was right.
        ok: bool,
    },
    /// The body exceeded [`MAX_FORM_BYTES`].
    TooLarge,
    /// The body could not be read.
    Unreadable,
    /// The body was not `application/x-www-form-urlencoded`.
    NotAForm,
    /// Too many failed logins from this client; retry in `secs`.
    Locked {
        /// Seconds until the next try is allowed.
        secs: u64,
    },
    /// Every hashing thread's queue is full.
    Busy,
}

impl LoginOutcome {
    fn status(&self) -> StatusCode {
        match self {
            LoginOutcome::Checked { .. } => StatusCode::OK,
            LoginOutcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            LoginOutcome::Unreadable => StatusCode::BAD_REQUEST,
            LoginOutcome::NotAForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            LoginOutcome::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
            LoginOutcome::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The outcome in plain words.
    fn message(&self) -> String {
        match self {
            LoginOutcome::Checked { user, ok: true } => format!("Signed in as {user}."),
            LoginOutcome::Checked { ok: false, .. } => "Wrong user name or password.".into(),
            LoginOutcome::TooLarge => format!("the form is larger than {MAX_FORM_BYTES} bytes"),
            LoginOutcome::Unreadable => "the body could not be read".into(),
            LoginOutcome::NotAForm => {
                "expected a form body (Content-Type: application/x-www-form-urlencoded)".into()
            }
            LoginOutcome::Locked { secs } => format!("too many failed logins; retry in {secs} s"),
            LoginOutcome::Busy => "too many logins in progress; retry shortly".into(),
        }
    }

    /// The figure it counts under.
    fn result(&self) -> LoginResult {
        match self {
            LoginOutcome::Checked { ok: true, .. } => LoginResult::Success,
            LoginOutcome::Checked { ok: false, .. } => LoginResult::Failure,
            LoginOutcome::Locked { .. } => LoginResult::Locked,
            LoginOutcome::Busy => LoginResult::Busy,
            LoginOutcome::TooLarge | LoginOutcome::Unreadable | LoginOutcome::NotAForm => {
                LoginResult::Invalid
            }
        }
    }

    /// The answer: the seed's bare `true`/`false` to API clients, a page to a browser.
    pub fn respond(&self, html: bool) -> HttpResponse {
        let mut res = match (self, html) {
            (LoginOutcome::Checked { ok, .. }, false) => HttpResponse::Ok()
                .content_type(ContentType::json())
                .body(if *ok { "true" } else { "false" }),
            (LoginOutcome::Checked { ok, .. }, true) => {
                let title = if *ok { "Signed in" } else { "Not signed in" };
                pages::message(self.status(), title, &self.message(), *ok)
            }
            (_, false) => HttpResponse::build(self.status()).json(json!({"error": self.message()})),
            (_, true) => pages::message(self.status(), "Refused", &self.message(), false),
        };
        let retry = match self {
            LoginOutcome::Locked { secs } => Some(*secs),
            LoginOutcome::Busy => Some(1),
            _ => None,
        };
        let headers = res.headers_mut();
        if let Some(secs) = retry {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        headers.insert(header::VARY, header::HeaderValue::from_static("accept"));
        res
    }
}

/// `POST /login1`: form fields `username`, `password` → JSON `true`/`false`, status 200 either
/// way (the seed's client expects it); a browser asking for HTML gets a result page.
async fn login1(req: HttpRequest, body: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let outcome = check_login(&req, body, &state).await;
    if let Some(m) = &state.metrics {
        m.login(outcome.result());
    }
    outcome.respond(pages::wants_html(&req))
}

async fn check_login(req: &HttpRequest, mut body: web::Payload, state: &AppState) -> LoginOutcome {
    let form = match read_small_body(req.headers(), &mut body, MAX_FORM_BYTES).await {
        Ok(form) => form,
        Err(BodyRefusal::TooLarge) => return LoginOutcome::TooLarge,
        Err(BodyRefusal::Unreadable) => return LoginOutcome::Unreadable,
    };
    // The media type before any parameter, compared as is (no MIME parser per login).
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return LoginOutcome::NotAForm;
    }
    // Brute-force brakes: per certificate, else per address; checked before any hashing.
    let who = client_key(req);
    if let Some(wait) = state.brakes.locked(&who) {
        return LoginOutcome::Locked {
            secs: wait.as_secs() + 1,
        };
    }
    let Some((user, password)) = common::credentials::parse_login_form(&form) else {
        return LoginOutcome::Checked {
            user: String::new(),
            ok: false,
        };
    };
    let ok = match verify(state, &user, password).await {
        Some(ok) => ok,
        None => return LoginOutcome::Busy,
    };
    let locked_now = state.brakes.record(&who, ok);
    if let (true, Some(m)) = (locked_now, &state.metrics) {
        m.lockout();
    }
    LoginOutcome::Checked { user, ok }
}

/// Checks a password: from the cache of verified logins, else on the hashing threads (slow on
/// purpose, never here). None when their queue is full.
async fn verify(state: &AppState, user: &str, password: String) -> Option<bool> {
    let digest = state.cache.digest(user, &password)?;
    if state.cache.hit(user, &digest) {
        return Some(true);
    }
    state.hasher.verify(user.to_owned(), password, digest).await
}

/// Whom failed logins are counted against: the client certificate, else the peer address.
pub fn client_key(req: &HttpRequest) -> String {
    use std::fmt::Write;
    let mut key = String::with_capacity(72);
    match req
        .conn_data::<Connection>()
        .and_then(|c| c.client.as_ref())
    {
        Some(id) => {
            key.push_str("cert:");
            key.push_str(&id.sha256);
        }
        None => {
            key.push_str("ip:");
            if let Some(peer) = req.peer_addr() {
                let _ = write!(key, "{}", peer.ip());
            }
        }
    }
    key
}

/// `GET /whoami`: the verified client certificate (the extractor answers 401 without one).
async fn whoami(client: ClientIdentity) -> HttpResponse {
    HttpResponse::Ok().json(client)
}

/// `GET /healthz`: `ok` (liveness: a restart would not mend a stale CRL or an expiring
/// certificate, so it stays 200), then a line for the CRL and for each certificate within two
/// weeks of its end, and with `--crl-url` the feed's state.
pub(crate) async fn healthz(req: HttpRequest, health: Option<web::Data<Health>>) -> HttpResponse {
    let mut body = String::from("ok\n");
    if let Some(h) = health {
        let info = &h.tls.current().info;
        for line in info.health(x509::time::now(), h.crl_stale) {
            body.push_str(&line);
            body.push('\n');
        }
    }
    if let Some(feed) = crate::crl_fetch::health(&req) {
        body.push_str(&feed);
    }
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body(body)
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "no such route"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed app's state is `Debug` for logs and panics: a login it remembered must not show.
    #[test]
    fn debug_output_holds_no_password_nor_digest() {
        let state = seed_app(&Config::default(), None).expect("state");
        let digest = state.cache.digest("name", "pwd1").expect("digest");
        state.cache.remember("name", digest.clone());
        assert!(state.cache.hit("name", &digest));
        let shown = format!("{state:?}");
        for secret in ["pwd1", "argon2", "entries", "key"] {
            assert!(!shown.contains(secret), "{secret:?} in {shown}");
        }
        assert!(shown.contains("VerifiedCache"), "{shown}");
    }
}
