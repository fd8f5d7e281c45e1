//! Who may see the fleet and the metrics: a client certificate of this CA, in force and not
//! revoked, whose CN or a subjectAltName is on the admin allow-list. Everyone else hears 403.

use actix_web::HttpRequest;
use pki::store::State;
use pki::verify::{Options, Purpose};

use crate::enroll::{Ca, Peer};
use crate::error::Refusal;

/// The admin allow-list (`--admin-allow-cn`, `--admin-allow-san`). Empty: nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminAllow {
    /// Subject CNs allowed.
    pub cns: Vec<String>,
    /// subjectAltNames allowed, bare (`ops.example`) or typed (`DNS:ops.example`).
    pub sans: Vec<String>,
}

impl AdminAllow {
    /// Whether nobody is allowed (the admin views are then off).
    pub fn is_empty(&self) -> bool {
        self.cns.is_empty() && self.sans.is_empty()
    }

    fn lists(&self, cn: Option<&str>, sans: &[String]) -> bool {
        let cn_ok = cn.is_some_and(|cn| self.cns.iter().any(|a| a == cn));
        let san_ok = sans.iter().any(|san| {
            let bare = san.split_once(':').map_or(san.as_str(), |(_, v)| v);
            self.sans.iter().any(|a| a == san || a == bare)
        });
        cn_ok || san_ok
    }
}

/// The admin that sent `req` (their CN or first name), or why not (403).
pub fn check(req: &HttpRequest, ca: &Ca, allow: &AdminAllow) -> Result<String, Refusal> {
    let refuse = |why: String| Refusal::forbidden(why).labelled("not_admin");
    let Some(peer) = req.conn_data::<Peer>() else {
        return Err(refuse(
            "present an admin client certificate (one on the CA's --admin-allow-cn/--admin-allow-san list)".into(),
        ));
    };
    let options = Options {
        purpose: Some(Purpose::Client),
        ..Options::default()
    };
    let verdict = pki::verify::verify(&peer.leaf, &peer.chain, &ca.chain, &options)
        .map_err(Refusal::from_pki)?;
    if let Err(f) = verdict {
        return Err(refuse(format!(
            "the client certificate does not verify: {}",
            f.plain
        )));
    }
    let serial = x509::cert::serial_hex(&peer.leaf).map_err(Refusal::internal)?;
    let revoked = ca
        .authority
        .akis()
        .iter()
        .find_map(|aki| {
            ca.authority
                .records()
                .certificate(aki, &serial)
                .ok()
                .flatten()
        })
        .is_some_and(|r| r.state == State::Revoked);
    if revoked {
        return Err(refuse(format!("certificate {serial} was revoked")));
    }
    let id = x509::identity::ClientIdentity::from_cert(&peer.leaf)
        .ok_or_else(|| refuse("the client certificate names nobody".into()))?;
    if !allow.lists(id.common_name.as_deref(), &id.sans) {
        return Err(refuse(format!(
            "{} is not on the admin allow-list",
            id.common_name.as_deref().unwrap_or(&id.subject)
        )));
    }
    Ok(id.common_name.unwrap_or(id.subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cn_or_a_name_on_the_list_is_an_admin_and_nothing_else_is() {
        let allow = AdminAllow {
            cns: vec!["ops".into()],
            sans: vec!["DNS:ops.example".into(), "admin@example".into()],
        };
        assert!(allow.lists(Some("ops"), &[]));
        assert!(allow.lists(None, &["DNS:ops.example".into()]));
        assert!(allow.lists(None, &["email:admin@example".into()]));
        assert!(!allow.lists(Some("dev-42"), &["DNS:dev-42.example".into()]));
        assert!(!AdminAllow::default().lists(Some("ops"), &[]));
    }
}
