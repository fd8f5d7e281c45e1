//! Shared fixtures: a fresh PKI in a temp dir, and a way to run outside tools against it.

use std::path::Path;
use std::process::Command;

use common::Layout;
use pki::{Folder, InitOptions, KeyAlgorithm};

/// A PKI made by `pki init` in a temporary folder, removed on drop.
pub struct TestPki {
    _dir: tempfile::TempDir,
    pub folder: Folder,
}

impl TestPki {
    /// The default layout with EC P-256 keys.
    pub fn new() -> TestPki {
        TestPki::with_key(KeyAlgorithm::default())
    }

    /// The default layout with keys of `key`.
    pub fn with_key(key: KeyAlgorithm) -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = Folder::new(Layout::new(dir.path().join("certs")));
        folder
            .init(&InitOptions {
                key,
                p12_password: Some("test-pass".into()),
                ..InitOptions::default()
            })
            .expect("pki init");
        TestPki { _dir: dir, folder }
    }

    pub fn layout(&self) -> &Layout {
        self.folder.layout()
    }

    pub fn der(&self, path: &Path) -> Vec<u8> {
        let pem = std::fs::read(path).expect("read cert");
        openssl::x509::X509::from_pem(&pem)
            .expect("pem")
            .to_der()
            .expect("der")
    }
}

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
