//! The OpenSSL acceptor: Mozilla's profiles, client-certificate policy, and hot reload.
//!
//! actix-web takes one `SslAcceptor` for the life of the server. To reload, that base acceptor
//! gets a ClientHello callback that moves each new connection onto the newest `SslContext`
//! (`SSL_set_SSL_CTX`), which carries the current certificate, CA and CRL. Open connections keep
//! the context they started with. A reload that fails validation leaves the current one in place.
//!
//! Resumption must not skip the checks of a full handshake: the session ID context is a hash of
//! the trust material, so sessions made before a reload (a new CRL, say) do not resume after it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use openssl::ex_data::Index;
use openssl::ssl::{
    select_next_proto, AlpnError, ClientHelloResponse, Ssl, SslAcceptor, SslAcceptorBuilder,
    SslContext, SslMethod, SslOptions, SslRef, SslSessionCacheMode, SslVerifyMode,
};
use openssl::x509::{X509Crl, X509StoreContext, X509StoreContextRef, X509VerifyResult, X509};
use x509::verify::Problem;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::{ClientAuth, Config, CrlStale, TlsProfile};
use crate::error::ServerError;
use crate::material::{self, Material};
pub use crate::material::{Fingerprint, TlsFiles};
use crate::metrics::{HandshakeResult, Shared};
use crate::refusal::Reason;
use crate::revocation::{self, Revocations};
use crate::trust::{CaInfo, CertInfo, CrlInfo};

/// TLS 1.2 suites of Mozilla's intermediate profile without the DHE ones: ECDHE + AEAD only.
const TLS12_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// Mozilla's groups. OpenSSL's defaults add X448 and P-521, which the profiles leave out.
const GROUPS: &str = "X25519:P-256:P-384";

/// ALPN, in our order of preference.
const ALPN: &[u8] = b"\x02h2\x08http/1.1";

/// One built TLS context and what it holds.
pub struct Loaded {
    /// The context new connections are moved onto.
    pub context: SslContext,
    /// The server certificate it presents.
    pub info: CertInfo,
    /// Which reload made it (0 = start-up).
    pub generation: u64,
}

/// Static TLS settings (from the config, not from files).
#[derive(Debug, Clone)]
struct Settings {
    profile: TlsProfile,
    verify_depth: u32,
    session_cache: u32,
    policy: Arc<Policy>,
}

/// What the verify callback decides with.
#[derive(Debug)]
struct Policy {
    client_auth: ClientAuth,
    crl_stale: CrlStale,
    metrics: Shared,
}

/// What the verify callback found in one handshake, kept on its `Ssl` for `on_connect`.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The first problem of a certificate let through as anonymous (`optional` mode).
    pub first: OnceLock<Problem>,
    /// The CRL was past its nextUpdate and `--crl-stale warn` accepted it.
    pub stale_crl: AtomicBool,
}

/// The `Ssl` ex-data slot of the [`Verdict`] (`None` if OpenSSL could not make one).
fn verdict_index() -> Option<Index<Ssl, Verdict>> {
    static INDEX: OnceLock<Option<Index<Ssl, Verdict>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().ok())
}

/// The verdict of the handshake on `ssl`.
pub fn verdict(ssl: &SslRef) -> Option<&Verdict> {
    ssl.ex_data(verdict_index()?)
}

/// The `SslContext` ex-data slot of each context's [`Revocations`] (`None`: no CRL).
fn revocations_index() -> Option<Index<SslContext, Option<Arc<Revocations>>>> {
    static INDEX: OnceLock<Option<Index<SslContext, Option<Arc<Revocations>>>>> = OnceLock::new();
    *INDEX.get_or_init(|| SslContext::new_ex_index().ok())
}

fn verdict_of(ctx: &X509StoreContextRef) -> Option<&Verdict> {
    let ssl = ctx.ex_data(X509StoreContext::ssl_idx().ok()?)?;
    verdict(ssl)
}

