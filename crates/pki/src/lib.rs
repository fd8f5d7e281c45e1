//! A private certificate authority in the three steps of the openssl CLI, with defaults that
//! every current TLS stack accepts.
//!
//! | openssl CLI                                   | this crate                          |
//! |-----------------------------------------------|-------------------------------------|
//! | `openssl genrsa -out X.key` / `genpkey`        | [`key::generate`]                   |
//! | `openssl req -new -key X.key -out X.req`       | [`request::build`]                  |
//! | `openssl x509 -req -signkey ca.key`            | [`Issuer::self_sign`]            |
//! | `openssl x509 -req -CA ca.crt -CAkey ca.key`   | [`Issuer::sign`]                 |
//! | `openssl ca -gencrl`                           | [`Issuer::crl`]                  |
//! | `openssl verify -purpose … -verify_hostname`   | [`verify::verify`]                  |
//!
//! Which extensions a certificate gets is decided by its [`Profile`] (CA, server, client).
//! [`Folder`] does the same on disk, in the seed's layout, atomically and never overwriting
//! without being told to, with its records in a database ([`store`]: SQLite by default,
//! PostgreSQL for several hosts). Names that become files pass one rule ([`name`]). The CA's key
//! signs behind [`SigningKey`]: a [`KeyFile`], or a [`TokenKey`] inside a PKCS#11 token
//! ([`pkcs11`], `pki init --key-store pkcs11:…`), which the folder records in
//! `ca/ca.key-store` ([`keys`]).
//!
//! ```
//! use pki::{key, request, Issuer, CertSpec, KeyAlgorithm, Profile, Subject, SubjectAltName, Validity};
//!
//! // The CA: genpkey, req -new, x509 -req -signkey.
//! let ca_key = key::generate(KeyAlgorithm::EcP256)?;
//! let ca_req = request::build(&ca_key, &Subject::new("https Project Certificate Authority", "Root"))?;
//! let ca = Issuer::self_sign(&ca_req, ca_key, Validity::days(3650))?;
//!
//! // A server: genpkey, req -new, x509 -req -CA -CAkey.
//! let key = key::generate(KeyAlgorithm::EcP256)?;
//! let req = request::build(&key, &Subject::new("https Project", "localhost"))?;
//! let cert = ca.sign(&req, &CertSpec::new(Profile::Server).names(SubjectAltName::localhost()))?;
//! assert!(cert.verify(&*ca.certificate().public_key()?)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The X.509 facts, re-exported so `pki::key::generate` and friends read as before.
pub use x509::{
    cert, constraints, distribution, files, identity, inspect, key, name, problem, profile,
    request, time, verify,
};

pub mod authority;
mod batch;
mod claim;
pub mod error;
pub mod folder;
pub mod hierarchy;
pub mod index;
pub mod init;
pub mod issuer;
pub mod keys;
pub mod leaf;
pub mod lifecycle;
mod mirror;
pub mod p12;
pub mod pkcs11;
pub mod records;
pub mod rotation;
pub mod signer;
pub mod store;

pub use authority::{Authority, Enrolled, Enrollment};
pub use error::{EabRefusal, Error, KeyStoreError, Result, TokenRefusal};
pub use folder::{Folder, Issued};
pub use init::{InitOptions, InitReport};
pub use issuer::Issuer;
pub use leaf::Leaf;
pub use p12::P12Encryption;
pub use pkcs11::{Pkcs11Uri, TokenKey};
pub use records::Records;
pub use signer::{KeyFile, KeyLocation, SigningKey};
pub use store::{DbUrl, Filter, Record};
pub use x509::{CertSpec, KeyAlgorithm, Name, Profile, Subject, SubjectAltName, Validity};
