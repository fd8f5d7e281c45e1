//! The HTTP side: the routes under `/acme`, each POST handed to [`Acme::post`] on the blocking
//! pool, the answer's headers (`Replay-Nonce`, `Link`, `Location`, `Retry-After`), and the
//! validations started after the answer.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::problem::{Kind, Problem};
use crate::service::{Acme, Body, Job, Reply, Route};
use crate::urls::{Urls, PREFIX};

/// JWS requests' content type (RFC 8555 §6.2).
pub const JOSE_JSON: &str = "application/jose+json";

/// Registers the ACME routes; the app must hold a `web::Data<Acme>`. Bodies beyond `max_body`
/// are refused before they are read in full.
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize) {
    let post = |route: fn(&HttpRequest) -> Route| {
        web::post().to(
            move |req: HttpRequest, body: web::Bytes, acme: web::Data<Acme>| {
                let route = route(&req);
                handle(req, body, acme, route)
            },
        )
    };
    cfg.service(
        web::scope(PREFIX)
            .app_data(web::PayloadConfig::new(max_body))
            .route("/directory", web::get().to(directory))
            .route("/new-nonce", web::get().to(new_nonce))
            .route("/new-nonce", web::head().to(new_nonce))
            .route("/new-account", post(|_| Route::NewAccount))
            .route("/account/{id}", post(|r| Route::Account(param(r, "id"))))
            .route(
                "/account/{id}/orders",
                post(|r| Route::Orders(param(r, "id"))),
            )
            .route("/key-change", post(|_| Route::KeyChange))
            .route("/new-order", post(|_| Route::NewOrder))
            .route("/order/{id}", post(|r| Route::Order(param(r, "id"))))
            .route(
                "/order/{id}/finalize",
                post(|r| Route::Finalize(param(r, "id"))),
            )
            .route("/authz/{id}", post(|r| Route::Authz(param(r, "id"))))
            .route(
                "/chall/{id}/{kind}",
                post(|r| Route::Challenge(param(r, "id"), param(r, "kind"))),
            )
            .route("/cert/{id}", post(|r| Route::Certificate(param(r, "id"))))
            .route("/revoke-cert", post(|_| Route::Revoke))
            .route("/renewal-info/{id}", web::get().to(renewal_info)),
    );
}

fn param(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_owned()
}

/// The URLs as this client reaches the service: the configured origin, or this request's host.
fn urls_for(req: &HttpRequest, acme: &Acme) -> Urls {
    match &acme.config().origin {
        Some(origin) => Urls::new(origin),
        None => Urls::new(&format!("https://{}", req.connection_info().host())),
    }
}

async fn directory(req: HttpRequest, acme: web::Data<Acme>) -> HttpResponse {
    let urls = urls_for(&req, &acme);
    respond(Reply::json(acme.directory(&urls)))
}

async fn new_nonce(req: HttpRequest, acme: web::Data<Acme>) -> HttpResponse {
    let urls = urls_for(&req, &acme);
    let status = if req.method() == actix_web::http::Method::HEAD {
        200
    } else {
        204
    };
    let made = web::block(move || acme.new_nonce()).await;
    let mut reply = match made {
        Ok(Ok(nonce)) => {
            let mut r = Reply::json(serde_json::Value::Null).status(status);
            r.body = Body::Empty;
            r.nonce = Some(nonce);
            r
        }
        Ok(Err(p)) => Reply::problem(&p),
        Err(e) => Reply::problem(&Problem::new(Kind::ServerInternal, e.to_string())),
    };
    reply = reply.link(&urls.directory(), "index");
    respond(reply)
}

async fn renewal_info(req: HttpRequest, acme: web::Data<Acme>) -> HttpResponse {
    let id = req.match_info().get("id").unwrap_or_default().to_owned();
    let done = web::block(move || acme.renewal_info(&id)).await;
    respond(match done {
        Ok(Ok(r)) => r,
        Ok(Err(p)) => Reply::problem(&p),
        Err(e) => Reply::problem(&Problem::new(Kind::ServerInternal, e.to_string())),
    })
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    acme: web::Data<Acme>,
    route: Route,
) -> HttpResponse {
    let urls = urls_for(&req, &acme);
    let url = urls.at(req
        .path()
        .trim_start_matches(PREFIX)
        .trim_start_matches('/'));
    let jose = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(JOSE_JSON))
        });
    let worker = acme.clone();
    let done = web::block(move || {
        if jose {
            worker.post(&urls, &route, &url, &body)
        } else {
            let p = Problem::new(
                Kind::UnsupportedMediaType,
                format!("send the JWS as {JOSE_JSON}"),
            );
            let mut r = Reply::problem(&p);
            r.nonce = worker.new_nonce().ok();
            r.link(&urls.directory(), "index")
        }
    })
    .await;
    let reply =
        done.unwrap_or_else(|e| Reply::problem(&Problem::new(Kind::ServerInternal, e.to_string())));
    if let Some(job) = reply.job.clone() {
        actix_web::rt::spawn(validate(acme.into_inner(), job));
    }
    respond(reply)
}

/// Runs a validation (a few attempts: the client's responder may still be starting) and
/// records how it ended.
async fn validate(acme: std::sync::Arc<Acme>, job: Job) {
    let config = acme.config().clone();
    let mut result = Err(Problem::new(Kind::ServerInternal, "not validated"));
    for attempt in 0..config.attempts.max(1) {
        if attempt > 0 {
            actix_web::rt::time::sleep(config.retry_delay).await;
        }
        result = config
            .validator
            .check(&job.kind, &job.identifier, &job.key_auth)
            .await;
        if result.is_ok() {
            break;
        }
    }
    let recorded = web::block(move || acme.record_validation(&job, result)).await;
    if let Ok(Err(p)) = recorded {
        tracing::warn!(problem = %p, "ACME: a validation's result could not be recorded; the client will retry the challenge");
    }
}

fn respond(reply: Reply) -> HttpResponse {
    let mut out = HttpResponse::build(
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    out.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(n) = &reply.nonce {
        out.insert_header(("Replay-Nonce", n.as_str()));
    }
    for link in &reply.links {
        if let Ok(v) = HeaderValue::from_str(link) {
            out.append_header((header::LINK, v));
        }
    }
    if let Some(l) = &reply.location {
        out.insert_header((header::LOCATION, l.as_str()));
    }
    if let Some(s) = reply.retry_after {
        out.insert_header((header::RETRY_AFTER, s.to_string()));
    }
    match reply.body {
        Body::Json(v) => {
            let ct = if reply.problem.is_some() {
                "application/problem+json"
            } else {
                "application/json"
            };
            out.content_type(ct).body(v.to_string())
        }
        Body::Pem(p) => out
            .content_type("application/pem-certificate-chain")
            .body(p),
        Body::Empty => out.finish(),
    }
}
