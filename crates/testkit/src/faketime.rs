//! Our binaries with their clock moved by Debian's libfaketime: day 31 and day 366 tested
//! with the real programs.
//!
//! The library is preloaded directly rather than through the `faketime` wrapper: the wrapper
//! makes a named semaphore and shared memory per process (`/dev/shm/faketime_*`), which a killed
//! server leaves behind, and a later wrapper whose pid matches one left behind fails with
//! `sem_open: File exists`. A plain offset such as `+31d` needs none of that.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// Where Debian's `libfaketime` package puts the multi-threaded library (our servers run
/// several threads).
const LIBRARY: &str = "faketime/libfaketimeMT.so.1";

/// libfaketime's library. Without it: prints SKIPPED and returns `None`, or fails when
/// `REQUIRE_FAKETIME` is set (CI sets it).
pub fn find() -> Option<PathBuf> {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/usr/local/lib",
    ];
    let found = dirs
        .iter()
        .map(|d| Path::new(d).join(LIBRARY))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("REQUIRE_FAKETIME").is_none(),
            "REQUIRE_FAKETIME is set but libfaketime is not installed (apt-get install faketime)"
        );
        eprintln!("SKIPPED: libfaketime is not installed (apt-get install faketime)");
    }
    found
}

/// `program` to be run at `days` after today, without our variables.
pub fn command(library: &Path, days: u32, program: &Path) -> Command {
    command_at(library, &format!("+{days}d"), program)
}

/// `program` to be run with its clock at `offset` in libfaketime's syntax (`+20h`, `+2d`),
/// without our variables.
pub fn command_at(library: &Path, offset: &str, program: &Path) -> Command {
    let mut cmd = crate::command(program);
    cmd.env("LD_PRELOAD", library).env("FAKETIME", offset);
    cmd
}

/// The server binary at a shifted clock on an ephemeral port, its stderr collected as it comes;
/// killed with its process group on drop.
pub struct ShiftedServer {
    child: Child,
    /// The TLS port.
    pub port: u16,
    /// The metrics port, when `--metrics-bind` was among the flags.
    pub metrics_port: Option<u16>,
    log: Arc<Mutex<String>>,
}

impl ShiftedServer {
    /// `server --pki-dir DIR --bind 127.0.0.1:0 --workers 1 --watch-secs 0 EXTRA...` at `days`.
    pub fn start(
        library: &Path,
        days: u32,
        server: &Path,
        pki_dir: &Path,
        extra: &[&str],
    ) -> ShiftedServer {
        let mut child = crate::server_flags(&mut command(library, days, server), pki_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start the server under faketime");
        let log = Arc::new(Mutex::new(String::new()));
        let (sink, stderr) = (log.clone(), child.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap_or_else(|e| e.into_inner());
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line_port = |marker: &str| -> u16 {
            let mut line = String::new();
            out.read_line(&mut line).expect("start-up line");
            line.split(marker)
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "no port after {marker} in {line:?}; log: {}",
                        log.lock().unwrap()
                    )
                })
        };
        let port = line_port("https://127.0.0.1:");
        let metrics_port = extra
            .contains(&"--metrics-bind")
            .then(|| line_port("http://127.0.0.1:"));
        ShiftedServer {
            child,
            port,
            metrics_port,
            log,
        }
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ShiftedServer {
    /// The whole process group goes, so nothing the server started outlives the test.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
