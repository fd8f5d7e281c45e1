//! The decisions of `simpleenroll` and `simplereenroll` (RFC 7030 §4.2), blocking: who is
//! asking (a token, or a client certificate verified here, chain and records), what they may
//! have, and the issuance itself, which is one call of [`pki::Authority::issue`]: the token
//! spent and the record written in one transaction. A refusal at any step leaves the records
//! and the token as they were; nothing is written to disk.

use openssl::x509::{X509Ref, X509Req, X509};
use pki::store::{State, Take};
use pki::verify::{Options, Problem, Purpose};
use pki::{Authority, Enrollment, Leaf, Record, Subject};
use x509::request::Verified;

use crate::error::Refusal;
use crate::policy::{self, Asked};
use crate::wire::Basic;

/// The client certificate a connection presented (unverified: [`Ca::verify_peer`] decides).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The leaf.
    pub leaf: X509,
    /// The intermediates it sent.
    pub chain: Vec<X509>,
}

/// What `revoke-superseded` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The predecessor's serial.
    pub serial: String,
    /// Revoked by this request (false: it was revoked already).
    pub now: bool,
}

/// What the CA decides with, shared by every request.
#[derive(Debug)]
pub struct Ca {
    /// The CA as a service: issuance, CRLs, the records.
    pub authority: std::sync::Arc<Authority>,
    /// The chain for `cacerts` and for verifying client certificates (issuing CA first).
    pub chain: Vec<X509>,
    /// Validity of issued device certificates (days).
    pub days: Option<u32>,
    /// Whether a device certificate may authenticate `simpleenroll`.
    pub enroll_with_certificate: bool,
}

impl Ca {
    /// `simpleenroll`: a token (Basic) enrolls the request's CN; without one, a verified
    /// device certificate may, when the policy allows, for its own name.
    pub fn enroll(
        &self,
        auth: Option<Basic>,
        peer: Option<Peer>,
        der: &[u8],
    ) -> Result<X509, Refusal> {
        let (csr, asked) = parse(der)?;
        let request = verified(&csr)?;
        match (auth, peer) {
            (Some(basic), _) => self.enroll_with_token(&basic, &request, &asked),
            (None, Some(peer)) if self.enroll_with_certificate => {
                self.renew(&peer, &request, &asked)
            }
            (None, _) => Err(Refusal::unauthorized(
                "simpleenroll needs an enrollment token as HTTP Basic credentials (user: the \
                 device name, password: the token of `pki token create --name NAME`)",
            )),
        }
    }

    /// `simplereenroll`: the client certificate being renewed authenticates the request, which
    /// keeps its subject and names.
    pub fn reenroll(&self, peer: Option<Peer>, der: &[u8]) -> Result<X509, Refusal> {
        let (csr, asked) = parse(der)?;
        let request = verified(&csr)?;
        let peer = peer.ok_or_else(|| {
            Refusal::unauthorized(
                "simplereenroll needs the certificate being renewed as the TLS client \
                 certificate (curl --cert … --key …)",
            )
        })?;
        self.renew(&peer, &request, &asked)
    }

    fn enroll_with_token(
        &self,
        basic: &Basic,
        request: &Verified<'_>,
        asked: &Asked,
    ) -> Result<X509, Refusal> {
        let name = policy::first_enrollment(asked)?;
        if !basic.user.is_empty() && !basic.user.eq_ignore_ascii_case(name.as_str()) {
            return Err(Refusal::bad(format!(
                "the Basic user name {:?} is not the request's CN {name}: both name the device",
                basic.user.escape_debug().to_string()
            )));
        }
        // One transaction: the token first (a used or expired one is answered as such,
        // whatever the name holds), then the name (never over a valid certificate: a revoked
        // or expired device enrolls again), then the record.
        let mut leaf = Leaf::client(name.as_str());
        leaf.days = self.days;
        let issued = self.issue(&Enrollment {
            request,
            leaf: &leaf,
            take: Take::UnlessValid,
            token: Some(basic.password.as_str()),
            renews: None,
        })?;
        tracing::info!(
            name = %name, serial = %issued.serial, again = issued.again,
            "enrolled with a token"
        );
        Ok(issued.cert)
    }

