//! `pki list`, `pki revoke`, `pki crl`, `pki token` and `pki export-p12`: the records and what
//! follows from them.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pki::index::{Reason, Status};
use pki::{Filter, Folder, P12Encryption};

use crate::args::*;
use crate::cmd::issue::lines_of;
use crate::cmd::setup::overwrite;

pub(crate) fn list(
    folder: &Folder,
    status: Option<StatusArg>,
    role: Option<RoleArg>,
    expiring_within: Option<Duration>,
    json: bool,
) -> Result<ExitCode> {
    let filter = Filter {
        status: status.map(|s| match s {
            StatusArg::Valid => Status::Valid,
            StatusArg::Expired => Status::Expired,
            StatusArg::Revoked => Status::Revoked,
        }),
        role: role.map(|r| match r {
            RoleArg::Server => common::Role::Server,
            RoleArg::Client => common::Role::Client,
        }),
        expiring_within: expiring_within.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        name: None,
        at: x509::time::now(),
    };
    let rows = folder.select(&filter)?;
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|e| {
                serde_json::json!({
                    "serial": e.serial, "subject": e.subject, "name": e.name, "role": e.role.dir_name(),
                    "file": e.file, "sans": e.sans_text(), "not_after": e.not_after,
                    "days_left": e.days_left(), "status": e.status(filter.at),
                    "reason": e.revoked.and_then(|(_, r)| r), "current": e.current,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32}  {:<8}  {:>9}  {:<20}  SUBJECT",
        "SERIAL", "STATUS", "DAYS LEFT", "FILE"
    );
    for e in rows {
        println!(
            "{:<32}  {:<8}  {:>9}  {:<20}  {}",
            e.serial,
            e.status(filter.at).to_string(),
            e.days_left(),
            e.file,
            e.subject
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn crl(folder: &Folder, if_due: bool, before: Duration) -> Result<ExitCode> {
    let ca = folder.issuer()?;
    if !if_due {
        println!("wrote {}", folder.write_crl(&ca)?.display());
    } else if folder.crl_if_due(&ca, before)? {
        println!(
            "wrote {} (the last one was due)",
            folder.layout().ca_crl().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn token(folder: &Folder, action: TokenAction) -> Result<ExitCode> {
    match action {
        TokenAction::Create { name, role, ttl } => {
            let profile = match role {
                RoleArg::Server => pki::Profile::Server,
                RoleArg::Client => pki::Profile::Client,
            };
            let token = folder.create_token(profile, &name, ttl)?;
            eprintln!(
                "pki: token for {role} {name}, valid once, until {} (shown only now):",
                until(ttl)
            );
            println!("{token}");
        }
        TokenAction::List => {
            let ca = folder.issuer()?;
            let at = x509::time::now();
            println!("{:<24}  {:<6}  {:<23}  STATE", "NAME", "ROLE", "EXPIRES");
            for t in folder.open_db(Some(&ca))?.tokens()? {
                let state = match (t.used_at, t.expires_at <= at) {
                    (Some(_), _) => format!("used ({})", t.used_serial.unwrap_or_default()),
                    (None, true) => "expired".into(),
                    (None, false) => "unused".into(),
                };
                println!(
                    "{:<24}  {:<6}  {:<23}  {state}",
                    t.name,
                    t.role,
                    x509::time::date(t.expires_at)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn acme(folder: &Folder, action: AcmeAction) -> Result<ExitCode> {
    let AcmeAction::Eab { action } = action;
    match action {
        EabAction::Create {
            name,
            allow_dns,
            allow_ip,
            mtls_client,
            pre_authorized,
            ttl,
        } => {
            if pre_authorized && allow_dns.is_empty() && allow_ip.is_empty() {
                bail!("--pre-authorized issues without a challenge only for listed names: give --allow-dns or --allow-ip");
            }
            let policy = pki::store::acme::AcmePolicy {
                dns: allow_dns,
                ip: allow_ip,
                client_profile: mtls_client,
                pre_authorized,
            };
            let (kid, hmac) = folder.create_acme_eab(&name, policy, ttl)?;
            eprintln!(
                "pki: ACME external account binding for {name}, binds one account until {} \
                 (the HMAC key is shown only now):",
                until(ttl)
            );
            eprintln!("  certbot: --eab-kid {kid} --eab-hmac-key {hmac}");
            eprintln!("  lego:    --eab --kid {kid} --hmac {hmac}");
            println!("{kid} {hmac}");
        }
        EabAction::List => {
            let ca = folder.issuer()?;
            let at = x509::time::now();
            println!(
                "{:<32}  {:<16}  {:<23}  {:<24}  STATE",
                "KID", "NAME", "EXPIRES", "ALLOWS"
            );
            for e in folder.open_db(Some(&ca))?.acme_eabs()? {
                let state = match (&e.bound, e.expires_at <= at) {
                    (Some((_, account)), _) => format!("bound (account {account})"),
                    (None, true) => "expired".into(),
                    (None, false) => "unused".into(),
                };
                let mut allows: Vec<String> =
                    e.policy.dns.iter().chain(&e.policy.ip).cloned().collect();
                if allows.is_empty() {
                    allows.push("any".into());
                }
                if e.policy.client_profile {
                    allows.push("+mtls-client".into());
                }
                println!(
                    "{:<32}  {:<16}  {:<23}  {:<24}  {state}",
                    e.kid,
                    e.name,
                    x509::time::date(e.expires_at),
                    allows.join(",")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn revoke(
    folder: &Folder,
    target: Option<String>,
    from: Option<&Path>,
    reason: Option<Reason>,
) -> Result<ExitCode> {
    let ca = folder.issuer()?;
    let targets = match (target, from) {
        (Some(t), _) => vec![t],
        (None, Some(file)) => lines_of(file)?,
        (None, None) => bail!("give a serial, CN or name, or --from FILE"),
    };
    let queries: Vec<&str> = targets.iter().map(String::as_str).collect();
    let revoked = folder.revoke_many(&ca, &queries, reason)?;
    if revoked.len() > 20 {
        println!("revoked {} certificates", revoked.len());
    } else {
        for e in revoked {
            println!("revoked {} {} ({})", e.serial, e.subject, e.file);
        }
    }
    println!("wrote {}", folder.layout().ca_crl().display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn export_p12(
    folder: &Folder,
    name: &str,
    legacy: bool,
    force: bool,
) -> Result<ExitCode> {
    let password = match std::env::var(pki::folder::P12_PASSWORD_ENV) {
        Ok(p) => p,
        Err(_) => {
            let p = rpassword::prompt_password("PKCS#12 password: ")
                .context("reading the password (set PKI_P12_PASSWORD when there is no terminal)")?;
            if rpassword::prompt_password("again: ")? != p {
                bail!("the two passwords differ");
            }
            p
        }
    };
    let ca = folder.issuer()?;
    let encryption = if legacy {
        P12Encryption::Legacy
    } else {
        P12Encryption::Modern
    };
    let out = folder.export_p12(&ca, name, &password, encryption, overwrite(force))?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// When a thing made now with `ttl` ends, as a date (humantime writes 24 h as "1day").
fn until(ttl: std::time::Duration) -> String {
    let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    x509::time::date(x509::time::now().saturating_add(secs))
}
