//! `client`: parses flags and `CLIENT_*` variables into the library's plain `Config`, calls the
//! library, prints results and exits with the code of the failure class.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use client::config::{ClientCert, Config, P12_PASSWORD_ENV};
use client::error::{Failure, FailureClass};
use client::est::{self, schedule::Step};
use client::tls::{CrlCheck, Identity, Password, TlsOptions};
use client::{Client, Reply};
use x509::KeyAlgorithm;

/// HTTPS client for a private CA: verifies everything, explains every failure.
///
/// Exit codes: 0 ok; 1 the server answered with an error (HTTP >= 400, or login false);
/// 2 local files or usage; 3 our certificate expired (enroll again); 10 nothing listening; 11 timeout; 12 plain HTTP on the port;
/// 13 server certificate from an unknown CA; 14 name not in the server certificate;
/// 15 server certificate expired or not yet valid; 16 the server requires a client certificate;
/// 17 the server refused our client certificate; 18 no common TLS version or cipher; 19 other.
#[derive(Debug, Parser)]
#[command(name = "client", version, verbatim_doc_comment)]
struct Args {
    /// Server base URL.
    #[arg(long, global = true, env = "CLIENT_URL", default_value = client::config::DEFAULT_URL)]
    url: String,

    /// Folder of the PKI; --ca/--cert/--key default to its layout.
    #[arg(long, global = true, env = "CLIENT_PKI_DIR", default_value = common::DEFAULT_PKI_DIR)]
    pki_dir: PathBuf,

    /// CA the server's certificate must chain to [default: PKI/ca/ca.crt].
    #[arg(long, global = true, env = "CLIENT_CA")]
    ca: Option<PathBuf>,

    /// Client certificate (PEM) [default: PKI/client/client.crt when it exists].
    #[arg(long, global = true, env = "CLIENT_CERT", requires = "key")]
    cert: Option<PathBuf>,

    /// Client private key (PEM) [default: PKI/client/client.key when it exists].
    #[arg(long, global = true, env = "CLIENT_KEY", requires = "cert")]
    key: Option<PathBuf>,

    /// Client certificate and key as PKCS#12 (password from CLIENT_P12_PASSWORD, the
    /// .p12.pass file next to it, or a prompt).
    #[arg(long, global = true, env = "CLIENT_P12", conflicts_with_all = ["cert", "key"])]
    p12: Option<PathBuf>,

    /// Send no client certificate (one-way TLS).
    #[arg(long, global = true)]
    no_client_cert: bool,

    /// Verify the server as this name instead of the URL's host (still connecting to the URL's host).
    #[arg(long, global = true, env = "CLIENT_SERVER_NAME")]
    server_name: Option<String>,

    /// Seconds for connecting, the handshake, and each request.
    #[arg(long, global = true, env = "CLIENT_TIMEOUT", default_value_t = 10.0)]
    timeout: f64,

    /// One JSON object per result, for scripts.
    #[arg(long, global = true)]
    json: bool,

    /// The server's certificate against the CRL it names: soft (a CRL that cannot be had is a
    /// warning, as browsers do), hard (it is a refusal), off.
    #[arg(long, global = true, env = "CLIENT_CRL_CHECK", value_enum, default_value_t = CrlCheckArg::Soft)]
    crl_check: CrlCheckArg,