    /// The issuance itself: records, token and profile rules, in one transaction.
    fn issue(&self, enrollment: &Enrollment<'_>) -> Result<pki::Enrolled, Refusal> {
        let issued = self
            .authority
            .issue(enrollment)
            .map_err(Refusal::from_pki)?;
        if let Some(notice) = &issued.notice {
            tracing::warn!(%notice, "issued with a shorter validity");
        }
        Ok(issued)
    }

    fn renew(&self, peer: &Peer, request: &Verified<'_>, asked: &Asked) -> Result<X509, Refusal> {
        let record = self.verify_peer(peer)?;
        // The same identity: the subject the CA issued, or the template the device enrolled
        // with (the CA took only its CN then, and writes the same subject now).
        let same_identity = request
            .csr()
            .subject_name()
            .try_cmp(peer.leaf.subject_name())
            .is_ok_and(|o| o.is_eq())
            || asked
                .cn
                .as_deref()
                .is_some_and(|cn| cn.eq_ignore_ascii_case(&record.name));
        let der = peer.leaf.to_der().map_err(Refusal::internal)?;
        policy::renewal(asked, same_identity, &policy::cert_sans(&der))?;
        let leaf = self.successor_leaf(&record, &peer.leaf)?;
        let issued = self.issue(&Enrollment {
            request,
            leaf: &leaf,
            take: Take::Replace,
            token: None,
            renews: Some(record.serial.as_str()),
        })?;
        tracing::info!(
            name = %record.name, old = %record.serial, serial = %issued.serial,
            again = issued.again, "renewed"
        );
        Ok(issued.cert)
    }

    /// The record of a presented client certificate that chains to this CA, is in force now,
    /// is a device certificate, and is recorded and not revoked (the records are fresher than
    /// any CRL: a revocation counts from its commit).
    pub fn verify_peer(&self, peer: &Peer) -> Result<Record, Refusal> {
        let options = Options {
            purpose: Some(Purpose::Client),
            ..Options::default()
        };
        let verdict = pki::verify::verify(&peer.leaf, &peer.chain, &self.chain, &options)
            .map_err(Refusal::from_pki)?;
        if let Err(f) = verdict {
            return Err(Refusal::forbidden(match f.problem {
                Problem::Expired => format!(
                    "the certificate being renewed expired on {}: it can no longer renew; \
                     enroll again with a new token",
                    x509::time::date(not_after(&peer.leaf))
                ),
                _ => format!("the client certificate does not verify: {}", f.plain),
            }));
        }
        let serial = x509::cert::serial_hex(&peer.leaf).map_err(Refusal::internal)?;
        let record = self
            .authority
            .records()
            .certificate(self.authority.aki(), &serial)
            .map_err(Refusal::from_pki)?
            .ok_or_else(|| {
                Refusal::forbidden(format!(
                    "certificate {serial} is not in this CA's records: it cannot renew here"
                ))
            })?;
        if record.state == State::Revoked {
            let (at, reason) = record.revoked.unwrap_or((0, None));
            return Err(Refusal::forbidden(format!(
                "certificate {serial} was revoked on {}{}: it cannot renew; enroll again with a \
                 new token",
                x509::time::date(at),
                reason
                    .map(|r| format!(" ({})", r.as_str()))
                    .unwrap_or_default()
            )));
        }
        if record.role != common::Role::Client {
            return Err(Refusal::forbidden(format!(
                "certificate {serial} is a {} certificate: only device (client) certificates \
                 renew over EST",
                record.role
            )));
        }
        Ok(record)
    }

