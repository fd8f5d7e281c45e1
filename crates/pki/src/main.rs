//! `pki`: the command line of the private CA. Parses arguments and calls the library, one
//! function per subcommand.

use std::process::ExitCode;
use std::time::Duration;

mod args;
mod cmd;

use anyhow::Result;
use clap::Parser;
use pki::{DbUrl, Folder};

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `pki list | head` would panic on the closed pipe. Every write of
    // ours is atomic or in a transaction, so being ended by it loses nothing.
    sigpipe::reset();
    let cli = Cli::parse();
    let folder = Folder::new(common::Layout::new(&cli.dir))
        .with_db(cli.db.as_deref().map_or(DbUrl::Default, DbUrl::parse))
        .with_lock_timeout(Duration::from_secs(cli.lock_timeout));
    // Every device's key only where a look at the whole folder is expected.
    let thorough = matches!(cli.command, Command::Init(_) | Command::List { .. });
    let warnings = if thorough {
        folder.loose_key_permissions_all()
    } else {
        folder.loose_key_permissions()
    };
    for warning in warnings {
        eprintln!("pki: warning: {warning}");
    }
    let result = run(&folder, cli.command);
    for note in folder.take_notices() {
        eprintln!("pki: note: {note}");
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pki: error: {}", common::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

use args::{Cli, Command};
use cmd::files::{inspect, verify};
use cmd::issue::{issue, needs_renewal, renew, sign};
use cmd::records::{acme, crl, export_p12, list, revoke, token};
use cmd::setup::{ca_command, init, root};

fn run(folder: &Folder, command: Command) -> Result<ExitCode> {
    match command {
        Command::Init(args) => init(folder, args),
        Command::Ca { action } => ca_command(folder, action),
        Command::Root { action } => root(folder, action),
        Command::Issue { kind } => issue(folder, kind),
        Command::List {
            status,
            role,
            expiring_within,
            json,
        } => list(folder, status, role, expiring_within, json),
        Command::Revoke {
            target,
            from,
            reason,
        } => revoke(folder, target, from.as_deref(), reason),
        Command::Export => {
            println!("up to date: {}", folder.export_mirror()?.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Crl { if_due, before } => crl(folder, if_due, before),
        Command::Sign {
            csr,
            role,
            name,
            cn,
            sans,
            common,
        } => sign(folder, &csr, role, &name, cn, sans, common),
        Command::Renew(args) => renew(folder, args),
        Command::NeedsRenewal { file, within } => Ok(needs_renewal(&file, within)),
        Command::Token { action } => token(folder, action),
        Command::Acme { action } => acme(folder, action),
        Command::ExportP12 {
            name,
            legacy,
            force,
        } => export_p12(folder, &name, legacy, force),
        Command::Inspect { file, json } => inspect(&file, json),
        Command::Verify {
            cert,
            ca,
            purpose,
            host,
            crl,
        } => verify(&cert, &ca, purpose, host, crl, &folder.layout().ca_crl()),
    }
}