    /// What to do [default: the seed's sequence, GET /login then POST /login1].
    #[command(subcommand)]
    command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// GET a path (or a full https:// URL).
    Get {
        /// `/path` on --url, or `https://host:port/path`.
        target: String,
    },
    /// POST /login1 with a username and a password.
    Login {
        /// The user.
        #[arg(long, default_value = "name")]
        username: String,
        /// Read the password from this environment variable.
        #[arg(long)]
        password_env: Option<String>,
        /// The password itself (visible to other users in `ps` and in shell history: avoid).
        #[arg(long)]
        password: Option<String>,
    },
    /// GET /whoami: who the server thinks we are.
    Whoami,
    /// Connect and report protocol, cipher, chain, names, client-certificate policy and local files.
    Diagnose {
        /// The server [default: --url].
        url: Option<String>,
    },
    /// Enroll with an EST CA (RFC 7030): make a key here (0600, never sent), send only a
    /// request, and write the certificate to --cert/--key [default: PKI/client/client.*].
    Enroll {
        /// The CA: https://host:port (or its EST path, https://host:port/.well-known/est).
        #[arg(long, env = "CLIENT_EST_URL", value_name = "URL")]
        est: String,
        /// The one-time enrollment token (`pki token create --name NAME`).
        #[arg(long, env = "CLIENT_EST_TOKEN", hide_env_values = true)]
        token: String,
        /// The device name the token was made for (the certificate's CN).
        #[arg(long)]
        name: String,
        /// Key type.
        #[arg(long, value_enum, default_value_t)]
        key_type: KeyAlgorithm,
        /// Replace a pair that exists.
        #[arg(long)]
        force: bool,
    },
    /// Renew --cert/--key through the EST CA when 2/3 of its lifetime has passed: a new key,
    /// the pair replaced as one, then --exec.
    Renew {
        /// The CA: https://host:port (or its EST path).
        #[arg(long, env = "CLIENT_EST_URL", value_name = "URL")]
        est: String,
        /// Keep running: renew whenever due, retry while the CA is down; stop (non-zero) when
        /// the certificate expired or the CA refuses it for good.
        #[arg(long)]
        daemon: bool,
        /// Run this with `sh -c` after each renewal (EST_CERT, EST_KEY, EST_SERIAL set), e.g.
        /// `systemctl reload myapp`.
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// Renew now, due or not.
        #[arg(long, conflicts_with = "daemon")]
        force: bool,
        /// Then have the CA revoke the old certificate as superseded (after --exec), with
        /// the new certificate as the only credential.
        #[arg(long)]
        revoke_old: bool,
        /// Key type of the new key [default: the old key's].
        #[arg(long, value_enum)]
        key_type: Option<KeyAlgorithm>,
        /// First wait after a failed renewal (doubling).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        retry_min: Duration,
        /// Longest wait after failed renewals.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
        retry_max: Duration,
    },
}

impl Args {
    /// Where `enroll` and `renew` find the CA and keep the pair: --cert/--key, else the PKI
    /// folder's client pair.
    fn est_options(
        &self,
        url: &str,
        key_type: Option<KeyAlgorithm>,
    ) -> Result<est::EstOptions, est::EstError> {
        if self.p12.is_some() {
            return Err(est::EstError::Local(
                "EST keeps a PEM certificate and key: give --cert and --key, not --p12".into(),
            ));
        }
        let layout = common::Layout::new(&self.pki_dir);
        let (cert, key) = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => (layout.client_cert(), layout.client_key()),
        };
        Ok(est::EstOptions {
            url: url.to_owned(),
            ca: self.ca.clone().unwrap_or_else(|| layout.ca_cert()),
            pair: est::pair::Pair::new(cert, key).map_err(est::EstError::Local)?,
            server_name: self.server_name.clone(),
            timeout: Duration::from_secs_f64(self.timeout.clamp(0.1, 3600.0)),
            key_type,
        })
    }

    /// The library's config: what was typed, resolved.
    fn config(&self) -> Config {
        let client_cert = if self.no_client_cert {
            ClientCert::Given(Identity::None)
        } else if let Some(path) = &self.p12 {
            match std::env::var(P12_PASSWORD_ENV) {
                Ok(password) => ClientCert::Given(Identity::Pkcs12 {
                    path: path.clone(),
                    password: Password::new(password),
                }),
                Err(_) => ClientCert::Pkcs12(path.clone()),
            }
        } else if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            ClientCert::Given(Identity::Pem {
                cert: cert.clone(),
                key: key.clone(),
            })
        } else {
            ClientCert::FromPki
        };
        Config {
            url: self.url.clone(),
            pki_dir: self.pki_dir.clone(),
            ca: self.ca.clone(),
            client_cert,
            server_name: self.server_name.clone(),
            timeout: Duration::from_secs_f64(self.timeout.clamp(0.1, 3600.0)),
            crl_check: match self.crl_check {
                CrlCheckArg::Soft => CrlCheck::Soft,
                CrlCheckArg::Hard => CrlCheck::Hard,
                CrlCheckArg::Off => CrlCheck::Off,
            },
        }
    }
}

