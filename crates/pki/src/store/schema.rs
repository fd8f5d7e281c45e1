//! Versioned migrations, one list for both engines (the few type names that differ are
//! filled in per engine). A database records the versions applied; each runs once, in the
//! transaction that checks for it.

use super::{Engine, Sql, SqlError, Value};

/// Each migration, in order. Never edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: certificates, CRL numbering, CRLs.
    "CREATE TABLE certificates (
        aki TEXT NOT NULL,
        serial TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        subject TEXT NOT NULL,
        cn TEXT,
        sans TEXT NOT NULL,
        not_before {int} NOT NULL,
        not_after {int} NOT NULL,
        state TEXT NOT NULL,
        revoked_at {int},
        reason TEXT,
        current {int} NOT NULL,
        file TEXT NOT NULL,
        issued_at {int} NOT NULL,
        claim TEXT,
        renews TEXT,
        line TEXT NOT NULL,
        PRIMARY KEY (aki, serial)
    );
    CREATE UNIQUE INDEX certificates_current ON certificates (role, name_key) WHERE current = 1;
    CREATE INDEX certificates_not_after ON certificates (not_after);
    CREATE INDEX certificates_name ON certificates (name_key);
    CREATE INDEX certificates_state ON certificates (state);
    CREATE INDEX certificates_cn ON certificates (cn);
    CREATE TABLE certificate_ders (
        aki TEXT NOT NULL,
        serial TEXT NOT NULL,
        der {blob} NOT NULL,
        PRIMARY KEY (aki, serial)
    );
    -- Covers the index.txt export (each record keeps its own line): read from the index
    -- alone, in its order.
    CREATE INDEX certificates_export ON certificates (aki, issued_at, serial, line);
    CREATE TABLE crl_numbers (aki TEXT PRIMARY KEY, next {int} NOT NULL);
    CREATE TABLE crls (
        aki TEXT NOT NULL,
        number {int} NOT NULL,
        this_update {int} NOT NULL,
        next_update {int} NOT NULL,
        der {blob} NOT NULL,
        PRIMARY KEY (aki, number)
    );",
    // 2: one-time enrollment tokens (stored as SHA-256 digests, never in the clear).
    "CREATE TABLE tokens (
        digest TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        name_key TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at {int} NOT NULL,
        expires_at {int} NOT NULL,
        used_at {int},
        used_serial TEXT
    );
    CREATE INDEX tokens_name ON tokens (name_key);",
    // 3: a counter every change bumps, so exports are rewritten only when something changed.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value {int} NOT NULL);
    INSERT INTO meta (key, value) VALUES ('generation', 1);",
    // 4: the CRL's list read from 10,000 index entries instead of 100,000 rows.
    "CREATE INDEX certificates_revoked ON certificates (aki, serial, revoked_at, reason, not_after, state)
        WHERE state = 'revoked';",
    // 5: a renewal's successor found by the serial it renews (a retried simplereenroll).
    "CREATE INDEX certificates_renews ON certificates (aki, renews) WHERE renews IS NOT NULL;",
    // 6: ACME (RFC 8555) state, in the records so that replicas share it: single-use nonces,
    // external account bindings (the HMAC key kept only until it is bound), accounts by their
    // key's thumbprint, and orders, authorizations and challenges as JSON bodies whose status
    // column is swapped compare-and-set.
    "CREATE TABLE acme_nonces (nonce TEXT PRIMARY KEY, expires_at {int} NOT NULL);
    CREATE INDEX acme_nonces_expiry ON acme_nonces (expires_at);
    CREATE TABLE acme_eab (
        kid TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hmac TEXT,
        policy TEXT NOT NULL,
        created_at {int} NOT NULL,
        expires_at {int} NOT NULL,
        bound_at {int},
        account TEXT
    );
    CREATE TABLE acme_accounts (
        id TEXT PRIMARY KEY,
        thumbprint TEXT NOT NULL UNIQUE,
        jwk TEXT NOT NULL,
        status TEXT NOT NULL,
        contact TEXT NOT NULL,
        eab_kid TEXT,
        created_at {int} NOT NULL
    );
    CREATE TABLE acme_objects (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        account TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at {int} NOT NULL,
        expires_at {int} NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX acme_objects_account ON acme_objects (account, kind, created_at);",
    // 7: the fleet page's latest enrollments and revocations, newest first, from an index.
    "CREATE INDEX certificates_issued_at ON certificates (issued_at);
    CREATE INDEX certificates_revoked_at ON certificates (revoked_at) WHERE state = 'revoked';",
    // 8: the fleet's counts from indexes alone at 100,000 certificates (per CA, per role and
    // state, overdue), and a certificate found by its serial.
    "CREATE INDEX certificates_fleet_ca ON certificates (aki, state, not_after);
    CREATE INDEX certificates_fleet_role ON certificates (role, state, not_after);
    CREATE INDEX certificates_fleet_overdue ON certificates (not_after, not_before)
        WHERE current = 1 AND state <> 'revoked';
    CREATE INDEX certificates_serial ON certificates (serial);",
];

/// The newest schema version this build knows.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

fn fill(sql: &str, engine: Engine) -> String {
    let (int, blob) = match engine {
        Engine::Sqlite => ("INTEGER", "BLOB"),
        Engine::Postgres => ("BIGINT", "BYTEA"),
    };
    sql.replace("{int}", int).replace("{blob}", blob)
}

/// Applies what is missing. Runs inside a write transaction (for PostgreSQL, one that first
/// takes an advisory lock, so two hosts starting at once do not both create the tables).
pub(crate) fn migrate(tx: &mut dyn Sql, engine: Engine) -> Result<(), SqlError> {
    if engine == Engine::Postgres {
        tx.query("SELECT pg_advisory_xact_lock(7030001)", &[])?;
    }
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
        &[],
    )?;
    let rows = tx.query("SELECT max(version) FROM schema_version", &[])?;
    let have = rows.first().and_then(|r| r[0].opt_int()).unwrap_or(0);
    if have > VERSION {
        return Err(SqlError::Other(format!(
            "its schema is version {have}, newer than this pki knows ({VERSION}): upgrade pki"
        )));
    }
    for (i, m) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(have).unwrap_or(0))
    {
        for stmt in fill(m, engine).split(';').filter(|s| !s.trim().is_empty()) {
            tx.exec(stmt, &[])?;
        }
        tx.exec(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[Value::Int(i as i64 + 1)],
        )?;
    }
    Ok(())
}
