//! Wrong enrollment tokens, counted per peer address and slowed: past `limit` wrong tokens in
//! a minute, a peer hears 429 with `Retry-After` until its minute is over. Guessing a token
//! (160 random bits) is hopeless anyway; this keeps a misconfigured fleet or a scanner from
//! filling the log and the records' connection. The owner of a right token behind the same
//! address (a NAT) waits at most the rest of that minute, never longer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;

use crate::error::Refusal;

/// How long wrong tokens are counted together.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Peers remembered at most; past it, the ones whose minute is over are forgotten first.
const MAX_PEERS: usize = 10_000;

/// The wrong tokens of each peer in its current minute.
#[derive(Debug)]
pub struct TokenGuard {
    limit: u32,
    peers: Mutex<HashMap<IpAddr, Tally>>,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    since: Instant,
    wrong: u32,
}

impl TokenGuard {
    /// A guard that slows a peer after `limit` wrong tokens in a minute (0: never).
    pub fn new(limit: u32) -> TokenGuard {
        TokenGuard {
            limit,
            peers: Mutex::default(),
        }
    }

    /// 429 for a peer that was wrong too often in its current minute.
    pub fn check(&self, peer: IpAddr) -> Result<(), Refusal> {
        if self.limit == 0 {
            return Ok(());
        }
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(t) = peers.get(&peer).filter(|t| t.since.elapsed() < WINDOW) else {
            return Ok(());
        };
        if t.wrong < self.limit {
            return Ok(());
        }
        let left = WINDOW.saturating_sub(t.since.elapsed()).as_secs().max(1);
        Err(Refusal {
            retry_after: Some(u32::try_from(left).unwrap_or(60)),
            ..Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{} wrong enrollment tokens from {peer} within a minute: retry in {left} s \
                     with the token of `pki token create` for this device",
                    t.wrong
                ),
            )
        })
    }

    /// Counts one wrong token of `peer`; says so in the log when it reaches the limit.
    pub fn wrong(&self, peer: IpAddr) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if peers.len() >= MAX_PEERS {
            peers.retain(|_, t| t.since.elapsed() < WINDOW);
            if peers.len() >= MAX_PEERS {
                peers.clear();
            }
        }
        let t = peers.entry(peer).or_insert(Tally {
            since: Instant::now(),
            wrong: 0,
        });
        if t.since.elapsed() >= WINDOW {
            *t = Tally {
                since: Instant::now(),
                wrong: 0,
            };
        }
        t.wrong += 1;
        if t.wrong == self.limit {
            tracing::warn!(%peer, wrong = t.wrong, "wrong enrollment tokens: slowed for the rest of the minute");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_slowed_after_the_limit_and_others_are_not() {
        let guard = TokenGuard::new(3);
        let (a, b): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().expect("ip"), "::1".parse().expect("ip"));
        for _ in 0..3 {
            assert!(guard.check(a).is_ok());
            guard.wrong(a);
        }
        let r = guard.check(a).expect_err("slowed");
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            (1..=60).contains(&r.retry_after.expect("retry-after")),
            "{r:?}"
        );
        assert!(guard.check(b).is_ok(), "another peer is not slowed");
        assert!(TokenGuard::new(0).check(a).is_ok(), "0 turns it off");
    }
}
