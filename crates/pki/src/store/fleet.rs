//! The fleet at a glance: counts by role and status, what ends soon, the rotation's progress,
//! the latest enrollments and revocations, and a search, each one indexed query, so the `ca`'s
//! fleet page and metrics cost the same at 100,000 certificates as at ten. A status is judged
//! as `pki list` judges it ([`super::Filter`]): revoked, else expired once past notAfter, else
//! valid.

use super::{row, Db, Record, COLUMNS};
use crate::error::Result;

/// One week, in seconds.
pub const WEEK: i64 = 7 * 86_400;

/// Weeks ahead in [`FleetCounts::ending_per_week`].
pub const WEEKS_AHEAD: usize = 13;

/// The counts the fleet page and the metrics show.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FleetCounts {
    /// (role, status, count): status `valid`, `expired` or `revoked`.
    pub by_role_status: Vec<(String, String, i64)>,
    /// Valid certificates ending within 7 days.
    pub ending_7d: i64,
    /// Valid certificates ending within 30 days.
    pub ending_30d: i64,
    /// Valid certificates, current under their name, past two thirds of their lifetime (when
    /// a renewal is due): renewals that are not happening.
    pub overdue: i64,
    /// Valid certificates ending in each of the next [`WEEKS_AHEAD`] weeks.
    pub ending_per_week: Vec<i64>,
    /// (issuer key id, valid certificates it issued): the rotation's progress.
    pub per_ca: Vec<(String, i64)>,
}

impl FleetCounts {
    /// The count for `role` and `status` (0 when there is none).
    pub fn count(&self, role: &str, status: &str) -> i64 {
        self.by_role_status
            .iter()
            .find(|(r, s, _)| r == role && s == status)
            .map_or(0, |(_, _, n)| *n)
    }
}

impl Db {
    /// Every count of [`FleetCounts`], judged at `at`, in one read transaction.
    pub fn fleet_counts(&mut self, at: i64) -> Result<FleetCounts> {
        self.read(|tx| {
            // Grouped by the stored state (an index of role, state, notAfter answers it alone);
            // valid and expired are told apart by notAfter in the same pass.
            let rows = tx.query(
                "SELECT role, CASE WHEN state = 'revoked' THEN 1 ELSE 0 END AS revoked, count(*), \
                 coalesce(sum(CASE WHEN not_after <= $1 THEN 1 ELSE 0 END), 0) \
                 FROM certificates GROUP BY role, revoked",
                &[at.into()],
            )?;
            let mut by_role_status: Vec<(String, String, i64)> = Vec::new();
            let mut add = |role: String, status: &str, n: i64| match by_role_status
                .iter_mut()
                .find(|(r, s, _)| *r == role && s == status)
            {
                Some(entry) => entry.2 += n,
                None => by_role_status.push((role, status.to_owned(), n)),
            };
            for r in &rows {
                let (role, revoked, all, expired) =
                    (r[0].text(), r[1].int() != 0, r[2].int(), r[3].int());
                if revoked {
                    add(role, "revoked", all);
                } else {
                    add(role.clone(), "valid", all - expired);
                    add(role, "expired", expired);
                }
            }
            by_role_status.retain(|(_, _, n)| *n > 0);
            by_role_status.sort();
            let soon = tx.query(
                "SELECT (not_after - $1) / $2, count(*) FROM certificates \
                 WHERE state <> 'revoked' AND not_after > $1 AND not_after <= $1 + $2 * $3 \
                 GROUP BY (not_after - $1) / $2",
                &[at.into(), WEEK.into(), (WEEKS_AHEAD as i64).into()],
            )?;
            let mut ending_per_week = vec![0; WEEKS_AHEAD];
            for r in &soon {
                if let Some(slot) = usize::try_from(r[0].int())
                    .ok()
                    .and_then(|w| ending_per_week.get_mut(w))
                {
                    *slot += r[1].int();
                }
            }
            let mut within = |secs: i64| -> Result<i64, super::SqlError> {
                let rows = tx.query(
                    "SELECT count(*) FROM certificates WHERE state <> 'revoked' \
                     AND not_after > $1 AND not_after <= $2",
                    &[at.into(), (at + secs).into()],
                )?;
                Ok(rows.first().map_or(0, |r| r[0].int()))
            };
            let (ending_7d, ending_30d) = (within(7 * 86_400)?, within(30 * 86_400)?);
            // Past 2/3 of the lifetime: 3·at > notBefore + 2·notAfter.
            let overdue = tx
                .query(
                    "SELECT count(*) FROM certificates WHERE state <> 'revoked' AND current = 1 \
                     AND not_after > $1 AND 3 * $1 > not_before + 2 * not_after",
                    &[at.into()],
                )?
                .first()
                .map_or(0, |r| r[0].int());
            let per_ca = tx
                .query(
                    "SELECT aki, count(*) FROM certificates WHERE state IN ('issued', 'issuing') \
                     AND not_after > $1 GROUP BY aki ORDER BY aki",
                    &[at.into()],
                )?
                .iter()
                .map(|r| (r[0].text(), r[1].int()))
                .collect();
            Ok(FleetCounts {
                by_role_status,
                ending_7d,
                ending_30d,
                overdue,
                ending_per_week,
                per_ca,
            })
        })
    }

