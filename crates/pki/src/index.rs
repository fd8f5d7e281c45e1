//! The CA's record of what it issued: `ca/index.txt`, in the format `openssl ca` keeps, so
//! `openssl ca -gencrl` or `openssl ca -status` can read it too.
//!
//! One line per certificate, tab-separated: status (`V` valid, `R` revoked), notAfter,
//! revocation time `[,reason]` (empty unless revoked), serial (hex), file, subject (`/O=../CN=..`).

use std::fmt;
use std::path::Path;

use openssl::x509::X509Ref;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::files::{self, Overwrite, Secrecy};
use x509::cert::serial_hex;
use x509::time::{now, unix_time};

/// Why a certificate was revoked (RFC 5280 CRLReason, with `openssl ca -crl_reason` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Reason {
    /// No reason given.
    #[cfg_attr(feature = "cli", value(name = "unspecified"))]
    Unspecified,
    /// The private key leaked.
    #[cfg_attr(feature = "cli", value(name = "keyCompromise"))]
    KeyCompromise,
    /// The CA's key leaked.
    #[cfg_attr(feature = "cli", value(name = "CACompromise"))]
    CaCompromise,
    /// The subject's name or affiliation changed.
    #[cfg_attr(feature = "cli", value(name = "affiliationChanged"))]
    AffiliationChanged,
    /// Replaced by a new certificate.
    #[cfg_attr(feature = "cli", value(name = "superseded"))]
    Superseded,
    /// The device or service is gone.
    #[cfg_attr(feature = "cli", value(name = "cessationOfOperation"))]
    CessationOfOperation,
}

impl Reason {
    /// The `openssl ca` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "CACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
        }
    }

    /// RFC 5280's CRLReason, as the CRL entry carries it.
    pub fn crl_reason(self) -> x509_cert::ext::pkix::CrlReason {
        use x509_cert::ext::pkix::CrlReason as R;
        match self {
            Reason::Unspecified => R::Unspecified,
            Reason::KeyCompromise => R::KeyCompromise,
            Reason::CaCompromise => R::CaCompromise,
            Reason::AffiliationChanged => R::AffiliationChanged,
            Reason::Superseded => R::Superseded,
            Reason::CessationOfOperation => R::CessationOfOperation,
        }
    }

    /// The reason named `s` (the `openssl ca` spelling), if it is one.
    pub fn parse(s: &str) -> Option<Reason> {
        [
            Reason::Unspecified,
            Reason::KeyCompromise,
            Reason::CaCompromise,
            Reason::AffiliationChanged,
            Reason::Superseded,
            Reason::CessationOfOperation,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Serial number, upper-case hex.
    pub serial: String,
    /// Subject in openssl's one-line form, `/O=https Project/CN=localhost`.
    pub subject: String,
    /// The certificate file, relative to the PKI folder (`unknown` if not recorded).
    pub file: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// When and why it was revoked, if it was.
    pub revoked: Option<(i64, Option<Reason>)>,
}

/// Where an entry stands today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Within its validity and not revoked.
    Valid,
    /// Past its notAfter.
    Expired,
    /// Revoked.
    Revoked,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Valid => "valid",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        })
    }
}

impl Entry {
    /// An entry for a freshly issued certificate written to `file`.
    pub fn for_cert(cert: &X509Ref, file: &str) -> Result<Entry> {
        Ok(Entry {
            serial: serial_hex(cert)?,
            subject: x509::cert::one_line(cert.subject_name()),
            file: file.to_owned(),
            not_after: unix_time(cert.not_after())?,
            revoked: None,
        })
    }

    /// Status at `at` (Unix seconds).
    pub fn status(&self, at: i64) -> Status {
        if self.revoked.is_some() {
            Status::Revoked
        } else if self.not_after <= at {
            Status::Expired
        } else {
            Status::Valid
        }
    }

    /// Whole days from now until notAfter (negative once expired).
    pub fn days_left(&self) -> i64 {
        (self.not_after - now()).div_euclid(86_400)
    }

