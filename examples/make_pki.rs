//! The seed's certificate script, step by step, with the library.
//!
//! Run with: `cargo run --example make_pki`
//!
//! `openssl genrsa` → [`pki::key::generate`], `openssl req -new` → [`pki::request::build`],
//! `openssl x509 -req -signkey` → [`pki::Issuer::self_sign`],
//! `openssl x509 -req -CA -CAkey` → [`pki::Issuer::sign`]. `pki init` does the same and writes
//! the files atomically; this example only prints them.

use pki::{
    key, request, CertSpec, Issuer, KeyAlgorithm, Profile, Subject, SubjectAltName, Validity,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The CA: genrsa, req, x509 -req -signkey.
    let ca_key = key::generate(KeyAlgorithm::EcP256)?;
    let ca_req = request::build(&ca_key, &pki::init::default_ca_subject())?;
    let ca = Issuer::self_sign(&ca_req, ca_key, Validity::days(3650))?;

    // The server and the device: genrsa, req, x509 -req -CA -CAkey, with a profile.
    let server_key = key::generate(KeyAlgorithm::EcP256)?;
    let server_req = request::build(&server_key, &Subject::new("https Project", "localhost"))?;
    let server = ca.sign(
        &server_req,
        &CertSpec::new(Profile::Server).names(SubjectAltName::localhost()),
    )?;

    let device_key = key::generate(KeyAlgorithm::EcP256)?;
    let device_req = request::build(
        &device_key,
        &Subject::new("https Project Device Certificate", "client"),
    )?;
    let device = ca.sign(&device_req, &CertSpec::new(Profile::Client))?;

    for (name, cert) in [
        ("ca", ca.certificate()),
        ("server", &server),
        ("client", &device),
    ] {
        let summary = pki::inspect::inspect(&cert.to_pem()?, None)?;
        println!("== {name}.crt\n{summary}");
    }
    Ok(())
}
