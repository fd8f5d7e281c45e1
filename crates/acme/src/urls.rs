//! Every URL the service hands out, under one base (`https://HOST:PORT/acme`): the directory
//! names them, and every JWS must be signed for the one it is posted to.

/// The URLs of one service, as its clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    base: String,
}

/// Where the ACME routes are mounted.
pub const PREFIX: &str = "/acme";

impl Urls {
    /// The URLs under `origin` (`https://ca.example:8443`, no trailing slash).
    pub fn new(origin: &str) -> Urls {
        Urls {
            base: format!("{}{PREFIX}", origin.trim_end_matches('/')),
        }
    }

    /// `BASE/path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// The directory.
    pub fn directory(&self) -> String {
        self.at("directory")
    }

    /// An account.
    pub fn account(&self, id: &str) -> String {
        self.at(&format!("account/{id}"))
    }

    /// The account id in an account URL of this service.
    pub fn account_id<'a>(&self, url: &'a str) -> Option<&'a str> {
        url.strip_prefix(&self.base)?
            .strip_prefix("/account/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }

    /// An account's orders.
    pub fn orders(&self, id: &str) -> String {
        self.at(&format!("account/{id}/orders"))
    }

    /// An order.
    pub fn order(&self, id: &str) -> String {
        self.at(&format!("order/{id}"))
    }

    /// Where an order is finalized.
    pub fn finalize(&self, id: &str) -> String {
        self.at(&format!("order/{id}/finalize"))
    }

    /// An authorization.
    pub fn authz(&self, id: &str) -> String {
        self.at(&format!("authz/{id}"))
    }

    /// A challenge of an authorization.
    pub fn challenge(&self, authz: &str, kind: &str) -> String {
        self.at(&format!("chall/{authz}/{kind}"))
    }

    /// An order's certificate.
    pub fn certificate(&self, order: &str) -> String {
        self.at(&format!("cert/{order}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_url_gives_back_its_id_and_nothing_else_does() {
        let u = Urls::new("https://ca:8443/");
        assert_eq!(u.directory(), "https://ca:8443/acme/directory");
        assert_eq!(u.account_id(&u.account("abc")), Some("abc"));
        assert_eq!(u.account_id("https://other/acme/account/abc"), None);
        assert_eq!(u.account_id(&u.order("abc")), None);
        assert_eq!(u.account_id(&u.at("account/a/b")), None);
    }
}
