//! The ACME service: what every POST goes through (the JWS parsed, its URL and nonce checked,
//! its signer found and verified) before the resource's own step, and the answer with a fresh
//! nonce. Everything here is synchronous and runs on the blocking pool: the records may be
//! PostgreSQL, whose client blocks. Validation, which waits on the network, is handed back
//! as a [`Job`] for the runtime.

use std::sync::Arc;

use openssl::x509::X509;
use pki::store::acme::AccountRecord;
use pki::Authority;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::jws::{self, Signed, Signer};
use crate::model::Identifier;
use crate::problem::{Kind, Problem};
use crate::urls::Urls;

/// The ACME front-end of an [`Authority`].
pub struct Acme {
    pub(crate) authority: Arc<Authority>,
    /// The issuing CA's chain after the leaf, PEM, up to the root: certbot refuses a chain
    /// of one, and a one-level CA's issuer is the root.
    pub(crate) chain_pem: String,
    pub(crate) config: Config,
    pub(crate) metrics: crate::metrics::Metrics,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Which resource a POST is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `new-account`.
    NewAccount,
    /// `account/{id}`.
    Account(String),
    /// `account/{id}/orders`.
    Orders(String),
    /// `key-change`.
    KeyChange,
    /// `new-order`.
    NewOrder,
    /// `order/{id}`.
    Order(String),
    /// `order/{id}/finalize`.
    Finalize(String),
    /// `authz/{id}`.
    Authz(String),
    /// `chall/{authz}/{type}`.
    Challenge(String, String),
    /// `cert/{order}`.
    Certificate(String),
    /// `revoke-cert`.
    Revoke,
}

/// An answer's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `application/json` (or `application/problem+json` for a problem).
    Json(Value),
    /// `application/pem-certificate-chain`.
    Pem(String),
    /// Nothing.
    Empty,
}

/// A challenge to validate once the answer is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The authorization.
    pub authz: String,
    /// The challenge type.
    pub kind: String,
    /// What is validated.
    pub identifier: Identifier,
    /// What the client must answer.
    pub key_auth: String,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Body,
    /// `Location`.
    pub location: Option<String>,
    /// `Link` values besides the directory's.
    pub links: Vec<String>,
    /// `Retry-After`, seconds.
    pub retry_after: Option<u64>,
    /// `Replay-Nonce`.
    pub nonce: Option<String>,
    /// Whether the body is a problem document.
    pub problem: Option<Kind>,
    /// A validation to start.
    pub job: Option<Job>,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(body: Value) -> Reply {
        Reply {
            status: 200,
            body: Body::Json(body),
            location: None,
            links: Vec::new(),
            retry_after: None,
            nonce: None,
            problem: None,
            job: None,
        }
    }

    /// With a status.
    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// With a `Location`.
    pub fn location(mut self, url: String) -> Reply {
        self.location = Some(url);
        self
    }

    /// With a `Link: <url>;rel="rel"`.
    pub fn link(mut self, url: &str, rel: &str) -> Reply {
        self.links.push(format!("<{url}>;rel=\"{rel}\""));
        self
    }

    /// The problem document for `p`.
    pub fn problem(p: &Problem) -> Reply {
        let mut r = Reply::json(p.to_json()).status(p.kind.status().as_u16());
        r.retry_after = p.retry_after;
        r.problem = Some(p.kind);
        r
    }
}

/// A request whose signature verified: who sent it and what it says.
#[derive(Debug)]
pub(crate) struct Authed {
    /// The account (`kid`), when one signed.
    pub account: Option<AccountRecord>,
    /// The key that signed (`jwk`), when it was given in full.
    pub jwk: Option<Map<String, Value>>,
    /// The request.
    pub signed: Signed,
}

impl Authed {
    /// The account, for a route that needs one.
    pub fn account(&self) -> Result<&AccountRecord, Problem> {
        self.account
            .as_ref()
            .ok_or_else(|| Problem::malformed("sign this request with the account's kid"))
    }

