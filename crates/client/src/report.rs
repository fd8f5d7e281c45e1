//! `diagnose URL`'s report: the data (serialised as one JSON object for scripts) and its text.

use std::fmt;

use serde::Serialize;

use crate::own::OwnCert;
use crate::probe::Handshake;

/// A full `diagnose URL` report; [`Report::json`] is what `--json` prints.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was checked.
    pub endpoint: String,
    /// The name verified.
    pub name: String,
    /// The handshake with our settings.
    pub handshake: Handshake,
    /// Whether the presented chain verifies against `--ca` (strictly), and if not why.
    pub chain_check: Result<(), String>,
    /// Whether the name is in the server certificate.
    pub name_check: Result<(), String>,
    /// CA names the server accepts for client certificates (from a TLS 1.2 probe).
    pub accepted_ca_names: Vec<String>,
    /// Whether the server asks for a client certificate (None = could not tell: a TLS
    /// 1.3-only server encrypts its request).
    pub client_cert_requested: Option<bool>,
    /// Whether the server demands a client certificate (None = not tried: only a handshake
    /// without one tells, and diagnose makes none that the server would count as refused).
    pub client_cert_required: Option<bool>,
    /// Our own files.
    pub local: Vec<String>,
}

/// `client diagnose --json`: one object, this schema (version 1); every field is always there.
///
/// ```text
/// {
///   "schema": 1,
///   "result": "ok" | "failed",          the handshake with our settings
///   "exit_code": 0,                     the process's exit code (the README's table)
///   "endpoint": "127.0.0.1:8091",
///   "name": "localhost",                the name verified
///   "handshake": {
///     "protocol": "TLSv1.3", "cipher": "…", "alpn": "h2" | null, "millis": 3.2,
///     "chain": [{"subject", "issuer", "names", "not_before", "not_after", "days_left", "key"}],
///     "failure": null | {"class": "client-cert-required", "message", "hint", "detail"}
///   },
///   "server_certificate": {
///     "chain": {"ok": true, "why": null},   against --ca; "why" says what failed
///     "name":  {"ok": false, "why": "…"}
///   },
///   "client_certificate": {
///     "requested": true | false | null,   null: not known (a TLS 1.3-only server)
///     "required": true | false | null,    null: not tried (it would cost the server a refusal)
///     "accepted_ca_names": ["/O=…/CN=…"]
///   },
///   "local": ["CA file certs/ca/ca.crt: 1 certificate(s)", "…"]
/// }
/// ```
/// `required: true` always comes with `requested: true`.
#[derive(Debug, Clone, Serialize)]
pub struct Json<'a> {
    /// The schema's version: 1.
    pub schema: u32,
    /// `ok` or `failed`: whether the handshake with our settings went through.
    pub result: &'static str,
    /// The exit code `client diagnose` ends with.
    pub exit_code: u8,
    /// What was checked.
    pub endpoint: &'a str,
    /// The name verified.
    pub name: &'a str,
    /// The handshake with our settings.
    pub handshake: &'a Handshake,
    /// Our checks of the server's certificate.
    pub server_certificate: ServerChecks,
    /// What the server wants of ours.
    pub client_certificate: ClientPolicy<'a>,
    /// Our own files.
    pub local: &'a [String],
}

/// One check: passed, or why not.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Whether it passed.
    pub ok: bool,
    /// Why not (`null` when it passed).
    pub why: Option<String>,
}

impl From<&Result<(), String>> for Check {
    fn from(r: &Result<(), String>) -> Check {
        Check {
            ok: r.is_ok(),
            why: r.as_ref().err().cloned(),
        }
    }
}

/// Our checks of the server's certificate.
#[derive(Debug, Clone, Serialize)]
pub struct ServerChecks {
    /// It chains to our CA file.
    pub chain: Check,
    /// It names the host we asked for.
    pub name: Check,
}

/// What the server wants of a client certificate.
#[derive(Debug, Clone, Serialize)]
pub struct ClientPolicy<'a> {
    /// Whether it asks for one.
    pub requested: Option<bool>,
    /// Whether it refuses a handshake without one.
    pub required: Option<bool>,
    /// The CA names its request lists.
    pub accepted_ca_names: &'a [String],
}

