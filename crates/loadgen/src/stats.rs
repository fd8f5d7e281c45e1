//! Small statistics: latency percentiles of one run, and median/spread over repetitions.

use serde::Serialize;

/// Nearest-rank percentile of an ascending slice (`p` in 0..=100). `None` when empty.
///
/// Nearest rank (no interpolation) so that every reported latency is one that was observed.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // Rank in 1..=len; p = 0 is the minimum.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency of the requests of one run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u32,
    /// 90th percentile.
    pub p90_us: u32,
    /// 99th percentile.
    pub p99_us: u32,
    /// Slowest request.
    pub max_us: u32,
    /// Arithmetic mean.
    pub mean_us: f64,
}

impl Latency {
    /// Summarises unsorted samples (sorted in place). `None` when there are none.
    pub fn from_samples(samples: &mut [u32]) -> Option<Latency> {
        samples.sort_unstable();
        let sum: u64 = samples.iter().map(|&s| u64::from(s)).sum();
        Some(Latency {
            p50_us: percentile(samples, 50.0)?,
            p90_us: percentile(samples, 90.0)?,
            p99_us: percentile(samples, 99.0)?,
            max_us: *samples.last()?,
            mean_us: sum as f64 / samples.len() as f64,
        })
    }
}

/// Median, minimum and maximum of repeated measurements of one figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`, ignoring NaNs. `None` when nothing is left.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // Ten samples: p99 is the largest, p50 the fifth.
        let v: Vec<u32> = (1..=10).map(|x| x * 10).collect();
        assert_eq!(percentile(&v, 99.0), Some(100));
        assert_eq!(percentile(&v, 50.0), Some(50));
    }

    #[test]
    fn latency_summary_sorts_first() {
        let mut v = vec![5, 1, 4, 2, 3];
        let l = Latency::from_samples(&mut v).expect("samples");
        assert_eq!((l.p50_us, l.p99_us, l.max_us), (3, 5, 5));
        assert!((l.mean_us - 3.0).abs() < 1e-9);
        assert_eq!(Latency::from_samples(&mut []), None);
    }

    #[test]
    fn spread_median_odd_even_and_nan() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).expect("spread");
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]).expect("spread");
        assert_eq!(s.median, 2.5);
        let s = Spread::of(&[f64::NAN, 5.0]).expect("spread");
        assert_eq!(s.n, 1);
        assert!(Spread::of(&[]).is_none());
    }
}

/// Failed requests, by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// TCP connect failed (refused, reset, out of ports).
    pub connect: u64,
    /// The TLS handshake failed (certificate refused either way, protocol error).
    pub tls: u64,
    /// An answer other than the expected one (status not 200, login not `true`).
    pub http_status: u64,
    /// The request with its handshake took longer than `--timeout`.
    pub timeout: u64,
    /// The connection broke after the handshake, or the answer was not HTTP/1.1 we can read.
    pub io: u64,
}

impl Errors {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.connect + self.tls + self.http_status + self.timeout + self.io
    }

    pub(crate) fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.tls += o.tls;
        self.http_status += o.http_status;
        self.timeout += o.timeout;
        self.io += o.io;
    }
}
