//! The browser side, and the only place with templates: `GET /` (who the browser is, from its
//! verified certificate, and the login form), the HTML answers of `/login1` and of refusals, and
//! the headers every HTML answer carries.
//!
//! API clients are untouched: the seed's client sends no `Accept: text/html` and no `Origin`,
//! so it keeps getting JSON and is never taken for a cross-site browser.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{mime, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;

use crate::config::ClientAuth;
use crate::identity::Connection;

/// The pages' stylesheet, inline: no external assets, and the CSP admits exactly this text.
const STYLE: &str = include_str!("../templates/style.css");

/// `Content-Security-Policy` of every page: nothing loads but the inline style above (by its
/// hash), forms post only to this origin, and no other site may frame the page.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = openssl::base64::encode_block(&openssl::sha::sha256(STYLE.as_bytes()));
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    ))
    .expect("the CSP is ASCII")
});

/// The verified client certificate, as the page shows it.
struct Visitor<'a> {
    common_name: &'a str,
    subject: &'a str,
    serial: &'a str,
    not_after: &'a str,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    style: &'static str,
    client: Option<Visitor<'a>>,
    no_cert_reason: &'static str,
    /// Why the certificate the browser presented was not taken (`optional` mode).
    refused: Option<String>,
    protocol: &'a str,
    resumed: bool,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    style: &'static str,
    title: &'a str,
    message: &'a str,
    ok: bool,
}

/// `GET /`: who the browser is, and the login form.
pub fn index(req: &HttpRequest, mode: ClientAuth) -> HttpResponse {
    let conn = req.conn_data::<Connection>();
    let client = conn.and_then(|c| c.client.as_ref()).map(|c| Visitor {
        common_name: c.common_name.as_deref().unwrap_or(&c.subject),
        subject: &c.subject,
        serial: &c.serial,
        not_after: &c.not_after,
    });
    let page = IndexPage {
        style: STYLE,
        client,
        no_cert_reason: match mode {
            ClientAuth::None => "this server does not ask for one (one-way TLS).",
            ClientAuth::Optional => "this server accepts browsers without one (optional mode).",
            // A mutual-TLS handshake without a certificate never gets this far.
            ClientAuth::Required => "none was presented.",
        },
        refused: conn.and_then(|c| c.refusal).map(|r| r.plain()),
        protocol: conn.map_or("", |c| c.protocol),
        resumed: conn.is_some_and(|c| c.resumed),
    };
    render(StatusCode::OK, &page)
}

/// A short result page (`/login1` to a browser, refusals).
pub fn message(status: StatusCode, title: &str, message: &str, ok: bool) -> HttpResponse {
    let page = MessagePage {
        style: STYLE,
        title,
        message,
        ok,
    };
    render(status, &page)
}

/// Renders `page` with the headers every HTML answer carries.
fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type(mime::TEXT_HTML_UTF_8)
            .insert_header((header::CONTENT_SECURITY_POLICY, CSP.clone()))
            .insert_header((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            // The page shows who the client is: no cache may keep it.
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => {
            tracing::error!("page template failed: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Whether the client asked for HTML (a browser's form post does; the seed's client does not).
pub fn wants_html(req: &HttpRequest) -> bool {
    req.get_header::<header::Accept>().is_some_and(|accept| {
        accept
            .iter()
            .any(|q| q.item == mime::TEXT_HTML && q.quality > header::Quality::ZERO)
    })
}
