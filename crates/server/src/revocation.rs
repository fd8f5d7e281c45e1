//! Revocation of client certificates, checked by the server from CRLs it verified once.
//!
//! OpenSSL's `X509_V_FLAG_CRL_CHECK` verifies the CRL's signature in every handshake: a hash
//! of the whole CRL each time (a 10,000-entry CRL is 460 KiB, a quarter of a millisecond of
//! SHA-256, about a fifth of a full mutual handshake). Here each CRL's signature is checked
//! once, when the files are loaded (or reloaded), and a handshake looks its client's serial up
//! in a hash set. The rules are OpenSSL's for a leaf (`CRL_CHECK`, not `CRL_CHECK_ALL`): a CRL
//! of the leaf's issuer must be there, current, and not list the leaf.

use std::collections::{HashMap, HashSet};

use openssl::x509::{CrlReason, ReasonCode, X509Crl, X509Ref, X509VerifyResult, X509};
use openssl_sys as ffi;
use x509::verify::Problem;

use crate::error::ServerError;

/// The revoked serials of each CA whose CRL we hold, keyed by that CA's certificate (DER).
#[derive(Debug, Default)]
pub struct Revocations {
    by_issuer: HashMap<Vec<u8>, Listed>,
}

/// What one CA's CRL says.
#[derive(Debug)]
struct Listed {
    this_update: i64,
    next_update: Option<i64>,
    /// Serial numbers (big-endian bytes, as `BN_bn2bin` writes them).
    serials: HashSet<Vec<u8>>,
}

/// How a leaf stands against the CRLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Its issuer's CRL is past its nextUpdate (the caller's `--crl-stale` decides).
    pub stale: bool,
    /// The problem that refuses it whatever the policy: no CRL of its issuer, a CRL not yet
    /// valid, or its serial listed.
    pub refused: Option<Problem>,
}

impl Revocations {
    /// Adds `crl`, whose signature `issuer` has already verified. A later CRL of the same CA
    /// (a higher lastUpdate) replaces an earlier one, as OpenSSL picks the newest.
    pub fn add(&mut self, crl: &X509Crl, issuer: &X509) -> Result<(), ServerError> {
        let this_update = x509::time::unix_time(crl.last_update())?;
        let next_update = crl.next_update().map(x509::time::unix_time).transpose()?;
        let mut serials = HashSet::new();
        for entry in crl.get_revoked().into_iter().flatten() {
            // removeFromCRL only undoes a hold in a delta CRL: the serial is not revoked.
            let reason = entry.extension::<ReasonCode>()?;
            let removed = reason
                .and_then(|(_, r)| r.get_i64().ok())
                .is_some_and(|r| r == i64::from(CrlReason::REMOVE_FROM_CRL.as_raw()));
            if !removed {
                serials.insert(entry.serial_number().to_bn()?.to_vec());
            }
        }
        let listed = Listed {
            this_update,
            next_update,
            serials,
        };
        let key = issuer.to_der()?;
        match self.by_issuer.get(&key) {
            Some(held) if held.this_update >= this_update => {}
            _ => {
                self.by_issuer.insert(key, listed);
            }
        }
        Ok(())
    }

    /// How `leaf`, issued by `issuer`, stands at `now` (Unix seconds).
    pub fn standing(&self, leaf: &X509Ref, issuer: &X509Ref, now: i64) -> Standing {
        let Some(listed) = issuer.to_der().ok().and_then(|k| self.by_issuer.get(&k)) else {
            return Standing {
                stale: false,
                refused: Some(Problem::NoCrl),
            };
        };
        let stale = listed.next_update.is_some_and(|n| n < now);
        let serial = leaf.serial_number().to_bn().map(|b| b.to_vec());
        let refused = if listed.this_update > now {
            Some(Problem::CrlNotYetValid)
        } else {
            match serial {
                Ok(s) if !listed.serials.contains(&s) => None,
                _ => Some(Problem::Revoked),
            }
        };
        Standing { stale, refused }
    }
}

