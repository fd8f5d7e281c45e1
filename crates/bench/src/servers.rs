//! The servers under test: the benchmark PKI they both load, and a server process started for
//! one run, stopped when dropped.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::error::{io, Error, Result};
use crate::figure::KeyKind;
use crate::model::Server;

/// A benchmark PKI of one key type in a temporary folder, made by the `pki` library.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// CA, server (DNS:localhost, IP:127.0.0.1) and client certificates, and a CRL.
    pub fn make(key: KeyKind) -> Result<Pki> {
        let dir = tempfile::Builder::new()
            .prefix("bench-pki-")
            .tempdir()
            .map_err(io("make a temporary folder"))?;
        let key = match key {
            KeyKind::EcP256 => pki::KeyAlgorithm::EcP256,
            KeyKind::Rsa2048 => pki::KeyAlgorithm::Rsa2048,
        };
        pki::Folder::new(common::Layout::new(dir.path())).init(&pki::InitOptions {
            key,
            // A known password: the bundles are not used, and a random one would be saved too.
            p12_password: Some("bench".into()),
            ..Default::default()
        })?;
        Ok(Pki { dir })
    }

    /// Its file paths.
    pub fn layout(&self) -> common::Layout {
        common::Layout::new(self.dir.path())
    }
}

/// A server process started for one run.
pub struct Running {
    child: Child,
    server: Server,
    log: PathBuf,
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
}

/// A free port on 127.0.0.1. Released before the server binds it: another process could take
/// it in between, which the start-up check then reports.
pub fn free_port() -> Result<u16> {
    let port = || Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
    port().map_err(io("find a free port on 127.0.0.1"))
}

impl Running {
    /// Runs `cmd`, its output appended to `log`, and waits until `addr` accepts connections.
    pub fn start(
        server: Server,
        mut cmd: Command,
        log: PathBuf,
        addr: SocketAddr,
    ) -> Result<Running> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("open {}", log.display())))?;
        let err = out.try_clone().map_err(io("duplicate a log file"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("start {}", cmd.get_program().to_string_lossy())))?;
        let mut running = Running {
            child,
            server,
            log,
            addr,
        };
        running.wait_ready()?;
        Ok(running)
    }

    /// Its process id (nginx: the master's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last 15 lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn failed(&self, why: String) -> Error {
        Error::ServerStart {
            server: self.server.name(),
            why,
            log: self.log_tail(),
        }
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(format!("exited at start-up ({status})")));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failed(format!("did not listen on {} within 15 s", self.addr)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (nginx's fast shutdown of master and workers, our server's graceful stop), then
    /// SIGKILL to the whole tree after 5 s. The std library only sends SIGKILL to one process,
    /// which would orphan nginx's workers.
    pub fn stop(&mut self) {
        let kill = |pid: u32, signal| {
            let pid = i32::try_from(pid).ok().and_then(Pid::from_raw);
            let _ = pid.map(|pid| kill_process(pid, signal));
        };
        // Once reaped, its pid may be another process's: signal only a live child.
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        kill(self.pid(), Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in loadgen::usage::tree(self.pid()).into_iter().rev() {
            kill(pid, Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_exits_at_start_up_is_reported_with_its_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo 'no such option: --bind' >&2; exit 3"]);
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port().expect("port")));
        let log = dir.path().join("ours.log");
        let Err(e) = Running::start(Server::Ours, sh, log, addr) else {
            panic!("sh ran as a server")
        };
        match e {
            Error::ServerStart { server, why, log } => {
                assert_eq!(server, "ours");
                assert_eq!(why, "exited at start-up (exit status: 3)");
                assert_eq!(log, "no such option: --bind");
            }
            other => panic!("{other}"),
        }
    }

    fn alive(pid: u32) -> bool {
        let state = procfs::process::Process::new(pid as i32).and_then(|p| p.stat());
        state.is_ok_and(|s| s.state != 'Z')
    }

    #[test]
    fn stop_kills_a_tree_that_ignores_sigterm() {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port().expect("port");
        let script = format!(
            "import os, signal, socket, time\n\
             signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
             if os.fork() == 0: time.sleep(60)\n\
             s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)\n"
        );
        let mut py = Command::new("python3");
        py.args(["-c", &script]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut running =
            Running::start(Server::Nginx, py, dir.path().join("nginx.log"), addr).expect("starts");
        let tree = loadgen::usage::tree(running.pid());
        assert_eq!(tree.len(), 2, "the server and its worker: {tree:?}");
        let t0 = Instant::now();
        running.stop();
        assert!(
            t0.elapsed() >= Duration::from_secs(5),
            "SIGTERM was ignored: waited first"
        );
        // SIGKILL is delivered asynchronously: give the kernel a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        while tree.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !tree.iter().any(|&p| alive(p)),
            "worker left behind: {tree:?}"
        );
    }

    #[test]
    fn a_pki_for_both_servers() {
        let pki = Pki::make(KeyKind::EcP256).expect("pki");
        let l = pki.layout();
        assert!(l.client_key().is_file() && l.server_cert().is_file() && l.ca_crl().is_file());
    }
}
