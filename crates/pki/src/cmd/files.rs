//! `pki inspect` and `pki verify`: any PKI file, read and judged like the openssl CLI does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use pki::verify::Purpose;

pub(crate) fn inspect(file: &Path, json: bool) -> Result<ExitCode> {
    let pass = std::env::var(pki::folder::P12_PASSWORD_ENV).ok();
    let summary = pki::inspect::inspect_file(file, pass.as_deref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
    } else {
        print!("{}: {summary}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn verify(
    cert: &Path,
    ca: &Path,
    purpose: Option<Purpose>,
    host: Option<String>,
    crl: Option<PathBuf>,
    this_crl: &Path,
) -> Result<ExitCode> {
    let unchecked = crl.is_none();
    let mut chain = x509::cert::load_certs("certificate", cert)?;
    let leaf = chain.remove(0);
    let cas = x509::cert::load_certs("CA certificate", ca)?;
    let options = pki::verify::Options {
        purpose,
        host,
        crl,
        at: None,
    };
    match pki::verify::verify(&leaf, &chain, &cas, &options)? {
        Ok(()) => {
            println!("{}: OK", cert.display());
            if unchecked {
                // As `openssl verify`: no CRL, no revocation check; say so, a revoked one is OK too.
                eprintln!(
                    "  (revocation not checked: add --crl {})",
                    this_crl.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            println!("{}: FAILED: {f}", cert.display());
            if let Some(more) = what_it_has(&leaf, f.problem, purpose) {
                println!("  {more}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// What the certificate carries that the check looked for: its names after a name mismatch,
/// its extendedKeyUsage after a wrong purpose.
fn what_it_has(
    leaf: &openssl::x509::X509Ref,
    problem: pki::verify::Problem,
    purpose: Option<Purpose>,
) -> Option<String> {
    use pki::verify::Problem;
    use x509_parser::prelude::FromDer;
    let der = leaf.to_der().ok()?;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&der).ok()?;
    match problem {
        Problem::HostMismatch | Problem::IpMismatch => {
            let names = pki::inspect::names(&parsed);
            Some(match names.is_empty() {
                true => "the certificate names no host (no subjectAltName)".to_owned(),
                false => format!("the certificate names {}", names.join(", ")),
            })
        }
        Problem::WrongPurpose => {
            let eku = parsed.extended_key_usage().ok().flatten().map(|e| e.value);
            let has: Vec<&str> = eku
                .map(|e| {
                    [("serverAuth", e.server_auth), ("clientAuth", e.client_auth)]
                        .into_iter()
                        .filter(|(_, on)| *on)
                        .map(|(name, _)| name)
                        .collect()
                })
                .unwrap_or_default();
            let wanted = match purpose? {
                Purpose::Server => "serverAuth",
                Purpose::Client => "clientAuth",
            };
            Some(format!(
                "checked for {wanted}; the certificate's extendedKeyUsage has {}",
                match has.is_empty() {
                    true => "neither serverAuth nor clientAuth".to_owned(),
                    false => has.join(" and "),
                }
            ))
        }
        _ => None,
    }
}
