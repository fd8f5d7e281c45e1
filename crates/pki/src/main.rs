//! `pki`: the command line of the private CA. Parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use pki::files::Overwrite;
use pki::index::Reason;
use pki::verify::Purpose;
use pki::{Folder, InitOptions, KeyAlgorithm, Leaf, P12Encryption, SubjectAltName};

/// A private CA: the seed's `openssl genrsa / req / x509 -req` steps, with modern defaults.
#[derive(Parser)]
#[command(name = "pki", version)]
struct Cli {
    /// Folder of the PKI (ca/, server/, client/).
    #[arg(long, global = true, env = common::PKI_DIR_ENV, default_value = common::DEFAULT_PKI_DIR)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the CA (if there is none) and whatever is missing of the default layout.
    Init {
        /// Key type of every key made.
        #[arg(long, value_enum, default_value_t)]
        key: KeyAlgorithm,
        /// Server names (repeatable; default DNS:localhost, IP:127.0.0.1, IP:::1).
        #[arg(long = "san")]
        sans: Vec<SubjectAltName>,
        /// Regenerate everything, the CA included (every certificate issued before becomes invalid).
        #[arg(long)]
        force: bool,
    },
    /// Issue a server or client certificate with a fresh key.
    Issue {
        #[command(subcommand)]
        kind: IssueKind,
    },
    /// Every certificate the CA issued, with its status.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke certificates by serial, CN or file name, and write a new CRL.
    Revoke {
        /// Serial (hex), CN, or file name (`client`).
        target: String,
        /// RFC 5280 reason.
        #[arg(long, value_enum)]
        reason: Option<Reason>,
    },
    /// Write a fresh CRL to ca/ca.crl.
    Crl,
    /// Bundle a client's key and certificate as PKCS#12 (password from PKI_P12_PASSWORD or a prompt).
    ExportP12 {
        /// The client's file name.
        #[arg(long, default_value = common::DEFAULT_CLIENT_NAME)]
        name: String,
        /// SHA-1/3DES encryption for old importers (default: AES-256 with PBKDF2).
        #[arg(long)]
        legacy: bool,
        /// Replace an existing bundle.
        #[arg(long)]
        force: bool,
    },
    /// Readable summary of a certificate, request, key, CRL or PKCS#12 file.
    Inspect {
        /// The file (PEM or DER).
        file: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Check a certificate against a CA (exit 0 when it verifies, 1 with the reason when not).
    Verify {
        /// The certificate (PEM; further certificates in the file are intermediates).
        cert: PathBuf,
        /// Trusted CA certificate.
        #[arg(long)]
        ca: PathBuf,
        /// Required use.
        #[arg(long, value_enum)]
        purpose: Option<Purpose>,
        /// Host name or IP the certificate must name.
        #[arg(long)]
        host: Option<String>,
        /// Also check this CRL.
        #[arg(long)]
        crl: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum IssueKind {
    /// A TLS server certificate (EKU serverAuth).
    Server {
        /// File name under server/.
        #[arg(long, default_value = common::DEFAULT_SERVER_NAME)]
        name: String,
        /// Host names and IPs (repeatable; default localhost, 127.0.0.1, ::1).
        #[arg(long = "san")]
        sans: Vec<SubjectAltName>,
        #[command(flatten)]
        common: IssueArgs,
    },
    /// A TLS client (device) certificate (EKU clientAuth).
    Client {
        /// Device name: the CN and the file name under client/.
        #[arg(long)]
        name: String,
        /// Optional DNS/URI/email names (repeatable).
        #[arg(long = "san")]
        sans: Vec<SubjectAltName>,
        #[command(flatten)]
        common: IssueArgs,
    },
}

#[derive(clap::Args)]
struct IssueArgs {
    /// Validity in days.
    #[arg(long)]
    days: Option<u32>,
    /// Key type.
    #[arg(long, value_enum, default_value_t)]
    key: KeyAlgorithm,
    /// Subject O= (default: the seed's name for the role).
    #[arg(long)]
    org: Option<String>,
    /// Replace existing files of the same name.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pki: error: {}", common::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn overwrite(force: bool) -> Overwrite {
    if force {
        Overwrite::Replace
    } else {
        Overwrite::Never
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let folder = Folder::new(common::Layout::new(&cli.dir));
    for warning in folder.loose_key_permissions() {
        eprintln!("pki: warning: {warning}");
    }
    match cli.command {
        Command::Init { key, sans, force } => {
            let mut opts = InitOptions {
                key,
                force,
                p12_password: std::env::var(pki::folder::P12_PASSWORD_ENV).ok(),
                ..InitOptions::default()
            };
            if !sans.is_empty() {
                opts.server_names = sans;
            }
            let report = folder.init(&opts).context("pki init")?;
            for p in &report.removed {
                println!("removed {} (left by an interrupted run)", p.display());
            }
            if report.created.is_empty() {
                println!(
                    "{} is complete; nothing changed (use --force to regenerate everything)",
                    cli.dir.display()
                );
            }
            for p in &report.created {
                println!("created {}", p.display());
            }
            if !report.created.is_empty() {
                for p in &report.kept {
                    println!("kept    {}", p.display());
                }
            }
        }
        Command::Issue { kind } => {
            let (mut leaf, args) = match kind {
                IssueKind::Server { name, sans, common } => {
                    let sans = if sans.is_empty() {
                        SubjectAltName::localhost()
                    } else {
                        sans
                    };
                    (Leaf::server(&name, sans), common)
                }
                IssueKind::Client { name, sans, common } => {
                    let mut leaf = Leaf::client(&name);
                    leaf.names = sans;
                    (leaf, common)
                }
            };
            leaf.key = args.key;
            leaf.days = args.days;
            if let Some(org) = args.org {
                leaf.subject.organization = org;
            }
            let ca = folder.authority()?;
            let cert = folder.issue(&ca, &leaf, overwrite(args.force))?;
            let role = leaf.profile.role();
            println!(
                "issued {} certificate {} (serial {}), key {}",
                leaf.profile,
                folder.layout().leaf_cert(role, &leaf.name).display(),
                pki::authority::serial_hex(&cert)?,
                folder.layout().leaf_key(role, &leaf.name).display()
            );
        }
        Command::List { json } => {
            let rows = folder.status()?;
            if json {
                let items: Vec<_> = rows
                    .iter()
                    .map(|(e, s)| {
                        serde_json::json!({
                            "serial": e.serial, "subject": e.subject, "file": e.file,
                            "not_after": e.not_after, "days_left": e.days_left(), "status": s,
                            "reason": e.revoked.and_then(|(_, r)| r),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                println!(
                    "{:<32}  {:<8}  {:>9}  {:<20}  SUBJECT",
                    "SERIAL", "STATUS", "DAYS LEFT", "FILE"
                );
                for (e, s) in rows {
                    println!(
                        "{:<32}  {:<8}  {:>9}  {:<20}  {}",
                        e.serial,
                        s.to_string(),
                        e.days_left(),
                        e.file,
                        e.subject
                    );
                }
            }
        }
        Command::Revoke { target, reason } => {
            let ca = folder.authority()?;
            for e in folder.revoke(&ca, &target, reason)? {
                println!("revoked {} {} ({})", e.serial, e.subject, e.file);
            }
            println!("wrote {}", folder.layout().ca_crl().display());
        }
        Command::Crl => {
            let ca = folder.authority()?;
            println!("wrote {}", folder.write_crl(&ca)?.display());
        }
        Command::ExportP12 {
            name,
            legacy,
            force,
        } => {
            let password = match std::env::var(pki::folder::P12_PASSWORD_ENV) {
                Ok(p) => p,
                Err(_) => {
                    let p = rpassword::prompt_password("PKCS#12 password: ").context(
                        "reading the password (set PKI_P12_PASSWORD when there is no terminal)",
                    )?;
                    if rpassword::prompt_password("again: ")? != p {
                        bail!("the two passwords differ");
                    }
                    p
                }
            };
            let ca = folder.authority()?;
            let encryption = if legacy {
                P12Encryption::Legacy
            } else {
                P12Encryption::Modern
            };
            let out = folder.export_p12(&ca, &name, &password, encryption, overwrite(force))?;
            println!("wrote {}", out.display());
        }
        Command::Inspect { file, json } => {
            let pass = std::env::var(pki::folder::P12_PASSWORD_ENV).ok();
            let summary = pki::inspect::inspect_file(&file, pass.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
            } else {
                print!("{}: {summary}", file.display());
            }
        }
        Command::Verify {
            cert,
            ca,
            purpose,
            host,
            crl,
        } => {
            let mut chain = pki::folder::load_certs("certificate", &cert)?;
            let leaf = chain.remove(0);
            let cas = pki::folder::load_certs("CA certificate", &ca)?;
            let options = pki::verify::Options {
                purpose,
                host,
                crl,
                at: None,
            };
            match pki::verify::verify(&leaf, &chain, &cas, &options)? {
                Ok(()) => println!("{}: OK", cert.display()),
                Err(f) => {
                    println!("{}: FAILED: {f}", cert.display());
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