/// `--crl-check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CrlCheckArg {
    Soft,
    Hard,
    Off,
}

#[actix_web::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            report(args.json, &Err(f.clone()));
            ExitCode::from(f.class.exit_code())
        }
    }
}

async fn run(args: &Args) -> Result<u8, Failure> {
    if let Some(cmd @ (Command::Enroll { .. } | Command::Renew { .. })) = &args.command {
        return Ok(est(args, cmd).await);
    }
    let config = args.config();
    let tls = config.tls_options()?;
    let results = match &args.command {
        None => client::seed_sequence(&Client::new(&config.url, tls)?).await,
        Some(Command::Get { target }) => {
            let (base, path) = split_target(&config.url, target);
            vec![Client::new(&base, tls)?.get(&path).await]
        }
        Some(Command::Whoami) => vec![Client::new(&config.url, tls)?.get("/whoami").await],
        Some(Command::Login {
            username,
            password_env,
            password,
        }) => {
            let password = read_password(password_env.as_deref(), password.as_deref())?;
            let c = Client::new(&config.url, tls)?;
            vec![
                c.post_form(
                    "/login1",
                    &[("username", username), ("password", &password)],
                )
                .await,
            ]
        }
        Some(Command::Diagnose { url }) => {
            let url = url.as_deref().unwrap_or(&config.url);
            return diagnose(url, tls, args.json).await;
        }
        Some(Command::Enroll { .. } | Command::Renew { .. }) => return Ok(2),
    };
    let mut code = 0;
    for r in &results {
        report(args.json, r);
        let this = match r {
            Err(f) => f.class.exit_code(),
            Ok(reply) if reply.status >= 400 => 1,
            Ok(reply)
                if reply.request.starts_with("POST /login1") && reply.body.trim() == "false" =>
            {
                1
            }
            Ok(_) => 0,
        };
        if code == 0 {
            code = this;
        }
    }
    Ok(code)
}

/// `enroll` and `renew`: the exit code (their messages are printed here).
async fn est(args: &Args, cmd: &Command) -> u8 {
    let outcome = match cmd {
        Command::Enroll {
            est,
            token,
            name,
            key_type,
            force,
        } => match args.est_options(est, Some(*key_type)) {
            Ok(o) => est::enroll(&o, name, &est::Token(token.clone()), *force)
                .await
                .map(|e| (o, Some(e))),
            Err(e) => Err(e),
        },
        Command::Renew {
            est,
            daemon,
            exec,
            force,
            revoke_old,
            key_type,
            retry_min,
            retry_max,
        } => match args.est_options(est, *key_type) {
            Ok(o) if *daemon => {
                let d = est::DaemonOptions {
                    exec: exec.clone(),
                    retry_min: *retry_min,
                    retry_max: *retry_max,
                    revoke_old: *revoke_old,
                };
                Err(est::daemon(&o, &d).await)
            }
            Ok(o) => renew_once(&o, exec.as_deref(), *force, *revoke_old)
                .await
                .map(|e| (o, e)),
            Err(e) => Err(e),
        },
        _ => return 2,
    };
    match outcome {
        Ok((o, Some(e))) => {
            let superseded = e.superseded.as_ref().map(|old| {
                serde_json::json!({
                    "serial": old.serial,
                    "not_after": x509::time::date(old.not_after),
                    "revoked": old.fate == est::Fate::Revoked,
                    "revoke_error": match &old.fate {
                        est::Fate::NotRevoked(why) => Some(why),
                        _ => None,
                    },
                })
            });
            let shown = serde_json::json!({
                "serial": e.serial, "subject": e.subject,
                "not_after": x509::time::date(e.window.not_after),
                "cert": o.pair.cert, "key": o.pair.key,
                "superseded": superseded,
            });
            if args.json {
                println!("{shown}");
            } else {
                println!(
                    "{}: serial {}, valid until {}\n  certificate {}\n  key         {}",
                    e.subject,
                    e.serial,
                    x509::time::date(e.window.not_after),
                    o.pair.cert.display(),
                    o.pair.key.display()
                );
                if let Some(old) = &e.superseded {
                    println!("  {}", old.plain());
                }
            }
            0
        }
        Ok((_, None)) => 0,
        Err(e) => {
            est::say(&format!("error: {e}"));
            e.exit_code()
        }
    }
}

