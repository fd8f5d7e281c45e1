//! The seed's credential table, done properly: password hashes, never plain text.
//!
//! The seed compared `request.form["password"] == {"name": "pwd1"}[username]`. Here the table
//! maps a user to an argon2id PHC string or a bcrypt hash (as `htpasswd -B` writes), loaded from
//! an htpasswd-style file or the embedded default (the seed's user `name`, password `pwd1`).
//! Hash checks are constant-time, and an unknown user costs exactly a wrong password.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use argon2::PasswordHash;

/// The seed's user `name` with password `pwd1`, as an argon2id hash with m=7 MiB, t=5, p=1:
/// one of OWASP's equivalent argon2id settings (as strong as m=19 MiB, t=2 against a GPU
/// attacker, trading memory for passes), chosen because a server holds the working memory of
/// every check in flight.
pub const SEED_USER: (&str, &str) = (
    "name",
    "$argon2id$v=19$m=7168,t=5,p=1$Y/0QD5FZHcj1RmlT7nJMew$vzJ7IFchOhym3d79b6KYwo2Iiptwll8TeYar5l7pezo",
);

/// `username` and `password` from a `/login1` form body. Repeated fields: the first one counts.
/// `None` when either is missing or the body is not a form (a failed login, not an error).
pub fn parse_login_form(body: &[u8]) -> Option<(String, String)> {
    // Borrowed pieces, decoded only where escaped; only the two fields kept are copied.
    let (mut user, mut password) = (None, None);
    for (name, value) in form_urlencoded::parse(body) {
        match &*name {
            "username" if user.is_none() => user = Some(value),
            "password" if password.is_none() => password = Some(value),
            _ => {}
        }
    }
    Some((user?.into_owned(), password?.into_owned()))
}

/// Why a credentials file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read users file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// A line is not `user:hash` with a supported hash.
    #[error("users file {}, line {line}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No user at all.
    #[error("users file {} defines no user", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

#[derive(Debug, Clone)]
enum Hash {
    Argon2(String),
    Bcrypt(String),
}

impl Hash {
    fn parse(s: &str) -> Result<Hash, String> {
        if s.starts_with("$argon2") {
            PasswordHash::new(s).map_err(|e| format!("malformed argon2 PHC string ({e})"))?;
            Ok(Hash::Argon2(s.to_owned()))
        } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| s.starts_with(p)) {
            // A cheap structural check: cost and 53 characters of salt+hash.
            // ASCII first: slicing a multi-byte character would panic (found by fuzzing).
            let ok = s.len() == 60
                && s.is_ascii()
                && s[4..6].parse::<u32>().is_ok_and(|c| (4..=31).contains(&c));
            if ok {
                Ok(Hash::Bcrypt(s.to_owned()))
            } else {
                Err("malformed bcrypt hash".into())
            }
        } else {
            Err(
                "unsupported hash: use bcrypt (`htpasswd -B`) or an argon2id PHC string; \
                 MD5/SHA-1/crypt hashes are too weak"
                    .into(),
            )
        }
    }

    fn verify(&self, password: &str) -> bool {
        match self {
            Hash::Argon2(phc) => verify_argon2(phc, password),
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        }
    }
}

/// Recomputes an argon2 PHC hash and compares in constant time. The working memory (m KiB)
/// is allocated for this check and freed at its end: a server's hashing threads are few, and
/// an allocator that returns large blocks to the system (the server's mimalloc does) leaves
/// nothing behind between logins.
fn verify_argon2(phc: &str, password: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(hash.algorithm),
        argon2::Params::try_from(&hash),
    ) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut memory = vec![argon2::Block::default(); params.block_count()];
    let mut out = vec![0u8; expected.len()];
    argon2::Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory)
        .is_ok()
        // `Output`'s equality is constant-time.
        && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

/// A table of users and password hashes.
#[derive(Debug, Clone)]
pub struct Credentials {
    users: HashMap<String, Hash>,
    // Checked for unknown users, so they cost the same as a wrong password.
    decoy: Hash,
}

