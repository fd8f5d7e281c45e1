//! Who is writing a record's files: this host, this process, and when it started. A record left
//! in state "issuing" by a command that died is repaired by the next command; one whose writer
//! is alive is left alone, whoever looks at it.

use std::time::Duration;

/// How long a claim by another host counts as alive: we cannot look at its processes.
pub const REMOTE_CLAIM_TTL: Duration = Duration::from_secs(15 * 60);

/// This process's claim: `host pid start`.
pub fn mine() -> String {
    let pid = std::process::id();
    format!("{} {pid} {}", host(), start_time(pid).unwrap_or(0))
}

/// Whether the writer named by `claim` (made at `claimed_at`, Unix seconds) may still be at work.
pub fn is_live(claim: &str, claimed_at: i64, now: i64) -> bool {
    let mut parts = claim.split(' ');
    let (Some(h), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    if h != host() {
        return now - claimed_at < REMOTE_CLAIM_TTL.as_secs() as i64;
    }
    // Same pid and same start time: the same process (a reused pid starts later).
    x509::files::process_alive(pid) && start_time(pid).is_none_or(|s| s == start)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains(' '))
        .unwrap_or_else(|| "localhost".into())
}

/// The process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn my_claim_is_live_and_a_dead_one_is_not() {
        let now = x509::time::now();
        assert!(is_live(&mine(), now, now));
        let dead = format!("{} 999999999 1", host());
        assert!(!is_live(&dead, now, now));
        let remote = "elsewhere 1 1";
        assert!(is_live(remote, now, now));
        assert!(!is_live(remote, now - 3600, now));
    }
}
