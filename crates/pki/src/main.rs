//! `pki`: the command line of the private CA. Parses arguments and calls the library, one
//! function per subcommand.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pki::files::Overwrite;
use pki::index::{Reason, Status};
use pki::name::Days;
use pki::verify::Purpose;
use pki::{DbUrl, Filter, Folder, InitOptions, KeyAlgorithm, Leaf, P12Encryption, SubjectAltName};

/// A private CA: the seed's `openssl genrsa / req / x509 -req` steps, with modern defaults.
#[derive(Parser)]
#[command(name = "pki", version)]
struct Cli {
    /// Folder of the PKI (ca/, server/, client/).
    #[arg(long, global = true, env = common::PKI_DIR_ENV, default_value = common::DEFAULT_PKI_DIR)]
    dir: PathBuf,
    /// Where the CA's records live: a SQLite file [default: DIR/ca/ca.db], or
    /// postgres://user@host/db for one CA on several hosts.
    #[arg(long, global = true, env = "PKI_DB", hide_env_values = true)]
    db: Option<String>,
    /// Seconds to wait for another command's lock before giving up (changing nothing).
    #[arg(long, global = true, env = "PKI_LOCK_TIMEOUT", default_value_t = 10)]
    lock_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the CA (if there is none) and whatever is missing of the default layout.
    Init(InitArgs),
    /// CA rotation without downtime, in phases: rotate (a new CA trusted beside the old),
    /// --switch (the new one issues), --retire (the old one leaves the bundle).
    Ca {
        #[command(subcommand)]
        action: CaAction,
    },
    /// The root key of a two-level PKI: take it off this host, or bring it back.
    Root {
        #[command(subcommand)]
        action: RootAction,
    },
    /// Issue a server or client certificate with a fresh key.
    Issue {
        #[command(subcommand)]
        kind: IssueKind,
    },
    /// The certificates the CA issued, with their status.
    List {
        /// Only this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only this role.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Only those still valid that expire within this time (30d, 12h, ...).
        #[arg(long, value_parser = humantime::parse_duration)]
        expiring_within: Option<Duration>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke certificates by serial, CN or name, and write a new CRL.
    Revoke {
        /// Serial (hex), CN, or name (`client`).
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        target: Option<String>,
        /// Revoke one per line of this file, in one transaction with one CRL.
        #[arg(long)]
        from: Option<PathBuf>,
        /// RFC 5280 reason.
        #[arg(long, value_enum)]
        reason: Option<Reason>,
    },
    /// Bring ca/index.txt, ca/ca.crl and ca/crlnumber up to date with the records (after the
    /// online CA issued, or another host changed them). Every command does this first.
    Export,
    /// Write a fresh CRL to ca/ca.crl.
    Crl {
        /// Only when the CRL on record is within --before of its nextUpdate (silent otherwise;
        /// for cron and systemd timers).
        #[arg(long)]
        if_due: bool,
        /// The margin of --if-due.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "7d")]
        before: Duration,
    },
    /// Sign a certificate request made elsewhere (`openssl req -new`, a device, a TPM): only
    /// the certificate is written, the key never travels.
    Sign {
        /// The request (PKCS#10, PEM or DER).
        #[arg(long)]
        csr: PathBuf,
        /// server or client.
        #[arg(value_enum)]
        role: RoleArg,
        /// Name of its file and record (A-Z a-z 0-9 . - _); the CN unless --cn.
        #[arg(long)]
        name: String,
        /// Subject CN, when it should differ from the name.
        #[arg(long)]
        cn: Option<String>,
        /// subjectAltNames (repeatable; a server needs at least one). The request's own
        /// extensions are never copied.
        #[arg(long = "san")]
        sans: Vec<SubjectAltName>,
        #[command(flatten)]
        common: IssueArgs,
    },
    /// Issue a successor for a certificate in force (same subject, names and key unless
    /// --rekey), written where the old one was; the old one stays valid unless --revoke-old.
    Renew(RenewArgs),
    /// Is this certificate due for renewal? Exit 0: due; 1: not due; 255: cannot tell
    /// (the codes of systemd's ExecCondition=, where 1 skips the unit and 255 fails it).
    NeedsRenewal {
        /// The certificate (PEM).
        file: PathBuf,
        /// Due within this time of its notAfter [default: in the last third of its lifetime].
        #[arg(long, value_parser = humantime::parse_duration)]
        within: Option<Duration>,
    },
    /// One-time enrollment tokens for the online CA (`ca`, EST simpleenroll).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Bundle a client's key and certificate as PKCS#12 (password from PKI_P12_PASSWORD or a prompt).
    ExportP12 {
        /// The client's name.
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

/// `pki renew`.
#[derive(clap::Args)]
struct RenewArgs {
    /// Its name or serial.
    #[arg(required_unless_present = "all")]
    target: Option<String>,
    /// Every certificate in force that the current CA did not issue (after a CA switch).
    #[arg(long, conflicts_with_all = ["target", "if_due", "rekey", "revoke_old"])]
    all: bool,
    /// A new key too.
    #[arg(long)]
    rekey: bool,
    /// Revoke the old certificate (reason superseded).
    #[arg(long)]
    revoke_old: bool,
    /// Only when due (in the last third of its lifetime, or within --within); silent and
    /// successful otherwise.
    #[arg(long)]
    if_due: bool,
    /// The margin of --if-due.
    #[arg(long, value_parser = humantime::parse_duration)]
    within: Option<Duration>,
    /// Validity in days of the successor.
    #[arg(long, allow_negative_numbers = true)]
    days: Option<Days>,
}

/// `pki init`.
#[derive(clap::Args)]
struct InitArgs {
    /// Key type of every key made.
    #[arg(long, value_enum, default_value_t)]
    key: KeyAlgorithm,
    /// Server names (repeatable; default DNS:localhost, IP:127.0.0.1, IP:::1).
    #[arg(long = "san")]
    sans: Vec<SubjectAltName>,
    /// Regenerate everything, the CA included (every certificate issued before becomes invalid).
    #[arg(long)]
    force: bool,
    /// Two levels: a root, and an issuing intermediate under it (the root key can then go
    /// offline with `pki root export`).
    #[arg(long)]
    intermediate: bool,
    /// The issuing CA may sign only for this DNS subtree (repeatable; `.internal` = below
    /// it, `localhost` = that name and below): critical nameConstraints.
    #[arg(long = "permit-dns")]
    permit_dns: Vec<String>,
    /// The issuing CA may sign only for this network (repeatable; 10.0.0.0/8, ::1).
    #[arg(long = "permit-ip")]
    permit_ip: Vec<String>,
    /// The root's CN [default: "https Project Root CA USER@HOST XXXXXXXX", unique per PKI].
    #[arg(long)]
    ca_name: Option<String>,
}

#[derive(Subcommand)]
enum CaAction {
    /// Start a rotation, or take it to its next phase.
    Rotate {
        /// Phase 2: the new CA issues from now on.
        #[arg(long, conflicts_with = "retire")]
        switch: bool,
        /// Phase 3: the old CA leaves the trust bundle.
        #[arg(long)]
        retire: bool,
        /// Retire even while certificates in force still chain to the old CA.
        #[arg(long, requires = "retire")]
        force: bool,
    },
    /// Which phase a rotation is in, each CA in force, and what is left to do.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RootAction {
    /// Copy the root key to FILE (0600, never over a file), then remove ca/ca.key.
    Export {
        /// Where the key goes (removable media, a vault).
        #[arg(long)]
        to: PathBuf,
    },
    /// Put the root key back as ca/ca.key (checked against ca/ca.crt).
    Import {
        /// The exported key.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Make a token that enrolls NAME once, within --ttl; it is printed this once.
    Create {
        /// The name it may enroll.
        #[arg(long)]
        name: String,
        /// The role it may enroll.
        #[arg(long, value_enum, default_value = "client")]
        role: RoleArg,
        /// How long it works.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        ttl: Duration,
    },
    /// The tokens made, and whether they were used (never the tokens themselves).
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusArg {
    Valid,
    Expired,
    Revoked,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Server,
    Client,
}

impl std::fmt::Display for RoleArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RoleArg::Server => "server",
            RoleArg::Client => "client",
        })
    }
}

#[derive(Subcommand)]
enum IssueKind {
    /// A TLS server certificate (EKU serverAuth).
    Server {
        /// Name of its files under server/ (A-Z a-z 0-9 . - _).
        #[arg(long, default_value = common::DEFAULT_SERVER_NAME)]
        name: String,
        /// Host names and IPs (repeatable; default localhost, 127.0.0.1, ::1).
        #[arg(long = "san")]
        sans: Vec<SubjectAltName>,
        #[command(flatten)]
        common: IssueArgs,
    },
    /// TLS client (device) certificates (EKU clientAuth): one, or a batch.
    Client {
        /// Device name: the CN and the name of its files under client/ (A-Z a-z 0-9 . - _).
        #[arg(long, required_unless_present_any = ["count", "names"], conflicts_with_all = ["count", "names"])]
        name: Option<String>,
        /// Issue this many, named PREFIX1 … PREFIXN (with --prefix).
        #[arg(long, requires = "prefix", conflicts_with = "names")]
        count: Option<usize>,
        /// Name prefix of --count.
        #[arg(long)]
        prefix: Option<String>,
        /// Issue one per line of this file (blank lines and # comments skipped).
        #[arg(long)]
        names: Option<PathBuf>,
        /// Subject CN, when it should differ from the name (printable text, up to 64 characters).
        #[arg(long, conflicts_with_all = ["count", "names"])]
        cn: Option<String>,
        /// Optional DNS/URI/email names (repeatable).
        #[arg(long = "san")]
        sans: Vec<SubjectAltName>,
        #[command(flatten)]
        common: IssueArgs,
    },
}

#[derive(clap::Args)]
struct IssueArgs {
    /// Validity in days (at least 1; cut to the CA's own expiry, which is then said).
    #[arg(long, allow_negative_numbers = true)]
    days: Option<Days>,
    /// Key type.
    #[arg(long, value_enum, default_value_t)]
    key: KeyAlgorithm,
    /// Subject O= (default: the seed's name for the role).
    #[arg(long)]
    org: Option<String>,
    /// Replace existing files and the certificate recorded under the same name.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
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
        } => verify(&cert, &ca, purpose, host, crl),
    }
}

