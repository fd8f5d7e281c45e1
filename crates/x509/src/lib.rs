//! The X.509 facts every crate of the workspace shares, and nothing else: no SQL, no command
//! line, no CA state. `pki` (the CA library), `server`, `client`, `ca`, testkit and the fuzz
//! targets all stand on it; it stands on `common` and OpenSSL only.
//!
//! | module            | what                                                      | openssl CLI             |
//! |-------------------|-----------------------------------------------------------|-------------------------|
//! | [`key`]           | make, load and write private keys                         | `genrsa`, `genpkey`     |
//! | [`request`]       | a signing request for a subject                           | `req -new`              |
//! | [`profile`]       | which extensions a role gets ([`Profile`], [`CertSpec`])  | `-extfile`              |
//! | [`constraints`]   | what an issuing CA may sign for                           | `nameConstraints`       |
//! | [`distribution`]  | where the CRL is published                                | `crlDistributionPoints` |
//! | [`verify`]        | a chain for a purpose and a name, as a typed [`Problem`]  | `verify`                |
//! | [`inspect`]       | a short readable summary of any PKI file                  | `x509 -text`            |
//! | [`identity`]      | who a verified client certificate names                   |                         |
//! | [`cert`]          | serials, key ids, one-line names, PEM and base64 lines    | `x509 -serial`          |
//! | [`time`]          | Unix seconds from ASN.1, dates for people, jitter         |                         |
//! | [`san`]           | subjectAltName entries, parsed and written as openssl does |                         |
//! | [`name`]          | the rule every certificate name passes                    |                         |
//! | [`files`]         | atomic writes, 0600 keys, never overwriting by accident   |                         |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cert;
pub mod constraints;
pub mod distribution;
pub mod error;
pub mod files;
pub mod identity;
pub mod inspect;
pub mod key;
pub mod name;
pub mod problem;
pub mod profile;
pub mod request;
pub mod san;
pub mod time;
pub mod verify;

pub use error::{Error, Result};
pub use key::KeyAlgorithm;
pub use name::Name;
pub use problem::Problem;
pub use profile::{CertSpec, Profile, SubjectAltName, Validity};
pub use request::Subject;
