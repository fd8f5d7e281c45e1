//! The command line as clap parses it: what was typed, before the library is called.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use pki::index::Reason;
use pki::name::Days;
use pki::verify::Purpose;
use pki::{KeyAlgorithm, SubjectAltName};

/// A private CA: the seed's `openssl genrsa / req / x509 -req` steps, with modern defaults.
#[derive(Parser)]
#[command(name = "pki", version)]
pub(crate) struct Cli {
    /// Folder of the PKI (ca/, server/, client/).
    #[arg(long, global = true, env = common::PKI_DIR_ENV, default_value = common::DEFAULT_PKI_DIR)]
    pub(crate) dir: PathBuf,
    /// Where the CA's records live: a SQLite file [default: DIR/ca/ca.db], or
    /// postgres://user@host/db for one CA on several hosts.
    #[arg(long, global = true, env = "PKI_DB", hide_env_values = true)]
    pub(crate) db: Option<String>,
    /// Seconds to wait for another command's lock before giving up (changing nothing).
    #[arg(long, global = true, env = "PKI_LOCK_TIMEOUT", default_value_t = 10)]
    pub(crate) lock_timeout: u64,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// ACME (RFC 8555) for web servers and proxies: external account bindings.
    Acme {
        #[command(subcommand)]
        action: AcmeAction,
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
pub(crate) struct RenewArgs {
    /// Its name or serial.
    #[arg(required_unless_present = "all")]
    pub(crate) target: Option<String>,
    /// Every certificate in force that the current CA did not issue (after a CA switch).
    #[arg(long, conflicts_with_all = ["target", "if_due", "rekey", "revoke_old"])]
    pub(crate) all: bool,
    /// A new key too.
    #[arg(long)]
    pub(crate) rekey: bool,
    /// Revoke the old certificate (reason superseded).
    #[arg(long)]
    pub(crate) revoke_old: bool,
    /// Only when due (in the last third of its lifetime, or within --within); silent and
    /// successful otherwise.
    #[arg(long)]
    pub(crate) if_due: bool,
    /// The margin of --if-due.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) within: Option<Duration>,
    /// Validity in days of the successor.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) days: Option<Days>,
}

/// `pki init`.
#[derive(clap::Args)]
pub(crate) struct InitArgs {
    /// Key type of every key made.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) key: KeyAlgorithm,
    /// Server names (repeatable; default DNS:localhost, IP:127.0.0.1, IP:::1).
    #[arg(long = "san")]
    pub(crate) sans: Vec<SubjectAltName>,
    /// Regenerate everything, the CA included (every certificate issued before becomes invalid).
    #[arg(long)]
    pub(crate) force: bool,
    /// Two levels: a root, and an issuing intermediate under it (the root key can then go
    /// offline with `pki root export`).
    #[arg(long)]
    pub(crate) intermediate: bool,
    /// The issuing CA may sign only for this DNS subtree (repeatable; `.internal` = below
    /// it, `localhost` = that name and below): critical nameConstraints.
    #[arg(long = "permit-dns")]
    pub(crate) permit_dns: Vec<String>,
    /// The issuing CA may sign only for this network (repeatable; 10.0.0.0/8, ::1).
    #[arg(long = "permit-ip")]
    pub(crate) permit_ip: Vec<String>,
    /// The root's CN [default: "https Project Root CA USER@HOST XXXXXXXX", unique per PKI].
    #[arg(long)]
    pub(crate) ca_name: Option<String>,
    /// Where ca/ca.crl is published (http:// or https://): certificates issued from now on
    /// name it as their CRL distribution point. `pki ca crl-url` changes it later.
    #[arg(long)]
    pub(crate) crl_url: Option<String>,
    /// Make the CA keys inside a PKCS#11 token (RFC 7512 URI), not in files:
    /// pkcs11:token=LABEL;object=NAME?module-path=/path/module.so&pin-source=file:/path/pin.
    /// The PIN comes from pin-source or PKI_PKCS11_PIN, never from the command line. With
    /// --intermediate, the root's key is OBJECT-root.
    #[arg(long, value_name = "URI")]
    pub(crate) key_store: Option<pki::Pkcs11Uri>,
}

#[derive(Subcommand)]
pub(crate) enum CaAction {
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
    /// The URL certificates issued from now on name as their CRL distribution point (where
    /// ca/ca.crl is published); without an argument, the one set now.
    CrlUrl {
        /// http:// or https:// URL of the CRL.
        #[arg(conflicts_with = "none")]
        url: Option<String>,
        /// Name none from now on.
        #[arg(long)]
        none: bool,
    },
    /// Which phase a rotation is in, each CA in force, and what is left to do.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum RootAction {
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
pub(crate) enum TokenAction {
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

#[derive(Subcommand)]
pub(crate) enum AcmeAction {
    /// External account bindings: what lets an ACME client (certbot, Caddy, lego) register.
    Eab {
        #[command(subcommand)]
        action: EabAction,
    },
}

#[derive(Subcommand)]
pub(crate) enum EabAction {
    /// Make a binding for one ACME account; prints its key id and HMAC key this once (the last
    /// line is `KID HMAC`, for scripts).
    Create {
        /// Who it is for (a host, a team): shown by `pki acme eab list`.
        #[arg(long)]
        name: String,
        /// DNS names its account may order: `.internal` (anything below), `web.example` (that
        /// name and below). Repeatable. Without --allow-*: any name the CA may sign.
        #[arg(long = "allow-dns", value_name = "DOMAIN")]
        allow_dns: Vec<String>,
        /// IP networks its account may order (`10.0.0.0/8`). Repeatable.
        #[arg(long = "allow-ip", value_name = "NET")]
        allow_ip: Vec<String>,
        /// Let its account order the mtls-client profile (clientAuth), besides tls-server.
        #[arg(long)]
        mtls_client: bool,
        /// Issue without a challenge for the names listed by --allow-* (hosts the CA cannot
        /// reach); needs at least one --allow-dns or --allow-ip.
        #[arg(long)]
        pre_authorized: bool,
        /// How long it may take to bind an account.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "7d")]
        ttl: Duration,
    },
    /// The bindings, and the accounts they bound (never their keys).
    List,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum StatusArg {
    Valid,
    Expired,
    Revoked,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
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
pub(crate) enum IssueKind {
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
pub(crate) struct IssueArgs {
    /// Validity in days (at least 1; cut to the CA's own expiry, which is then said).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) days: Option<Days>,
    /// Key type.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) key: KeyAlgorithm,
    /// Subject O= (default: the seed's name for the role).
    #[arg(long)]
    pub(crate) org: Option<String>,
    /// Replace existing files and the certificate recorded under the same name.
    #[arg(long)]
    pub(crate) force: bool,
}
