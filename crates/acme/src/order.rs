//! Orders (RFC 8555 §7.4): made for names the account's binding and the CA's name constraints
//! allow, ready once every authorization is valid, finalized with a CSR checked by the same
//! profile rules as every other issuance ([`pki::Authority::issue`]), and the certificate
//! fetched with its chain.

use pki::store::acme::{AcmeObject, AcmePolicy};
use pki::store::Take;
use pki::{Enrollment, Leaf};
use serde_json::{json, Value};
use x509::{KeyAlgorithm, Subject, SubjectAltName};

use crate::config::AcmeProfile;
use crate::model::{rfc3339, Authz, Challenge, Identifier, Order, DNS_01, HTTP_01, TLS_ALPN_01};
use crate::problem::{Kind, Problem};
use crate::service::{random_id, Acme, Authed, Body, Reply};
use crate::urls::Urls;

/// Most identifiers in one order.
const MAX_IDENTIFIERS: usize = 100;

/// A finalization older than this is taken as abandoned (its replica died) and may be retried.
const STALE_PROCESSING_SECS: i64 = 60;

impl Acme {
    /// `new-order`.
    pub(crate) fn new_order(&self, urls: &Urls, a: &Authed) -> Result<Reply, Problem> {
        let account = a.account()?;
        let payload = a.payload()?;
        if payload.contains_key("notBefore") || payload.contains_key("notAfter") {
            return Err(Problem::malformed(
                "notBefore/notAfter are not taken: the profile decides the lifetime",
            ));
        }
        let ids = identifiers(payload.get("identifiers"))?;
        let policy = self.policy_of(account.eab_kid.as_deref())?;
        let profile = self.profile_for(payload.get("profile"), &policy)?;
        self.check_names(&ids, &policy)?;
        let now = x509::time::now();
        let (made, _) = self
            .authority
            .records()
            .with(|db| db.acme_count(&account.id, "order", now - 3600, ""))?;
        if made >= self.config.orders_per_hour {
            return Err(Problem::new(
                Kind::RateLimited,
                format!(
                    "{made} orders in the last hour: the limit is {}",
                    self.config.orders_per_hour
                ),
            ));
        }
        let replaces = match payload.get("replaces").and_then(Value::as_str) {
            Some(cert_id) => Some(self.check_replaces(cert_id, &ids)?),
            None => None,
        };
        let mut objects = Vec::new();
        let mut all_valid = true;
        for id in &ids {
            let pre = policy.pre_authorized && policy.lists(&id.san())?;
            all_valid &= pre;
            objects.push(self.new_authz(&account.id, id, pre, now));
        }
        let order = Order {
            identifiers: ids,
            authorizations: objects.iter().map(|o| o.id.clone()).collect(),
            profile: profile.name.to_owned(),
            replaces,
            error: None,
            certificate: None,
            processing_since: None,
        };
        let row = AcmeObject {
            id: random_id(12),
            kind: "order".into(),
            account: account.id.clone(),
            status: if all_valid { "ready" } else { "pending" }.into(),
            created_at: now,
            expires_at: now + self.config.order_secs,
            body: to_body(&order)?,
        };
        objects.push(row.clone());
        self.authority.records().with(|db| db.acme_put(&objects))?;
        tracing::info!(account = %account.id, order = %row.id, names = %names_of(&order.identifiers), profile = profile.name, "ACME order");
        Ok(Reply::json(order_json(urls, &row, &order))
            .status(201)
            .location(urls.order(&row.id)))
    }

    fn new_authz(&self, account: &str, id: &Identifier, pre: bool, now: i64) -> AcmeObject {
        let kinds: &[&str] = match (pre, id.kind.as_str()) {
            (true, _) => &[],
            (false, "ip") => &[HTTP_01, TLS_ALPN_01],
            (false, _) => &[HTTP_01, DNS_01, TLS_ALPN_01],
        };
        let challenges = kinds
            .iter()
            .map(|k| Challenge {
                kind: (*k).into(),
                token: random_id(16),
                status: "pending".into(),
                validated: None,
                error: None,
            })
            .collect();
        let authz = Authz {
            identifier: id.clone(),
            challenges,
            processing_since: None,
        };
        AcmeObject {
            id: random_id(12),
            kind: "authz".into(),
            account: account.into(),
            status: if pre { "valid" } else { "pending" }.into(),
            created_at: now,
            expires_at: now
                + if pre {
                    self.config.order_secs
                } else {
                    self.config.pending_authz_secs
                },
            body: serde_json::to_string(&authz).unwrap_or_default(),
        }
    }

