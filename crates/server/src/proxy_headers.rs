//! Which headers cross the front door, as pure functions of the headers and the verified
//! client (tested without a network):
//!
//! - hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every name it lists, `Keep-Alive`,
//!   `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-*`) end at each hop, both ways;
//!   `Content-Length` is set again from the body that is actually sent, and `Expect` was
//!   answered here;
//! - the client's identity headers and `Forwarded`/`X-Forwarded-*`/`X-Real-IP` are removed
//!   (with `_` counted as `-`: CGI and WSGI read `X_Client_Cert_CN` as `X-Client-Cert-CN`), then
//!   ours are set: what the handshake verified, and `X-Forwarded-For/-Proto/-Host`.
//!
//! Identity header values are printable ASCII: other bytes and `%` are escaped as `%XX` (and
//! `,` inside a SAN, since SANs are joined with `, `), as nginx escapes `$ssl_client_escaped_cert`.

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::error::ServerError;

/// The verified client certificate (see `identity.rs`).
type Certificate = x509::identity::ClientIdentity;

/// What each identity header holds, after the prefix.
const SUFFIXES: [&str; 7] = [
    "Verify",
    "Subject",
    "CN",
    "SAN",
    "Serial",
    "SHA256",
    "Not-After",
];

/// The identity headers, named from one prefix.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Lower case, `_` as `-`: what a client's header is compared with.
    prefix: String,
    /// The prefix followed by each of [`SUFFIXES`].
    names: [HeaderName; 7],
}

impl IdentityHeaders {
    /// Headers named `prefix` + `Verify`, `Subject`, ...; the prefix must be a header-name start.
    pub fn new(prefix: &str) -> Result<IdentityHeaders, ServerError> {
        let invalid = || ServerError::HeaderPrefix {
            prefix: prefix.to_owned(),
        };
        if prefix.is_empty() {
            return Err(invalid());
        }
        let mut names = Vec::with_capacity(SUFFIXES.len());
        for suffix in SUFFIXES {
            let name = HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes())
                .map_err(|_| invalid())?;
            names.push(name);
        }
        Ok(IdentityHeaders {
            prefix: normalized(prefix),
            names: names.try_into().map_err(|_| invalid())?,
        })
    }

    /// Whether a header the client sent falls under our prefix.
    fn claims(&self, name: &HeaderName) -> bool {
        normalized(name.as_str()).starts_with(&self.prefix)
    }

    /// Sets the identity headers for `client` (only `Verify: NONE` without one).
    fn insert(&self, headers: &mut HeaderMap, client: Option<&Certificate>) {
        let [verify, subject, cn, san, serial, sha256, not_after] = self.names.clone();
        let Some(c) = client else {
            headers.insert(verify, HeaderValue::from_static("NONE"));
            return;
        };
        headers.insert(verify, HeaderValue::from_static("SUCCESS"));
        let sans: Vec<String> = c.sans.iter().map(|s| escape(s, b",")).collect();
        let values = [
            (subject, Some(escape(&c.subject, b""))),
            (cn, c.common_name.as_deref().map(|cn| escape(cn, b""))),
            (san, (!sans.is_empty()).then(|| sans.join(", "))),
            (serial, Some(escape(&c.serial, b""))),
            (sha256, Some(escape(&c.sha256, b""))),
            (not_after, Some(escape(&c.not_after, b""))),
        ];
        for (name, value) in values {
            // Escaped values are printable ASCII: always valid header values.
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, v);
            }
        }
    }
}

/// Lower case with `_` as `-`, the way CGI-style servers fold header names together.
fn normalized(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// What the connection told us about the request, for the headers we set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The verified client certificate, if any.
    pub client: Option<&'a Certificate>,
    /// The TCP peer.
    pub peer: Option<IpAddr>,
    /// The host the client asked for (`Host`, or the HTTP/2 authority).
    pub host: Option<&'a str>,
}

