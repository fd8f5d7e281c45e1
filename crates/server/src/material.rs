//! What a TLS context is built from, in memory: the server's chain and key, the CAs it
//! trusts for clients, and the CRLs (each signature checked once, here). Loaded from the files
//! at start and on a reload; a CRL fetched from the CA replaces the CRL of the material in
//! use without reading any file again ([`Material::with_crl`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Crl, X509};

use crate::config::Config;
use crate::error::ServerError;
use crate::revocation::Revocations;

/// The files a TLS context is built from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Server certificate chain (leaf first).
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// CA for client certificates.
    pub ca: PathBuf,
    /// CRL, when revocation is checked.
    pub crl: Option<PathBuf>,
}

impl TlsFiles {
    /// The files named by `config` (the CRL resolved once, at start-up: a CRL that was in use
    /// must stay present for a reload to succeed).
    pub fn from_config(config: &Config) -> TlsFiles {
        TlsFiles {
            cert: config.cert_path(),
            key: config.key_path(),
            ca: config.ca_path(),
            crl: config.crl_path(),
        }
    }

    fn all(&self) -> impl Iterator<Item = &Path> {
        [&self.cert, &self.key, &self.ca]
            .into_iter()
            .chain(self.crl.as_ref())
            .map(PathBuf::as_path)
    }

    /// Size and modification time of every file: changes when any file is replaced.
    pub fn fingerprint(&self) -> Fingerprint {
        self.all()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.len(), m.modified().ok()?)))
            })
            .collect()
    }
}

/// Size and modification time of each file, for the watcher.
pub type Fingerprint = Vec<Option<(u64, std::time::SystemTime)>>;

/// The trust material of one TLS context.
pub(crate) struct Material {
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
    pub cas: Vec<X509>,
    pub crl: Option<(PathBuf, X509Crl)>,
    /// What every CRL in use revokes, their signatures checked once.
    pub revocations: Option<Arc<Revocations>>,
    /// The hash the session ID context is taken from: sessions never outlive a change of it.
    pub digest: Vec<u8>,
}

impl Material {
    /// The same certificates and key with `crl` (signed by `signer`, checked by the caller)
    /// as the only CRL: no file is read.
    pub fn with_crl(
        &self,
        path: &Path,
        crl: X509Crl,
        signer: &X509,
    ) -> Result<Material, ServerError> {
        let mut revocations = Revocations::default();
        revocations.add(&crl, signer)?;
        let der = crl.to_der()?;
        Ok(Material {
            chain: self.chain.clone(),
            key: self.key.clone(),
            cas: self.cas.clone(),
            digest: digest(&self.chain, &self.cas, &der)?,
            crl: Some((path.to_owned(), crl)),
            revocations: Some(Arc::new(revocations)),
        })
    }
}

/// SHA-256 over the chain, the CAs and the CRL bytes.
fn digest(chain: &[X509], cas: &[X509], crl: &[u8]) -> Result<Vec<u8>, ServerError> {
    let mut input = Vec::new();
    for c in chain.iter().chain(cas) {
        input.extend_from_slice(&c.to_der()?);
    }
    input.extend_from_slice(crl);
    Ok(hash(MessageDigest::sha256(), &input)?.to_vec())
}

/// Reads and checks every file of `files`; any problem is an error naming the file.
pub(crate) fn load(files: &TlsFiles) -> Result<Material, ServerError> {
    let invalid = |what, path: &Path, detail: String| ServerError::Invalid {
        what,
        path: path.to_owned(),
        detail,
    };
    let chain = x509::cert::load_certs("server certificate", &files.cert)?;
    let key = x509::key::load("server private key", &files.key)?;
    if !chain[0].public_key()?.public_eq(&key) {
        return Err(invalid(
            "server private key",
            &files.key,
            format!("it is not the key of {}", files.cert.display()),
        ));
    }
    let cas = x509::cert::load_certs("CA certificate", &files.ca)?;
    let mut revocations = Revocations::default();
    let mut crl_bytes = Vec::new();
    let crl = match &files.crl {
        None => None,
        Some(path) => {
            let pem = x509::files::read("CRL", path)?;
            // One CRL per CA in force (two during a rotation); each must be signed by a CA we
            // trust or by an issuing CA of our own chain (the intermediate of a two-level PKI).
            let issuers: Vec<&X509> = cas.iter().chain(chain.iter().skip(1)).collect();
            let mut soonest: Option<X509Crl> = None;
            for block in crl_blocks(&pem) {
                let crl = X509Crl::from_pem(block)
                    .map_err(|e| invalid("CRL", path, format!("not a PEM CRL ({e})")))?;
                let signer = issuers.iter().find(|ca| {
                    ca.public_key()
                        .is_ok_and(|k| crl.verify(&k).unwrap_or(false))
                });
                let Some(signer) = signer else {
                    return Err(invalid("CRL", path, "not signed by the CA".into()));
                };
                revocations.add(&crl, signer)?;
                // The one due first speaks for the file in warnings, /healthz and metrics.
                let sooner = match (&soonest, crl.next_update()) {
                    (None, _) => true,
                    (Some(s), Some(n)) => s.next_update().is_some_and(|m| n < m),
                    (Some(_), None) => false,
                };
                if sooner {
                    soonest = Some(crl);
                }
            }
            let crl = soonest.ok_or_else(|| invalid("CRL", path, "no PEM CRL in it".into()))?;
            crl_bytes = pem;
            Some((path.clone(), crl))
        }
    };
    let digest = digest(&chain, &cas, &crl_bytes)?;
    Ok(Material {
        revocations: crl.is_some().then(|| Arc::new(revocations)),
        chain,
        key,
        cas,
        crl,
        digest,
    })
}

/// The PEM blocks of the CRLs in `pem`, each with its BEGIN and END lines.
fn crl_blocks(pem: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
    let starts: Vec<usize> = pem
        .windows(BEGIN.len())
        .enumerate()
        .filter(|(_, w)| *w == BEGIN)
        .map(|(i, _)| i)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &from)| &pem[from..starts.get(n + 1).copied().unwrap_or(pem.len())])
        .collect()
}
