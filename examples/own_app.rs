//! An app of your own behind the server's hardened listener: a visitor book that knows who
//! signs it from the client certificate, with the same TLS, limits and guards as the seed's
//! routes.
//!
//! Run with: `make certs && cargo run --example own_app`
//!
//! The handlers take the verified client as an argument: `ClientIdentity` (401 without a
//! certificate) or `Option<ClientIdentity>` (anonymous visitors too). They never see OpenSSL.

use std::sync::Mutex;

use actix_web::{web, HttpResponse};
use client::tls::{Identity, TlsOptions};
use common::Layout;
use server::{ClientAuth, ClientIdentity, Config, Server};

/// Who visited, in order: a CN, or "anonymous".
type Book = web::Data<Mutex<Vec<String>>>;

/// `GET /hello`: for certificate holders only.
async fn hello(client: ClientIdentity) -> String {
    format!(
        "hello {}, your certificate {} is good until {}",
        client.common_name.as_deref().unwrap_or(&client.subject),
        client.serial,
        client.not_after
    )
}

/// `GET /sign`: anyone may sign the book; certificate holders sign with their name.
async fn sign(client: Option<ClientIdentity>, book: Book) -> HttpResponse {
    let name = client
        .and_then(|c| c.common_name.clone())
        .unwrap_or_else(|| "anonymous".into());
    let mut book = book.lock().unwrap_or_else(|e| e.into_inner());
    book.push(name);
    HttpResponse::Ok().json(&*book)
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let layout = Layout::new(std::env::var("PKI_DIR").unwrap_or_else(|_| "certs".into()));

    // Optional client certificates: verified when sent, anonymous visitors welcome.
    let book: Book = web::Data::new(Mutex::new(Vec::new()));
    let server = Server::new(Config::for_pki(layout.root(), ClientAuth::Optional))
        .app(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(book.clone())
                .route("/hello", web::get().to(hello))
                .route("/sign", web::get().to(sign));
        })
        .spawn()?;
    let url = format!("https://127.0.0.1:{}", server.addr.port());

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
    let device = client::Client::new(&url, tls.clone())?;
    let stranger = client::Client::new(
        &url,
        TlsOptions {
            identity: Identity::None,
            ..tls
        },
    )?;
    for (who, c) in [("device", &device), ("stranger", &stranger)] {
        for path in ["/hello", "/sign"] {
            let reply = c.get(path).await?;
            println!(
                "{who}: {} → {}\n  {}",
                reply.request, reply.status, reply.body
            );
        }
    }
    Ok(())
}
