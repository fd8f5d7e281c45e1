//! Names are data, not paths. A certificate's name (`pki issue client --name dev-42`) becomes a
//! file stem (`client/dev-42.crt`) and a record key, so it must never be able to say "elsewhere".
//!
//! The rule, checked once here for the CLI, the library and the online CA alike:
//! - 1 to [`MAX_LEN`] characters from `A-Z a-z 0-9 . - _`;
//! - the first character is a letter or a digit (so never `.`, `..`, a hidden file, or something
//!   a command line would read as a flag);
//! - names are unique without regard to case (`Dev-1` and `dev-1` are the same device), so two
//!   devices never collide on a case-insensitive file system.
//!
//! The subject's CN may say more than the file stem: by default it is the name itself, and
//! `--cn` ([`CommonName`]) accepts any printable text without control characters, up to the 64
//! characters RFC 5280 allows.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Longest accepted name: room for a prefix and a counter, short of every file system's limit.
pub const MAX_LEN: usize = 64;

/// The rule, in the words every refusal gives.
pub const RULE: &str = "a name is 1 to 64 characters from A-Z a-z 0-9 . - _, starting with a \
                        letter or a digit";

/// A name that passed the rule: safe as one path component and as a record key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Checks `s` against the rule.
    pub fn parse(s: &str) -> Result<Name> {
        let refuse = |why: &str| Error::BadName {
            rule: RULE,
            name: s.escape_debug().to_string(),
            why: why.to_owned(),
        };
        let first = s.chars().next().ok_or_else(|| refuse("it is empty"))?;
        if s.len() > MAX_LEN {
            return Err(refuse(&format!("it is {} bytes long", s.len())));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(refuse(&format!("{:?} is not allowed", c)));
        }
        if !first.is_ascii_alphanumeric() {
            return Err(refuse(&format!("it starts with {first:?}")));
        }
        Ok(Name(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record key: names are unique without regard to case.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Name {
    type Err = Error;
    fn from_str(s: &str) -> Result<Name> {
        Name::parse(s)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A subject CN given explicitly (`--cn`): printable, no control characters, 1 to 64 characters
/// (RFC 5280's ub-common-name).
pub fn check_common_name(cn: &str) -> Result<()> {
    let refuse = |why: &str| Error::BadName {
        name: cn.escape_debug().to_string(),
        why: format!("{why} (a CN is 1 to 64 printable characters)"),
        rule: RULE,
    };
    if cn.trim().is_empty() {
        return Err(refuse("it is empty"));
    }
    if cn.chars().count() > 64 {
        return Err(refuse("it is longer than 64 characters"));
    }
    if let Some(c) = cn.chars().find(|c| c.is_control()) {
        return Err(refuse(&format!("it holds the control character {c:?}")));
    }
    Ok(())
}

/// `root/rel`, refused unless it stays inside `root` once every symlink on the way is resolved.
/// `rel` is built from [`Name`]s, so this is the second wall, against a folder of the PKI that is
/// itself a symlink to somewhere else.
pub fn inside(root: &Path, rel: &Path) -> Result<PathBuf> {
    let escapes = || {
        Error::Refused(format!(
            "{} would be written outside the PKI folder {}: a folder on the way is a symlink to \
         somewhere else; remove it or point --dir at the real folder",
            root.join(rel).display(),
            root.display()
        ))
    };
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(escapes());
    }
    let path = root.join(rel);
    let Ok(real_root) = root.canonicalize() else {
        // No root yet: nothing under it can be a symlink; it is created as a plain folder.
        return Ok(path);
    };
    // The deepest folder on the way that exists decides where the file lands.
    let mut existing = path.parent();
    while let Some(dir) = existing {
        if let Ok(real) = dir.canonicalize() {
            return if real.starts_with(&real_root) {
                Ok(path)
            } else {
                Err(escapes())
            };
        }
        existing = dir.parent();
    }
    Ok(path)
}

/// Validity in days as asked for: at least one day, at most [`MAX_DAYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(u32);

/// Longest validity accepted for a leaf or a CA (100 years).
pub const MAX_DAYS: u32 = 36_500;

impl Days {
    /// Checks `n`.
    pub fn new(n: i64) -> Result<Days> {
        match u32::try_from(n) {
            Ok(d) if (1..=MAX_DAYS).contains(&d) => Ok(Days(d)),
            _ => Err(Error::BadDays(format!(
                "--days {n}: a certificate must be valid now and for at least a day; give 1 to \
                 {MAX_DAYS}"
            ))),
        }
    }

    /// The number of days.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::str::FromStr for Days {
    type Err = Error;
    fn from_str(s: &str) -> Result<Days> {
        let n: i64 = s
            .trim()
            .parse()
            .map_err(|_| Error::BadDays(format!("--days {s:?}: not a whole number of days")))?;
        Days::new(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_accepts_device_names() {
        for ok in [
            "client",
            "dev-42",
            "sensor_7",
            "a",
            "api.internal",
            "A1",
            "x..y",
        ] {
            assert_eq!(Name::parse(ok).expect(ok).as_str(), ok);
        }
        let longest = "a".repeat(MAX_LEN);
        assert!(Name::parse(&longest).is_ok());
    }

    #[test]
    fn the_rule_refuses_paths_and_controls_and_names_it() {
        let overlong = "a".repeat(MAX_LEN + 1);
        for bad in [
            "", ".", "..", "../x", "a/b", "/tmp/x", "a\\b", "-rf", ".hidden", "_x", "a b", "a\nb",
            "a\tb", "a\0b", "%2e%2e", "é", "a:b", &overlong,
        ] {
            let e = Name::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(RULE), "{e}");
        }
    }

    #[test]
    fn names_are_one_key_whatever_the_case() {
        assert_eq!(
            Name::parse("Dev-1").expect("n").key(),
            Name::parse("dev-1").expect("n").key()
        );
    }

    #[test]
    fn days_must_be_at_least_one() {
        assert!(Days::new(0).is_err());
        assert!(Days::new(-3).is_err());
        assert!("x".parse::<Days>().is_err());
        assert_eq!(Days::new(1).expect("1").get(), 1);
        assert!(Days::new(i64::from(MAX_DAYS) + 1).is_err());
    }

    #[test]
    fn a_symlinked_folder_that_leads_out_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("pki");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).expect("root");
        std::fs::create_dir_all(&outside).expect("outside");
        std::os::unix::fs::symlink(&outside, root.join("client")).expect("symlink");
        assert!(inside(&root, Path::new("client/x.key")).is_err());
        assert!(inside(&root, Path::new("server/x.key")).is_ok());
        assert!(inside(&root, Path::new("../x.key")).is_err());
    }
}