impl Report {
    /// The `--json` form ([`Json`]).
    pub fn json(&self) -> Json<'_> {
        let failure = self.handshake.failure.as_ref();
        let required = self.client_cert_required;
        Json {
            schema: 1,
            result: if failure.is_none() { "ok" } else { "failed" },
            exit_code: failure.map_or(0, |f| f.class.exit_code()),
            endpoint: &self.endpoint,
            name: &self.name,
            handshake: &self.handshake,
            server_certificate: ServerChecks {
                chain: (&self.chain_check).into(),
                name: (&self.name_check).into(),
            },
            client_certificate: ClientPolicy {
                requested: match required {
                    Some(true) => Some(true),
                    _ => self.client_cert_requested,
                },
                required,
                accepted_ca_names: &self.accepted_ca_names,
            },
            local: &self.local,
        }
    }
}

/// The `local` lines for our CA file (holding `cas` certificates) and our certificate.
pub(crate) fn local_lines(
    ca_file: &std::path::Path,
    cas: usize,
    own: Option<&OwnCert>,
) -> Vec<String> {
    let mut out = vec![format!(
        "CA file {}: {cas} certificate(s)",
        ca_file.display()
    )];
    let Some(own) = own else {
        out.push("client certificate: none (one-way TLS)".into());
        return out;
    };
    let s = &own.summary;
    out.push(format!(
        "client certificate {}: {}, key matches",
        own.source, s.subject
    ));
    out.push(if own.client_auth {
        "extendedKeyUsage includes clientAuth".into()
    } else {
        "WARNING: extendedKeyUsage lacks clientAuth: servers will refuse it".into()
    });
    out.push(match s.days_left {
        d if d < 0 => format!("WARNING: expired on {}", s.not_after),
        d if d < 30 => format!("WARNING: expires in {d} days ({})", s.not_after),
        d => format!("valid until {} ({d} days left)", s.not_after),
    });
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hs = &self.handshake;
        writeln!(
            f,
            "diagnose {} (verifying the name {})",
            self.endpoint, self.name
        )?;
        write_handshake(f, hs)?;
        let yes = |r: &Result<(), String>| match r {
            Ok(()) => "yes".to_owned(),
            Err(e) => format!("NO: {e}"),
        };
        writeln!(f, "  chains to CA {}", yes(&self.chain_check))?;
        writeln!(f, "  name matches {}", yes(&self.name_check))?;
        let policy = match (self.client_cert_requested, self.client_cert_required) {
            (_, Some(true)) => "the server requires one",
            (Some(false), _) => "the server does not ask for one",
            (Some(true), Some(false)) => "the server asks for one but does not require it",
            (Some(true), None) => {
                "the server asks for one (whether it requires one was not tried: a handshake \
                 without one would count as refused on the server)"
            }
            (None, Some(false)) => "the server does not require one",
            (None, None) => "could not tell whether the server wants one",
        };
        writeln!(f, "  client cert  {policy}")?;
        if !self.accepted_ca_names.is_empty() {
            writeln!(f, "  it accepts   {}", self.accepted_ca_names.join("; "))?;
        }
        for l in &self.local {
            writeln!(f, "  local        {l}")?;
        }
        match &hs.failure {
            None => writeln!(f, "  result       OK"),
            Some(fail) => writeln!(f, "  result       FAILED: {}", fail.to_lines()),
        }
    }
}

/// The negotiated parameters and the server's chain.
fn write_handshake(f: &mut fmt::Formatter<'_>, hs: &Handshake) -> fmt::Result {
    if !hs.protocol.is_empty() {
        writeln!(
            f,
            "  TLS          {} {} ALPN {} ({:.1} ms)",
            hs.protocol,
            hs.cipher,
            hs.alpn.as_deref().unwrap_or("none"),
            hs.millis
        )?;
    }
    for (i, c) in hs.chain.iter().enumerate() {
        writeln!(f, "  server [{i}]   {}", c.subject)?;
        writeln!(f, "    issuer     {}", c.issuer)?;
        if !c.names.is_empty() {
            writeln!(f, "    names      {}", c.names.join(", "))?;
        }
        writeln!(
            f,
            "    valid      {} → {} ({} days left)",
            c.not_before, c.not_after, c.days_left
        )?;
        writeln!(f, "    key        {}", c.key)?;
    }
    Ok(())
}
