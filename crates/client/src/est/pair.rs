//! A certificate and its key on disk, replaced together so that the two never disagree, even
//! when the process dies half-way: Kubernetes' atomic writer, for a pair.
//!
//! ```text
//! client.crt -> .client.pair/client.crt        the paths everyone is given; symlinks
//! client.key -> .client.pair/client.key
//! .client.pair -> .client.versions/<serial>.<n>  one symlink names the version in force
//! .client.versions/<serial>.<n>/{client.crt,client.key}
//! ```
//!
//! A new version is written and synced in its own folder, then `.client.pair` is pointed at
//! it by one `rename(2)`: before it, every path reads the old pair; after it, the new one.
//! Plain files (from `pki issue`) are first moved under the same scheme without changing what
//! they hold, one path at a time, so each path reads the old pair throughout. What a crash
//! leaves (a half-written version, a version no longer in force) is removed by the next write.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A certificate file and its key file, in one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The certificate (PEM: leaf, then intermediates).
    pub cert: PathBuf,
    /// The key (PEM, mode 0600).
    pub key: PathBuf,
}

impl Pair {
    /// The pair at `cert` and `key`, which must be in the same folder (they are swapped as one).
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Pair, String> {
        let pair = Pair { cert, key };
        if pair.dir(&pair.cert)? != pair.dir(&pair.key)? {
            return Err(format!(
                "{} and {} are in different folders: keep the certificate and its key side by \
                 side, so that they can be replaced as one",
                pair.cert.display(),
                pair.key.display()
            ));
        }
        if pair.cert == pair.key {
            return Err("the certificate and the key must be two files".into());
        }
        Ok(pair)
    }

