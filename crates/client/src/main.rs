//! `client`: parses the config, calls the library, prints results and exits with the code of
//! the failure class.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use clap::Parser;
use client::config::{Command, Config};
use client::error::{Failure, FailureClass};
use client::{Client, Reply};

#[actix_web::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    match run(&config).await {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            report(&config, &Err(f.clone()));
            ExitCode::from(f.class.exit_code())
        }
    }
}

async fn run(config: &Config) -> Result<u8, Failure> {
    let tls = config.tls_options()?;
    let results = match &config.command {
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
            let c = Client::new(url.as_deref().unwrap_or(&config.url), tls.clone())?;
            let ep = c.endpoint().clone();
            let report =
                actix_web::rt::task::spawn_blocking(move || client::diagnose::diagnose(&ep, &tls))
                    .await
                    .map_err(|e| {
                        Failure::new(FailureClass::Other, "diagnose crashed", "", e.to_string())
                    })??;
            if config.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print!("{report}");
            }
            return Ok(report.handshake.failure.map_or(0, |f| f.class.exit_code()));
        }
    };
    let mut code = 0;
    for r in &results {
        report(config, r);
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
fn report(config: &Config, r: &Result<Reply, Failure>) {
    match (r, config.json) {
        (Ok(reply), true) => println!("{}", serde_json::to_string(reply).unwrap_or_default()),
        (Err(f), true) => println!(
            "{}",
            serde_json::json!({"error": f, "exit_code": f.class.exit_code()})
        ),
        (Ok(reply), false) => {
            println!("{} → {}", reply.request, reply.status);
            println!("{}", reply.body);
        }
        (Err(f), false) => eprintln!("Found Error in auth phase: {}", f.to_lines()),
    }
}
