//! CPU time and peak memory of processes, from `/proc` (Linux only).
//!
//! CPU is `utime + stime` of every live process of a tree plus `cutime + cstime` of its root (the
//! children it already reaped), so nginx's master and workers and all of our server's threads
//! count. Figures are in seconds of one core.

use std::path::Path;

/// Kernel ticks per second in `/proc/*/stat`. `USER_HZ` is part of Linux's ABI and is 100 on
/// every architecture Debian ships (`getconf CLK_TCK`); reading it at run time needs `sysconf`
/// through unsafe FFI, which this workspace forbids.
pub const USER_HZ: f64 = 100.0;

/// The fields of `/proc/PID/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Parent process id.
    pub ppid: u32,
    /// User-mode ticks of the process (all its threads).
    pub utime: u64,
    /// Kernel-mode ticks.
    pub stime: u64,
    /// User-mode ticks of reaped children.
    pub cutime: u64,
    /// Kernel-mode ticks of reaped children.
    pub cstime: u64,
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let at = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(at(4)?).ok()?,
        utime: at(14)?,
        stime: at(15)?,
        cutime: at(16)?,
        cstime: at(17)?,
    })
}

/// `/proc/PID/stat` of one process, `None` when it is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds this process has used so far (every thread).
pub fn self_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_stat(&t))
        .map_or(0.0, |s| (s.utime + s.stime) as f64 / USER_HZ)
}

/// Busy ticks of the whole machine from the `cpu` line of `/proc/stat`: user, nice, system,
/// irq, softirq and steal (guest time is already inside user).
pub fn parse_machine_busy(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    Some(v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).unwrap_or(&0))
}

/// CPU seconds the whole machine (every process) has been busy since boot.
pub fn machine_busy_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_machine_busy(&t))
        .map_or(0.0, |t| t as f64 / USER_HZ)
}

/// `pid` and all its live descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(s) = stat(p) {
                parents.push((p, s.ppid));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// CPU seconds used by `pid`, its live descendants, and the children it reaped.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    let mut ticks = 0;
    for p in tree(pid) {
        if let Some(s) = stat(p) {
            ticks += s.utime + s.stime;
            if p == pid {
                ticks += s.cutime + s.cstime;
            }
        }
    }
    ticks as f64 / USER_HZ
}

/// A `Key:   123 kB` line of `/proc/PID/status`, in KiB.
pub fn status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Peak resident memory (`VmHWM`) of `pid` and its live descendants, summed, in KiB.
pub fn tree_peak_rss_kib(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| {
            std::fs::read_to_string(Path::new("/proc").join(p.to_string()).join("status")).ok()
        })
        .filter_map(|t| status_kib(&t, "VmHWM"))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let text = "1234 (nginx: worker (x)) S 1200 1234 1234 0 -1 4194624 100 0 0 0 \
                    250 31 7 3 20 0 1 0 100 1000 10 18446744073709551615";
        let s = parse_stat(text).expect("parses");
        assert_eq!(
            s,
            Stat {
                ppid: 1200,
                utime: 250,
                stime: 31,
                cutime: 7,
                cstime: 3
            }
        );
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn machine_line() {
        let text = "cpu  100 5 50 9000 7 3 2 1 40 0\ncpu0 50 2 25 4500 3 1 1 0 20 0\n";
        assert_eq!(parse_machine_busy(text), Some(100 + 5 + 50 + 3 + 2 + 1));
        assert_eq!(parse_machine_busy("intr 1 2"), None);
    }

    #[test]
    fn status_lines() {
        let text = "Name:\tnginx\nVmPeak:\t  9000 kB\nVmHWM:\t    4242 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(status_kib(text, "VmHWM"), Some(4242));
        assert_eq!(status_kib(text, "VmSwap"), None);
    }

    #[test]
    fn own_process_is_readable() {
        // Reads /proc only; no process is started.
        assert!(self_cpu_seconds() >= 0.0);
        let me = std::process::id();
        assert_eq!(tree(me)[0], me);
        assert!(tree_peak_rss_kib(me) > 0);
    }
}