    fn dir<'a>(&self, p: &'a Path) -> Result<&'a Path, String> {
        match p.parent() {
            Some(d) if d.as_os_str().is_empty() => Ok(Path::new(".")),
            Some(d) => Ok(d),
            None => Err(format!("{} is not a file path", p.display())),
        }
    }

    fn folder(&self) -> &Path {
        self.dir(&self.cert).unwrap_or(Path::new("."))
    }

    fn stem(&self) -> String {
        self.cert
            .file_stem()
            .map_or("pair".into(), |s| s.to_string_lossy().into_owned())
    }

    fn names(&self) -> (String, String) {
        let name = |p: &Path| {
            p.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        };
        (name(&self.cert), name(&self.key))
    }

    /// `.STEM.pair`: the symlink naming the version in force.
    fn current_link(&self) -> PathBuf {
        self.folder().join(format!(".{}.pair", self.stem()))
    }

    /// `.STEM.versions`: the folder of this pair's versions (relative to the pair's folder).
    fn versions(&self) -> PathBuf {
        PathBuf::from(format!(".{}.versions", self.stem()))
    }

    /// True when the certificate in force was written by `client enroll` or `client renew`
    /// (EST): both paths are this pair's symlinks. Files from `pki issue` are plain files until
    /// an EST write adopts them, and that write puts its own version in force.
    pub fn written_by_est(&self) -> bool {
        self.is_linked()
    }

    /// Whether there is a certificate at all.
    pub fn exists(&self) -> bool {
        self.cert.exists() && self.key.exists()
    }

    /// Replaces the pair with `cert_pem` and `key_pem` (version label `label`, the serial).
    pub fn write(&self, cert_pem: &[u8], key_pem: &[u8], label: &str) -> Result<(), String> {
        let folder = self.folder().to_owned();
        fs::create_dir_all(&folder).map_err(|e| io("create", &folder, &e))?;
        self.remove_leftovers(None);
        let version = self.write_version(label, cert_pem, key_pem)?;
        if !self.is_linked() {
            self.adopt_plain_files()?;
        }
        replace_with_symlink(&self.current_link(), &version)?;
        self.link_paths()?;
        sync_dir(&folder)?;
        self.remove_leftovers(Some(&version));
        Ok(())
    }

    /// Writes and syncs `.STEM.versions/LABEL.N/` holding both files; returns its path
    /// relative to the pair's folder.
    fn write_version(&self, label: &str, cert: &[u8], key: &[u8]) -> Result<PathBuf, String> {
        let (cert_name, key_name) = self.names();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let versions = self.folder().join(self.versions());
        fs::create_dir_all(&versions).map_err(|e| io("create", &versions, &e))?;
        let name = format!("{label}.{nanos}");
        let tmp = versions.join(format!("{name}.tmp-{}", std::process::id()));
        fs::create_dir(&tmp).map_err(|e| io("create", &tmp, &e))?;
        write_file(&tmp.join(&cert_name), cert, 0o644)?;
        write_file(&tmp.join(&key_name), key, 0o600)?;
        sync_dir(&tmp)?;
        fs::rename(&tmp, versions.join(&name)).map_err(|e| io("rename", &tmp, &e))?;
        sync_dir(&versions)?;
        Ok(self.versions().join(name))
    }

    /// True when both paths are our symlinks through `.STEM.pair`.
    fn is_linked(&self) -> bool {
        let (cert_name, key_name) = self.names();
        let link = format!(".{}.pair", self.stem());
        [(&self.cert, cert_name), (&self.key, key_name)]
            .iter()
            .all(|(p, n)| fs::read_link(p).is_ok_and(|t| t == Path::new(&link).join(n)))
    }

    /// Moves plain files under the scheme: a version holding copies of them becomes the one in
    /// force, then each path becomes a symlink to the same bytes.
    fn adopt_plain_files(&self) -> Result<(), String> {
        let (Ok(cert), Ok(key)) = (fs::read(&self.cert), fs::read(&self.key)) else {
            return Ok(()); // nothing to keep: a first enrollment
        };
        let version = self.write_version("adopted", &cert, &key)?;
        replace_with_symlink(&self.current_link(), &version)
    }

    /// Points the certificate and key paths at `.STEM.pair/NAME` (each by one rename).
    fn link_paths(&self) -> Result<(), String> {
        let (cert_name, key_name) = self.names();
        let link = PathBuf::from(format!(".{}.pair", self.stem()));
        for (path, name) in [(&self.cert, cert_name), (&self.key, key_name)] {
            let target = link.join(name);
            if fs::read_link(path).ok().as_ref() != Some(&target) {
                replace_with_symlink(path, &target)?;
            }
        }
        Ok(())
    }

    /// Removes this pair's versions other than `keep` and the one in force, and temporary
    /// folders a crash left. Best effort: what stays is only clutter.
    fn remove_leftovers(&self, keep: Option<&Path>) {
        let in_force = fs::read_link(self.current_link()).ok();
        let Ok(entries) = fs::read_dir(self.folder().join(self.versions())) else {
            return;
        };
        for e in entries.flatten() {
            let rel = self.versions().join(e.file_name());
            if Some(rel.as_path()) != keep && in_force.as_ref() != Some(&rel) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// `path` becomes a symlink to `target`, by a temporary link and one rename.
fn replace_with_symlink(path: &Path, target: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .map_or("link".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.link-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp).map_err(|e| io("link", &tmp, &e))?;
    fs::rename(&tmp, path).map_err(|e| io("rename", &tmp, &e))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io("create", path, &e))?;
    // The mode of create_new is narrowed by the umask; set it as asked.
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io("chmod", path, &e))?;
    f.write_all(bytes).map_err(|e| io("write", path, &e))?;
    f.sync_all().map_err(|e| io("sync", path, &e))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync", dir, &e))
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> String {
    format!("cannot {what} {}: {e}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path) -> Pair {
        Pair::new(dir.join("client.crt"), dir.join("client.key")).expect("pair")
    }

    fn listing(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn read(p: &Pair) -> (String, String) {
        (
            fs::read_to_string(&p.cert).expect("cert"),
            fs::read_to_string(&p.key).expect("key"),
        )
    }

    #[test]
    fn each_write_replaces_both_and_leaves_one_version() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = pair(dir.path());
        p.write(b"cert-1", b"key-1", "S1").expect("write");
        assert_eq!(read(&p), ("cert-1".into(), "key-1".into()));
        p.write(b"cert-2", b"key-2", "S2").expect("write");
        assert_eq!(read(&p), ("cert-2".into(), "key-2".into()));
        let versions = listing(&dir.path().join(".client.versions"));
        assert_eq!(versions.len(), 1, "{versions:?}");
        assert!(versions[0].starts_with("S2."), "{versions:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&p.key).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn plain_files_are_adopted_and_then_replaced() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = pair(dir.path());
        fs::write(&p.cert, "old-cert").expect("write");
        fs::write(&p.key, "old-key").expect("write");
        assert!(!p.written_by_est(), "plain files are pki's");
        p.adopt_plain_files().expect("adopt");
        // Half-way (as if the process died here): the paths still read the old pair.
        assert_eq!(read(&p), ("old-cert".into(), "old-key".into()));
        p.write(b"new-cert", b"new-key", "S9").expect("write");
        assert_eq!(read(&p), ("new-cert".into(), "new-key".into()));
        assert!(p.written_by_est(), "the EST write is in force");
        assert!(fs::symlink_metadata(&p.cert)
            .expect("meta")
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_crashed_write_leaves_the_pair_in_force_and_is_cleaned_up() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = pair(dir.path());
        p.write(b"cert-1", b"key-1", "S1").expect("write");
        // A version written but never put in force, and a temporary folder of a dead writer.
        p.write_version("S2", b"cert-2", b"key-2").expect("version");
        fs::create_dir(dir.path().join(".client.versions/S3.1.tmp-99999")).expect("tmp");
        assert_eq!(read(&p), ("cert-1".into(), "key-1".into()));
        p.write(b"cert-4", b"key-4", "S4").expect("write");
        assert_eq!(read(&p), ("cert-4".into(), "key-4".into()));
        let left = listing(&dir.path().join(".client.versions"));
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].starts_with("S4."), "{left:?}");
    }

    #[test]
    fn a_pair_lives_in_one_folder() {
        let e = Pair::new("/a/x.crt".into(), "/b/x.key".into()).expect_err("refused");
        assert!(e.contains("different folders"), "{e}");
    }
}
