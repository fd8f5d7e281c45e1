//! Accounts (RFC 8555 §7.3): created with an external account binding (required by default),
//! updated, deactivated, and moved to a new key (key-change, §7.3.5).

use pki::store::acme::AccountRecord;
use serde_json::{json, Map, Value};

use crate::jws::{self, Signer};
use crate::problem::{Kind, Problem};
use crate::service::{random_id, Acme, Authed, Reply};
use crate::urls::Urls;

impl Acme {
    /// `new-account`: the existing account of this key, or a new one bound to its EAB.
    pub(crate) fn new_account(&self, urls: &Urls, a: &Authed) -> Result<Reply, Problem> {
        let jwk = a
            .jwk
            .as_ref()
            .ok_or_else(|| Problem::malformed("sign new-account with a jwk"))?;
        let payload = a.payload()?;
        let thumbprint = jws::thumbprint(jwk)?;
        let records = self.authority.records();
        if let Some(existing) = records.with(|db| db.acme_account_by_key(&thumbprint))? {
            return Ok(account_reply(urls, &existing).location(urls.account(&existing.id)));
        }
        if payload.get("onlyReturnExisting") == Some(&Value::Bool(true)) {
            return Err(Problem::new(
                Kind::AccountDoesNotExist,
                "no account has this key",
            ));
        }
        let contact = contacts(&payload)?;
        let eab_kid = match payload.get("externalAccountBinding") {
            Some(eab) => Some(self.check_binding(eab, &thumbprint, &a.signed.url)?),
            None if self.config.eab_required => {
                return Err(Problem::new(
                    Kind::ExternalAccountRequired,
                    "this CA requires an external account binding: ask its operator for one \
                     (pki acme eab create) and pass its key id and HMAC key",
                ))
            }
            None => None,
        };
        let account = AccountRecord {
            id: random_id(12),
            thumbprint,
            jwk: Value::Object(jwk.clone()).to_string(),
            status: "valid".into(),
            contact: Value::from(contact).to_string(),
            eab_kid,
            created_at: x509::time::now(),
        };
        let at = account.created_at;
        let made = records.with(|db| db.acme_account_create(&account, at))?;
        let (account, status) = match made {
            Ok(()) => (account, 201),
            // The same key registered at the same time on another replica.
            Err(existing) => (existing, 200),
        };
        tracing::info!(account = %account.id, eab = account.eab_kid.as_deref().unwrap_or("-"), "ACME account created");
        Ok(account_reply(urls, &account)
            .status(status)
            .location(urls.account(&account.id)))
    }

    /// Checks an external account binding (RFC 8555 §7.3.4): an HMAC JWS by a binding on
    /// record, over this very account key, for this URL. Returns its key id.
    fn check_binding(&self, eab: &Value, thumbprint: &str, url: &str) -> Result<String, Problem> {
        let signed = jws::parse(eab.to_string().as_bytes())?;
        let Signer::Kid(kid) = &signed.signer else {
            return Err(Problem::malformed(
                "the external account binding names no kid",
            ));
        };
        if signed.nonce.is_some() || signed.url != url {
            return Err(Problem::malformed(
                "the external account binding must be signed for the new-account URL, without a nonce",
            ));
        }
        let bound: Map<String, Value> = serde_json::from_slice(&signed.payload).map_err(|_| {
            Problem::malformed("the external account binding's payload is not a JWK")
        })?;
        if jws::thumbprint(&bound)? != thumbprint {
            return Err(Problem::unauthorized(
                "the external account binding is for another account key",
            ));
        }
        let record = self
            .authority
            .records()
            .with(|db| db.acme_eab(kid))?
            .ok_or_else(|| Problem::unauthorized(pki::EabRefusal::Unknown.to_string()))?;
        let key = record
            .hmac
            .as_deref()
            .ok_or_else(|| Problem::unauthorized(pki::EabRefusal::Used.to_string()))?;
        if record.expires_at <= x509::time::now() {
            return Err(Problem::unauthorized(pki::EabRefusal::Expired.to_string()));
        }
        signed.verify_hmac(&jws::b64(key, "HMAC key on record")?)?;
        Ok(kid.clone())
    }