    /// Valid certificates ending within `within` seconds of `at`, soonest first: `limit` of
    /// them from `offset`.
    pub fn fleet_ending(
        &mut self,
        at: i64,
        within: i64,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Record>> {
        let sql = format!(
            "SELECT {COLUMNS} WHERE c.state <> 'revoked' AND c.not_after > $1 AND c.not_after <= $2 \
             ORDER BY c.not_after, c.serial LIMIT $3 OFFSET $4"
        );
        self.read(|tx| {
            Ok(tx
                .query(
                    &sql,
                    &[at.into(), (at + within).into(), limit.into(), offset.into()],
                )?
                .iter()
                .map(|r| row(r))
                .collect())
        })
    }

    /// The `limit` latest certificates recorded, newest first.
    pub fn fleet_latest_issued(&mut self, limit: i64) -> Result<Vec<Record>> {
        let sql = format!("SELECT {COLUMNS} ORDER BY c.issued_at DESC, c.serial LIMIT $1");
        self.read(|tx| {
            Ok(tx
                .query(&sql, &[limit.into()])?
                .iter()
                .map(|r| row(r))
                .collect())
        })
    }

    /// The `limit` latest revocations, newest first.
    pub fn fleet_latest_revoked(&mut self, limit: i64) -> Result<Vec<Record>> {
        let sql = format!(
            "SELECT {COLUMNS} WHERE c.state = 'revoked' ORDER BY c.revoked_at DESC, c.serial LIMIT $1"
        );
        self.read(|tx| {
            Ok(tx
                .query(&sql, &[limit.into()])?
                .iter()
                .map(|r| row(r))
                .collect())
        })
    }

    /// Certificates whose name starts with `query` (case-insensitive), newest first, `limit`
    /// from `offset`; on the first page, the one whose serial is `query` (hex) before them.
    pub fn fleet_search(&mut self, query: &str, offset: i64, limit: i64) -> Result<Vec<Record>> {
        let prefix: String = query
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        // A range on the name index: every name the rule allows sorts below `~`.
        let upper = format!("{prefix}~");
        let by_name = format!(
            "SELECT {COLUMNS} WHERE c.name_key >= $1 AND c.name_key < $2 \
             ORDER BY c.issued_at DESC, c.serial LIMIT $3 OFFSET $4"
        );
        let by_serial = format!("SELECT {COLUMNS} WHERE c.serial = $1");
        let serial = query.trim().to_ascii_uppercase();
        self.read(|tx| {
            let mut out: Vec<Record> = Vec::new();
            if offset == 0 && !serial.is_empty() && serial.chars().all(|c| c.is_ascii_hexdigit()) {
                out.extend(
                    tx.query(&by_serial, &[serial.as_str().into()])?
                        .iter()
                        .map(|r| row(r)),
                );
            }
            let named = tx.query(
                &by_name,
                &[
                    prefix.as_str().into(),
                    upper.as_str().into(),
                    limit.into(),
                    offset.into(),
                ],
            )?;
            for r in named.iter().map(|r| row(r)) {
                if !out.iter().any(|o| o.aki == r.aki && o.serial == r.serial) {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }
}