fn root(folder: &Folder, action: RootAction) -> Result<ExitCode> {
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

fn overwrite(force: bool) -> Overwrite {
    if force {
        Overwrite::Replace
    } else {
        Overwrite::Never
    }
}

/// `user@host` for the CA's name, as mkcert names its CA.
fn who_am_i() -> Option<String> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(format!("{user}@{}", host.trim()))
}

fn constraints(dns: Vec<String>, ip: &[String]) -> Result<pki::constraints::NameConstraints> {
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

fn init(folder: &Folder, args: InitArgs) -> Result<ExitCode> {
    let who = who_am_i();
    let mut opts = InitOptions {
        key: args.key,
        force: args.force,
        intermediate: args.intermediate,
        p12_password: std::env::var(pki::folder::P12_PASSWORD_ENV).ok(),
        ca_subject: pki::init::ca_subject(who.as_deref()),
        intermediate_subject: pki::init::default_intermediate_subject(who.as_deref()),
        constraints: constraints(args.permit_dns, &args.permit_ip)?,
        ..InitOptions::default()
    };
    if let Some(cn) = args.ca_name {
        pki::name::check_common_name(&cn)?;
        opts.ca_subject.common_name = cn;
    }
    if !args.sans.is_empty() {
        opts.server_names = args.sans;
    }
    let opts = &opts;
    let report = folder.init(opts).context("pki init")?;
    for p in &report.removed {
        println!("removed {} (left by an interrupted run)", p.display());
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

fn issue(folder: &Folder, kind: IssueKind) -> Result<ExitCode> {
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
fn issue_batch(folder: &Folder, ca: &pki::Issuer, leaves: &[Leaf]) -> Result<usize> {
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
fn client_names(
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
fn lines_of(file: &Path) -> Result<Vec<String>> {
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

fn list(
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
            RoleArg::Server => "server".into(),
            RoleArg::Client => "client".into(),
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
                    "serial": e.serial, "subject": e.subject, "name": e.name, "role": e.role,
                    "file": e.file, "sans": e.sans, "not_after": e.not_after,
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

fn crl(folder: &Folder, if_due: bool, before: Duration) -> Result<ExitCode> {
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

fn sign(
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
        token: None,
        renews: None,
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

fn renew(folder: &Folder, args: RenewArgs) -> Result<ExitCode> {
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
fn needs_renewal(file: &Path, within: Option<Duration>) -> ExitCode {
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

fn ca_command(folder: &Folder, action: CaAction) -> Result<ExitCode> {
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
                    "a new CA is in ca/next/ and ca/ca.crt trusts both: reload servers and clients,                      then `pki ca rotate --switch`"
                );
            }
            let status = folder.rotation_status()?;
            println!("next: {}", status.next_step);
        }
        CaAction::Status { json } => {
            let status = folder.rotation_status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!("phase: {:?}", status.phase);
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
                }
                println!("next: {}", status.next_step);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn token(folder: &Folder, action: TokenAction) -> Result<ExitCode> {
    match action {
        TokenAction::Create { name, role, ttl } => {
            let profile = match role {
                RoleArg::Server => pki::Profile::Server,
                RoleArg::Client => pki::Profile::Client,
            };
            let token = folder.create_token(profile, &name, ttl)?;
            eprintln!(
                "pki: token for {role} {name}, valid {}, once (shown only now):",
                humantime::format_duration(ttl)
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

fn revoke(
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

fn export_p12(folder: &Folder, name: &str, legacy: bool, force: bool) -> Result<ExitCode> {
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

fn inspect(file: &Path, json: bool) -> Result<ExitCode> {
    let pass = std::env::var(pki::folder::P12_PASSWORD_ENV).ok();
    let summary = pki::inspect::inspect_file(file, pass.as_deref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
    } else {
        print!("{}: {summary}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(
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
