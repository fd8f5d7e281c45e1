//! The figures `bench compare` measures: one enum, each variant knowing its load.

use serde::Serialize;

use loadgen::http::{Http, RequestKind};
use loadgen::load::Mode;

/// Key type of the benchmark PKI (CA, server and client alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// ECDSA P-256.
    EcP256,
    /// RSA-2048.
    Rsa2048,
}

/// What a figure's rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// TLS handshakes per second (one request each).
    Handshakes,
    /// Requests per second on kept-alive connections.
    Requests,
    /// Correct `POST /login1` logins per second.
    Logins,
}

impl Unit {
    /// Unit of the rate, for tables.
    pub fn rate_label(self) -> &'static str {
        match self {
            Unit::Handshakes => "handshakes/s",
            Unit::Requests => "req/s",
            Unit::Logins => "logins/s",
        }
    }
}

/// One measured figure. `--only` takes the ids ([`Figure::id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Full handshakes/s, one-way TLS, EC P-256.
    HsEcOneway,
    /// Full handshakes/s, mutual TLS, EC P-256.
    HsEcMutual,
    /// Full handshakes/s, one-way TLS, RSA-2048.
    HsRsaOneway,
    /// Full handshakes/s, mutual TLS, RSA-2048.
    HsRsaMutual,
    /// Resumed handshakes/s (TLS 1.3 tickets), one-way.
    ResumeEcOneway,
    /// Resumed handshakes/s, mutual.
    ResumeEcMutual,
    /// Keep-alive `GET /login`, 1 connection.
    Ka1,
    /// Keep-alive `GET /login`, 64 connections.
    Ka64,
    /// Keep-alive `GET /login`, 256 connections.
    Ka256,
    /// Keep-alive `GET /login`, 64 connections, one-way TLS.
    Ka64Oneway,
    /// HTTP/2 `GET /login`, 64 connections, one stream at a time on each.
    H2Ka64,
    /// The same, one-way TLS.
    H2Ka64Oneway,
    /// Keep-alive `POST /login1` logins/s, 64 connections.
    Login1,
    /// `GET /login` at 4 connections with every login hashed: the baseline of [`Figure::GetFlood`].
    GetIdle,
    /// The same while 64 other connections flood `POST /login1`.
    GetFlood,
    /// Keep-alive `GET /login`, 64 connections, forwarded to an upstream (our `--upstream`,
    /// nginx's `proxy_pass`); the upstream is a separate nginx, measured for neither.
    Proxy64,
}

/// Our server's flags for the login-flood pair: no cache, no lockout, so every login hashes.
const HASH_EVERY_LOGIN: &[&str] = &["--login-cache-secs", "0", "--login-max-failures", "0"];

impl Figure {
    /// Every figure, in report order (`make bench`).
    pub const ALL: [Figure; 16] = [
        Figure::HsEcOneway,
        Figure::HsEcMutual,
        Figure::HsRsaOneway,
        Figure::HsRsaMutual,
        Figure::ResumeEcOneway,
        Figure::ResumeEcMutual,
        Figure::Ka1,
        Figure::Ka64,
        Figure::Ka256,
        Figure::Ka64Oneway,
        Figure::H2Ka64,
        Figure::H2Ka64Oneway,
        Figure::Login1,
        Figure::GetIdle,
        Figure::GetFlood,
        Figure::Proxy64,
    ];

    /// The figures of `--quick` (`make bench-quick`): one of each kind of load.
    pub const QUICK: [Figure; 4] = [
        Figure::HsEcOneway,
        Figure::HsEcMutual,
        Figure::Ka64,
        Figure::H2Ka64,
    ];

