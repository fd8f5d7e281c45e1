//! What stands in front of every app the server mounts: the access log, then the header limit,
//! the access list and the cross-site guard (one layer), and the one way to read a small body.

use std::rc::Rc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse};
use futures_util::{Stream, StreamExt};
use serde_json::json;

use crate::identity::Connection;
use crate::limits::{MAX_FORM_BYTES, MAX_HEADER_BYTES};
use crate::metrics::{Shared, WorkerRequests};
use crate::pages;

/// `app` with every guard around it. Registered on the `App` itself, so requests that match no
/// route (the default service) pass the same guards. Called once per worker: the figures'
/// handle is shared within it without atomic reference counts.
pub fn harden<T, B>(
    app: App<T>,
    metrics: Shared,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
>
where
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let metrics = Rc::new(metrics.map(WorkerRequests::new));
    app.wrap(from_fn(guards)).wrap(from_fn(move |req, next| {
        access_log(metrics.clone(), req, next)
    }))
}

/// Why a small body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    /// Longer than the limit (declared or sent).
    TooLarge,
    /// The connection failed or the framing was wrong.
    Unreadable,
}

/// Reads a body of at most `limit` bytes, refusing at once on a larger `Content-Length`.
/// Called before any answer that refuses a request: closing on unread bytes makes the kernel
/// send a reset, and the client may never see the answer. (A body declared too large has not
/// been sent yet by a client that waits, so it is not read at all.)
pub async fn read_small_body<S>(
    headers: &HeaderMap,
    body: &mut S,
    limit: usize,
) -> Result<BytesMut, BodyRefusal>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyRefusal::TooLarge);
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| BodyRefusal::Unreadable)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyRefusal::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// One line per request: method, path (never the query or body), status, latency, client; and
/// the request's figures.
async fn access_log<B: MessageBody + 'static>(
    metrics: Rc<Option<Rc<WorkerRequests>>>,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    // Per-request work only when a line will be written (the benchmarks run at warn) or a
    // figure counted.
    let log = tracing::enabled!(target: "access", tracing::Level::INFO);
    match (log, metrics.as_ref()) {
        (false, None) => next.call(req).await,
        (false, Some(m)) => count_request(m, req, next).await,
        (true, m) => log_request(m.as_ref(), req, next).await,
    }
}

/// The request's figures: its route pattern (never the path: the label's values stay few),
/// status and latency.
async fn count_request<B: MessageBody + 'static>(
    m: &Rc<WorkerRequests>,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let start = Instant::now();
    // Matched against the app's resource map here: routing needs the request to itself.
    let route = req.match_pattern();
    let res = next.call(req).await;
    let status = match &res {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    m.request(
        route.unwrap_or_else(|| "unmatched".into()),
        status,
        start.elapsed(),
    );
    res
}

/// The access-log line, and the figures if they are on.
async fn log_request<B: MessageBody + 'static>(
    metrics: Option<&Rc<WorkerRequests>>,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let client = req
        .conn_data::<Connection>()
        .and_then(|c| c.client.as_ref())
        .map_or_else(|| "-".to_owned(), |c| c.subject.clone());
    let peer = req.peer_addr();
    let route = metrics.and_then(|_| req.match_pattern());
    let res = next.call(req).await?;
    let elapsed = start.elapsed();
    if let Some(m) = metrics {
        m.request(
            route.unwrap_or_else(|| "unmatched".into()),
            res.status(),
            elapsed,
        );
    }
    tracing::info!(
        target: "access",
        %method,
        path,
        status = res.status().as_u16(),
        micros = elapsed.as_micros() as u64,
        client,
        // The address as people write it, not Rust's `Some(…)`.
        peer = %peer.map(|p| p.to_string()).unwrap_or_default(),
    );
    Ok(res)
}

/// Why a request is refused as a cross-site post, or None if it may proceed.
///
/// The rule of Go's `http.CrossOriginProtection`: safe methods pass; a browser's
/// `Sec-Fetch-Site` must say `same-origin` (or `none`: typed by the user); failing that, an
/// `Origin` must name this host. A request with neither header comes from no browser (the
/// seed's client, curl) and passes: there is no ambient client certificate to abuse there.
fn cross_site_refusal(req: &HttpRequest) -> Option<String> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            other => Some(format!(
                "a form posted from another site (Sec-Fetch-Site: {})",
                String::from_utf8_lossy(other)
            )),
        };
    }
    let origin = headers.get(header::ORIGIN)?;
    let info = req.connection_info();
    let same = origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(info.host()));
    if same {
        return None;
    }
    Some(format!(
        "a form posted from another origin ({})",
        String::from_utf8_lossy(origin.as_bytes())
    ))
}

/// Why a request is refused before it reaches the app.
enum Refusal {
    /// 431: the request head is larger than [`MAX_HEADER_BYTES`].
    HeadTooLarge,
    /// 403: the client is not on the access list (judged once per connection, resumed sessions
    /// too, by `on_connect`).
    NotOnAccessList,
    /// 403: a cross-site post. A browser sends the client certificate along with any site's
    /// form, so only our own pages may post.
    CrossSite(String),
}

impl Refusal {
    /// The first guard `req` fails, cheapest check first.
    fn of(req: &ServiceRequest) -> Option<Refusal> {
        let head: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if head > MAX_HEADER_BYTES {
            return Some(Refusal::HeadTooLarge);
        }
        if req.conn_data::<Connection>().is_some_and(|c| !c.allowed) {
            return Some(Refusal::NotOnAccessList);
        }
        cross_site_refusal(req.request()).map(Refusal::CrossSite)
    }

    /// The answer, as a page or JSON as asked for a cross-site post.
    async fn respond(self, mut req: ServiceRequest) -> ServiceResponse {
        let res = match self {
            Refusal::HeadTooLarge => HttpResponse::build(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            )
            .json(
                json!({"error": format!("request headers larger than {MAX_HEADER_BYTES} bytes")}),
            ),
            Refusal::NotOnAccessList => HttpResponse::Forbidden().json(
                json!({"error": "this client certificate is not on the server's access list"}),
            ),
            Refusal::CrossSite(why) => {
                tracing::warn!("refused {} {}: {why}", req.method(), req.path());
                let mut payload = req.take_payload();
                // What is read or why not does not change the answer.
                let _ = read_small_body(req.headers(), &mut payload, MAX_FORM_BYTES).await;
                if pages::wants_html(req.request()) {
                    pages::message(
                        StatusCode::FORBIDDEN,
                        "Refused",
                        "This form was posted from another site. Open this server's own page and \
                         sign in there.",
                        false,
                    )
                } else {
                    HttpResponse::Forbidden().json(json!({ "error": why }))
                }
            }
        };
        req.into_response(res)
    }
}

/// The header limit, the access list and the cross-site guard, in one layer (each layer costs
/// an allocation and a poll per request).
async fn guards(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match Refusal::of(&req) {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(refusal) => Ok(refusal.respond(req).await.map_into_right_body()),
    }
}
