//! What the ACME service does, as a plain struct ([`Config::default`] is what `ca` runs with no
//! `--acme-*` flags), and the profiles it offers (draft-ietf-acme-profiles).

use std::time::Duration;

use x509::Profile;

use crate::validate::Validator;

/// The ACME service's settings. Each field's doc gives its default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The origin clients reach the service at (`https://ca.example:8443`); `None`: each
    /// request's own host.
    pub origin: Option<String>,
    /// Accounts must be bound to an external account (`pki acme eab create`). Default true.
    pub eab_required: bool,
    /// Days a `tls-server` certificate is valid. Default 7: renewal information keeps
    /// clients that count in days safe.
    pub server_days: u32,
    /// Days an `mtls-client` certificate is valid. Default 7.
    pub client_days: u32,
    /// Where validation looks names up and connects.
    pub validator: Validator,
    /// Orders an account may make in an hour before it hears 429. Default 300.
    pub orders_per_hour: i64,
    /// Failed authorizations an account may have in an hour before its new challenges hear
    /// 429. Default 60.
    pub failed_validations_per_hour: i64,
    /// How long a nonce stays good. Default 1 hour.
    pub nonce_ttl_secs: i64,
    /// How long a pending authorization waits for its challenge. Default 1 day.
    pub pending_authz_secs: i64,
    /// How long an order (and its valid authorizations) lasts. Default 7 days.
    pub order_secs: i64,
    /// Attempts of one validation (the client may still be starting its responder). Default 3.
    pub attempts: u32,
    /// Between two attempts. Default 2 s.
    pub retry_delay: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            origin: None,
            eab_required: true,
            server_days: 7,
            client_days: 7,
            validator: Validator::default(),
            orders_per_hour: 300,
            failed_validations_per_hour: 60,
            nonce_ttl_secs: 3600,
            pending_authz_secs: 86_400,
            order_secs: 7 * 86_400,
            attempts: 3,
            retry_delay: Duration::from_secs(2),
        }
    }
}

/// A profile offered in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcmeProfile {
    /// Its name in the directory and in new-order.
    pub name: &'static str,
    /// The certificate profile it issues.
    pub profile: Profile,
    /// Its lifetime, days.
    pub days: u32,
}

/// The default profile's name.
pub const TLS_SERVER: &str = "tls-server";
/// The client-certificate profile's name.
pub const MTLS_CLIENT: &str = "mtls-client";

impl AcmeProfile {
    /// What the directory says of it.
    pub fn description(&self) -> String {
        match self.profile {
            Profile::Client => format!(
                "clientAuth: a service's client identity for mutual TLS, {} days (only for accounts whose binding allows it)",
                self.days
            ),
            _ => format!("serverAuth: a TLS server, {} days (the default)", self.days),
        }
    }
}

impl Config {
    /// The profiles offered, the default first.
    pub fn profiles(&self) -> impl Iterator<Item = AcmeProfile> {
        [
            AcmeProfile {
                name: TLS_SERVER,
                profile: Profile::Server,
                days: self.server_days,
            },
            AcmeProfile {
                name: MTLS_CLIENT,
                profile: Profile::Client,
                days: self.client_days,
            },
        ]
        .into_iter()
    }

    /// The profile named `name` (the default when `None`).
    pub fn profile(&self, name: Option<&str>) -> Option<AcmeProfile> {
        let name = name.unwrap_or(TLS_SERVER);
        self.profiles().find(|p| p.name == name)
    }
}
