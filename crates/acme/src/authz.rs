//! Authorizations and challenges (RFC 8555 §7.5): a challenge POSTed moves its authorization
//! to `processing` (compare-and-set, so one replica validates it), the validation runs after
//! the answer is sent, and its result is recorded the same way.

use pki::store::acme::AcmeObject;
use serde_json::{json, Value};

use crate::model::{challenge_json, rfc3339, Authz, Identifier};
use crate::order::{from_body, to_body};
use crate::problem::{Kind, Problem};
use crate::service::{Acme, Authed, Job, Reply};
use crate::urls::Urls;

/// A validation takes at most its attempts × (timeout + delay): past this, its replica is gone.
const STALE_VALIDATION_SECS: i64 = 120;

impl Acme {
    fn load_authz(&self, a: &Authed, id: &str) -> Result<(AcmeObject, Authz), Problem> {
        let account = a.account()?;
        let row = self
            .authority
            .records()
            .with(|db| db.acme_get(&[id]))?
            .into_iter()
            .next();
        match row {
            Some(r) if r.kind == "authz" && r.account == account.id => {
                let body = from_body(&r.body)?;
                Ok((r, body))
            }
            Some(r) if r.kind == "authz" => Err(Problem::unauthorized(
                "this authorization belongs to another account",
            )),
            _ => Err(Problem::new(
                Kind::NotFound,
                format!("no authorization {id}"),
            )),
        }
    }

    /// `authz/{id}`: read it, or deactivate it.
    pub(crate) fn authz(&self, urls: &Urls, a: &Authed, id: &str) -> Result<Reply, Problem> {
        let (row, authz) = self.load_authz(a, id)?;
        let payload = a.payload()?;
        let row = match payload.get("status").and_then(Value::as_str) {
            None => row,
            Some("deactivated") if matches!(row.status.as_str(), "pending" | "valid") => {
                let mut next = row.clone();
                next.status = "deactivated".into();
                self.swap(&next, &row.status)?;
                next
            }
            Some(other) => {
                return Err(Problem::malformed(format!(
                    "an authorization that is {} cannot become {other}",
                    row.status
                )))
            }
        };
        Ok(Reply::json(authz_json(urls, &row, &authz)).location(urls.authz(id)))
    }

    /// `chall/{authz}/{type}`: POST-as-GET reads it; `{}` asks for validation.
    pub(crate) fn challenge(
        &self,
        urls: &Urls,
        a: &Authed,
        id: &str,
        kind: &str,
    ) -> Result<Reply, Problem> {
        let account = a.account()?;
        let (row, mut authz) = self.load_authz(a, id)?;
        let url = urls.challenge(id, kind);
        let idx = authz
            .challenges
            .iter()
            .position(|c| c.kind == kind)
            .ok_or_else(|| {
                Problem::new(
                    Kind::NotFound,
                    format!("authorization {id} has no {kind} challenge"),
                )
            })?;
        let reply = |row: &AcmeObject, authz: &Authz| {
            Reply::json(challenge_json(&authz.challenges[idx], &url))
                .link(&urls.authz(&row.id), "up")
        };
        let now = x509::time::now();
        // A validation whose replica died (or restarted) mid-way may be started again.
        let stale = row.status == "processing"
            && authz
                .processing_since
                .is_none_or(|t| now - t > STALE_VALIDATION_SECS);
        if a.is_get() || (row.status != "pending" && !stale) {
            return Ok(reply(&row, &authz));
        }
        if row.expires_at <= x509::time::now() {
            return Err(Problem::malformed(
                "the authorization expired: make a new order",
            ));
        }
        let (_, failed) = self
            .authority
            .records()
            .with(|db| db.acme_count(&account.id, "authz", now - 3600, "invalid"))?;
        if failed >= self.config.failed_validations_per_hour {
            return Err(Problem::new(
                Kind::RateLimited,
                format!("{failed} failed validations in the last hour: fix the responder, then retry later"),
            ));
        }
        authz.challenges[idx].status = "processing".into();
        authz.processing_since = Some(now);
        let mut next = row.clone();
        next.status = "processing".into();
        next.body = to_body(&authz)?;
        if !self.swap(&next, &row.status)? {
            // Another request started it first; that one validates.
            let (row, authz) = self.load_authz(a, id)?;
            return Ok(reply(&row, &authz));
        }
        let token = &authz.challenges[idx].token;
        let job = Job {
            authz: id.to_owned(),
            kind: kind.to_owned(),
            identifier: authz.identifier.clone(),
            key_auth: crate::jws::key_authorization(token, &account.thumbprint),
        };
        let mut out = reply(&next, &authz);
        out.job = Some(job);
        Ok(out)
    }

    /// Records how a validation ended: the authorization valid (for the order's lifetime) or
    /// invalid with the problem the client will read.
    pub fn record_validation(&self, job: &Job, result: Result<(), Problem>) -> Result<(), Problem> {
        let row = self
            .authority
            .records()
            .with(|db| db.acme_get(&[&job.authz]))?
            .into_iter()
            .next()
            .ok_or_else(|| Problem::new(Kind::NotFound, "the authorization is gone"))?;
        if row.status != "processing" {
            return Ok(());
        }
        let mut authz: Authz = from_body(&row.body)?;
        let now = x509::time::now();
        let mut next = row.clone();
        for c in authz.challenges.iter_mut().filter(|c| c.kind == job.kind) {
            match &result {
                Ok(()) => {
                    c.status = "valid".into();
                    c.validated = Some(rfc3339(now));
                }
                Err(p) => {
                    c.status = "invalid".into();
                    c.error = Some(p.to_json());
                }
            }
        }
        authz.processing_since = None;
        next.status = if result.is_ok() { "valid" } else { "invalid" }.into();
        if result.is_ok() {
            next.expires_at = now + self.config.order_secs;
        }
        next.body = to_body(&authz)?;
        self.swap(&next, "processing")?;
        let verdict = if result.is_ok() { "valid" } else { "invalid" };
        self.metrics
            .validations
            .with_label_values(&[&job.kind, verdict])
            .inc();
        match &result {
            Ok(()) => {
                tracing::info!(authz = %job.authz, name = %job.identifier.value, challenge = %job.kind, "ACME validation passed")
            }
            Err(p) => {
                tracing::info!(authz = %job.authz, name = %job.identifier.value, challenge = %job.kind, problem = p.kind.label(), detail = %p.detail, "ACME validation failed")
            }
        }
        Ok(())
    }
}

fn authz_json(urls: &Urls, row: &AcmeObject, authz: &Authz) -> Value {
    let now = x509::time::now();
    let status = match row.status.as_str() {
        "processing" => "pending",
        s if row.expires_at <= now && s == "pending" => "expired",
        s => s,
    };
    let challenges: Vec<Value> = authz
        .challenges
        .iter()
        .map(|c| challenge_json(c, &urls.challenge(&row.id, &c.kind)))
        .collect();
    let identifier: &Identifier = &authz.identifier;
    json!({
        "identifier": identifier,
        "status": status,
        "expires": rfc3339(row.expires_at),
        "challenges": challenges,
    })
}
