//! The fleet page (`GET /fleet`) and its data (`GET /fleet.json`), read-only, for admins
//! ([`crate::admin`]): counts by role and status, certificates ending per week for the next
//! 13 weeks (an SVG drawn here), those ending within 30 days, the latest enrollments and
//! revocations, the CRL's age, the CAs in force (a rotation's progress), and a search by name
//! or serial; paged. Each part is one indexed query ([`pki::store::fleet`]); no JavaScript,
//! and a CSP that admits only the page's own inline style.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use pki::store::fleet::{FleetCounts, WEEK, WEEKS_AHEAD};
use pki::Record;
use serde::{Deserialize, Serialize};

use crate::admin::{self, AdminAllow};
use crate::enroll::Ca;
use crate::error::{refuse, Refusal};

/// Rows per page of a list.
pub const PAGE: i64 = 50;

/// Rows of the latest enrollments and revocations.
const LATEST: i64 = 10;

const STYLE: &str = include_str!("../templates/fleet.css");

static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = openssl::base64::encode_block(&openssl::sha::sha256(STYLE.as_bytes()));
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

/// `?q=NAME-OR-SERIAL&page=N`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FleetQuery {
    /// A name prefix or a serial.
    #[serde(default)]
    pub q: String,
    /// The page of the list (from 0).
    #[serde(default)]
    pub page: i64,
}

/// One certificate, as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Its name in the records.
    pub name: String,
    /// `server` or `client`.
    pub role: String,
    /// Serial, hex.
    pub serial: String,
    /// The issuing CA's key id (its start).
    pub issuer: String,
    /// notAfter, as a date.
    pub not_after: String,
    /// Days left (negative once expired).
    pub days_left: i64,
    /// `valid`, `expired` or `revoked`.
    pub status: String,
    /// When it was recorded.
    pub issued: String,
    /// When it was revoked, and why.
    pub revoked: Option<String>,
}

/// One CA in force.
#[derive(Debug, Clone, Serialize)]
pub struct CaInForce {
    /// Its key id (its start).
    pub ca: String,
    /// Whether it issues now.
    pub issuing: bool,
    /// Valid certificates it issued.
    pub leaves: i64,
}

/// Everything the page shows, as `/fleet.json` gives it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    /// When it was read, Unix seconds.
    pub at: i64,
    /// The counts.
    pub counts: FleetCounts,
    /// Certificates ending within 30 days (this page of them), or the search's results.
    pub list: Vec<Row>,
    /// What `list` is.
    pub list_title: String,
    /// The page shown, and whether there is a next one.
    pub page: i64,
    /// Whether a next page exists.
    pub more: bool,
    /// The latest enrollments.
    pub latest_issued: Vec<Row>,
    /// The latest revocations.
    pub latest_revoked: Vec<Row>,
    /// The issuing CA's newest CRL: number, thisUpdate and nextUpdate (Unix seconds).
    pub crl: Option<(i64, i64, i64)>,
    /// The CAs in force, the issuing one first.
    pub cas: Vec<CaInForce>,
}

impl FleetView {
    /// Reads the view (blocking: the records' client may block).
    pub fn read(ca: &Ca, q: &FleetQuery) -> pki::Result<FleetView> {
        let at = x509::time::now();
        // A page past any fleet is an empty one, never an overflow.
        let page = q.page.clamp(0, 1_000_000);
        let records = ca.authority.records();
        let counts = records.with(|db| db.fleet_counts(at))?;
        let query = q.q.trim();
        let (mut list, list_title) = if query.is_empty() {
            let l = records.with(|db| db.fleet_ending(at, 30 * 86_400, page * PAGE, PAGE + 1))?;
            (l, "Ending within 30 days".to_owned())
        } else {
            let l = records.with(|db| db.fleet_search(query, page * PAGE, PAGE + 1))?;
            (l, format!("Search: {query}"))
        };
        let more = list.len() as i64 > PAGE;
        list.truncate(usize::try_from(PAGE).unwrap_or(50));
        let latest_issued = records.with(|db| db.fleet_latest_issued(LATEST))?;
        let latest_revoked = records.with(|db| db.fleet_latest_revoked(LATEST))?;
        let crl = records
            .latest_crl(ca.authority.aki())?
            .map(|c| (c.number, c.this_update, c.next_update));
        let cas = ca
            .authority
            .akis()
            .iter()
            .enumerate()
            .map(|(i, aki)| CaInForce {
                ca: short(aki).to_owned(),
                issuing: i == 0,
                leaves: counts
                    .per_ca
                    .iter()
                    .find(|(a, _)| a == aki)
                    .map_or(0, |(_, n)| *n),
            })
            .collect();
        let rows = |v: Vec<Record>| v.iter().map(|r| row(r, at)).collect();
        Ok(FleetView {
            at,
            list: rows(list),
            list_title,
            page,
            more,
            latest_issued: rows(latest_issued),
            latest_revoked: rows(latest_revoked),
            crl,
            cas,
            counts,
        })
    }
}

fn short(aki: &str) -> &str {
    &aki[..aki.len().min(16)]
}