    /// Short id, as `--only` and the JSON spell it.
    pub fn id(self) -> &'static str {
        use Figure::*;
        match self {
            HsEcOneway => "hs-ec-oneway",
            HsEcMutual => "hs-ec-mutual",
            HsRsaOneway => "hs-rsa-oneway",
            HsRsaMutual => "hs-rsa-mutual",
            ResumeEcOneway => "resume-ec-oneway",
            ResumeEcMutual => "resume-ec-mutual",
            Ka1 => "ka-1",
            Ka64 => "ka-64",
            Ka256 => "ka-256",
            Ka64Oneway => "ka-64-oneway",
            H2Ka64 => "h2-64",
            H2Ka64Oneway => "h2-64-oneway",
            Login1 => "login1-64",
            GetIdle => "get-idle-4",
            GetFlood => "get-flood-4",
            Proxy64 => "proxy-64",
        }
    }

    /// Title in the report.
    pub fn title(self) -> &'static str {
        use Figure::*;
        match self {
            HsEcOneway => "Full handshakes, one-way, EC P-256",
            HsEcMutual => "Full handshakes, mutual, EC P-256",
            HsRsaOneway => "Full handshakes, one-way, RSA-2048",
            HsRsaMutual => "Full handshakes, mutual, RSA-2048",
            ResumeEcOneway => "Resumed handshakes, one-way, EC P-256",
            ResumeEcMutual => "Resumed handshakes, mutual, EC P-256",
            Ka1 => "Keep-alive GET /login, 1 connection",
            Ka64 => "Keep-alive GET /login, 64 connections",
            Ka256 => "Keep-alive GET /login, 256 connections",
            Ka64Oneway => "Keep-alive GET /login, 64 connections, one-way",
            H2Ka64 => "HTTP/2 GET /login, 64 connections",
            H2Ka64Oneway => "HTTP/2 GET /login, 64 connections, one-way",
            Login1 => "Keep-alive POST /login1, 64 connections",
            GetIdle => "GET /login, 4 connections, idle",
            GetFlood => "GET /login, 4 connections, under a POST /login1 flood",
            Proxy64 => "Keep-alive GET /login through to an upstream, 64 connections",
        }
    }

    /// Key type of the PKI both servers load.
    pub fn key(self) -> KeyKind {
        match self {
            Figure::HsRsaOneway | Figure::HsRsaMutual => KeyKind::Rsa2048,
            _ => KeyKind::EcP256,
        }
    }

    /// Whether the servers require a client certificate.
    pub fn mutual(self) -> bool {
        !matches!(
            self,
            Figure::HsEcOneway
                | Figure::HsRsaOneway
                | Figure::ResumeEcOneway
                | Figure::Ka64Oneway
                | Figure::H2Ka64Oneway
        )
    }

    /// How the load generator uses connections.
    pub fn mode(self) -> Mode {
        use Figure::*;
        match self {
            HsEcOneway | HsEcMutual | HsRsaOneway | HsRsaMutual => Mode::NewConn,
            ResumeEcOneway | ResumeEcMutual => Mode::Resume,
            _ => Mode::Keepalive,
        }
    }

    /// The HTTP version spoken.
    pub fn http(self) -> Http {
        match self {
            Figure::H2Ka64 | Figure::H2Ka64Oneway => Http::H2,
            _ => Http::H1,
        }
    }

    /// The request measured.
    pub fn request(self) -> RequestKind {
        match self {
            Figure::Login1 => RequestKind::PostLogin1,
            _ => RequestKind::GetLogin,
        }
    }

    /// Connections at once. Handshakes: 16 keep both server workers busy; more only queues.
    pub fn conns(self) -> usize {
        match self {
            Figure::Ka1 => 1,
            Figure::GetIdle | Figure::GetFlood => 4,
            Figure::Ka64
            | Figure::Ka64Oneway
            | Figure::H2Ka64
            | Figure::H2Ka64Oneway
            | Figure::Login1
            | Figure::Proxy64 => 64,
            Figure::Ka256 => 256,
            _ => 16,
        }
    }

    /// What the rate counts.
    pub fn unit(self) -> Unit {
        match (self.mode(), self.request()) {
            (Mode::NewConn | Mode::Resume, _) => Unit::Handshakes,
            (Mode::Keepalive, RequestKind::PostLogin1) => Unit::Logins,
            (Mode::Keepalive, RequestKind::GetLogin) => Unit::Requests,
        }
    }

    /// Load run beside the measured one, not measured: (request, connections).
    pub fn background(self) -> Option<(RequestKind, usize)> {
        (self == Figure::GetFlood).then_some((RequestKind::PostLogin1, 64))
    }

    /// Whether both servers forward the requests to an upstream.
    pub fn proxied(self) -> bool {
        self == Figure::Proxy64
    }

    /// Extra flags for our server.
    pub fn server_args(self) -> &'static [&'static str] {
        match self {
            Figure::GetIdle | Figure::GetFlood => HASH_EVERY_LOGIN,
            _ => &[],
        }
    }
}

impl clap::ValueEnum for Figure {
    fn value_variants<'a>() -> &'a [Self] {
        &Figure::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.id()).help(self.title()))
    }
}

impl Serialize for Figure {
    /// As its id: the report's tables and the README say what each id measures.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    #[test]
    fn ids_are_unique_and_parse_back() {
        for f in Figure::ALL {
            assert_eq!(Figure::from_str(f.id(), false), Ok(f));
            let same = Figure::ALL.iter().filter(|g| g.id() == f.id()).count();
            assert_eq!(same, 1, "{}", f.id());
        }
        assert!(Figure::from_str("ka-65", false).is_err());
    }

    #[test]
    fn units_follow_the_load() {
        assert_eq!(Figure::ResumeEcMutual.unit(), Unit::Handshakes);
        assert_eq!(Figure::Login1.unit(), Unit::Logins);
        assert_eq!(Figure::GetFlood.unit(), Unit::Requests);
        assert!(!Figure::HsRsaOneway.mutual() && Figure::HsRsaMutual.mutual());
        assert_eq!(Figure::HsRsaMutual.key(), KeyKind::Rsa2048);
        assert_eq!(serde_json::json!(Figure::Login1), "login1-64");
        assert_eq!(Figure::H2Ka64.http(), Http::H2);
        assert_eq!(Figure::H2Ka64Oneway.mode(), Mode::Keepalive);
        assert!(!Figure::H2Ka64Oneway.mutual() && Figure::H2Ka64.mutual());
        assert_eq!(Figure::Ka64Oneway.http(), Http::H1);
    }
}
