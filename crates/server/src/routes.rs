//! The seed's routes, and what an operator needs around them. [`configure`] is the one app
//! factory used by `main`, the tests and the examples.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;

use crate::config::ClientAuth;
use crate::identity::{Acl, Connection};
use crate::login::{Brakes, Hasher, VerifiedCache};
use crate::pages;

/// Largest `/login1` body read; anything longer is refused with 413.
pub const MAX_FORM_BYTES: usize = 4096;

/// Largest request head (header names and values) served; beyond it, 431. nginx allows about
/// as much (4 × 8 KiB); actix-http itself cuts heads at 128 KiB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Who may use the server at all.
    pub acl: Acl,
    /// Failed-login counting per client.
    pub brakes: Arc<Brakes>,
    /// Recently verified logins.
    pub cache: Arc<VerifiedCache>,
    /// The password-hashing threads: a login flood queues there instead of taking every core
    /// (and a hash's memory per request) from the event loops that serve everything else.
    pub hasher: Hasher,
    /// Whether client certificates are asked for (the page says why there is none).
    pub client_auth: ClientAuth,
}

/// Registers every route, with the access list, the cross-site guard and the access log
/// around them.
pub fn configure(state: AppState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone())).service(
            web::scope("")
                .wrap(from_fn(pages::cross_site_guard))
                .wrap(from_fn(access_list))
                .wrap(from_fn(header_limit))
                .wrap(from_fn(access_log))
                // Resources answer 405 to a wrong method (a bare route would fall through to 404).
                .service(web::resource("/").get(index))
                .service(web::resource("/login").get(login))
                .service(web::resource("/login1").post(login1))
                .service(web::resource("/whoami").get(whoami))
                .service(web::resource("/healthz").get(healthz))
                .default_service(web::to(not_found)),
        );
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

    /// The answer: the seed's bare `true`/`false` to API clients, a page to a browser.
    fn respond(&self, html: bool) -> HttpResponse {
        let mut res = match (self, html) {
            (LoginOutcome::Checked { ok, .. }, false) => HttpResponse::Ok().json(ok),
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
    check_login(&req, body, &state)
        .await
        .respond(pages::wants_html(&req))
}

async fn check_login(req: &HttpRequest, mut body: web::Payload, state: &AppState) -> LoginOutcome {
    // Refuse on the declared length before reading anything.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_FORM_BYTES) {
        return LoginOutcome::TooLarge;
    }
    // Read the (small) body before any other answer: closing on unread bytes would turn the
    // answer into a TCP reset the client may never see.
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return LoginOutcome::Unreadable;
        };
        if buf.len() + chunk.len() > MAX_FORM_BYTES {
            return LoginOutcome::TooLarge;
        }
        buf.extend_from_slice(&chunk);
    }
    let is_form = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.essence_str() == "application/x-www-form-urlencoded");
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
    let Some((user, password)) = common::credentials::parse_login_form(&buf) else {
        return LoginOutcome::Checked {
            user: String::new(),
            ok: false,
        };
    };
    let ok = if state.cache.hit(&user, &password) {
        true
    } else {
        // Hashing is slow on purpose: it runs on the hashing threads, never here.
        match state.hasher.verify(user.clone(), password).await {
            Some(ok) => ok,
            None => return LoginOutcome::Busy,
        }
    };
    state.brakes.record(&who, ok);
    LoginOutcome::Checked { user, ok }
}

/// Whom failed logins are counted against: the client certificate, else the peer address.
fn client_key(req: &HttpRequest) -> String {
    match req
        .conn_data::<Connection>()
        .and_then(|c| c.client.as_ref())
    {
        Some(id) => format!("cert:{}", id.sha256),
        None => format!(
            "ip:{}",
            req.peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default()
        ),
    }
}

/// `GET /whoami`: the verified client certificate, or 401 without one.
async fn whoami(req: HttpRequest) -> HttpResponse {
    match req
        .conn_data::<Connection>()
        .and_then(|c| c.client.as_ref())
    {
        Some(id) => HttpResponse::Ok().json(id),
        None => HttpResponse::Unauthorized()
            .json(json!({"error": "no client certificate was presented"})),
    }
}

/// `GET /healthz`: liveness.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body("ok")
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "no such route"}))
}

/// 431 for a request head larger than [`MAX_HEADER_BYTES`].
async fn header_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let size: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if size <= MAX_HEADER_BYTES {
        Ok(next.call(req).await?.map_into_left_body())
    } else {
        let res = HttpResponse::build(actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            .json(
                json!({"error": format!("request headers larger than {MAX_HEADER_BYTES} bytes")}),
            );
        Ok(req.into_response(res).map_into_right_body())
    }
}

/// 403 for a client not on the access list (checked on every request, resumed sessions too).
async fn access_list(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let allowed = req.app_data::<web::Data<AppState>>().is_none_or(|s| {
        s.acl.allows(
            req.conn_data::<Connection>()
                .and_then(|c| c.client.as_ref()),
        )
    });
    if allowed {
        Ok(next.call(req).await?.map_into_left_body())
    } else {
        let res = HttpResponse::Forbidden()
            .json(json!({"error": "this client certificate is not on the server's access list"}));
        Ok(req.into_response(res).map_into_right_body())
    }
}

/// One line per request: method, path (never the query or body), status, latency, client.
async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Per-request work only when the line will be written (the benchmarks run at warn).
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return next.call(req).await;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let client = req
        .conn_data::<Connection>()
        .and_then(|c| c.client.as_ref())
        .map_or_else(|| "-".to_owned(), |c| c.subject.clone());
    let peer = req.peer_addr();
    let res = next.call(req).await?;
    tracing::info!(
        target: "access",
        %method,
        path,
        status = res.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        client,
        peer = ?peer,
    );
    Ok(res)
}
