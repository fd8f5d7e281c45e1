//! When to renew, as pure functions of the clock (tested with any time, no waiting): at 2/3
//! of the lifetime plus a spread of up to 1/12 of it fixed per certificate, so a fleet
//! enrolled at once does not renew at once and a restart does not move the moment; never
//! after notAfter (a daemon with an expired certificate stops, smallstep/cli#573); after a
//! failure, exponential backoff that always leaves tries before notAfter; and after a
//! renewal whose successor looks due already (this host's clock runs ahead of the CA's),
//! a long wait instead of a renewal every few seconds (smallstep/cli#676).

use std::time::Duration;

/// What the daemon does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Sleep this long, then look again.
    Wait(Duration),
    /// Renew now.
    Renew,
    /// The certificate has expired: it can no longer renew itself.
    Expired,
}

/// A certificate's validity window, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// notBefore.
    pub not_before: i64,
    /// notAfter.
    pub not_after: i64,
}

impl Window {
    /// Seconds between notBefore and notAfter.
    pub fn lifetime(&self) -> i64 {
        (self.not_after - self.not_before).max(0)
    }

    /// When it is due: `not_before + 2/3·life + spread·life/12`, `spread` in [0, 1).
    pub fn due_at(&self, spread: f64) -> i64 {
        let life = self.lifetime();
        let extra = (life as f64 / 12.0 * spread.clamp(0.0, 1.0)) as i64;
        self.not_before + life * 2 / 3 + extra
    }
}

/// A number in [0, 1) fixed by a certificate's serial.
pub fn spread(serial: &str) -> f64 {
    let d = openssl::sha::sha256(serial.as_bytes());
    f64::from(u16::from_be_bytes([d[0], d[1]])) / 65_536.0
}

/// The next step at `now` for a certificate `w` with `spread`; waits are cut to `max_wait`
/// so that a suspended laptop or a clock that jumps is noticed.
pub fn next(now: i64, w: Window, spread: f64, max_wait: Duration) -> Step {
    if now >= w.not_after {
        return Step::Expired;
    }
    let due = w.due_at(spread);
    if now >= due {
        return Step::Renew;
    }
    let secs = u64::try_from(due - now).unwrap_or(0);
    Step::Wait(Duration::from_secs(secs).min(max_wait))
}

/// Waits after failed renewals: `min`, doubling up to `max`, with jitter in [½, 1]; never
/// longer than a quarter of the time left, so that several tries fit before notAfter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `min`, at most `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The wait after one more failure, `left` before the certificate expires; `jitter` in
    /// [0, 1]. A CA that said when to come back (`Retry-After`) is taken at its word, within
    /// the same bounds: never under `min` nor over `max`, never past a quarter of `left`.
    pub fn after_failure(
        &mut self,
        left: Duration,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Duration {
        let doubled = self
            .min
            .saturating_mul(2u32.saturating_pow(self.failures.min(30)));
        self.failures = self.failures.saturating_add(1);
        let wait = match retry_after {
            Some(asked) => asked.clamp(self.min, self.max),
            None => doubled
                .min(self.max)
                .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)),
        };
        wait.min(left / 4).max(Duration::from_secs(1))
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The longest wait (also the pause after a renewal that left a certificate due at once).
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const HOUR: Duration = Duration::from_secs(3600);

    fn day_cert() -> Window {
        Window {
            not_before: 1_000_000,
            not_after: 1_000_000 + DAY,
        }
    }

    #[test]
    fn a_certificate_is_due_at_two_thirds_plus_its_spread() {
        let w = day_cert();
        assert_eq!(w.due_at(0.0), w.not_before + 16 * 3600);
        assert_eq!(w.due_at(0.5), w.not_before + 17 * 3600);
        assert_eq!(next(w.not_before, w, 0.0, HOUR), Step::Wait(HOUR));
        assert_eq!(
            next(w.due_at(0.0) - 10, w, 0.0, HOUR),
            Step::Wait(Duration::from_secs(10))
        );
        assert_eq!(next(w.due_at(0.0), w, 0.0, HOUR), Step::Renew);
        assert_eq!(next(w.not_after - 1, w, 0.99, HOUR), Step::Renew);
        assert_eq!(next(w.not_after, w, 0.0, HOUR), Step::Expired);
    }

    #[test]
    fn the_spread_is_fixed_per_certificate_and_spreads_a_fleet() {
        assert_eq!(spread("0A1B"), spread("0A1B"));
        let spreads: Vec<f64> = (0..200).map(|i| spread(&format!("{i:X}"))).collect();
        assert!(spreads.iter().all(|s| (0.0..1.0).contains(s)));
        let early = spreads.iter().filter(|s| **s < 0.5).count();
        assert!(
            (60..140).contains(&early),
            "{early} of 200 in the first half"
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_leaves_tries_before_expiry() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(600));
        let long = Duration::from_secs(10 * 86_400);
        let waits: Vec<u64> = (0..8)
            .map(|_| b.after_failure(long, 1.0, None).as_secs())
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(
            b.after_failure(Duration::from_secs(100), 1.0, None)
                .as_secs(),
            25
        );
        assert_eq!(b.after_failure(Duration::ZERO, 1.0, None).as_secs(), 1);
        b.reset();
        assert_eq!(b.after_failure(long, 0.0, None).as_secs(), 5);
    }

    #[test]
    fn a_retry_after_is_honoured_within_the_backoff_bounds() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(600));
        let long = Duration::from_secs(10 * 86_400);
        let after = |b: &mut Backoff, secs| {
            b.after_failure(long, 1.0, Some(Duration::from_secs(secs)))
                .as_secs()
        };
        assert_eq!(after(&mut b, 5), 10, "never under --retry-min");
        assert_eq!(
            after(&mut b, 120),
            120,
            "the CA's word, not the doubling (40)"
        );
        assert_eq!(after(&mut b, 86_400), 600, "never over --retry-max");
        let soon = b.after_failure(
            Duration::from_secs(200),
            1.0,
            Some(Duration::from_secs(120)),
        );
        assert_eq!(soon.as_secs(), 50, "never past a quarter of the time left");
    }
}