    /// `POST /revoke-superseded`: revokes, as superseded, the certificate that the presented
    /// one renewed. The presented certificate is the whole request: a device can end only its
    /// own predecessor, and only once it holds (and shows) the successor, so a renewal whose
    /// answer was lost never leaves the device with a revoked certificate. Asking again after
    /// it is done answers the same.
    pub fn revoke_superseded(&self, peer: Option<Peer>) -> Result<Ended, Refusal> {
        let peer = peer.ok_or_else(|| {
            Refusal::unauthorized(
                "revoke-superseded needs the new certificate as the TLS client certificate",
            )
        })?;
        let record = self.verify_peer(&peer)?;
        let old = record.renews.clone().ok_or_else(|| {
            Refusal::new(
                actix_web::http::StatusCode::CONFLICT,
                format!(
                    "certificate {} renews no other certificate: there is nothing to revoke",
                    record.serial
                ),
            )
        })?;
        let (aki, previous) = self.predecessor(&record, &old)?;
        if previous.state == State::Revoked {
            return Ok(Ended {
                serial: old,
                now: false,
            });
        }
        let reason = Some(pki::index::Reason::Superseded);
        let now = self
            .authority
            .revoke(&aki, &old, reason)
            .map_err(Refusal::from_pki)?;
        tracing::info!(name = %record.name, serial = %old, by = %record.serial, "revoked as superseded");
        Ok(Ended { serial: old, now })
    }

    /// The record of `serial` (which `record` renews), under whichever CA in force issued it.
    fn predecessor(&self, record: &Record, serial: &str) -> Result<(String, Record), Refusal> {
        for aki in self.authority.akis() {
            let found = self
                .authority
                .records()
                .certificate(&aki, serial)
                .map_err(Refusal::from_pki)?;
            // The same device: a renewal keeps the name (a check, should records be edited).
            if let Some(old) = found.filter(|o| o.name.eq_ignore_ascii_case(&record.name)) {
                return Ok((aki, old));
            }
        }
        Err(Refusal::new(
            actix_web::http::StatusCode::CONFLICT,
            format!(
                "certificate {serial}, which {} renewed, was issued by a CA no longer in force: \
                 nothing to revoke",
                record.serial
            ),
        ))
    }

    /// The leaf a renewal issues: the record's name and names, the old certificate's subject.
    fn successor_leaf(&self, record: &Record, old: &X509Ref) -> Result<Leaf, Refusal> {
        let field = |nid| {
            old.subject_name()
                .entries_by_nid(nid)
                .next()
                .and_then(|e| e.data().to_string().ok())
        };
        let subject = Subject::new(
            field(openssl::nid::Nid::ORGANIZATIONNAME).unwrap_or_default(),
            field(openssl::nid::Nid::COMMONNAME).unwrap_or_default(),
        );
        // Our subjects are O and CN; anything else cannot be reproduced by a leaf.
        let same = subject
            .to_x509_name()
            .ok()
            .and_then(|n| n.try_cmp(old.subject_name()).ok())
            .is_some_and(|o| o.is_eq());
        if !same {
            return Err(Refusal::forbidden(format!(
                "certificate {} has a subject other than O= and CN=: renew it with `pki renew`",
                record.serial
            )));
        }
        let mut leaf = Leaf::client(&record.name);
        leaf.subject = subject;
        leaf.days = self.days;
        leaf.names = record.sans.clone();
        Ok(leaf)
    }
}

/// The request and what it asks for, or a 400 that says what is wrong with it.
fn parse(der: &[u8]) -> Result<(X509Req, Asked), Refusal> {
    let asked = policy::asked(der)?;
    let csr = X509Req::from_der(der).map_err(|_| {
        Refusal::bad("the body is not a DER PKCS#10 certificate request (openssl req -outform DER)")
    })?;
    Ok((csr, asked))
}

/// The request's proof of possession and key, checked once.
fn verified(csr: &X509Req) -> Result<Verified<'_>, Refusal> {
    Verified::check(csr).map_err(Refusal::from_pki)
}

fn not_after(cert: &X509Ref) -> i64 {
    x509::time::unix_time(cert.not_after()).unwrap_or_default()
}