    /// The CN of the subject, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.subject
            .split('/')
            .find_map(|part| part.strip_prefix("CN="))
    }

    /// The entry as one `index.txt` line (with its newline).
    pub fn to_line(&self) -> String {
        let (status, revoked) = match self.revoked {
            Some((at, reason)) => (
                'R',
                match reason {
                    Some(r) => format!("{},{r}", utc_time(at)),
                    None => utc_time(at),
                },
            ),
            None => ('V', String::new()),
        };
        format!(
            "{status}\t{}\t{revoked}\t{}\t{}\t{}\n",
            utc_time(self.not_after),
            self.serial,
            self.file,
            self.subject
        )
    }

    fn from_line(line: &str) -> Option<Entry> {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 6 {
            return None;
        }
        let revoked = match f[0] {
            "V" | "E" => None,
            "R" => {
                let (at, reason) = match f[2].split_once(',') {
                    Some((at, r)) => (at, Some(Reason::parse(r)?)),
                    None => (f[2], None),
                };
                Some((parse_utc_time(at)?, reason))
            }
            _ => return None,
        };
        Some(Entry {
            serial: f[3].to_ascii_uppercase(),
            subject: f[5].to_owned(),
            file: f[4].to_owned(),
            not_after: parse_utc_time(f[1])?,
            revoked,
        })
    }
}

/// Every entry of the index at `path`; a missing file is an empty index.
pub fn load(path: &Path) -> Result<Vec<Entry>> {
    if !files::exists(path) {
        return Ok(Vec::new());
    }
    let raw = files::read("CA index", path)?;
    let text = String::from_utf8(raw).map_err(|_| x509::Error::Malformed {
        what: "CA index",
        path: path.to_owned(),
        detail: "not UTF-8 text".into(),
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            Entry::from_line(l).ok_or_else(|| {
                Error::from(x509::Error::Malformed {
                    what: "CA index",
                    path: path.to_owned(),
                    detail: format!("line {} is not an `openssl ca` index line", n + 1),
                })
            })
        })
        .collect()
}

/// `index.txt.attr`: several valid certificates may share a subject (a renewal, a reissue), so
/// `openssl ca` must not insist on unique subjects when it reads the index.
pub const ATTR: &str = "unique_subject = no\n";

/// Writes `entries` to `path` atomically.
pub fn save(path: &Path, entries: &[Entry]) -> Result<()> {
    let text: String = entries.iter().map(Entry::to_line).collect();
    files::write(
        "CA index",
        path,
        text.as_bytes(),
        Secrecy::Public,
        Overwrite::Replace,
    )
    .map_err(Into::into)
}

// openssl ca writes UTCTime (YYMMDDHHMMSSZ) until 2049, GeneralizedTime after.
fn utc_time(t: i64) -> String {
    let d = OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let full = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    );
    if (1950..2050).contains(&d.year()) {
        full[2..].to_owned()
    } else {
        full
    }
}

fn parse_utc_time(s: &str) -> Option<i64> {
    let digits = s.strip_suffix('Z')?;
    let full = match digits.len() {
        12 => {
            let yy: i32 = digits[..2].parse().ok()?;
            format!("{}{digits}", if yy >= 50 { "19" } else { "20" })
        }
        14 => digits.to_owned(),
        _ => return None,
    };
    let n = |r: std::ops::Range<usize>| full.get(r)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0..4)?).ok()?,
        month,
        u8::try_from(n(6..8)?).ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(n(8..10)?).ok()?,
        u8::try_from(n(10..12)?).ok()?,
        u8::try_from(n(12..14)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(t).assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_in_openssl_format() {
        let e = Entry {
            serial: "4F2A".into(),
            subject: "/O=https Project/CN=localhost".into(),
            file: "server/server.crt".into(),
            not_after: 1_900_000_000,
            revoked: Some((1_800_000_000, Some(Reason::KeyCompromise))),
        };
        let line = e.to_line();
        assert_eq!(
            line,
            "R\t300317174640Z\t270115080000Z,keyCompromise\t4F2A\tserver/server.crt\t/O=https Project/CN=localhost\n"
        );
        assert_eq!(Entry::from_line(line.trim_end()), Some(e));
        assert_eq!(parse_utc_time("20600101000000Z"), Some(2_840_140_800));
    }
}