/// Holds the current TLS context and rebuilds it from disk on demand.
pub struct TlsReloader {
    files: TlsFiles,
    settings: Settings,
    current: ArcSwap<Loaded>,
    /// What the current context was built from (a fetched CRL swaps in on top of it).
    material: Mutex<Arc<Material>>,
    /// The files as they were at the last load or swap: the watcher reloads when they differ.
    seen: Mutex<Fingerprint>,
    generation: AtomicU64,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("files", &self.files)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl TlsReloader {
    /// Loads the files of `config` (once; any problem is an error naming the file) and returns
    /// the reloader with the acceptor to serve with. Every connection starts on the acceptor's
    /// context, which fixes its options, verify mode and session cache, and is moved to the
    /// newest context by a ClientHello callback.
    pub fn new(
        config: &Config,
        metrics: Shared,
    ) -> Result<(Arc<TlsReloader>, SslAcceptor), ServerError> {
        let files = TlsFiles::from_config(config);
        let settings = Settings {
            profile: config.tls_profile,
            verify_depth: config.verify_depth,
            session_cache: config.session_cache,
            policy: Arc::new(Policy {
                client_auth: config.client_auth,
                crl_stale: config.crl_stale,
                metrics,
            }),
        };
        let seen = files.fingerprint();
        let m = material::load(&files)?;
        let reloader = Arc::new(TlsReloader {
            current: ArcSwap::from_pointee(Loaded {
                context: build(&m, &settings)?.build().into_context(),
                info: cert_info(&m)?,
                generation: 0,
            }),
            material: Mutex::new(Arc::new(m)),
            seen: Mutex::new(seen),
            files,
            settings,
            generation: AtomicU64::new(0),
        });
        let mut base = build(&reloader.material(), &reloader.settings)?;
        let me = Arc::clone(&reloader);
        base.set_client_hello_callback(move |ssl, _alert| {
            let loaded = me.current.load();
            ssl.set_ssl_context(&loaded.context)?;
            if let Some(index) = verdict_index() {
                ssl.set_ex_data(index, Verdict::default());
            }
            Ok(ClientHelloResponse::SUCCESS)
        });
        Ok((reloader, base.build()))
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The context new connections get.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// Rebuilds the context from disk. On error the current context keeps serving.
    /// Counted in the metrics either way; the expiry gauges follow a success.
    pub fn reload(&self) -> Result<Arc<Loaded>, ServerError> {
        // Taken before reading: a change made during the load is seen by the next look.
        *lock(&self.seen) = self.files.fingerprint();
        let result = material::load(&self.files).and_then(|m| self.install(m));
        self.count(&result);
        result
    }

    /// Swaps in `crl` (checked by the caller: signed by `signer`, one of our CAs) from memory,
    /// over the certificates and key in use: one parse, one signature check, no file read.
    /// On success `pem` is written to the CRL file, the copy the next start reads (an error
    /// writing it is logged: the new CRL is in use all the same). On error the current
    /// context keeps serving.
    pub fn swap_crl(
        &self,
        crl: X509Crl,
        signer: &X509,
        pem: &[u8],
    ) -> Result<Arc<Loaded>, ServerError> {
        let path = self.files.crl.clone().unwrap_or_default();
        let result = self
            .material()
            .with_crl(&path, crl, signer)
            .and_then(|m| self.install(m));
        self.count(&result);
        let loaded = result?;
        let written = x509::files::write(
            "CRL",
            &path,
            pem,
            x509::files::Secrecy::Public,
            x509::files::Overwrite::Replace,
        );
        if let Err(e) = written {
            tracing::error!(error = %e, "the new CRL is in use but its copy was not written");
        }
        // The watcher must not reload for the file just written.
        *lock(&self.seen) = self.files.fingerprint();
        Ok(loaded)
    }

    /// Whether a file changed since the last load or swap.
    pub fn files_changed(&self) -> bool {
        *lock(&self.seen) != self.files.fingerprint()
    }

    fn material(&self) -> Arc<Material> {
        lock(&self.material).clone()
    }

    fn install(&self, m: Material) -> Result<Arc<Loaded>, ServerError> {
        let context = build(&m, &self.settings)?.build().into_context();
        let info = cert_info(&m)?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let loaded = Arc::new(Loaded {
            context,
            info,
            generation,
        });
        *lock(&self.material) = Arc::new(m);
        self.current.store(loaded.clone());
        Ok(loaded)
    }

    /// A reload or swap, in the metrics; the expiry gauges follow a success.
    fn count(&self, result: &Result<Arc<Loaded>, ServerError>) {
        if let Some(m) = &self.settings.policy.metrics {
            m.reload(result.is_ok());
            if let Ok(loaded) = result {
                m.loaded(&loaded.info);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn build(m: &Material, settings: &Settings) -> Result<SslAcceptorBuilder, ServerError> {
    let mut b = match settings.profile {
        TlsProfile::Intermediate => {
            let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
            b.set_cipher_list(TLS12_CIPHERS)?;
            b
        }
        TlsProfile::Modern => SslAcceptor::mozilla_modern_v5(SslMethod::tls_server())?,
    };
    b.set_groups_list(GROUPS)?;
    // Send only the configured chain: clients hold the root, and OpenSSL would otherwise add it
    // from the client-verification store to every handshake.
    b.set_mode(openssl::ssl::SslMode::NO_AUTO_CHAIN);
    // Read whatever the socket holds in one call: otherwise OpenSSL reads each record's 5-byte
    // header and then its body, two recvfrom per record (actix and h2 read until Pending, so
    // nothing buffered is left unread).
    b.set_read_ahead(true);
    b.set_certificate(&m.chain[0])?;
    for extra in &m.chain[1..] {
        b.add_extra_chain_cert(extra.clone())?;
    }
    b.set_private_key(&m.key)?;
    b.check_private_key()?;
    b.set_alpn_select_callback(|_, client| select_next_proto(ALPN, client).ok_or(AlpnError::NOACK));
    set_resumption(&mut b, m, settings)?;
    set_client_verification(&mut b, m, settings)?;
    Ok(b)
}

/// Session resumption: only within the same trust material, from a bounded server-side cache.
fn set_resumption(
    b: &mut SslAcceptorBuilder,
    m: &Material,
    settings: &Settings,
) -> Result<(), ServerError> {
    // Without a session ID context, OpenSSL refuses to resume sessions when peers are verified.
    b.set_session_id_context(&m.digest[..32])?;
    // One TLS 1.3 ticket per handshake, not OpenSSL's two: a client resumes one connection at
    // a time.
    b.set_num_tickets(usize::from(settings.session_cache > 0))?;
    // Resume from a server-side session cache (the ticket is a session ID), not from stateless
    // tickets: OpenSSL 3.0 decrypts a ticket into a new session and re-parses the client
    // certificate in it through its provider decoders, which cost more than the rest of a
    // resumed mutual handshake. The cache keeps the parsed session; it is bounded, oldest out.
    b.set_options(SslOptions::NO_TICKET);
    if settings.session_cache == 0 {
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
    } else {
        b.set_session_cache_size(i32::try_from(settings.session_cache).unwrap_or(i32::MAX));
    }
    Ok(())
}

/// Whether a client certificate is asked for, what it must chain to, and the CRL.
fn set_client_verification(
    b: &mut SslAcceptorBuilder,
    m: &Material,
    settings: &Settings,
) -> Result<(), ServerError> {
    let client_auth = settings.policy.client_auth;
    let mode = match client_auth {
        ClientAuth::None => SslVerifyMode::NONE,
        ClientAuth::Optional => SslVerifyMode::PEER,
        ClientAuth::Required => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
    };
    if client_auth != ClientAuth::None {
        for ca in &m.cas {
            b.cert_store_mut().add_cert(ca.clone())?;
            b.add_client_ca(ca)?;
        }
        // The intermediates of our own chain that a trusted CA issued (a two-level PKI's
        // issuing CA): clients that send only their leaf (`openssl s_client -cert`) still
        // chain to the root. The root stays the anchor: without PARTIAL_CHAIN, OpenSSL
        // accepts no chain that stops at the intermediate.
        for extra in m.chain.iter().skip(1) {
            let ours = m.cas.iter().any(|ca| {
                ca.public_key()
                    .is_ok_and(|k| extra.verify(&k).unwrap_or(false))
            });
            if ours {
                b.cert_store_mut().add_cert(extra.clone())?;
            }
        }
        // Revocation is checked by verify_client from `m.revocations`, not by OpenSSL's
        // CRL_CHECK (which verifies the CRL's signature in every handshake: revocation.rs).
        b.set_verify_depth(settings.verify_depth);
    }
    // On the context, not in the closure: OpenSSL calls the closure of the base acceptor,
    // whichever context the ClientHello callback moved the connection to.
    let index = revocations_index().ok_or_else(openssl::error::ErrorStack::get)?;
    b.set_ex_data(index, m.revocations.clone());
    let policy = settings.policy.clone();
    b.set_verify_callback(mode, move |ok, ctx| verify_client(&policy, ok, ctx));
    Ok(())
}

fn cert_info(m: &Material) -> Result<CertInfo, ServerError> {
    let leaf = &m.chain[0];
    let cas = m
        .cas
        .iter()
        .map(|ca| {
            Ok(CaInfo {
                subject: x509::cert::one_line(ca.subject_name()),
                not_after: x509::time::unix_time(ca.not_after())?,
            })
        })
        .collect::<Result<_, ServerError>>()?;
    let crl = match &m.crl {
        None => None,
        Some((_, crl)) => Some(CrlInfo {
            this_update: x509::time::unix_time(crl.last_update())?,
            next_update: crl.next_update().map(x509::time::unix_time).transpose()?,
            number: x509::cert::crl_number(crl),
        }),
    };
    Ok(CertInfo {
        subject: x509::cert::one_line(leaf.subject_name()),
        serial: x509::cert::serial_hex(leaf)?,
        not_after: x509::time::unix_time(leaf.not_after())?,
        revoked: m
            .crl
            .as_ref()
            .map(|(_, c)| c.get_revoked().map_or(0, |r| r.len())),
        cas,
        crl,
    })
}

/// OpenSSL's chain verification, plus what it lets through or is not asked to check: the
/// leaf must not be revoked by its issuer's CRL, must carry EKU clientAuth (OpenSSL accepts a
/// leaf without EKU) and must not be a CA certificate. In `optional` mode a failing
/// certificate is let through and the client served as anonymous.
fn verify_client(policy: &Policy, preverified: bool, ctx: &mut X509StoreContextRef) -> bool {
    if !preverified {
        let err = ctx.error();
        let problem = Problem::of(err).unwrap_or(Problem::Other(err.as_raw()));
        return refuse_as(policy, ctx, problem, err);
    }
    if ctx.error_depth() != 0 {
        return true;
    }
    if let Some(problem) = revocation_problem(policy, ctx) {
        let err = revocation::verify_result(problem);
        ctx.set_error(err);
        return refuse_as(policy, ctx, problem, err);
    }
    let Some(der) = ctx.current_cert().and_then(|c| c.to_der().ok()) else {
        return false;
    };
    match leaf_refusal(&der) {
        Some((problem, words)) => {
            // OpenSSL's own codes cannot be set from safe Rust; the verdict keeps the problem.
            ctx.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
            refuse(policy, ctx, problem, words, None)
        }
        None => true,
    }
}

/// What revokes the leaf of `ctx`, if anything. A CRL past its nextUpdate refuses every client
/// under `--crl-stale refuse`; under `warn` it is noted on the verdict and what it lists is
/// still refused.
fn revocation_problem(policy: &Policy, ctx: &X509StoreContextRef) -> Option<Problem> {
    let held = X509StoreContext::ssl_idx()
        .ok()
        .and_then(|i| ctx.ex_data(i))
        .zip(revocations_index())
        .and_then(|(ssl, i)| ssl.ssl_context().ex_data(i));
    let revocations = match held {
        Some(None) => return None,
        Some(Some(r)) => r,
        // Every context we build holds its CRLs (or that it has none): fail closed.
        None => return Some(Problem::NoCrl),
    };
    // Fail closed: without the leaf and its issuer, no CRL can vouch for it.
    let chain = ctx.chain();
    let (Some(leaf), Some(issuer)) = (chain.and_then(|c| c.get(0)), chain.and_then(|c| c.get(1)))
    else {
        return Some(Problem::NoCrl);
    };
    let standing = revocations.standing(leaf, issuer, x509::time::now());
    if standing.stale {
        if policy.crl_stale == CrlStale::Refuse {
            return Some(Problem::CrlExpired);
        }
        if let Some(v) = verdict_of(ctx) {
            v.stale_crl.store(true, Ordering::Relaxed);
        }
    }
    standing.refused
}

/// [`refuse`] for a problem OpenSSL's verify result `err` names, its code and words logged.
fn refuse_as(
    policy: &Policy,
    ctx: &X509StoreContextRef,
    problem: Problem,
    err: X509VerifyResult,
) -> bool {
    let openssl = format!("{}: {}", err.as_raw(), err.error_string());
    refuse(policy, ctx, problem, problem.explain(), Some(openssl))
}

/// Logs a refused certificate; refuses the handshake (and counts it), or in `optional` mode
/// keeps the first problem and lets the client through as anonymous.
fn refuse(
    policy: &Policy,
    ctx: &X509StoreContextRef,
    problem: Problem,
    words: &str,
    openssl: Option<String>,
) -> bool {
    let subject_at = |c: Option<&openssl::x509::X509Ref>| {
        c.map(|c| x509::cert::one_line(c.subject_name()))
            .unwrap_or_default()
    };
    // Name the client (the leaf), whichever certificate of its chain failed.
    let client = subject_at(ctx.chain().and_then(|c| c.get(0)).or(ctx.current_cert()));
    let optional = policy.client_auth == ClientAuth::Optional;
    let reason = Reason::of(problem).label();
    let openssl = openssl.unwrap_or_default();
    let failed_at = subject_at(ctx.current_cert());
    let depth = ctx.error_depth();
    // In optional mode only the first problem of a handshake is logged (and kept).
    let repeat = optional && verdict_of(ctx).is_none_or(|v| v.first.set(problem).is_err());
    if repeat {
        return true;
    }
    let outcome = if optional {
        "; serving the client as anonymous"
    } else {
        ""
    };
    tracing::warn!(
        client = %client,
        failed_at = %failed_at,
        depth,
        reason = words,
        label = reason,
        openssl = %openssl,
        "client certificate refused{outcome}"
    );
    if optional {
        return true;
    }
    if let Some(m) = &policy.metrics {
        m.handshake(HandshakeResult::Refused, Reason::of(problem), false);
    }
    false
}

/// What OpenSSL lets through but a client certificate must not be: a CA, or a leaf without EKU
/// clientAuth; with the words of the log.
pub fn leaf_refusal(der: &[u8]) -> Option<(Problem, &'static str)> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Some((Problem::Other(0), "unparseable certificate"));
    };
    let client_auth = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.client_auth);
    if cert.is_ca() {
        Some((
            Problem::CaAsLeaf,
            "a CA certificate (CA:TRUE) presented as a client certificate",
        ))
    } else if !client_auth {
        Some((
            Problem::WrongPurpose,
            "no extendedKeyUsage clientAuth: not issued for TLS clients",
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
