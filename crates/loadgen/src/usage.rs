//! CPU time, context switches and peak memory of process trees, from `/proc` (Linux only), in seconds of one
//! core and KiB. A process that is gone counts as zero: the figures are read around a run.
//!
//! A tree is a process and its live descendants, so nginx's master and workers count; its
//! root's reaped children (`cutime + cstime`) count too.

use procfs::process::{all_processes, Process};
use procfs::{CurrentSI, KernelStats};

fn ticks(t: u64) -> f64 {
    t as f64 / procfs::ticks_per_second() as f64
}

/// `pid` and its live descendants, `pid` first.
pub fn tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_processes()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|p| {
            let ppid = p.stat().ok()?.ppid;
            Some((u32::try_from(p.pid).ok()?, u32::try_from(ppid).ok()?))
        })
        .collect();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(parents.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    out
}

fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

/// CPU seconds used by `pid`, its live descendants, and the children it reaped.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    let mut total = 0;
    for p in tree(pid) {
        if let Some(s) = process(p).and_then(|p| p.stat().ok()) {
            total += s.utime + s.stime;
            if p == pid {
                total += u64::try_from(s.cutime + s.cstime).unwrap_or(0);
            }
        }
    }
    ticks(total)
}

/// Peak resident memory (`VmHWM`) of `pid` and its live descendants, summed, in KiB.
pub fn tree_peak_rss_kib(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| process(p)?.status().ok()?.vmhwm)
        .sum()
}

/// Context switches (voluntary and not) of every thread of `pid` and its live descendants:
/// what a hand-off between threads costs shows here.
pub fn tree_context_switches(pid: u32) -> u64 {
    let mut total = 0;
    for p in tree(pid) {
        let Some(tasks) = process(p).and_then(|p| p.tasks().ok()) else {
            continue;
        };
        for status in tasks.flatten().filter_map(|t| t.status().ok()) {
            total += status.voluntary_ctxt_switches.unwrap_or(0)
                + status.nonvoluntary_ctxt_switches.unwrap_or(0);
        }
    }
    total
}

/// CPU seconds this process has used so far (every thread).
pub fn self_cpu_seconds() -> f64 {
    Process::myself()
        .and_then(|p| p.stat())
        .map_or(0.0, |s| ticks(s.utime + s.stime))
}

/// CPU seconds the whole machine (every process) has been busy since boot: user, nice, system,
/// irq, softirq and steal (guest time is already inside user).
pub fn machine_busy_seconds() -> f64 {
    KernelStats::current().map_or(0.0, |k| {
        let t = k.total;
        let opt = |v: Option<u64>| v.unwrap_or(0);
        ticks(t.user + t.nice + t.system + opt(t.irq) + opt(t.softirq) + opt(t.steal))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_in_the_tree_and_its_cpu_counts() {
        // A real child that burns CPU for a moment, so the figures cannot be zero by accident.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5",
            ])
            .spawn()
            .expect("sh");
        let me = std::process::id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while tree_cpu_seconds(child.id()) < 0.05 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(tree(me).contains(&child.id()));
        assert!(tree_cpu_seconds(child.id()) >= 0.05);
        assert!(tree_peak_rss_kib(me) > tree_peak_rss_kib(child.id()));
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(!tree(me).contains(&child.id()), "a reaped child is gone");
        // This process's own CPU is counted in clock ticks: spin until it shows one (a test
        // process that has run for less than a tick reads 0).
        let mut spins = 0u64;
        while self_cpu_seconds() == 0.0 && std::time::Instant::now() < deadline {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
        assert!(self_cpu_seconds() > 0.0 && machine_busy_seconds() > self_cpu_seconds());
    }
}
