//! `pki init`, `pki ca` (rotation) and `pki root` (the offline root key): the CA itself.

use std::process::ExitCode;

use anyhow::{Context, Result};
use pki::files::Overwrite;
use pki::{Folder, InitOptions, SubjectAltName};

use crate::args::*;

pub(crate) fn root(folder: &Folder, action: RootAction) -> Result<ExitCode> {
    match action {
        RootAction::Export { to } => {
            folder.root_export(&to)?;
            println!(
                "the root key is now {} only; {} was removed (everything but a new \
                 intermediate works without it)",
                to.display(),
                folder.layout().ca_key().display()
            );
        }
        RootAction::Import { file } => {
            folder.root_import(&file)?;
            println!("wrote {}", folder.layout().ca_key().display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn overwrite(force: bool) -> Overwrite {
    if force {
        Overwrite::Replace
    } else {
        Overwrite::Never
    }
}

/// `user@host` for the CA's name, as mkcert names its CA.
pub(crate) fn who_am_i() -> Option<String> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(format!("{user}@{}", host.trim()))
}

pub(crate) fn constraints(
    dns: Vec<String>,
    ip: &[String],
) -> Result<pki::constraints::NameConstraints> {
    for d in &dns {
        let bare = d.strip_prefix('.').unwrap_or(d);
        bare.parse::<SubjectAltName>()
            .ok()
            .filter(|n| matches!(n, SubjectAltName::Dns(_)))
            .with_context(|| format!("--permit-dns {d}: not a DNS name or .suffix"))?;
    }
    Ok(pki::constraints::NameConstraints {
        dns: dns.into_iter().map(|d| d.to_ascii_lowercase()).collect(),
        ip: ip
            .iter()
            .map(|n| pki::constraints::IpNet::parse(n))
            .collect::<x509::Result<_>>()?,
    })
}

pub(crate) fn init(folder: &Folder, args: InitArgs) -> Result<ExitCode> {
    let who = who_am_i();
    let mut opts = InitOptions {
        key: args.key,
        force: args.force,
        intermediate: args.intermediate,
        p12_password: std::env::var(pki::folder::P12_PASSWORD_ENV).ok(),
        ca_subject: pki::init::ca_subject(who.as_deref()),
        intermediate_subject: pki::init::default_intermediate_subject(who.as_deref()),
        constraints: constraints(args.permit_dns, &args.permit_ip)?,
        key_store: args.key_store,
        ..InitOptions::default()
    };
    if let Some(cn) = &args.ca_name {
        pki::name::check_common_name(cn)?;
        opts.ca_subject.common_name = cn.clone();
    }
    if !args.sans.is_empty() {
        opts.server_names = args.sans;
    }
    // Before the CRL URL is recorded: a refused init changes nothing.
    folder.check_init_shape(&opts, args.ca_name.as_deref())?;
    if let Some(url) = &args.crl_url {
        // Before the first certificate is made, so that every one names it.
        std::fs::create_dir_all(folder.layout().dir(common::Role::Ca)).with_context(|| {
            format!("create {}", folder.layout().dir(common::Role::Ca).display())
        })?;
        folder.set_crl_url(Some(url))?;
        println!("certificates name {url} as their CRL distribution point");
    }
    let opts = &opts;
    let report = folder.init(opts)?;
    for p in &report.removed {
        println!("removed {} (left by an interrupted run)", p.display());
    }
    for p in &report.retired {
        println!(
            "removed {} (of the former two-level CA: the new root issues)",
            p.display()
        );
    }
    if report.created.is_empty() {
        println!(
            "{} is complete; nothing changed (use --force to regenerate everything)",
            folder.layout().root().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for p in &report.created {
        println!("created {}", p.display());
    }
    for p in &report.kept {
        println!("kept    {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn ca_command(folder: &Folder, action: CaAction) -> Result<ExitCode> {
    match action {
        CaAction::Rotate {
            switch,
            retire,
            force,
        } => {
            if switch {
                folder.rotate_switch()?;
                println!("the new CA issues from now on; the old one stays trusted (ca/previous/)");
            } else if retire {
                folder.rotate_retire(force)?;
                println!("the old CA left the bundle and is archived under ca/retired/");
            } else {
                folder.rotate_introduce(who_am_i().as_deref())?;
                println!(
                    "a new CA is in ca/next/ and ca/ca.crt trusts both: reload servers and clients, then `pki ca rotate --switch`"
                );
            }
            let status = folder.rotation_status()?;
            println!("next: {}", status.next_step);
        }
        CaAction::CrlUrl { url, none } => {
            if url.is_some() || none {
                folder.set_crl_url(url.as_deref())?;
            }
            match folder.crl_url()? {
                Some(u) => println!(
                    "certificates issued from now on name {u} as their CRL distribution point"
                ),
                None => println!("certificates issued from now on name no CRL distribution point"),
            }
        }
        CaAction::Status { json } => {
            let status = folder.rotation_status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!("rotation: {}", status.phase);
                for c in &status.cas {
                    println!(
                        "{:<8}  {}  until {}  {} in force  CRL next update {}",
                        c.role,
                        c.subject,
                        x509::time::date(c.not_after),
                        c.in_force,
                        c.crl_next_update
                            .map_or_else(|| "-".into(), x509::time::date)
                    );
                    let keys = c.root_key.iter().map(|k| ("root key", k));
                    for (what, k) in std::iter::once(("key", &c.key)).chain(keys) {
                        println!("          {what}: {} {}", k.store, k.location);
                        if let Some(t) = &k.token {
                            println!(
                                "            object {:?} in token {:?} ({} {}): extractable {}, \
                                 never extractable {}, sensitive {}, always sensitive {}, \
                                 hardware slot {}",
                                t.object,
                                t.token,
                                t.manufacturer,
                                t.model,
                                t.extractable,
                                t.never_extractable,
                                t.sensitive,
                                t.always_sensitive,
                                t.hardware_slot
                            );
                        }
                        println!("            {}", k.protection);
                    }
                }
                println!("next: {}", status.next_step);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
