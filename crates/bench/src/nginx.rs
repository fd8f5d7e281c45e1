//! nginx, the reference: its configuration for one run, and finding it.
//!
//! The configuration matches our server where it matters for the figures: same certificate,
//! key, CA and CRL files; TLS 1.2 + 1.3 with Mozilla's intermediate ECDHE+AEAD suites and
//! groups; the same routes answering the same bodies; the same number of workers; listening on
//! 127.0.0.1 only; no access log (our server runs with `RUST_LOG=warn`, so no access log either).

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Layout;

/// TLS 1.2 suites, the same list as our server's (`crates/server/src/tls.rs`).
pub const TLS12_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// Key-exchange groups, our server's `X25519:P-256:P-384` in nginx's spelling.
pub const GROUPS: &str = "X25519:prime256v1:secp384r1";

/// nginx.conf for one run on `port` with `pki`'s server certificate; `mutual` requires a client
/// certificate from its CA, checked against its CRL (the benchmark PKI always has one). Runs in
/// the foreground (`daemon off`) so the driver owns the master; `dir` holds its pid and temp
/// paths.
pub fn render(dir: &Path, port: u16, workers: usize, pki: &Layout, mutual: bool) -> String {
    render_with(dir, port, workers, pki, mutual, None)
}

/// [`render`], with `GET /login` forwarded to `upstream` (`proxy_pass` over kept-alive
/// connections, the client's subject in a header, as our front door forwards).
pub fn render_with(
    dir: &Path,
    port: u16,
    workers: usize,
    pki: &Layout,
    mutual: bool,
    upstream: Option<u16>,
) -> String {
    let (pool, login) = match upstream {
        Some(up) => (
            format!("    upstream app {{\n        server 127.0.0.1:{up};\n        keepalive 64;\n    }}\n"),
            "            proxy_pass http://app;\n            proxy_http_version 1.1;\n            \
             proxy_set_header Connection \"\";\n            \
             proxy_set_header X-Client-Cert-Subject $ssl_client_s_dn;\n"
                .to_owned(),
        ),
        None => (
            String::new(),
            "            default_type text/plain;\n            return 200 \"Hello World!\";\n"
                .to_owned(),
        ),
    };
    let mutual = if mutual {
        format!(
            "        ssl_verify_client on;\n        ssl_client_certificate {};\n        \
             ssl_verify_depth 2;\n        ssl_crl {};\n",
            pki.ca_cert().display(),
            pki.ca_crl().display()
        )
    } else {
        String::new()
    };
    format!(
        "# Written by `bench compare` for one run; see bench/README.md.
{head}
    # Our server keeps a connection for any number of requests; nginx's default closes after
    # 1000, which would add a handshake every 1000 requests to its keep-alive figures.
    keepalive_requests 1000000;
    keepalive_timeout 30s;
{pool}
    server {{
        # h2 as well, as ours: offered by ALPN, taken by the h2 figures (and by browsers).
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {ciphers};
        ssl_ecdh_curve {groups};
        ssl_prefer_server_ciphers off;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 10m;
{mutual}
        location = /login {{
{login}        }}
        location = /login1 {{
            # A fixed answer: nginx's reference does no password hashing.
            default_type application/json;
            return 200 \"true\";
        }}
    }}
}}
",
        head = head(dir, "nginx", workers),
        cert = pki.server_cert().display(),
        key = pki.server_key().display(),
        ciphers = TLS12_CIPHERS,
        groups = GROUPS,
    )
}

/// The start of an nginx.conf, up to the open `http` block: one nginx of `dir`, its pid, log
/// and temporary folders named after `name` (the bench runs two side by side).
fn head(dir: &Path, name: &str, workers: usize) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process on;
worker_processes {workers};
pid {d}/{name}.pid;
error_log {d}/{name}.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {d}/{name}_body;
    proxy_temp_path {d}/{name}_proxy;
    fastcgi_temp_path {d}/{name}_fastcgi;
    uwsgi_temp_path {d}/{name}_uwsgi;
    scgi_temp_path {d}/{name}_scgi;"
    )
}

/// nginx.conf of the upstream of the proxied figure: plain HTTP on `port`, one worker,
/// `GET /login` answering `Hello World!`.
pub fn render_upstream(dir: &Path, port: u16) -> String {
    format!(
        "{head}
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location = /login {{
            default_type text/plain;
            return 200 \"Hello World!\";
        }}
    }}
}}
",
        head = head(dir, "upstream", 1),
    )
}

/// nginx on the PATH (or in /usr/sbin, which a non-root PATH may lack). `bench/install-nginx.sh`
/// installs it.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// `nginx -v`, e.g. `nginx/1.22.1`.
pub fn version(nginx: &Path) -> Option<String> {
    let out = Command::new(nginx).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    Some(text.trim().trim_start_matches("nginx version: ").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mutual: bool) -> String {
        render(Path::new("/tmp/b"), 18443, 2, &Layout::new("/p"), mutual)
    }

    #[test]
    fn mutual_config() {
        let c = config(true);
        assert!(c.contains("listen 127.0.0.1:18443 ssl http2;"));
        assert!(c.contains("worker_processes 2;"));
        assert!(c.contains("ssl_verify_client on;"));
        assert!(c.contains("ssl_certificate /p/server/server.crt;"));
        assert!(c.contains("ssl_client_certificate /p/ca/ca.crt;"));
        assert!(c.contains("ssl_crl /p/ca/ca.crl;"));
        assert!(c.contains("ssl_protocols TLSv1.2 TLSv1.3;"));
        assert!(c.contains("ssl_session_cache shared:SSL:10m;"));
        assert!(c.contains("return 200 \"Hello World!\";"));
        assert!(c.contains("return 200 \"true\";"));
        assert!(c.contains("access_log off;"));
        assert!(c.contains("pid /tmp/b/nginx.pid;"));
        assert!(c.contains("daemon off;"));
        // Balanced braces: nginx would refuse the file otherwise.
        assert_eq!(c.matches('{').count(), c.matches('}').count());
    }

    #[test]
    fn the_proxied_config_forwards_login_over_kept_alive_connections() {
        let c = render_with(
            Path::new("/tmp/b"),
            18443,
            2,
            &Layout::new("/p"),
            true,
            Some(9),
        );
        assert!(c.contains("server 127.0.0.1:9;") && c.contains("keepalive 64;"));
        assert!(c.contains("proxy_pass http://app;"));
        assert!(c.contains("proxy_set_header Connection \"\";"));
        assert!(!c.contains("Hello World!"));
        assert_eq!(c.matches('{').count(), c.matches('}').count());
        let up = render_upstream(Path::new("/tmp/b"), 9);
        assert!(up.contains("listen 127.0.0.1:9;") && up.contains("Hello World!"));
        assert_eq!(up.matches('{').count(), up.matches('}').count());
    }

    #[test]
    fn one_way_config_has_no_client_verification() {
        let c = config(false);
        assert!(!c.contains("ssl_verify_client"));
        assert!(!c.contains("ssl_crl"));
        // Only loopback: never a bare port or 0.0.0.0.
        assert_eq!(c.matches("listen ").count(), 1);
        assert!(!c.contains("0.0.0.0"));
    }
}