/// The headers to send upstream: the client's, less hop-by-hop, spoofable and length headers,
/// plus the identity and `X-Forwarded-*` headers.
pub fn to_upstream(incoming: &HeaderMap, ids: &IdentityHeaders, origin: Origin<'_>) -> HeaderMap {
    let hop = hop_by_hop(incoming);
    let mut out = HeaderMap::with_capacity(incoming.len() + SUFFIXES.len() + 3);
    for (name, value) in incoming {
        // `Expect: 100-continue` was answered here already: the body is on its way.
        let ours = name == header::CONTENT_LENGTH || name == header::EXPECT;
        if !hop(name) && !ids.claims(name) && !is_forwarding(name) && !ours {
            out.append(name.clone(), value.clone());
        }
    }
    ids.insert(&mut out, origin.client);
    if let Some(ip) = origin.peer {
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            out.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    out.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
    if let Some(v) = origin.host.and_then(|h| HeaderValue::from_str(h).ok()) {
        out.insert(HeaderName::from_static("x-forwarded-host"), v.clone());
        out.insert(header::HOST, v);
    }
    out
}

/// The headers to send the client: the upstream's, less hop-by-hop and length headers.
pub fn to_client(upstream: &HeaderMap) -> HeaderMap {
    let hop = hop_by_hop(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if !hop(name) && name != header::CONTENT_LENGTH {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The hop-by-hop headers of `headers`: the fixed list, and the names `Connection` lists.
fn hop_by_hop(headers: &HeaderMap) -> impl Fn(&HeaderName) -> bool + '_ {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .collect();
    move |name: &HeaderName| {
        let n = name.as_str();
        matches!(
            n,
            "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
        ) || n.starts_with("proxy-")
            || listed.iter().any(|l| l == n)
    }
}

/// Headers that say who the client is or where it came from: only we may set them.
fn is_forwarding(name: &HeaderName) -> bool {
    let n = normalized(name.as_str());
    n == "forwarded" || n == "x-real-ip" || n.starts_with("x-forwarded-")
}

/// `value` with bytes outside printable ASCII, `%` and each of `also` as `%XX`.
fn escape(value: &str, also: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' && !also.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn cert() -> Certificate {
        Certificate {
            subject: "/O=Acme, Inc./CN=sensor-ü".into(),
            common_name: Some("sensor-ü".into()),
            sans: vec!["DNS:a.lab".into(), "URI:spiffe://lab/x,y".into()],
            serial: "0A1B".into(),
            sha256: "ab".repeat(32),
            not_after: "2030-01-01T00:00:00Z".into(),
        }
    }

    fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        h.get_all(name)
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    #[test]
    fn hop_by_hop_headers_stop_here_both_ways() {
        let h = headers(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-connection", "keep-alive"),
            ("x-secret-hop", "1"),
            ("content-length", "12"),
            ("expect", "100-continue"),
            ("accept", "text/html"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]);
        let ids = IdentityHeaders::new("X-Client-Cert-").expect("prefix");
        let up = to_upstream(&h, &ids, Origin::default());
        assert!(!up.contains_key("expect"));
        let down = to_client(&h);
        for out in [&up, &down] {
            let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
            for gone in [
                "connection",
                "keep-alive",
                "te",
                "trailer",
                "transfer-encoding",
                "upgrade",
                "proxy-authorization",
                "proxy-connection",
                "x-secret-hop",
                "content-length",
            ] {
                assert!(!names.contains(&gone), "{gone} crossed: {names:?}");
            }
            assert_eq!(values(out, "accept"), ["text/html"]);
            assert_eq!(
                values(out, "cookie"),
                ["a=1", "b=2"],
                "repeated headers keep their order"
            );
        }
    }

    #[test]
    fn forged_identity_and_forwarding_headers_are_replaced() {
        let forged = headers(&[
            ("x-client-cert-cn", "admin"),
            ("X-Client-Cert_Subject", "/CN=admin"),
            ("x_client_cert_verify", "SUCCESS"),
            ("x-client-cert-anything", "x"),
            ("forwarded", "for=10.0.0.1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x_forwarded_proto", "http"),
            ("x-real-ip", "10.0.0.1"),
            ("host", "localhost:8443"),
        ]);
        let ids = IdentityHeaders::new("X-Client-Cert-").expect("prefix");
        let origin = Origin {
            client: None,
            peer: Some(IpAddr::from([127, 0, 0, 1])),
            host: Some("localhost:8443"),
        };
        let up = to_upstream(&forged, &ids, origin);
        let mut names: Vec<&str> = up.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "host",
                "x-client-cert-verify",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto"
            ]
        );
        assert_eq!(values(&up, "x-client-cert-verify"), ["NONE"]);
        assert_eq!(values(&up, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(values(&up, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&up, "x-forwarded-host"), ["localhost:8443"]);
    }

    #[test]
    fn identity_headers_carry_the_verified_certificate_escaped() {
        let ids = IdentityHeaders::new("X-SSL-Client-").expect("prefix");
        let c = cert();
        let origin = Origin {
            client: Some(&c),
            ..Origin::default()
        };
        let up = to_upstream(&HeaderMap::new(), &ids, origin);
        assert_eq!(values(&up, "x-ssl-client-verify"), ["SUCCESS"]);
        assert_eq!(
            values(&up, "x-ssl-client-subject"),
            ["/O=Acme, Inc./CN=sensor-%C3%BC"]
        );
        assert_eq!(values(&up, "x-ssl-client-cn"), ["sensor-%C3%BC"]);
        assert_eq!(
            values(&up, "x-ssl-client-san"),
            ["DNS:a.lab, URI:spiffe://lab/x%2Cy"]
        );
        assert_eq!(values(&up, "x-ssl-client-serial"), ["0A1B"]);
        assert_eq!(values(&up, "x-ssl-client-sha256"), [c.sha256.as_str()]);
        assert_eq!(
            values(&up, "x-ssl-client-not-after"),
            ["2030-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn a_prefix_must_start_a_header_name() {
        for bad in ["", "X Client", "X-Client:", "Ä-"] {
            assert!(
                matches!(
                    IdentityHeaders::new(bad),
                    Err(ServerError::HeaderPrefix { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
