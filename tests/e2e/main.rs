//! End-to-end tests: certificates made by the library, judged by parsers and verifiers we did
//! not write (x509-parser, the openssl CLI, Python's ssl, rustls-webpki, Chromium).

mod browser;
mod front_door;
mod hostile;
mod own_app;
mod pages;
mod pki_interop;
mod pki_profiles;
mod pki_rotation;
mod pki_two_cas;
mod prometheus;
mod readme;
mod reasons;
mod server_interop;
mod server_tls;
mod support;
mod tls_client;
mod upstream;
