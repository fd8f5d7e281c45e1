//! The seed's first section, one-way TLS: the server proves who it is, the client stays anonymous.
//!
//! Run with: `make certs && cargo run --example one_way`
//!
//! The seed's client switched hostname checking off; this one verifies the server's chain
//! against `certs/ca/ca.crt` and its name (127.0.0.1 is in the certificate's subjectAltName).

use client::tls::{Identity, TlsOptions};
use common::Layout;
use server::{ClientAuth, Config};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let layout = Layout::new(std::env::var("PKI_DIR").unwrap_or_else(|_| "certs".into()));

    // The server: one-way TLS on an ephemeral loopback port, in a background thread.
    let server = server::Background::spawn(Config::for_pki(layout.root(), ClientAuth::None))?;

    // The client: trusts our CA only, verifies the name, sends no certificate.
    let tls = TlsOptions {
        ca: layout.ca_cert(),
        identity: Identity::None,
        server_name: None,
        timeout: client::DEFAULT_TIMEOUT,
        crl_check: client::tls::CrlCheck::Soft,
    };
    let client = client::Client::new(&format!("https://127.0.0.1:{}", server.addr.port()), tls)?;
    let reply = client.get("/login").await?;
    println!("{} → {}\n{}", reply.request, reply.status, reply.body);
    Ok(())
}
