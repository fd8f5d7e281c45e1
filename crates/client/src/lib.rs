//! The seed's client done right: awc with an OpenSSL `SslConnector` that verifies the server's
//! chain and name, can present a client certificate, and explains every failure.
//!
//! - [`config::Config`]: a plain config struct whose defaults match `make certs` (the binary
//!   fills it from flags and `CLIENT_*` variables).
//! - [`tls`]: the connector (our CA only, TLS 1.2+, PEM or PKCS#12 identity).
//! - [`probe`]: one handshake that sees what awc does not, its failure in plain words
//!   (typed facts in [`facts`], words in `classify`).
//! - [`wire`]: the bytes read off the wire (plain HTTP? a TLS 1.2 CertificateRequest?).
//! - [`diagnose`] and [`report`]: `diagnose URL`.
//! - [`revocation`]: the server's certificate against the CRL it names.
//! - [`est`]: the device side of EST (RFC 7030): `enroll`, `renew`, the renewal daemon.
//! - [`Client`]: `get`, `post_form`, the seed's sequence.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod classify;
pub mod config;
pub mod diagnose;
pub mod error;
pub mod est;
pub mod facts;
mod own;
pub mod probe;
pub mod report;
pub mod revocation;
pub mod tls;
pub mod wire;

use std::net::SocketAddr;

use actix_tls::connect::{Connector as TcpConnector, Resolve, Resolver};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use serde::Serialize;

pub use crate::config::DEFAULT_TIMEOUT;
use crate::error::{Failure, FailureClass};
use crate::facts::Endpoint;
use crate::tls::TlsOptions;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    /// What was asked (`GET /login`).
    pub request: String,
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

/// Resolves the verification name to the URL's real host, like `curl --resolve`.
struct Pinned {
    name: String,
    host: String,
}

impl Resolve for Pinned {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        let target = if host == self.name {
            self.host.clone()
        } else {
            host.to_owned()
        };
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((target.as_str(), port)).await?;
            Ok(addrs.collect())
        })
    }
}

/// A client for one server.
pub struct Client {
    http: awc::Client,
    /// The base URL as requested (with the verification name as host).
    base: Uri,
    endpoint: Endpoint,
    tls: TlsOptions,
}

impl Client {
    /// A client for `base_url` (`https://host:port`).
    pub fn new(base_url: &str, tls: TlsOptions) -> Result<Client, Failure> {
        let url: Uri = base_url.parse().map_err(|e| {
            Failure::local(
                format!("{base_url:?} is not a URL ({e})"),
                "write it as https://host:port",
            )
        })?;
        if url.scheme_str() != Some("https") {
            return Err(Failure::local(
                format!("{base_url} is not an https:// URL"),
                "this client speaks TLS only; use https://",
            ));
        }
        let host = url
            .host()
            .ok_or_else(|| {
                Failure::local(
                    format!("{base_url} has no host"),
                    "write it as https://host:port",
                )
            })?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url.port_u16().unwrap_or(443);
        let name = tls.server_name.clone().unwrap_or_else(|| host.clone());
        let endpoint = Endpoint {
            host: host.clone(),
            port,
            name: name.clone(),
        };
        // The URL awc sees carries the verification name; the resolver maps it back.
        let authority = if name.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{name}]:{port}")
        } else {
            format!("{name}:{port}")
        };
        let base: Uri = format!("https://{authority}").parse().map_err(|e| {
            Failure::local(
                format!("--server-name {name:?} is not a host name ({e})"),
                "",
            )
        })?;
        let connector = tls::builder(&tls, b"\x02h2\x08http/1.1")?.build();
        let resolver = Resolver::custom(Pinned { name, host });
        let http = awc::Client::builder()
            .connector(
                awc::Connector::new()
                    .connector(TcpConnector::new(resolver).service())
                    .openssl(connector)
                    .timeout(tls.timeout)
                    .handshake_timeout(tls.timeout),
            )
            .timeout(tls.timeout)
            .finish();
        Ok(Client {
            http,
            base,
            endpoint,
            tls,
        })
    }

    /// Where it connects and which name it verifies.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn url(&self, path_or_url: &str) -> Result<(Uri, String), Failure> {
        if path_or_url.starts_with('/') {
            let u = format!(
                "{}{}",
                self.base.to_string().trim_end_matches('/'),
                path_or_url
            );
            let uri = u
                .parse()
                .map_err(|e| Failure::local(format!("bad path {path_or_url:?} ({e})"), ""))?;
            Ok((uri, path_or_url.to_owned()))
        } else {
            Err(Failure::local(
                format!("{path_or_url:?} is not a path"),
                "give a path such as /login (the server comes from --url)",
            ))
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply, Failure> {
        let (uri, shown) = self.url(path)?;
        let res = self.http.get(uri).send().await;
        self.finish(format!("GET {shown}"), res).await
    }

    /// `POST path` with a form body.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<Reply, Failure> {
        let (uri, shown) = self.url(path)?;
        let res = self.http.post(uri).send_form(&fields).await;
        self.finish(format!("POST {shown}"), res).await
    }

    async fn finish<S>(
        &self,
        request: String,
        res: Result<awc::ClientResponse<S>, awc::error::SendRequestError>,
    ) -> Result<Reply, Failure>
    where
        S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    {
        match res {
            Ok(mut r) => {
                let body = r.body().limit(1 << 20).await.map_err(|e| {
                    Failure::new(
                        FailureClass::Other,
                        "the answer could not be read",
                        "retry; see the server's log",
                        e.to_string(),
                    )
                })?;
                Ok(Reply {
                    request,
                    status: r.status().as_u16(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                })
            }
            Err(e) => Err(self.explain(&e).await),
        }
    }

    /// Turns an awc error into a classified failure by probing the server with the same TLS
    /// settings (awc's errors do not carry OpenSSL's verify result nor the server's alert).
    async fn explain(&self, err: &awc::error::SendRequestError) -> Failure {
        use awc::error::{ConnectError, SendRequestError};
        if let SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) = err {
            return Failure::new(
                FailureClass::Timeout,
                format!("no answer within {}s", self.tls.timeout.as_secs_f32()),
                "check the address, or raise --timeout",
                err.to_string(),
            );
        }
        let (ep, tls, said) = (self.endpoint.clone(), self.tls.clone(), err.to_string());
        let probed =
            actix_web::rt::task::spawn_blocking(move || probe::explain(&ep, &tls, &said)).await;
        match probed {
            Ok(Ok(hs)) => hs.failure.unwrap_or_else(|| {
                Failure::new(
                    FailureClass::Other,
                    "the request failed",
                    "retry; see the server's log",
                    err.to_string(),
                )
            }),
            Ok(Err(f)) => f,
            Err(_) => Failure::new(
                FailureClass::Other,
                "the request failed",
                "",
                err.to_string(),
            ),
        }
    }
}

/// The seed's client, step by step: `GET /login`, then `POST /login1` with the seed's user.
/// When the first request cannot reach the server, the second would fail the same way: it is
/// not sent.
pub async fn seed_sequence(client: &Client) -> Vec<Result<Reply, Failure>> {
    let first = client.get("/login").await;
    if first.is_err() {
        return vec![first];
    }
    let second = client
        .post_form("/login1", &[("username", "name"), ("password", "pwd1")])
        .await;
    vec![first, second]
}