impl Default for Credentials {
    /// The seed's single user, `name` / `pwd1`.
    fn default() -> Self {
        let hash = Hash::Argon2(SEED_USER.1.to_owned());
        Credentials {
            users: HashMap::from([(SEED_USER.0.to_owned(), hash.clone())]),
            decoy: hash,
        }
    }
}

impl Credentials {
    /// Parses an htpasswd-style text: `user:hash` per line, `#` comments and blank lines ignored.
    pub fn parse(text: &str, path: &Path) -> Result<Credentials, CredentialsError> {
        let mut users = HashMap::new();
        let mut decoy = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| CredentialsError::Line {
                path: path.to_owned(),
                line: n + 1,
                reason,
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| err("expected user:hash".into()))?;
            if user.is_empty() {
                return Err(err("empty user name".into()));
            }
            let hash = Hash::parse(hash).map_err(err)?;
            decoy.get_or_insert_with(|| hash.clone());
            if users.insert(user.to_owned(), hash).is_some() {
                return Err(err(format!("user {user:?} is defined twice")));
            }
        }
        let decoy = decoy.ok_or_else(|| CredentialsError::Empty {
            path: path.to_owned(),
        })?;
        Ok(Credentials { users, decoy })
    }

    /// Loads an htpasswd-style file.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Credentials::parse(&text, path)
    }

    /// True when `user` exists and `password` matches. Slow on purpose (a password hash): call
    /// it off the async workers. An unknown user is checked against a decoy hash, so timing does
    /// not tell which users exist.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                let _ = self.decoy.verify(password);
                false
            }
        }
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there is no user (never, once constructed).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_user_and_nobody_else() {
        let c = Credentials::default();
        assert!(c.verify("name", "pwd1"));
        assert!(!c.verify("name", "pwd2"));
        assert!(!c.verify("nobody", "pwd1"));
        assert!(!c.verify("name", ""));
    }

    #[test]
    fn htpasswd_with_bcrypt_and_argon2() {
        let bc = bcrypt::hash("s3cret", 5).expect("bcrypt");
        let text = format!("# users\nalice:{bc}\n\nbob:{}\n", SEED_USER.1);
        let c = Credentials::parse(&text, Path::new("users")).expect("parse");
        assert_eq!(c.len(), 2);
        assert!(c.verify("alice", "s3cret"));
        assert!(!c.verify("alice", "pwd1"));
        assert!(c.verify("bob", "pwd1"));
    }

    #[test]
    fn weak_or_malformed_lines_are_refused_with_their_number() {
        for (text, want) in [
            ("alice:$apr1$abc$def\n", "line 1: unsupported hash"),
            ("# c\nalice\n", "line 2: expected user:hash"),
            ("alice:$2y$05$short\n", "malformed bcrypt"),
            ("# nothing\n", "defines no user"),
            // The fuzzer's find: 60 bytes, but multi-byte characters where the cost goes.
            ("n:$2y$A\u{2000}\u{2000}\u{2000}\u{2000}klmnoptrstuuNxSTtqLmC06oOaKvvHgX.Yw1a1k2fVC\n", "malformed bcrypt"),
        ] {
            let e = Credentials::parse(text, Path::new("u")).expect_err("must fail");
            assert!(e.to_string().contains(want), "{text:?}: {e}");
        }
    }
}

#[cfg(test)]
mod form_tests {
    use super::parse_login_form;

    #[test]
    fn first_field_wins_and_missing_is_none() {
        let p = |s: &str| parse_login_form(s.as_bytes());
        assert_eq!(
            p("username=name&password=pwd1"),
            Some(("name".into(), "pwd1".into()))
        );
        assert_eq!(
            p("password=a&username=u&password=b"),
            Some(("u".into(), "a".into()))
        );
        assert_eq!(
            p("username=%6e%61me&password=p+w"),
            Some(("name".into(), "p w".into()))
        );
        assert_eq!(p("username=name"), None);
        assert_eq!(p(""), None);
    }
}
