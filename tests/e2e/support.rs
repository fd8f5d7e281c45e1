//! What the end-to-end tests share beyond the workspace's fixture (`testkit`): running outside
//! tools, refusals, and the server's captured log.

use std::path::Path;
use std::process::Command;

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
