//! `/login1`'s two guards around the password hash:
//!
//! - [`Brakes`]: failed logins counted per client identity (certificate fingerprint, else peer
//!   IP); past the threshold the client gets 429 with `Retry-After` until the lockout ends, and a
//!   success resets its count. Unknown users and wrong passwords count the same.
//! - [`Hasher`]: a few dedicated threads that run the slow password hash, so a login flood
//!   costs bounded CPU and memory (at most one working memory per thread, freed after each
//!   check).
//!   The same (user, password) asked again while it is being hashed waits for that hash.
//! - [`VerifiedCache`]: what Apache's mod_authn_socache does: a verified (user, keyed digest of
//!   the password) is remembered for a short time, so repeated correct logins skip the slow hash.
//!   A failure is never remembered and always costs the full hash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blake2::digest::{KeyInit, Mac};
use openssl::memcmp;
use tokio::sync::oneshot;

use crate::limits::{HASH_QUEUE, MAX_TRACKED};

/// A password to check, with the keyed digest of (user, password) its answer is filed under.
struct Job {
    user: String,
    password: String,
    digest: Digest,
}

/// The keyed digest of a (user, password) pair ([`VerifiedCache::digest`]).
pub type Digest = Vec<u8>;

/// Checks in flight by digest, with everyone waiting for each: the same pair asked again while
/// it is being hashed (64 connections logging in at once) waits for that answer instead of
/// queueing a hash of its own.
type Waiting = Arc<Mutex<HashMap<Digest, Vec<oneshot::Sender<bool>>>>>;

/// Dedicated password-hashing threads (see the module docs).
#[derive(Clone)]
pub struct Hasher {
    jobs: std::sync::mpsc::SyncSender<Job>,
    waiting: Waiting,
    hashed: Arc<AtomicU64>,
}

