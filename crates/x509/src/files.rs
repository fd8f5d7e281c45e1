//! Reading and writing PKI files so that nothing is ever lost or leaked.
//!
//! Every write goes to a temporary file in the destination folder (created 0600, so a key is
//! never readable by others, whatever the umask), is fsynced, then renamed over the target and
//! the folder fsynced: a crash leaves the old file or the new one, never a torn one. Without
//! `overwrite`, the final step is a hard link that fails if anything (a file, or a symlink planted
//! by someone else) already sits at the target, so there is no window between "check" and "write".

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Who may read a file once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    /// Certificates, CRLs, the index: 0644.
    Public,
    /// Private keys, PKCS#12 bundles and their passwords: 0600.
    Secret,
}

impl Secrecy {
    fn mode(self) -> u32 {
        match self {
            Secrecy::Public => 0o644,
            Secrecy::Secret => 0o600,
        }
    }
}

/// Whether a write may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Refuse with [`Error::Exists`] when the target exists (even as a dangling symlink).
    Never,
    /// Atomically replace the target (a symlink is replaced, never written through).
    Replace,
}

/// Environment variable of the fault-injection points used by the crash tests:
/// `crash-before-rename[:N]` aborts the process at the N-th (default first) rename of a written
/// and synced temp file into place; `crash-after-commit[:N]` at the N-th point where a record
/// is committed and its files are not yet in place; `crash-before-settle` once they are in place
/// but not yet recorded as issued; `enospc` fails every write as a full disk
/// would.
pub const FAILPOINT_ENV: &str = "PKI_FAILPOINT";

fn failpoint(name: &str) -> bool {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let Some(v) = std::env::var_os(FAILPOINT_ENV) else {
        return false;
    };
    let v = v.to_string_lossy();
    let (point, nth) = v.split_once(':').unwrap_or((&v, "1"));
    point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth.parse().unwrap_or(1)
}

/// The prefix of this process's temporary files: `.pki-PID-`. A temp file names the process
/// writing it, so a clean-up never removes one that a live command is still writing.
fn temp_prefix() -> String {
    format!(".pki-{}-", std::process::id())
}

/// Whether the temporary file `name` (`.pki-PID-….tmp`) was left by a process that is gone.
fn is_stale_temp(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(".pki-")
        .filter(|_| name.ends_with(".tmp"))
    else {
        return false;
    };
    match rest
        .split_once('-')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
    {
        Some(pid) => pid != std::process::id() && !process_alive(pid),
        // A temp file of an older pki, which did not name its process.
        None => true,
    }
}

/// Whether a process with this pid exists on this host.
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes temporary files that a crashed run left in `dir` (`.pki-PID-*.tmp` of a process
/// that is gone): they may hold a key. Files of live processes are never touched. Returns what
/// was removed.
pub fn remove_stale_temps(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_stale_temp)
        })
        .filter(|p| fs::remove_file(p).is_ok())
        .collect()
}