    /// The policy of the binding an account was made with (none: anything the CA may sign).
    fn policy_of(&self, eab_kid: Option<&str>) -> Result<AcmePolicy, Problem> {
        let Some(kid) = eab_kid else {
            return Ok(AcmePolicy::default());
        };
        let eab = self.authority.records().with(|db| db.acme_eab(kid))?;
        Ok(eab.map(|e| e.policy).unwrap_or_default())
    }

    fn profile_for(
        &self,
        asked: Option<&Value>,
        policy: &AcmePolicy,
    ) -> Result<AcmeProfile, Problem> {
        let name = match asked {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(Problem::malformed("profile must be a string")),
        };
        let profile = self.config.profile(name).ok_or_else(|| {
            Problem::new(
                Kind::InvalidProfile,
                format!(
                    "no profile {:?}: this CA offers tls-server and mtls-client",
                    name.unwrap_or_default()
                ),
            )
        })?;
        if profile.profile == x509::Profile::Client && !policy.client_profile {
            return Err(Problem::new(
                Kind::InvalidProfile,
                "mtls-client is not allowed for this account: its binding must be made with --mtls-client",
            ));
        }
        Ok(profile)
    }

    /// Every name inside the binding's allow-list and the CA's name constraints.
    fn check_names(&self, ids: &[Identifier], policy: &AcmePolicy) -> Result<(), Problem> {
        let constraints =
            x509::constraints::NameConstraints::of(self.authority.issuer().certificate())
                .map_err(|e| Problem::from_pki(e.into()))?;
        for id in ids {
            let san = id.san();
            if !policy.allows(&san)? {
                return Err(Problem::new(
                    Kind::RejectedIdentifier,
                    format!(
                        "{}: outside what this account's binding allows ({})",
                        id.value,
                        policy
                            .dns
                            .iter()
                            .chain(&policy.ip)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if !constraints.allows(&san) {
                return Err(Problem::new(
                    Kind::RejectedIdentifier,
                    format!(
                        "{}: outside the CA's name constraints ({constraints})",
                        id.value
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `replaces` (RFC 9773 §5): a certificate of this CA sharing a name with the order, not
    /// replaced yet. Returns its serial.
    fn check_replaces(&self, cert_id: &str, ids: &[Identifier]) -> Result<String, Problem> {
        let (aki, serial) = crate::renewal::parse_cert_id(cert_id)?;
        let records = self.authority.records();
        let old = records.certificate(&aki, &serial)?.ok_or_else(|| {
            Problem::malformed(format!(
                "replaces {cert_id}: no such certificate of this CA"
            ))
        })?;
        let wanted: Vec<SubjectAltName> = ids.iter().map(Identifier::san).collect();
        if !old.sans.iter().any(|s| wanted.contains(s)) {
            return Err(Problem::malformed(
                "replaces names a certificate that shares no name with this order",
            ));
        }
        if !records.with(|db| db.renewed_by(&aki, &serial))?.is_empty() {
            return Err(Problem::new(
                Kind::AlreadyReplaced,
                format!("certificate {serial} was replaced already"),
            ));
        }
        Ok(serial)
    }

    /// The order `id` of the account that asks, its status brought up to date.
    pub(crate) fn load_order(&self, a: &Authed, id: &str) -> Result<(AcmeObject, Order), Problem> {
        let account = a.account()?;
        let row = self
            .authority
            .records()
            .with(|db| db.acme_get(&[id]))?
            .into_iter()
            .next();
        let row = match row {
            Some(r) if r.kind == "order" && r.account == account.id => r,
            Some(r) if r.kind == "order" => {
                return Err(Problem::unauthorized(
                    "this order belongs to another account",
                ))
            }
            _ => return Err(Problem::new(Kind::NotFound, format!("no order {id}"))),
        };
        let order: Order = from_body(&row.body)?;
        self.refresh_order(row, order)
    }

    /// A pending order becomes ready when every authorization is valid, invalid when one
    /// failed; an order past its time is invalid.
    fn refresh_order(
        &self,
        row: AcmeObject,
        mut order: Order,
    ) -> Result<(AcmeObject, Order), Problem> {
        let now = x509::time::now();
        let next = if matches!(row.status.as_str(), "pending" | "ready") && row.expires_at <= now {
            Some((
                "invalid",
                Some(Problem::malformed("the order expired: make a new one").to_json()),
            ))
        } else if row.status == "pending" {
            let ids: Vec<&str> = order.authorizations.iter().map(String::as_str).collect();
            let authzs = self.authority.records().with(|db| db.acme_get(&ids))?;
            let failed = authzs.iter().find(|z| {
                matches!(z.status.as_str(), "invalid" | "deactivated") || z.expires_at <= now
            });
            match failed {
                Some(z) => Some(("invalid", Some(authz_failure(z)))),
                None if authzs.len() == ids.len() && authzs.iter().all(|z| z.status == "valid") => {
                    Some(("ready", None))
                }
                None => None,
            }
        } else {
            None
        };
        let Some((status, error)) = next else {
            return Ok((row, order));
        };
        order.error = error;
        let mut updated = row.clone();
        updated.status = status.into();
        updated.body = to_body(&order)?;
        if self.swap(&updated, &row.status)? {
            return Ok((updated, order));
        }
        // Another replica moved it first: what it wrote stands.
        let row = self
            .authority
            .records()
            .with(|db| db.acme_get(&[&row.id]))?
            .into_iter()
            .next()
            .ok_or_else(|| Problem::new(Kind::NotFound, "the order is gone"))?;
        let order = from_body(&row.body)?;
        Ok((row, order))
    }

    /// `order/{id}` (POST-as-GET).
    pub(crate) fn order(&self, urls: &Urls, a: &Authed, id: &str) -> Result<Reply, Problem> {
        let (row, order) = self.load_order(a, id)?;
        Ok(order_reply(urls, &row, &order))
    }

    /// `order/{id}/finalize`: the CSR signed, once, whichever replica is asked.
    pub(crate) fn finalize(&self, urls: &Urls, a: &Authed, id: &str) -> Result<Reply, Problem> {
        let (row, order) = self.load_order(a, id)?;
        let now = x509::time::now();
        let stale = order
            .processing_since
            .is_some_and(|t| now - t > STALE_PROCESSING_SECS);
        match row.status.as_str() {
            "ready" => {}
            "processing" if stale => {}
            // A retry after a lost answer, or another replica at work: the order as it is.
            "valid" | "processing" => return Ok(order_reply(urls, &row, &order)),
            other => {
                return Err(Problem::new(
                    Kind::OrderNotReady,
                    format!("the order is {other}: finalize it once every authorization is valid"),
                ))
            }
        }
        let payload = a.payload()?;
        let csr_text = payload
            .get("csr")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::new(Kind::BadCsr, "the payload has no csr"))?;
        let der = crate::jws::b64(csr_text, "csr")?;
        let csr = openssl::x509::X509Req::from_der(&der)
            .map_err(|_| Problem::new(Kind::BadCsr, "the csr is not a DER PKCS#10 request"))?;
        let verified = x509::request::Verified::check(&csr)
            .map_err(|e| Problem::new(Kind::BadCsr, e.to_string()))?;
        check_csr_names(&der, &order.identifiers)?;
        // Claim the order: of two replicas finalizing it, one signs.
        let mut claimed = row.clone();
        let mut working = order.clone();
        working.processing_since = Some(now);
        claimed.status = "processing".into();
        claimed.body = to_body(&working)?;
        if !self.swap(&claimed, &row.status)? {
            let (row, order) = self.load_order(a, id)?;
            return Ok(order_reply(urls, &row, &order));
        }
        let timer = self
            .metrics
            .issuance
            .with_label_values(&[crate::metrics::PROTOCOL])
            .start_timer();
        let issued = self
            .issue(&verified, &working)
            .and_then(|(aki, serial, not_after)| {
                self.record_owner(&row.account, &aki, &serial, id, not_after)?;
                Ok((aki, serial))
            });
        timer.observe_duration();
        let (status, done) = match issued {
            Ok((aki, serial)) => {
                self.metrics
                    .enrollments
                    .with_label_values(&[crate::metrics::PROTOCOL, "issued", "none"])
                    .inc();
                working.certificate = Some((aki, serial));
                ("valid", Ok(()))
            }
            // Nothing was issued and the order can be finalized again.
            Err(p) if p.kind == Kind::Unavailable => ("ready", Err(p)),
            Err(p) => {
                working.error = Some(p.to_json());
                ("invalid", Err(p))
            }
        };
        working.processing_since = None;
        let mut finished = claimed.clone();
        finished.status = status.into();
        finished.body = to_body(&working)?;
        self.swap(&finished, "processing")?;
        done?;
        tracing::info!(order = %id, serial = %working.certificate.as_ref().map(|c| c.1.as_str()).unwrap_or("-"), "ACME certificate issued");
        Ok(order_reply(urls, &finished, &working))
    }

    /// Signs and records the certificate of `order`: its names, its profile's lifetime.
    fn issue(
        &self,
        verified: &x509::request::Verified<'_>,
        order: &Order,
    ) -> Result<(String, String, i64), Problem> {
        let profile = self
            .config
            .profile(Some(&order.profile))
            .ok_or_else(|| Problem::new(Kind::InvalidProfile, "the order's profile is gone"))?;
        let first = order
            .identifiers
            .first()
            .ok_or_else(|| Problem::malformed("no identifiers"))?;
        let leaf = Leaf {
            profile: profile.profile,
            name: record_name(&first.value),
            subject: subject_of(profile.profile.default_organization(), &order.identifiers),
            names: order.identifiers.iter().map(Identifier::san).collect(),
            key: KeyAlgorithm::default(),
            days: Some(profile.days),
        };
        let enrolled = self.authority.issue(&Enrollment {
            request: verified,
            leaf: &leaf,
            take: Take::Replace,
            token: None,
            renews: order.replaces.as_deref(),
        })?;
        let not_after = x509::time::unix_time(enrolled.cert.not_after())
            .map_err(|e| Problem::from_pki(e.into()))?;
        Ok((self.authority.aki().to_owned(), enrolled.serial, not_after))
    }

    /// `cert/{order}`: the certificate and the chain above it, PEM.
    pub(crate) fn certificate(&self, urls: &Urls, a: &Authed, id: &str) -> Result<Reply, Problem> {
        let (_, order) = self.load_order(a, id)?;
        let (aki, serial) = order
            .certificate
            .ok_or_else(|| Problem::new(Kind::NotFound, "the order has no certificate yet"))?;
        let record = self
            .authority
            .records()
            .certificate(&aki, &serial)?
            .ok_or_else(|| Problem::new(Kind::NotFound, "the certificate is not on record"))?;
        let der = record
            .der
            .ok_or_else(|| Problem::new(Kind::NotFound, "the certificate is not on record"))?;
        let mut pem = x509::cert::pem("CERTIFICATE", &der);
        pem.push_str(&self.chain_pem);
        let mut reply = Reply::json(Value::Null);
        reply.body = Body::Pem(pem);
        Ok(reply.link(&urls.directory(), "index"))
    }
}

/// Why an order failed with its authorization: the failed challenge's own problem (the client
/// reads why validation failed on the order), or what became of the authorization.
fn authz_failure(z: &AcmeObject) -> Value {
    let body: Option<crate::model::Authz> = serde_json::from_str(&z.body).ok();
    let challenge_error = body.and_then(|b| b.challenges.into_iter().find_map(|c| c.error));
    challenge_error.unwrap_or_else(|| {
        let why = if z.status == "pending" {
            "expired"
        } else {
            z.status.as_str()
        };
        Problem::unauthorized(format!("authorization {} is {why}", z.id)).to_json()
    })
}

/// The identifiers of a new-order, checked, without duplicates, in a stable order.
fn identifiers(v: Option<&Value>) -> Result<Vec<Identifier>, Problem> {
    let list: Vec<Identifier> = v
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Problem::malformed(format!("identifiers: {e}")))?
        .unwrap_or_default();
    if list.is_empty() || list.len() > MAX_IDENTIFIERS {
        return Err(Problem::malformed(format!(
            "an order names 1 to {MAX_IDENTIFIERS} identifiers"
        )));
    }
    let mut out: Vec<Identifier> = Vec::new();
    for id in &list {
        let id = id.checked()?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The CSR must name exactly the order's identifiers (its CN, if any, among them).
fn check_csr_names(der: &[u8], ids: &[Identifier]) -> Result<(), Problem> {
    use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509CertificationRequest};
    let (_, req) = X509CertificationRequest::from_der(der)
        .map_err(|_| Problem::new(Kind::BadCsr, "the csr does not parse"))?;
    let mut names = std::collections::BTreeSet::new();
    for ext in req.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for n in &san.general_names {
                names.insert(match n {
                    // An address written as a DNS name (lego 4.9) is that address.
                    GeneralName::DNSName(d) => match d.parse::<std::net::IpAddr>() {
                        Ok(ip) => Identifier::ip(ip),
                        Err(_) => Identifier::dns(&d.to_ascii_lowercase()),
                    },
                    GeneralName::IPAddress(b) => match ip_of(b) {
                        Some(ip) => Identifier::ip(ip),
                        None => {
                            return Err(Problem::new(
                                Kind::BadCsr,
                                "the csr has a malformed IP address",
                            ))
                        }
                    },
                    other => {
                        return Err(Problem::new(
                            Kind::BadCsr,
                            format!("the csr asks for {other}: only DNS names and IP addresses"),
                        ))
                    }
                });
            }
        }
    }
    let wanted: std::collections::BTreeSet<Identifier> = ids.iter().cloned().collect();
    let cn = req
        .certification_request_info
        .subject
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .map(str::to_ascii_lowercase);
    if let Some(cn) = cn {
        if !wanted.iter().any(|i| i.value == cn) {
            return Err(Problem::new(
                Kind::BadCsr,
                format!("the csr's CN {cn} is not one of the order's names"),
            ));
        }
    }
    if names != wanted {
        return Err(Problem::new(
            Kind::BadCsr,
            format!(
                "the csr names [{}], the order [{}]: they must be the same",
                names_of(&names.into_iter().collect::<Vec<_>>()),
                names_of(ids)
            ),
        ));
    }
    Ok(())
}

fn ip_of(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// `O=, CN=` the first DNS name that fits a CN; `O=` alone when there is none (an address as
/// CN is read as a DNS name by certbot and others, and refused).
fn subject_of(organization: &str, ids: &[Identifier]) -> Subject {
    ids.iter()
        .find(|i| i.kind == "dns" && i.value.len() <= 64)
        .map_or_else(
            || Subject::hosts_only(organization),
            |i| Subject::new(organization, i.value.clone()),
        )
}

/// The record's name: the first identifier when it passes the name rule, else a digest of it.
fn record_name(value: &str) -> String {
    match pki::Name::parse(value) {
        Ok(n) => n.as_str().to_owned(),
        Err(_) => format!(
            "acme-{}",
            &crate::jws::b64_encode(openssl::sha::sha256(value.as_bytes()))[..16]
                .replace(['-', '_'], "0")
        ),
    }
}

fn names_of(ids: &[Identifier]) -> String {
    ids.iter()
        .map(|i| i.value.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn to_body<T: serde::Serialize>(v: &T) -> Result<String, Problem> {
    serde_json::to_string(v).map_err(|e| Problem::new(Kind::ServerInternal, e.to_string()))
}

pub(crate) fn from_body<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, Problem> {
    serde_json::from_str(s)
        .map_err(|e| Problem::new(Kind::ServerInternal, format!("a record's body: {e}")))
}

fn order_json(urls: &Urls, row: &AcmeObject, order: &Order) -> Value {
    let mut v = json!({
        "status": row.status,
        "expires": rfc3339(row.expires_at),
        "identifiers": order.identifiers,
        "authorizations": order.authorizations.iter().map(|z| urls.authz(z)).collect::<Vec<_>>(),
        "finalize": urls.finalize(&row.id),
        "profile": order.profile,
    });
    if let Some(r) = &order.replaces {
        v["replaces"] = json!(r);
    }
    if let Some(e) = &order.error {
        v["error"] = e.clone();
    }
    if row.status == "valid" {
        v["certificate"] = json!(urls.certificate(&row.id));
    }
    v
}

fn order_reply(urls: &Urls, row: &AcmeObject, order: &Order) -> Reply {
    let mut reply = Reply::json(order_json(urls, row, order)).location(urls.order(&row.id));
    if row.status == "processing" {
        reply.retry_after = Some(1);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_name_gets_a_record_name_that_passes_the_rule() {
        assert_eq!(record_name("web1.test"), "web1.test");
        let long = format!("{}.test", "a".repeat(70));
        let name = record_name(&long);
        assert!(pki::Name::parse(&name).is_ok(), "{name}");
        assert_eq!(name, record_name(&long));
    }

    #[test]
    fn an_address_or_a_long_name_is_no_cn() {
        let ip = Identifier::ip("10.0.0.1".parse().expect("ip"));
        let dns = Identifier::dns("web.test");
        assert_eq!(
            subject_of("O", &[ip.clone(), dns.clone()]).common_name,
            "web.test"
        );
        let only_ip = subject_of("O", &[ip]).to_x509_name().expect("name");
        assert_eq!(x509::cert::one_line(&only_ip), "/O=O");
        let long = Identifier::dns(&format!("{}.test", "a".repeat(63)));
        assert_eq!(subject_of("O", &[long]).common_name, "");
    }

    #[test]
    fn identifiers_are_deduplicated_and_need_one() {
        let v = json!([{"type":"dns","value":"A.test"},{"type":"dns","value":"a.test"}]);
        assert_eq!(
            identifiers(Some(&v)).expect("ids"),
            vec![Identifier::dns("a.test")]
        );
        assert_eq!(
            identifiers(Some(&json!([]))).expect_err("none").kind,
            Kind::Malformed
        );
        assert_eq!(identifiers(None).expect_err("none").kind, Kind::Malformed);
    }
}
