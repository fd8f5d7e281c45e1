//! What the end-to-end tests share beyond the workspace's fixture (`testkit`): running outside
//! tools, refusals, and the server's captured log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use testkit::TestPki;

/// Runs `program args`, returning (success, stdout + stderr).
pub fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Asserts that the server at `addr` refuses a client without a certificate in the handshake,
/// with TLS 1.3's own alert for it.
pub fn assert_refused_without_a_certificate(addr: std::net::SocketAddr, ca: &Path) {
    let o = crate::tls_client::Opts {
        ca: Some(ca),
        version: Some(openssl::ssl::SslVersion::TLS1_3),
        ..Default::default()
    };
    let e = crate::tls_client::refusal(addr, &o);
    assert!(e.contains("alert certificate required"), "{e}");
}

/// A server of ours on an ephemeral loopback port, in its own thread; stopped on drop.
pub type TestServer = server::Background;

/// Everything the servers of this test binary log (tracing), to assert that refusals are logged
/// with their reason. Installed once per process.
pub fn server_log() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

fn log_buffer() -> &'static std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = LogWriter(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_env_filter("warn")
            .try_init();
        buf
    })
}

#[derive(Clone)]
struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing server logs (call before starting servers).
pub fn capture_logs() {
    let _ = log_buffer();
}

/// This workspace's binaries `names`, as cargo builds them now, in the profile and target
/// folder this test was built in (instant when they are up to date). A test of the root package
/// has no `CARGO_BIN_EXE_*` for another package's binaries, and a dev-dependency builds only a
/// package's library, not its binaries: so the test asks cargo, and runs the paths it reports
/// (never a stale binary left in target/).
pub fn workspace_bins<const N: usize>(names: [&str; N]) -> [PathBuf; N] {
    let exe = std::env::current_exe().expect("the test's path");
    // target/PROFILE/deps/e2e-HASH: cargo calls the `debug` folder's profile `dev`.
    let profile = match exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
    {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = testkit::command(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "--profile",
        ])
        .arg(&profile)
        .arg("--target-dir")
        .arg(target_dir);
    for n in names {
        cmd.args(["-p", n, "--bin", n]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "cargo build {names:?} failed (above)");
    names.map(|name| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| panic!("cargo reported no executable for {name}"))
    })
}
