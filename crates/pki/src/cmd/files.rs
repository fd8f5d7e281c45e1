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
) -> Result<ExitCode> {
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
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            println!("{}: FAILED: {f}", cert.display());
            Ok(ExitCode::from(1))
        }
    }
}
