//! The front door: every request the guards let through is forwarded to an HTTP application
//! (`--upstream`), bodies streamed both ways, with the verified client in request headers
//! (`proxy_headers.rs`).
//!
//! - Down (refused, unreachable) → 502; slow (no response headers within the timeout) → 504;
//!   each with one plain-text line and a log line. A body that stalls longer than the timeout
//!   after the headers is cut (the status is already sent).
//! - Memory stays bounded whatever the sizes: bodies are never buffered, and a slow reader on
//!   one side slows the other through TCP's own flow control.
//! - The login brakes stand in front of the upstream's login route: while a client is locked
//!   out its posts get 429 without reaching the upstream; an answer of `false` (the seed's
//!   API) or 401 counts as a failed login, `true` resets the count.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::body::SizedStream;
use actix_web::error::PayloadError;
use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::http::{Method, StatusCode, Version};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use awc::error::{ConnectError, SendRequestError};
use futures_util::Stream;

use crate::config::{Config, Upstream};
use crate::error::ServerError;
use crate::identity::Connection;
use crate::limits::MAX_FORM_BYTES;
use crate::login::Brakes;
use crate::middleware::read_small_body;
use crate::pages;
use crate::proxy_headers::{self, IdentityHeaders, Origin};
use crate::routes::{client_key, LoginOutcome};

/// What every forwarded request shares.
#[derive(Debug)]
struct Proxy {
    upstream: Upstream,
    ids: IdentityHeaders,
    timeout: Duration,
    login_path: Option<String>,
    brakes: Brakes,
    /// `Authorization` for the upstream, from credentials in its URL (marked sensitive).
    credentials: Option<HeaderValue>,
}

/// The front door as an app: forwards everything to `upstream`.
pub fn proxy_app(
    config: &Config,
    upstream: &Upstream,
) -> Result<impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static, ServerError> {
    let proxy = web::Data::new(Proxy {
        upstream: upstream.clone(),
        ids: IdentityHeaders::new(&config.identity_header_prefix)?,
        timeout: Duration::from_secs(config.upstream_timeout_secs),
        login_path: config.upstream_login_path.clone(),
        brakes: Brakes::new(
            config.login_max_failures,
            Duration::from_secs(config.login_lockout_secs),
        ),
        credentials: upstream.credentials().map(basic),
    });
    Ok(move |cfg: &mut web::ServiceConfig| {
        // awc's client is per thread (it holds the connection pool): one per worker.
        let client = awc::Client::builder()
            .no_default_headers()
            .disable_redirects()
            .timeout(proxy.timeout)
            .connector(awc::Connector::new().timeout(proxy.timeout))
            .finish();
        cfg.app_data(proxy.clone())
            .app_data(web::Data::new(client))
            .default_service(web::to(forward));
    })
}