    /// The payload as a JSON object (`{}` for an empty one).
    pub fn payload(&self) -> Result<Map<String, Value>, Problem> {
        if self.signed.payload.is_empty() {
            return Ok(Map::new());
        }
        serde_json::from_slice(&self.signed.payload)
            .map_err(|e| Problem::malformed(format!("the payload is not a JSON object: {e}")))
    }

    /// Whether this is a POST-as-GET (an empty payload).
    pub fn is_get(&self) -> bool {
        self.signed.payload.is_empty()
    }
}

impl Acme {
    /// The ACME service of `authority`, whose chain (leaf's issuer first) is `chain`.
    pub fn new(authority: Arc<Authority>, chain: &[X509], config: Config) -> Acme {
        let chain_pem = chain
            .iter()
            .filter_map(|c| c.to_pem().ok())
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .collect();
        Acme {
            authority,
            chain_pem,
            config,
            metrics: crate::metrics::Metrics::default(),
        }
    }

    /// Counts into `metrics` (handles the caller registered).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Acme {
        metrics.touch();
        self.metrics = metrics;
        self
    }

    /// Moves `next` to its status when the record's status is still `from` (compare-and-set):
    /// false when another request or replica moved it first.
    pub(crate) fn swap(
        &self,
        next: &pki::store::acme::AcmeObject,
        from: &str,
    ) -> Result<bool, Problem> {
        Ok(self
            .authority
            .records()
            .with(|db| db.acme_swap(next, from))?)
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The directory (RFC 8555 §7.1.1), with the profiles and whether EAB is required.
    pub fn directory(&self, urls: &Urls) -> Value {
        let profiles: Map<String, Value> = self
            .config
            .profiles()
            .map(|p| (p.name.to_owned(), json!(p.description())))
            .collect();
        json!({
            "newNonce": urls.at("new-nonce"),
            "newAccount": urls.at("new-account"),
            "newOrder": urls.at("new-order"),
            "revokeCert": urls.at("revoke-cert"),
            "keyChange": urls.at("key-change"),
            "renewalInfo": urls.at("renewal-info"),
            "meta": {
                "externalAccountRequired": self.config.eab_required,
                "profiles": profiles,
            },
        })
    }

    /// A fresh nonce, on record.
    pub fn new_nonce(&self) -> Result<String, Problem> {
        let nonce = random_id(16);
        let at = x509::time::now();
        self.authority
            .records()
            .with(|db| db.acme_nonce_add(&nonce, at, at + self.config.nonce_ttl_secs))?;
        Ok(nonce)
    }

    /// One POST to `route`, at `url` (as the client must have signed it), with `body`.
    pub fn post(&self, urls: &Urls, route: &Route, url: &str, body: &[u8]) -> Reply {
        let fresh = random_id(16);
        let mut stored = false;
        let mut reply = match self.post_inner(urls, route, url, body, &fresh, &mut stored) {
            Ok(r) => r,
            Err(p) => {
                tracing::info!(route = ?route, problem = p.kind.label(), detail = %p.detail, "ACME request refused");
                self.count_refusal(route, &p);
                Reply::problem(&p)
            }
        };
        if *route == Route::NewOrder && reply.problem.is_none() {
            self.metrics.orders.with_label_values(&["created"]).inc();
        }
        if !stored {
            let at = x509::time::now();
            stored = self
                .authority
                .records()
                .with(|db| db.acme_nonce_add(&fresh, at, at + self.config.nonce_ttl_secs))
                .is_ok();
        }
        reply.nonce = stored.then_some(fresh);
        reply.link(&urls.directory(), "index")
    }

    fn count_refusal(&self, route: &Route, p: &Problem) {
        self.metrics.problem(p);
        match route {
            Route::NewOrder => self.metrics.orders.with_label_values(&["refused"]).inc(),
            Route::Finalize(_) => self
                .metrics
                .enrollments
                .with_label_values(&[crate::metrics::PROTOCOL, "refused", p.kind.label()])
                .inc(),
            _ => {}
        }
    }

    fn post_inner(
        &self,
        urls: &Urls,
        route: &Route,
        url: &str,
        body: &[u8],
        fresh: &str,
        stored: &mut bool,
    ) -> Result<Reply, Problem> {
        let signed = jws::parse(body)?;
        let nonce = signed
            .nonce
            .as_deref()
            .ok_or_else(|| Problem::new(Kind::BadNonce, "the protected header has no nonce"))?;
        let at = x509::time::now();
        let good = self
            .authority
            .records()
            .with(|db| db.acme_nonce_swap(nonce, fresh, at, at + self.config.nonce_ttl_secs))?;
        *stored = true;
        if !good {
            return Err(Problem::new(
                Kind::BadNonce,
                "the nonce is unknown, used or too old: retry with the one in this answer",
            ));
        }
        if signed.url != url {
            return Err(Problem::unauthorized(format!(
                "the JWS was signed for {}, not for {url}",
                signed.url
            )));
        }
        let authed = self.authenticate(urls, route, signed)?;
        self.dispatch(urls, route, &authed)
    }

    fn authenticate(&self, urls: &Urls, route: &Route, signed: Signed) -> Result<Authed, Problem> {
        match (&signed.signer, route) {
            (Signer::Jwk(jwk), Route::NewAccount | Route::Revoke) => {
                signed.verify(jwk)?;
                Ok(Authed {
                    account: None,
                    jwk: Some(jwk.clone()),
                    signed,
                })
            }
            (Signer::Jwk(_), _) => Err(Problem::malformed(
                "sign this request with the account's kid, not a jwk",
            )),
            (Signer::Kid(_), Route::NewAccount) => Err(Problem::malformed(
                "sign new-account with the account key as a jwk",
            )),
            (Signer::Kid(kid), _) => {
                let id = urls.account_id(kid).ok_or_else(|| {
                    Problem::new(
                        Kind::AccountDoesNotExist,
                        format!("{kid} is not an account of this CA"),
                    )
                })?;
                let account = self
                    .authority
                    .records()
                    .with(|db| db.acme_account(id))?
                    .ok_or_else(|| {
                        Problem::new(Kind::AccountDoesNotExist, format!("no account {kid}"))
                    })?;
                if account.status != "valid" {
                    return Err(Problem::unauthorized(format!(
                        "the account is {}: make a new one",
                        account.status
                    )));
                }
                signed.verify(&account_jwk(&account)?)?;
                Ok(Authed {
                    account: Some(account),
                    jwk: None,
                    signed,
                })
            }
        }
    }

    fn dispatch(&self, urls: &Urls, route: &Route, a: &Authed) -> Result<Reply, Problem> {
        match route {
            Route::NewAccount => self.new_account(urls, a),
            Route::Account(id) => self.account(urls, a, id),
            Route::Orders(id) => self.orders(urls, a, id),
            Route::KeyChange => self.key_change(urls, a),
            Route::NewOrder => self.new_order(urls, a),
            Route::Order(id) => self.order(urls, a, id),
            Route::Finalize(id) => self.finalize(urls, a, id),
            Route::Authz(id) => self.authz(urls, a, id),
            Route::Challenge(id, kind) => self.challenge(urls, a, id, kind),
            Route::Certificate(id) => self.certificate(urls, a, id),
            Route::Revoke => self.revoke(a),
        }
    }
}

/// An account's key as a JWK object.
pub(crate) fn account_jwk(account: &AccountRecord) -> Result<Map<String, Value>, Problem> {
    serde_json::from_str(&account.jwk)
        .map_err(|e| Problem::new(Kind::ServerInternal, format!("account key on record: {e}")))
}

/// `n` random bytes, base64url: ids, tokens and nonces.
pub(crate) fn random_id(n: usize) -> String {
    let mut raw = vec![0u8; n];
    // The OS's generator does not fail on Linux; an all-zero id would be refused as a
    // duplicate by the records rather than reused.
    let _ = openssl::rand::rand_bytes(&mut raw);
    jws::b64_encode(raw)
}
