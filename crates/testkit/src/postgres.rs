//! A PostgreSQL database made for one test on the server `PKI_TEST_POSTGRES` names (a role that
//! may create databases), dropped afterwards. Without the variable a test prints SKIPPED, or
//! fails when `REQUIRE_POSTGRES` is set (CI sets both).

use std::sync::atomic::{AtomicUsize, Ordering};

/// A database of its own for one test.
pub struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// A new database for `test`, or `None` (after saying SKIPPED) without a server.
    pub fn create(test: &str) -> Option<PgDatabase> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let Ok(admin) = std::env::var("PKI_TEST_POSTGRES") else {
            assert!(
                std::env::var_os("REQUIRE_POSTGRES").is_none(),
                "REQUIRE_POSTGRES is set but PKI_TEST_POSTGRES is not"
            );
            eprintln!(
                "SKIPPED (PostgreSQL half of {test}): set PKI_TEST_POSTGRES=postgres://user@host:port/db, \
                 a role that may create databases"
            );
            return None;
        };
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("PKI_TEST_POSTGRES={admin}: cannot connect: {e}"));
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let config: postgres::Config = admin.parse().unwrap();
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "127.0.0.1".into(),
        };
        let mut url = format!(
            "host={host} port={} user={} dbname={name}",
            config.get_ports().first().copied().unwrap_or(5432),
            config.get_user().unwrap_or("postgres")
        );
        if let Some(pw) = config.get_password() {
            url.push_str(&format!(" password={}", String::from_utf8_lossy(pw)));
        }
        Some(PgDatabase { admin, name, url })
    }

    /// Its connection string (`host=… port=… user=… dbname=…`), for `PKI_DB`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's TCP address (for a [`crate::relay::Relay`] in front of it).
    pub fn server(&self) -> std::net::SocketAddr {
        let field = |key: &str| {
            self.url
                .split(' ')
                .find_map(|kv| kv.strip_prefix(key))
                .unwrap_or_default()
                .to_owned()
        };
        format!("{}:{}", field("host="), field("port="))
            .parse()
            .expect("a TCP PostgreSQL server (host=IP port=N)")
    }

    /// The connection string through `relay` instead of straight to the server.
    pub fn url_through(&self, relay: std::net::SocketAddr) -> String {
        let server = self.server();
        self.url.replacen(
            &format!("host={} port={}", server.ip(), server.port()),
            &format!("host={} port={}", relay.ip(), relay.port()),
            1,
        )
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
