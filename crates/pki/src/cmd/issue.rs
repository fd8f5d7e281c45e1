//! `pki issue`, `pki sign`, `pki renew` and `pki needs-renewal`: leaves, made here or elsewhere.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pki::name::Days;
use pki::{Folder, Leaf, SubjectAltName};

use crate::args::*;
use crate::cmd::setup::overwrite;

pub(crate) fn issue(folder: &Folder, kind: IssueKind) -> Result<ExitCode> {
    let (leaves, args) = match kind {
        IssueKind::Server { name, sans, common } => {
            let sans = if sans.is_empty() {
                SubjectAltName::localhost()
            } else {
                sans
            };
            (vec![Leaf::server(&name, sans)], common)
        }
        IssueKind::Client {
            name,
            count,
            prefix,
            names,
            cn,
            sans,
            common,
        } => {
            let list = client_names(name, count, prefix.as_deref(), names.as_deref())?;
            let leaves = list
                .iter()
                .map(|n| {
                    let mut leaf = Leaf::client(n);
                    leaf.names.clone_from(&sans);
                    if let Some(cn) = &cn {
                        leaf.subject.common_name.clone_from(cn);
                    }
                    leaf
                })
                .collect();
            if let Some(cn) = &cn {
                pki::name::check_common_name(cn)?;
            }
            (leaves, common)
        }
    };
    let leaves: Vec<Leaf> = leaves
        .into_iter()
        .map(|mut leaf| {
            leaf.key = args.key;
            leaf.days = args.days.map(Days::get);
            if let Some(org) = &args.org {
                leaf.subject.organization.clone_from(org);
            }
            leaf
        })
        .collect();
    let ca = folder.issuer()?;
    if let [leaf] = leaves.as_slice() {
        let cert = folder.issue(&ca, leaf, overwrite(args.force))?;
        let (cert_path, key_path) = folder.leaf_paths(leaf.profile.role(), &leaf.name)?;
        println!(
            "issued {} certificate {} (serial {}), key {}",
            leaf.profile,
            cert_path.display(),
            x509::cert::serial_hex(&cert)?,
            key_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.force {
        bail!("--force replaces one certificate at a time; a batch issues new names only");
    }
    let issued = issue_batch(folder, &ca, &leaves)?;
    println!(
        "issued {} client certificates under {}",
        issued,
        folder.layout().dir(common::Role::Client).display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A batch, with a progress bar on a terminal and nothing otherwise.
pub(crate) fn issue_batch(folder: &Folder, ca: &pki::Issuer, leaves: &[Leaf]) -> Result<usize> {
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(leaves.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let issued = folder.issue_many(ca, leaves, &mut |n| bar.set_position(n as u64));
    bar.finish_and_clear();
    Ok(issued?.len())
}

/// The names of `issue client`: one, a numbered series, or a file of them.
pub(crate) fn client_names(
    name: Option<String>,
    count: Option<usize>,
    prefix: Option<&str>,
    file: Option<&Path>,
) -> Result<Vec<String>> {
    if let Some(n) = name {
        return Ok(vec![n]);
    }
    if let (Some(count), Some(prefix)) = (count, prefix) {
        if count == 0 {
            bail!("--count 0 issues nothing");
        }
        return Ok((1..=count).map(|i| format!("{prefix}{i}")).collect());
    }
    lines_of(file.context("give --name, --count with --prefix, or --names FILE")?)
}

/// The lines of a names file, blank lines and `#` comments skipped; refused when empty.
pub(crate) fn lines_of(file: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the names file {}", file.display()))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        bail!("{} holds no names", file.display());
    }
    Ok(names)
}

pub(crate) fn sign(
    folder: &Folder,
    csr: &Path,
    role: RoleArg,
    name: &str,
    cn: Option<String>,
    sans: Vec<SubjectAltName>,
    args: IssueArgs,
) -> Result<ExitCode> {
    let mut leaf = match role {
        RoleArg::Server => Leaf::server(name, sans),
        RoleArg::Client => {
            let mut leaf = Leaf::client(name);
            leaf.names = sans;
            leaf
        }
    };
    if let Some(cn) = cn {
        pki::name::check_common_name(&cn)?;
        leaf.subject.common_name = cn;
    }
    if let Some(org) = args.org {
        leaf.subject.organization = org;
    }
    leaf.days = args.days.map(Days::get);
    let req = pki::lifecycle::load_request(csr)?;
    let ca = folder.issuer()?;
    let request = pki::lifecycle::Request {
        csr: &req,
        leaf: &leaf,
        overwrite: overwrite(args.force),
    };
    let issued = folder.sign_request(&ca, &request)?;
    println!(
        "signed {} certificate {} (serial {}) for the key of {}",
        leaf.profile,
        issued.cert_path.display(),
        issued.serial,
        csr.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn renew(folder: &Folder, args: RenewArgs) -> Result<ExitCode> {
    let ca = folder.issuer()?;
    if args.all {
        println!(
            "renewed {} certificates under the current CA",
            folder.renew_all(&ca)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let target = args.target.unwrap_or_default();
    let target = target.as_str();
    let (rekey, revoke_old, days) = (args.rekey, args.revoke_old, args.days);
    let if_due = args.if_due.then_some(args.within);
    if let Some(within) = if_due {
        let due = folder.due(within)?;
        let names = |r: &&pki::Record| r.name.eq_ignore_ascii_case(target) || r.serial == target;
        if !due.iter().any(|r| names(&r)) {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let r = folder.renew(&ca, target, rekey, revoke_old, days.map(Days::get))?;
    println!(
        "renewed {} (serial {} → {}), the old one kept as {}{}",
        r.issued.cert_path.display(),
        r.old_serial,
        r.issued.serial,
        r.archived.display(),
        if r.old_revoked {
            " and revoked"
        } else {
            ", valid until it expires"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// 0 due, 1 not due, 255 cannot tell.
pub(crate) fn needs_renewal(file: &Path, within: Option<Duration>) -> ExitCode {
    let judged = (|| -> pki::Result<(bool, i64)> {
        let cert = x509::cert::load_cert("certificate", file)?;
        let due = pki::lifecycle::renewal_due(&cert, within, x509::time::now())?;
        let end = x509::time::unix_time(cert.not_after())?;
        Ok((due, end))
    })();
    match judged {
        Ok((true, end)) => {
            println!(
                "{}: due for renewal (expires {})",
                file.display(),
                x509::time::date(end)
            );
            ExitCode::SUCCESS
        }
        Ok((false, end)) => {
            println!(
                "{}: not due (expires {})",
                file.display(),
                x509::time::date(end)
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("pki: error: {}", common::error_chain(&e));
            ExitCode::from(255)
        }
    }
}
