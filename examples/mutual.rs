//! The seed's second section, mutual TLS, as it meant to be: the server demands a client
//! certificate from our CA, knows who the client is, and checks the seed's login.
//!
//! Run with: `make certs && cargo run --example mutual`

use client::tls::{Identity, TlsOptions};
use common::Layout;
use server::{ClientAuth, Config};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let layout = Layout::new(std::env::var("PKI_DIR").unwrap_or_else(|_| "certs".into()));

    // The server: a client certificate is required (the seed's "two-way" server never asked).
    let server = server::Background::spawn(Config::for_pki(layout.root(), ClientAuth::Required))?;
    let url = format!("https://127.0.0.1:{}", server.addr.port());

    // The client presents the device certificate `make certs` wrote.
    let tls = TlsOptions {
        ca: layout.ca_cert(),
        identity: Identity::Pem {
            cert: layout.client_cert(),
            key: layout.client_key(),
        },
        server_name: None,
        timeout: client::DEFAULT_TIMEOUT,
        crl_check: client::tls::CrlCheck::Soft,
    };
    let client = client::Client::new(&url, tls.clone())?;
    for reply in client::seed_sequence(&client).await {
        let reply = reply?;
        println!("{} → {}\n{}", reply.request, reply.status, reply.body);
    }
    println!("whoami → {}", client.get("/whoami").await?.body);

    // Without the certificate the handshake is refused, and the client says why.
    let anonymous = client::Client::new(
        &url,
        TlsOptions {
            identity: Identity::None,
            ..tls
        },
    )?;
    if let Err(failure) = anonymous.get("/login").await {
        println!("without a client certificate: {failure}");
    }
    Ok(())
}