fn row(r: &Record, at: i64) -> Row {
    let status = match r.revoked {
        Some(_) => "revoked",
        None if r.not_after <= at => "expired",
        None => "valid",
    };
    Row {
        name: r.name.clone(),
        role: r.role.to_string(),
        serial: r.serial.clone(),
        issuer: short(&r.aki).to_owned(),
        not_after: x509::time::date(r.not_after),
        days_left: (r.not_after - at).div_euclid(86_400),
        status: status.to_owned(),
        issued: x509::time::date(r.issued_at),
        revoked: r.revoked.map(|(t, why)| {
            format!(
                "{}{}",
                x509::time::date(t),
                why.map(|w| format!(" ({w})")).unwrap_or_default()
            )
        }),
    }
}

/// One bar of the chart of certificates ending per week.
struct Bar {
    x: i64,
    y: i64,
    height: i64,
    count: i64,
    label: String,
}

/// The chart's size, in SVG units.
const CHART_W: i64 = 520;
const CHART_H: i64 = 160;

fn bars(counts: &FleetCounts, at: i64) -> Vec<Bar> {
    let max = counts
        .ending_per_week
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = CHART_W / WEEKS_AHEAD as i64;
    counts
        .ending_per_week
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // Room above the tallest bar for its count.
            let height = n * (CHART_H - 36) / max;
            Bar {
                x: i as i64 * slot + 4,
                y: CHART_H - 20 - height,
                height,
                count: *n,
                label: x509::time::date(at + i as i64 * WEEK)
                    .get(5..10)
                    .unwrap_or_default()
                    .to_owned(),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct Page<'a> {
    style: &'static str,
    admin: &'a str,
    read_at: String,
    view: &'a FleetView,
    bars: Vec<Bar>,
    slot: i64,
    chart_w: i64,
    chart_h: i64,
    query: &'a str,
    crl_age: String,
    crl_next: String,
    valid: i64,
    expired: i64,
    revoked: i64,
}

fn status_total(c: &FleetCounts, status: &str) -> i64 {
    c.by_role_status
        .iter()
        .filter(|(_, s, _)| s == status)
        .map(|(_, _, n)| n)
        .sum()
}

async fn read(
    req: &HttpRequest,
    ca: &web::Data<Ca>,
    allow: &web::Data<AdminAllow>,
    q: FleetQuery,
) -> Result<(String, FleetView), HttpResponse> {
    let admin = admin::check(req, ca, allow).map_err(|r| refuse(req, r))?;
    let ca = ca.clone();
    let view = web::block(move || FleetView::read(&ca, &q))
        .await
        .map_err(|e| refuse(req, Refusal::internal(e)))?
        .map_err(|e| refuse(req, Refusal::from_pki(e)))?;
    Ok((admin, view))
}

/// `GET /fleet`.
pub async fn page(
    req: HttpRequest,
    ca: web::Data<Ca>,
    allow: web::Data<AdminAllow>,
    q: web::Query<FleetQuery>,
) -> HttpResponse {
    let q = q.into_inner();
    let (admin, view) = match read(&req, &ca, &allow, q.clone()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (crl_age, crl_next) = match view.crl {
        Some((n, this, next)) => (
            format!("CRL {n}, signed {} ago", age(view.at - this)),
            format!(
                "next update {} (in {})",
                x509::time::date(next),
                age(next - view.at)
            ),
        ),
        None => ("no CRL on record".into(), String::new()),
    };
    let page = Page {
        style: STYLE,
        admin: &admin,
        read_at: x509::time::date(view.at),
        bars: bars(&view.counts, view.at),
        slot: CHART_W / WEEKS_AHEAD as i64,
        chart_w: CHART_W,
        chart_h: CHART_H,
        query: &q.q,
        crl_age,
        crl_next,
        valid: status_total(&view.counts, "valid"),
        expired: status_total(&view.counts, "expired"),
        revoked: status_total(&view.counts, "revoked"),
        view: &view,
    };
    match page.render() {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_SECURITY_POLICY, CSP.clone()))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => refuse(&req, Refusal::internal(e)),
    }
}

/// `GET /fleet.json`: the same data, for scripts.
pub async fn json(
    req: HttpRequest,
    ca: web::Data<Ca>,
    allow: web::Data<AdminAllow>,
    q: web::Query<FleetQuery>,
) -> HttpResponse {
    match read(&req, &ca, &allow, q.into_inner()).await {
        Ok((_, view)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(view),
        Err(r) => r,
    }
}

/// `GET /metrics` on the service's own port, for admins (a Prometheus with an admin client
/// certificate scrapes it over mutual TLS).
pub async fn metrics(
    req: HttpRequest,
    ca: web::Data<Ca>,
    allow: web::Data<AdminAllow>,
    metrics: web::Data<crate::metrics::CaMetrics>,
) -> HttpResponse {
    if let Err(r) = admin::check(&req, &ca, &allow) {
        return refuse(&req, r);
    }
    HttpResponse::Ok()
        .content_type(exposition::CONTENT_TYPE)
        .body(exposition::encode(metrics.registry()))
}

/// `3 d 4 h`, `5 min`: a duration as a person reads it.
fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_scales_to_the_busiest_week() {
        let counts = FleetCounts {
            ending_per_week: (0..13).collect(),
            ..FleetCounts::default()
        };
        let b = bars(&counts, 0);
        assert_eq!(b.len(), 13);
        assert_eq!(b[12].height, CHART_H - 36);
        assert_eq!(b[0].height, 0);
        assert!(b.windows(2).all(|w| w[0].x < w[1].x));
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(59), "59 s");
        assert_eq!(age(3600), "60 min");
        assert_eq!(age(90_000), "25 h");
        assert_eq!(age(3 * 86_400 + 7200), "3 d 2 h");
    }
}