/// OpenSSL's verify result for a problem found here, so that a refused client gets the alert
/// OpenSSL's own CRL check sends (`certificate_revoked`, `certificate_expired` for a stale
/// CRL, ...) and the logs and metrics name the same code.
#[allow(unsafe_code)]
pub fn verify_result(problem: Problem) -> X509VerifyResult {
    let code = match problem {
        Problem::Revoked => ffi::X509_V_ERR_CERT_REVOKED,
        Problem::NoCrl => ffi::X509_V_ERR_UNABLE_TO_GET_CRL,
        Problem::CrlNotYetValid => ffi::X509_V_ERR_CRL_NOT_YET_VALID,
        Problem::CrlExpired => ffi::X509_V_ERR_CRL_HAS_EXPIRED,
        _ => return X509VerifyResult::APPLICATION_VERIFICATION,
    };
    // SAFETY: `code` is one of OpenSSL's own X509_V_ERR_* constants; `from_raw` is unsafe only
    // for numbers OpenSSL does not know (whose error string is made in a shared buffer).
    unsafe { X509VerifyResult::from_raw(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pki: &testkit::TestPki) -> (Revocations, X509) {
        let ca = x509::cert::load_cert("CA", &pki.layout().ca_cert()).expect("ca");
        let pem = std::fs::read(pki.layout().ca_crl()).expect("crl");
        let mut r = Revocations::default();
        r.add(&X509Crl::from_pem(&pem).expect("crl"), &ca)
            .expect("add");
        (r, ca)
    }

    #[test]
    fn a_listed_serial_is_refused_and_others_pass_until_next_update() {
        let pki = testkit::TestPki::new();
        let (good, _) = pki.issue_client("good");
        let (gone, _) = pki.issue_client("gone");
        let ca = pki.folder.issuer().expect("authority");
        pki.folder.revoke(&ca, "gone", None).expect("revoke");
        let (r, ca) = load(&pki);
        let cert = |p| x509::cert::load_cert("client", p).expect("cert");
        let now = x509::time::now();
        let ok = r.standing(&cert(&good), &ca, now);
        assert_eq!(
            ok,
            Standing {
                stale: false,
                refused: None
            }
        );
        let revoked = r.standing(&cert(&gone), &ca, now);
        assert_eq!(revoked.refused, Some(Problem::Revoked));
        // Day 40: the CRL (30 days) is stale; what it lists stays refused.
        let later = now + 40 * 86_400;
        assert_eq!(
            r.standing(&cert(&good), &ca, later),
            Standing {
                stale: true,
                refused: None
            }
        );
        assert_eq!(
            r.standing(&cert(&gone), &ca, later).refused,
            Some(Problem::Revoked)
        );
        // Before its lastUpdate the CRL does not speak yet.
        let before = r.standing(&cert(&good), &ca, now - 86_400).refused;
        assert_eq!(before, Some(Problem::CrlNotYetValid));
    }

    #[test]
    fn each_problem_found_here_keeps_its_openssl_code() {
        for p in [
            Problem::Revoked,
            Problem::NoCrl,
            Problem::CrlNotYetValid,
            Problem::CrlExpired,
        ] {
            assert_eq!(Problem::of(verify_result(p)), Some(p));
        }
    }

    #[test]
    fn a_leaf_of_a_ca_without_a_crl_here_is_refused() {
        let ours = testkit::TestPki::new();
        let theirs = testkit::TestPki::new();
        let (r, _) = load(&ours);
        let (leaf, _) = theirs.issue_client("elsewhere");
        let leaf = x509::cert::load_cert("client", &leaf).expect("cert");
        let their_ca = x509::cert::load_cert("CA", &theirs.layout().ca_cert()).expect("ca");
        let s = r.standing(&leaf, &their_ca, x509::time::now());
        assert_eq!(s.refused, Some(Problem::NoCrl));
    }
}