/// `Authorization: Basic` for `(user, password)`.
fn basic((user, password): (&str, &str)) -> HeaderValue {
    let token = openssl::base64::encode_block(format!("{user}:{password}").as_bytes());
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// Every request: through the brakes if it is a login, then to the upstream and back.
async fn forward(
    req: HttpRequest,
    mut body: web::Payload,
    proxy: web::Data<Proxy>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let login = proxy.is_login(&req);
    if login {
        if let Some(wait) = proxy.brakes.locked(&client_key(&req)) {
            let _ = read_small_body(req.headers(), &mut body, MAX_FORM_BYTES).await;
            let outcome = LoginOutcome::Locked {
                secs: wait.as_secs() + 1,
            };
            return outcome.respond(pages::wants_html(&req));
        }
    }
    let sent = send(proxy.request(&client, &req), &req, body).await;
    let res = match sent {
        Ok(res) => res,
        Err(e) => return proxy.gateway_error(&req, &e),
    };
    if login {
        proxy.judge_login(&req, res).await
    } else {
        respond(res, proxy.timeout)
    }
}

impl Proxy {
    fn is_login(&self, req: &HttpRequest) -> bool {
        req.method() == Method::POST && self.login_path.as_deref() == Some(req.path())
    }

    /// The request to send upstream: same method and path, the headers of `proxy_headers`.
    fn request(&self, client: &awc::Client, req: &HttpRequest) -> awc::ClientRequest {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let conn = req.conn_data::<Connection>();
        let origin = Origin {
            client: conn.and_then(|c| c.client.as_deref()),
            peer: req.peer_addr().map(|a| a.ip()),
            host: req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str())),
        };
        let mut out = client.request(req.method().clone(), self.upstream.url(path));
        *out.headers_mut() = proxy_headers::to_upstream(req.headers(), &self.ids, origin);
        if let Some(auth) = &self.credentials {
            out.headers_mut()
                .insert(header::AUTHORIZATION, auth.clone());
        }
        out
    }

    /// 502 or 504 (400 when it was the client's body that failed), one line, one log line.
    fn gateway_error(&self, req: &HttpRequest, e: &SendRequestError) -> HttpResponse {
        let (status, reason) = match e {
            SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the application behind this server did not answer within {} s",
                    self.timeout.as_secs()
                ),
            ),
            SendRequestError::Connect(_) => (
                StatusCode::BAD_GATEWAY,
                "the application behind this server is not reachable".to_owned(),
            ),
            SendRequestError::Body(_) => (
                StatusCode::BAD_REQUEST,
                "the request body could not be read".to_owned(),
            ),
            _ => (
                StatusCode::BAD_GATEWAY,
                "the application behind this server sent no valid answer".to_owned(),
            ),
        };
        tracing::warn!(
            upstream = %self.upstream,
            method = %req.method(),
            path = req.path(),
            status = status.as_u16(),
            error = %e,
            "{reason}"
        );
        HttpResponse::build(status)
            .content_type(ContentType::plaintext())
            .body(format!("{reason}\n"))
    }

    /// Counts the upstream's answer to a login against the client, then passes it on. Only a
    /// short answer is read to judge it; a long one passes unjudged, as it came.
    async fn judge_login(&self, req: &HttpRequest, mut res: awc::ClientResponse) -> HttpResponse {
        let who = client_key(req);
        if res.status() == StatusCode::UNAUTHORIZED {
            self.brakes.record(&who, false);
            return respond(res, self.timeout);
        }
        if content_length(res.headers()).is_none_or(|n| n > MAX_FORM_BYTES as u64) {
            return respond(res, self.timeout);
        }
        let body = match res.body().limit(MAX_FORM_BYTES).await {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(upstream = %self.upstream, error = %e, "the login answer could not be read");
                return HttpResponse::BadGateway()
                    .content_type(ContentType::plaintext())
                    .body("the application behind this server sent no valid answer\n");
            }
        };
        match body.trim_ascii() {
            b"false" => {
                self.brakes.record(&who, false);
            }
            b"true" => {
                self.brakes.record(&who, true);
            }
            _ => {}
        }
        let mut out = HttpResponse::build(res.status()).body(body);
        *out.headers_mut() = proxy_headers::to_client(res.headers());
        out
    }
}

/// Sends `out` with the client's body, streamed: with its length when it declared one, chunked
/// when it was chunked, and none when an HTTP/1 request had neither (or for an HTTP/2 GET/HEAD).
fn send(out: awc::ClientRequest, req: &HttpRequest, body: web::Payload) -> awc::SendClientRequest {
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let h2_body =
        req.version() == Version::HTTP_2 && !matches!(*req.method(), Method::GET | Method::HEAD);
    match content_length(req.headers()) {
        Some(n) => out.send_body(SizedStream::new(n, body)),
        None if chunked || h2_body => out.send_stream(body),
        None => out.send_body(actix_web::body::None::new()),
    }
}

fn content_length(headers: &header::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The upstream's answer as the client's, its body streamed with the length it declared.
fn respond(res: awc::ClientResponse, idle: Duration) -> HttpResponse {
    let headers = proxy_headers::to_client(res.headers());
    let length = content_length(res.headers());
    let mut builder = HttpResponse::build(res.status());
    let body = IdleTimeout::new(res, idle);
    let mut out = match length {
        Some(n) => builder.body(SizedStream::new(n, body)),
        None => builder.streaming(body),
    };
    *out.headers_mut() = headers;
    out
}

/// A body stream that fails when no piece arrives for `idle`: a stalled upstream does not hold
/// the client's connection (and the upstream's) for ever.
struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, idle: Duration) -> IdleTimeout<S> {
        IdleTimeout {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<S> Stream for IdleTimeout<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            let deadline = tokio::time::Instant::now() + self.idle;
            self.timer.as_mut().reset(deadline);
            return Poll::Ready(item);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        tracing::warn!(
            idle_secs = self.idle.as_secs(),
            "the upstream's body stalled; the answer was cut"
        );
        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the upstream's body stalled",
        )))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_credentials_are_basic_and_never_shown() {
        let auth = basic(("front", "s3cret"));
        assert_eq!(auth.to_str().ok(), Some("Basic ZnJvbnQ6czNjcmV0"));
        assert!(auth.is_sensitive());
        assert!(
            !format!("{auth:?}").contains("ZnJvbnQ6czNjcmV0"),
            "{auth:?}"
        );
    }
}