    /// `account/{id}`: read it, change its contacts, or deactivate it.
    pub(crate) fn account(&self, urls: &Urls, a: &Authed, id: &str) -> Result<Reply, Problem> {
        let account = a.account()?;
        if account.id != id {
            return Err(Problem::unauthorized("this is another account"));
        }
        let payload = a.payload()?;
        let mut updated = account.clone();
        if payload.contains_key("contact") {
            updated.contact = Value::from(contacts(&payload)?).to_string();
        }
        match payload.get("status").and_then(Value::as_str) {
            None => {}
            Some("deactivated") => updated.status = "deactivated".into(),
            Some(other) => {
                return Err(Problem::malformed(format!(
                    "an account's status can be set to deactivated only, not {other}"
                )))
            }
        }
        if updated != *account {
            self.authority
                .records()
                .with(|db| db.acme_account_update(id, &updated.status, &updated.contact))?;
            if updated.status == "deactivated" {
                tracing::info!(account = %id, "ACME account deactivated");
            }
        }
        Ok(account_reply(urls, &updated))
    }

    /// `account/{id}/orders` (RFC 8555 §7.1.2.1): the account's pending, ready and valid
    /// orders, newest first (the last 1,000 of each).
    pub(crate) fn orders(&self, urls: &Urls, a: &Authed, id: &str) -> Result<Reply, Problem> {
        let account = a.account()?;
        if account.id != id {
            return Err(Problem::unauthorized("these are another account's orders"));
        }
        let mut ids = Vec::new();
        for status in ["pending", "ready", "processing", "valid"] {
            ids.extend(
                self.authority
                    .records()
                    .with(|db| db.acme_list(id, "order", status, 1000))?,
            );
        }
        let list: Vec<String> = ids.iter().map(|o| urls.order(o)).collect();
        Ok(Reply::json(json!({ "orders": list })))
    }

    /// `key-change`: the account moves to the key that signed the inner JWS.
    pub(crate) fn key_change(&self, urls: &Urls, a: &Authed) -> Result<Reply, Problem> {
        let account = a.account()?;
        let inner = jws::parse(&a.signed.payload)?;
        let Signer::Jwk(new_key) = &inner.signer else {
            return Err(Problem::malformed(
                "the inner JWS of key-change must carry the new key as jwk",
            ));
        };
        if inner.url != a.signed.url || inner.nonce.is_some() {
            return Err(Problem::malformed(
                "the inner JWS must be signed for the key-change URL, without a nonce",
            ));
        }
        inner.verify(new_key)?;
        let said: Map<String, Value> = serde_json::from_slice(&inner.payload)
            .map_err(|_| Problem::malformed("the inner payload is not JSON"))?;
        if said.get("account").and_then(Value::as_str) != Some(urls.account(&account.id).as_str()) {
            return Err(Problem::unauthorized(
                "the inner payload names another account",
            ));
        }
        let old = said
            .get("oldKey")
            .and_then(Value::as_object)
            .ok_or_else(|| Problem::malformed("the inner payload has no oldKey"))?;
        if jws::thumbprint(old)? != account.thumbprint {
            return Err(Problem::unauthorized("oldKey is not the account's key"));
        }
        let new_thumb = jws::thumbprint(new_key)?;
        let jwk = Value::Object(new_key.clone()).to_string();
        let moved = self
            .authority
            .records()
            .with(|db| db.acme_account_rekey(&account.id, &account.thumbprint, &new_thumb, &jwk))?;
        if !moved {
            return Err(Problem {
                kind: Kind::Malformed,
                detail:
                    "the new key belongs to another account already (or the key changed meanwhile)"
                        .into(),
                retry_after: None,
            });
        }
        tracing::info!(account = %account.id, "ACME account key changed");
        let mut updated = account.clone();
        updated.thumbprint = new_thumb;
        updated.jwk = jwk;
        Ok(account_reply(urls, &updated))
    }
}

fn contacts(payload: &Map<String, Value>) -> Result<Vec<Value>, Problem> {
    let list = match payload.get("contact") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(Problem::malformed("contact must be an array of URLs")),
    };
    for c in list {
        let ok = c
            .as_str()
            .is_some_and(|s| s.starts_with("mailto:") && !s.contains(',') && s.len() < 256);
        if !ok {
            return Err(Problem::malformed(format!(
                "contact {c}: only one mailto: address per entry is accepted"
            )));
        }
    }
    Ok(list.clone())
}

fn account_reply(urls: &Urls, account: &AccountRecord) -> Reply {
    let contact: Value = serde_json::from_str(&account.contact).unwrap_or_else(|_| json!([]));
    Reply::json(json!({
        "status": account.status,
        "contact": contact,
        "orders": urls.orders(&account.id),
    }))
}
