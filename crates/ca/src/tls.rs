//! The CA service's own TLS: its certificate (issued by the CA it serves, at first start), an
//! acceptor with Mozilla's intermediate profile, and client certificates asked for but not
//! required. A client certificate is taken as presented at the TLS layer and verified fully
//! by the request that relies on it ([`crate::enroll::Ca::verify_peer`]), so a revoked or
//! expired device hears why in the HTTP answer instead of a bare handshake alert.

use std::any::Any;
use std::path::{Path, PathBuf};

use actix_tls::accept::openssl::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use pki::files::Overwrite;
use pki::{Folder, Issuer, Leaf, SubjectAltName};

use crate::config::{Config, OWN_CERT_NAME};
use crate::enroll::Peer;
use crate::error::CaError;

/// The service certificate (leaf first) and its key.
pub struct Identity {
    /// Leaf, then intermediates.
    pub chain: Vec<X509>,
    /// Its key.
    pub key: PKey<Private>,
}

/// The service's certificate and key: the configured files, or `server/est.{crt,key}`, issued
/// by the CA when missing, due for renewal, or not naming every host asked for. A lock
/// keeps replicas that share the folder from interleaving their writes of the pair.
pub fn identity(config: &Config, folder: &Folder, ca: &Issuer) -> Result<Identity, CaError> {
    if let (Some(cert), Some(key)) = (&config.cert, &config.key) {
        return load(cert, key);
    }
    let (cert, key) = folder.leaf_paths(common::Role::Server, OWN_CERT_NAME)?;
    let _lock = lock(&cert)?;
    let names = wanted_names(config)?;
    if needs_issuing(&cert, &names)? {
        let leaf = Leaf::server(OWN_CERT_NAME, names);
        folder.issue(ca, &leaf, Overwrite::Replace)?;
        tracing::info!(cert = %cert.display(), "issued the CA service's own certificate");
    }
    load(&cert, &key)
}

/// localhost, the public URL's host, and `--san`s.
fn wanted_names(config: &Config) -> Result<Vec<SubjectAltName>, CaError> {
    let mut names = SubjectAltName::localhost();
    if let Some(host) = config.public_host() {
        names.push(host.parse()?);
    }
    names.extend(config.sans.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.to_string()));
    Ok(names)
}

fn needs_issuing(cert: &Path, names: &[SubjectAltName]) -> Result<bool, CaError> {
    if !pki::files::exists(cert) {
        return Ok(true);
    }
    let current = x509::cert::load_cert("CA service certificate", cert)?;
    if pki::lifecycle::renewal_due(&current, None, x509::time::now())? {
        return Ok(true);
    }
    let has = crate::policy::cert_sans(&current.to_der()?);
    Ok(names.iter().any(|n| !has.contains(&n.to_string())))
}

fn load(cert: &Path, key: &Path) -> Result<Identity, CaError> {
    let chain = x509::cert::load_certs("CA service certificate", cert)?;
    let key_ = pki::key::load("CA service key", key)?;
    if !chain[0].public_key()?.public_eq(&key_) {
        return Err(CaError::Config(format!(
            "{} is not the key of {}: give the matching pair",
            key.display(),
            cert.display()
        )));
    }
    Ok(Identity { chain, key: key_ })
}

/// `server/.est.lock`, held while the service certificate is checked and issued.
fn lock(cert: &Path) -> Result<std::fs::File, CaError> {
    let path: PathBuf = cert.with_file_name(format!(".{OWN_CERT_NAME}.lock"));
    let file = crate::lock::open_lock_file(&path)?;
    file.lock()
        .map_err(|e| crate::lock::lock_error(&path, &e))?;
    Ok(file)
}

/// The acceptor: the service's chain (plus the CA chain's intermediates), and client
/// certificates of `trust` asked for, never required, and left to the handlers to verify.
pub fn acceptor(identity: &Identity, trust: &[X509]) -> Result<SslAcceptorBuilder, CaError> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_certificate(&identity.chain[0])?;
    let mut sent = vec![identity.chain[0].to_der()?];
    let intermediates = trust.iter().filter(|c| !is_self_signed(c));
    for extra in identity.chain[1..].iter().chain(intermediates) {
        let der = extra.to_der()?;
        if !sent.contains(&der) {
            b.add_extra_chain_cert(extra.clone())?;
            sent.push(der);
        }
    }
    b.set_private_key(&identity.key)?;
    b.check_private_key()?;
    for ca in trust {
        b.add_client_ca(ca)?;
    }
    // Accept whatever is presented: a verified identity is decided per request, with a reason.
    b.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
    Ok(b)
}

fn is_self_signed(cert: &X509) -> bool {
    cert.public_key()
        .is_ok_and(|k| cert.verify(&k).unwrap_or(false))
        && cert
            .issuer_name()
            .try_cmp(cert.subject_name())
            .is_ok_and(|o| o.is_eq())
}

/// actix-web's `on_connect`: the presented client certificate, into the connection's data;
/// and no Nagle delay: an answer smaller than a segment (a CRL, cacerts, an ACME nonce) would
/// otherwise wait for the client's delayed ACK after TLS 1.3's session tickets (~40 ms).
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    if let Err(e) = tls.get_ref().set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
    let ssl = tls.ssl();
    if let Some(leaf) = ssl.peer_certificate() {
        // On the server side, OpenSSL's peer chain leaves the leaf out.
        let chain = ssl
            .peer_cert_chain()
            .map(|s| s.iter().map(|c| c.to_owned()).collect())
            .unwrap_or_default();
        ext.insert(Peer { leaf, chain });
    }
}