/// `renew` without `--daemon`: renews when due (or forced), else says when it will be.
async fn renew_once(
    o: &est::EstOptions,
    exec: Option<&str>,
    force: bool,
    revoke_old: bool,
) -> Result<Option<est::Enrolled>, est::EstError> {
    match est::step_now(o)? {
        (Step::Expired, w, _) => Err(est::EstError::Expired {
            cert: o.pair.cert.display().to_string(),
            when: x509::time::date(w.not_after),
        }),
        (Step::Wait(_), w, due) if !force => {
            println!(
                "{} is not due: valid until {}, renews after {}",
                o.pair.cert.display(),
                x509::time::date(w.not_after),
                x509::time::date(due)
            );
            Ok(None)
        }
        _ => {
            let mut new = est::renew(o).await?;
            est::run_hook(exec, o, &new).await;
            est::end_superseded(o, &mut new, revoke_old).await;
            Ok(Some(new))
        }
    }
}

/// `diagnose URL`: the report, and the exit code of its handshake's failure class.
async fn diagnose(url: &str, tls: TlsOptions, json: bool) -> Result<u8, Failure> {
    let ep = Client::new(url, tls.clone())?.endpoint().clone();
    let report = actix_web::rt::task::spawn_blocking(move || client::diagnose::diagnose(&ep, &tls))
        .await
        .map_err(|e| Failure::new(FailureClass::Other, "diagnose crashed", "", e.to_string()))??;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report.json()).unwrap_or_default()
        );
    } else {
        print!("{report}");
    }
    Ok(report.handshake.failure.map_or(0, |f| f.class.exit_code()))
}

/// `get https://host:port/path` uses that server; `get /path` the --url one.
fn split_target(url: &str, target: &str) -> (String, String) {
    if let Some(rest) = target.strip_prefix("https://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        (format!("https://{authority}"), format!("/{path}"))
    } else {
        (url.to_owned(), target.to_owned())
    }
}

fn read_password(env: Option<&str>, given: Option<&str>) -> Result<String, Failure> {
    if let Some(p) = given {
        eprintln!("client: warning: --password is visible to other users (ps) and kept in shell history; prefer --password-env or stdin");
        return Ok(p.to_owned());
    }
    if let Some(var) = env {
        return std::env::var(var).map_err(|_| {
            Failure::local(
                format!("environment variable {var} is not set"),
                "export it, or type the password at the prompt",
            )
        });
    }
    if std::io::stdin().is_terminal() {
        rpassword::prompt_password("password: ").map_err(|e| {
            Failure::local(
                format!("cannot read the password ({e})"),
                "use --password-env VAR",
            )
        })
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| {
            Failure::local(format!("cannot read the password from stdin ({e})"), "")
        })?;
        Ok(s.trim_end_matches(['\n', '\r']).to_owned())
    }
}

/// One result, as the seed printed it (status, then body), or as one JSON object.
fn report(json: bool, r: &Result<Reply, Failure>) {
    match (r, json) {
        (Ok(reply), true) => println!("{}", serde_json::to_string(reply).unwrap_or_default()),
        (Err(f), true) => println!(
            "{}",
            serde_json::json!({"error": f, "exit_code": f.class.exit_code()})
        ),
        (Ok(reply), false) => {
            println!("{} → {}", reply.request, reply.status);
            println!("{}", reply.body);
        }
        // The seed's words for a failed exchange; a local mistake is not one.
        (Err(f), false) if f.class == FailureClass::LocalFiles => {
            eprintln!("error: {}", f.to_lines())
        }
        (Err(f), false) => eprintln!("Found Error in auth phase: {}", f.to_lines()),
    }
}