/// True when something (a file, a folder, or a symlink, even dangling) is at `path`.
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Reads a whole file, naming it in the error.
pub fn read(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path` atomically with the mode of `secrecy`.
pub fn write(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
    secrecy: Secrecy,
    overwrite: Overwrite,
) -> Result<()> {
    stage(what, path, bytes, secrecy, overwrite)?.commit()
}

/// A file written and synced under a temporary name next to its target, not yet in place.
/// Dropped without [`Staged::commit`], it is removed and the target is untouched.
#[derive(Debug)]
pub struct Staged {
    what: &'static str,
    path: std::path::PathBuf,
    overwrite: Overwrite,
    tmp: tempfile::NamedTempFile,
}

/// Step one of an atomic write: `bytes` in a synced temporary file beside `path`, with the mode
/// of `secrecy`. Refuses at once when `path` exists and `overwrite` is `Never`.
pub fn stage(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
    secrecy: Secrecy,
    overwrite: Overwrite,
) -> Result<Staged> {
    stage_with(what, path, bytes, secrecy, overwrite, true)
}

/// [`stage`] without the file's own sync, for a batch that calls [`sync_filesystem`] once
/// before it renames anything.
pub fn stage_unsynced(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
    secrecy: Secrecy,
    overwrite: Overwrite,
) -> Result<Staged> {
    stage_with(what, path, bytes, secrecy, overwrite, false)
}

/// Flushes every file of the file system that holds `path` to disk (`syncfs(2)`).
pub fn sync_filesystem(what: &'static str, path: &Path) -> Result<()> {
    let dir = fs::File::open(parent(path)).map_err(|source| Error::Write {
        what,
        path: path.to_owned(),
        source,
    })?;
    rustix::fs::syncfs(&dir).map_err(|e| Error::Write {
        what,
        path: path.to_owned(),
        source: e.into(),
    })
}

fn stage_with(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
    secrecy: Secrecy,
    overwrite: Overwrite,
    sync: bool,
) -> Result<Staged> {
    let err = |source| Error::Write {
        what,
        path: path.to_owned(),
        source,
    };
    if overwrite == Overwrite::Never && exists(path) {
        return Err(Error::Exists {
            what,
            path: path.to_owned(),
        });
    }
    let dir = parent(path);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(err)?;

    // tempfile creates the file O_EXCL with mode 0600: a key is never visible with wider bits.
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix())
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    if std::env::var_os(FAILPOINT_ENV).is_some_and(|v| v == "enospc") {
        return Err(err(std::io::Error::from_raw_os_error(28)));
    }
    tmp.write_all(bytes).map_err(err)?;
    // Set the final mode explicitly: umask never widens or narrows it.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(secrecy.mode()))
        .map_err(err)?;
    if sync {
        tmp.as_file().sync_all().map_err(err)?;
    }
    Ok(Staged {
        what,
        path: path.to_owned(),
        overwrite,
        tmp,
    })
}

impl Staged {
    /// Step two: renames the file into place (never over an existing file unless `Replace`)
    /// and syncs the folder.
    pub fn commit(self) -> Result<()> {
        let (what, path) = (self.what, self.path.clone());
        self.rename()?;
        sync_dir(what, &path)
    }

    /// Step two without the folder sync, for batches: call [`sync_dir`] once after the last.
    pub fn rename(self) -> Result<()> {
        let Staged {
            what,
            path,
            overwrite,
            tmp,
        } = self;
        let err = |source| Error::Write {
            what,
            path: path.clone(),
            source,
        };
        if failpoint("crash-before-rename") {
            // Keep the temp file on disk, as a real crash would.
            let _ = tmp.keep();
            std::process::abort();
        }
        match overwrite {
            Overwrite::Replace => tmp.persist(&path).map_err(|e| err(e.error))?,
            Overwrite::Never => tmp.persist_noclobber(&path).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Exists {
                        what,
                        path: path.clone(),
                    }
                } else {
                    err(e.error)
                }
            })?,
        };
        Ok(())
    }

    /// Where it goes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Syncs the folder of `path`: a rename is durable only once its folder is.
pub fn sync_dir(what: &'static str, path: &Path) -> Result<()> {
    fs::File::open(parent(path))
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Write {
            what,
            path: path.to_owned(),
            source,
        })
}

/// Aborts the process at the named fault-injection point when [`FAILPOINT_ENV`] asks for it
/// (crash tests of the database path: `crash-after-commit`).
pub fn crash_point(name: &str) {
    if failpoint(name) {
        std::process::abort();
    }
}

/// Unix mode bits of a file, if it exists.
pub fn mode(path: &Path) -> Option<u32> {
    path.metadata()
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_0600_whatever_the_umask() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/x.key");
        write("key", &p, b"secret", Secrecy::Secret, Overwrite::Never).expect("write");
        assert_eq!(mode(&p), Some(0o600));
        let p = dir.path().join("x.crt");
        write("cert", &p, b"public", Secrecy::Public, Overwrite::Never).expect("write");
        assert_eq!(mode(&p), Some(0o644));
    }

    #[test]
    fn never_overwrites_without_replace_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.key");
        write("key", &p, b"old", Secrecy::Secret, Overwrite::Never).expect("write");
        let e = write("key", &p, b"new", Secrecy::Secret, Overwrite::Never).expect_err("must fail");
        assert!(matches!(e, Error::Exists { .. }), "{e}");
        assert_eq!(fs::read(&p).expect("read"), b"old");
        write("key", &p, b"new", Secrecy::Secret, Overwrite::Replace).expect("replace");
        assert_eq!(fs::read(&p).expect("read"), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.key")]);
    }

    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").expect("write victim");
        let p = dir.path().join("x.key");
        std::os::unix::fs::symlink(&victim, &p).expect("symlink");
        let e = write("key", &p, b"key", Secrecy::Secret, Overwrite::Never).expect_err("must fail");
        assert!(matches!(e, Error::Exists { .. }), "{e}");
        write("key", &p, b"key", Secrecy::Secret, Overwrite::Replace).expect("replace");
        assert_eq!(fs::read(&victim).expect("read"), b"precious");
        assert!(!p.symlink_metadata().expect("meta").file_type().is_symlink());
    }
}