impl std::fmt::Debug for Hasher {
    /// Without the checks in flight: their digests are keyed by the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("hashed", &self.hashes())
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// `threads` hashing threads checking against `users`; a verified pair goes into `cache`.
    /// The threads end when the last `Hasher` clone is dropped.
    pub fn new(
        users: Arc<common::Credentials>,
        cache: Arc<VerifiedCache>,
        threads: usize,
    ) -> Hasher {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(HASH_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Waiting::default();
        let hashed = Arc::new(AtomicU64::new(0));
        for n in 0..threads.max(1) {
            let (rx, users, cache, waiting, hashed) = (
                rx.clone(),
                users.clone(),
                cache.clone(),
                waiting.clone(),
                hashed.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("hash-{n}"))
                .spawn(move || loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(Job {
                        user,
                        password,
                        digest,
                    }) = job
                    else {
                        return;
                    };
                    let ok = users.verify(&user, &password);
                    hashed.fetch_add(1, Ordering::Relaxed);
                    if ok {
                        cache.remember(&user, digest.clone());
                    }
                    let waiters = waiting
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&digest);
                    for reply in waiters.unwrap_or_default() {
                        let _ = reply.send(ok);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        Hasher {
            jobs: tx,
            waiting,
            hashed,
        }
    }

    /// Password hashes computed so far.
    pub fn hashes(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }

    /// Checks a password on a hashing thread, or waits for the check of the same pair already
    /// under way. `None` when the queue is full (answer 503).
    pub async fn verify(&self, user: String, password: String, digest: Digest) -> Option<bool> {
        let (tx, rx) = oneshot::channel();
        let joined = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            match waiting.get_mut(&digest) {
                Some(others) => {
                    others.push(tx);
                    true
                }
                None => {
                    waiting.insert(digest.clone(), vec![tx]);
                    false
                }
            }
        };
        if joined {
            return rx.await.ok();
        }
        let job = Job {
            user,
            password,
            digest,
        };
        if let Err(refused) = self.jobs.try_send(job) {
            // Nobody will answer: the waiters' senders go, and they answer 503 too.
            let digest = match refused {
                TrySendError::Full(j) | TrySendError::Disconnected(j) => j.digest,
            };
            self.waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&digest);
            return None;
        }
        rx.await.ok()
    }
}

/// Counts failed logins per client identity.
#[derive(Debug)]
pub struct Brakes {
    max_failures: u32,
    lockout: Duration,
    state: Mutex<HashMap<String, Strikes>>,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Brakes {
    /// Locks a client out for `lockout` after `max_failures` failures in a row (0 disables).
    pub fn new(max_failures: u32, lockout: Duration) -> Brakes {
        Brakes {
            max_failures,
            lockout,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` while `who` is locked out.
    pub fn locked(&self, who: &str) -> Option<Duration> {
        if self.max_failures == 0 {
            return None;
        }
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .get(who)
            .and_then(|s| s.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Records the outcome of a password check for `who`; true when it locked `who` out.
    pub fn record(&self, who: &str, success: bool) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if success {
            state.remove(who);
            return false;
        }
        if state.len() >= MAX_TRACKED && !state.contains_key(who) {
            let lockout = self.lockout;
            state.retain(|_, s| now.duration_since(s.last) < lockout);
            if state.len() >= MAX_TRACKED {
                if let Some(oldest) = state
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| k.clone())
                {
                    state.remove(&oldest);
                }
            }
        }
        let entry = state.entry(who.to_owned()).or_insert(Strikes {
            failures: 0,
            last: now,
            locked_until: None,
        });
        // A long pause forgives earlier failures.
        if now.duration_since(entry.last) > self.lockout {
            *entry = Strikes {
                failures: 0,
                last: now,
                locked_until: None,
            };
        }
        entry.failures += 1;
        entry.last = now;
        if entry.failures >= self.max_failures {
            entry.locked_until = Some(now + self.lockout);
            entry.failures = 0;
            return true;
        }
        false
    }
}

/// Remembers recently verified (user, password) pairs as keyed digests (BLAKE2b MAC: a
/// microsecond, where OpenSSL 3.0's HMAC set-up costs more than the request it guards).
pub struct VerifiedCache {
    key: [u8; 32],
    ttl: Duration,
    entries: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl VerifiedCache {
    /// A cache whose entries live `ttl` (zero disables it), keyed with a fresh random secret so
    /// a memory dump reveals no password digest that could be attacked offline without it.
    pub fn new(ttl: Duration) -> Result<VerifiedCache, openssl::error::ErrorStack> {
        let mut secret = [0u8; 32];
        openssl::rand::rand_bytes(&mut secret)?;
        Ok(VerifiedCache {
            key: secret,
            ttl,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The keyed digest of (user, password): what the cache and the checks in flight file a
    /// pair under. `None` only if the MAC refused its key (it takes any up to 64 bytes).
    pub fn digest(&self, user: &str, password: &str) -> Option<Digest> {
        let mut mac = <blake2::Blake2bMac512 as KeyInit>::new_from_slice(&self.key).ok()?;
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        Some(mac.finalize().into_bytes().to_vec())
    }

    /// True when the pair of `digest` was verified for `user` within the TTL (constant-time
    /// comparison).
    pub fn hit(&self, user: &str, digest: &[u8]) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(user)
            .is_some_and(|(stored, at)| at.elapsed() < self.ttl && memcmp::eq(stored, digest))
    }

    /// Remembers a pair (by its digest) that the full hash just verified.
    pub fn remember(&self, user: &str, digest: Digest) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_TRACKED {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        entries.insert(user.to_owned(), (digest, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_threshold_and_a_success_resets() {
        let b = Brakes::new(3, Duration::from_secs(60));
        b.record("a", false);
        b.record("a", false);
        assert!(b.locked("a").is_none());
        b.record("a", true);
        b.record("a", false);
        b.record("a", false);
        assert!(b.locked("a").is_none(), "the success reset the count");
        assert!(b.record("a", false), "the third failure locks");
        let wait = b.locked("a").expect("locked");
        assert!(wait > Duration::from_secs(58));
        assert!(b.locked("b").is_none(), "per identity");
    }

    #[test]
    fn disabled_brakes_never_lock() {
        let b = Brakes::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            b.record("a", false);
        }
        assert!(b.locked("a").is_none());
    }

    #[test]
    fn the_same_pair_asked_at_once_is_hashed_once() {
        let users = Arc::new(common::Credentials::default());
        let cache = Arc::new(VerifiedCache::new(Duration::ZERO).expect("cache"));
        let hasher = Hasher::new(users, cache.clone(), 1);
        let ask = |password: &str| {
            let digest = cache.digest("name", password).expect("digest");
            hasher.verify("name".into(), password.into(), digest)
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let answers = rt.block_on(async {
            let same = futures_util::future::join_all((0..20).map(|_| ask("pwd1")));
            let other = futures_util::future::join_all((0..3).map(|_| ask("wrong")));
            futures_util::future::join(same, other).await
        });
        assert!(answers.0.iter().all(|a| *a == Some(true)), "{answers:?}");
        assert!(answers.1.iter().all(|a| *a == Some(false)), "{answers:?}");
        assert_eq!(hasher.hashes(), 2, "one hash per distinct pair in flight");
        // Asked again once the answer is in (the cache is off here): hashed again.
        assert_eq!(rt.block_on(ask("pwd1")), Some(true));
        assert_eq!(hasher.hashes(), 3);
    }

    #[test]
    fn cache_hits_only_the_verified_pair() {
        let c = VerifiedCache::new(Duration::from_secs(60)).expect("cache");
        let d = |user, password| c.digest(user, password).expect("digest");
        assert!(!c.hit("name", &d("name", "pwd1")));
        c.remember("name", d("name", "pwd1"));
        assert!(c.hit("name", &d("name", "pwd1")));
        assert!(!c.hit("name", &d("name", "pwd2")));
        assert!(!c.hit("other", &d("other", "pwd1")));
        // The user is part of the digest: another user's digest of the same password differs.
        assert_ne!(d("name", "pwd1"), d("other", "pwd1"));
        let off = VerifiedCache::new(Duration::ZERO).expect("cache");
        let od = off.digest("name", "pwd1").expect("digest");
        off.remember("name", od.clone());
        assert!(!off.hit("name", &od));
    }
}
