//! The status page (`GET /`) and badges (`/badge/…`): what anyone may see of
//! keeper's checks (DESIGN.md §7). Server-rendered, no scripts and no
//! external assets, so it works with no internet. `[status_page]` chooses
//! the checks shown and how they are grouped; targets stay hidden unless
//! `show_targets`. Data is gathered here into a [`Page`], rendered by
//! [`html`]; badges are drawn by [`badge`].

mod badge;
mod html;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::incidents::{IncidentView, view_with};
use super::{ApiError, AppState};
use crate::config::{Config, StatusPage};
use crate::core::Color;
use crate::notify::policy::{Maintenance, silences_check};
use crate::state::CheckStatus;
use crate::store::rollup::{DayUptime, HourLatency};
use crate::store::{Store, StoreError};

/// Days in a check's uptime bar.
pub const BAR_DAYS: usize = 90;
/// Hours in a check's latency sparkline.
pub const SPARK_HOURS: usize = 24;

/// What the page needs from the config, and what it keeps between requests.
#[derive(Debug, Default)]
pub struct Settings {
    pub page: StatusPage,
    /// Maintenance windows, to show those in force.
    pub maintenance: Vec<Maintenance>,
    /// The uptime bars and sparklines, read once a minute.
    pub history: History,
}

impl Settings {
    pub fn new(config: &Config) -> Settings {
        Settings {
            page: config.status_page.clone(),
            maintenance: config.maintenance.clone(),
            history: History::default(),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(status_page))
        .route("/badge/{file}", get(badge::status))
        .route("/badge/{check}/{file}", get(badge::measure))
}

/// The page's state of everything shown.
#[derive(Debug)]
pub struct Page {
    pub title: String,
    pub at: DateTime<Utc>,
    pub overall: Overall,
    pub groups: Vec<Group>,
    /// Open incidents of the checks shown, with their timelines.
    pub incidents: Vec<IncidentView>,
    /// Maintenance windows in force over a check shown.
    pub maintenance: Vec<Hold>,
    /// Silences in force over a check shown.
    pub silences: Vec<Hold>,
}

/// The banner: the worst of the checks shown that have run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overall {
    Operational,
    Degraded,
    Outage,
}

impl Overall {
    fn of<'a>(colors: impl Iterator<Item = &'a Option<Color>>) -> Overall {
        match colors.flatten().max() {
            Some(Color::Red) => Overall::Outage,
            Some(Color::Yellow) => Overall::Degraded,
            _ => Overall::Operational,
        }
    }
}

/// Checks sharing the values of the grouping labels.
#[derive(Debug)]
pub struct Group {
    /// The label values, joined; empty for checks carrying none of them.
    pub name: String,
    pub rows: Vec<Row>,
}

/// One check as the page shows it.
#[derive(Debug)]
pub struct Row {
    pub name: String,
    pub description: Option<String>,
    /// Only with `show_targets = true`.
    pub target: Option<String>,
    /// `None` until the check has run (pending).
    pub color: Option<Color>,
    pub message: String,
    pub latency_ms: Option<f64>,
    pub uptime_30d: Option<f64>,
    /// The last [`BAR_DAYS`] UTC days, oldest first.
    pub days: Vec<Day>,
    /// p95 latency of each of the last [`SPARK_HOURS`] hours, oldest first.
    pub latency: Vec<Option<f64>>,
}

/// One cell of an uptime bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Day {
    pub date: NaiveDate,
    /// `None` without samples that day.
    pub uptime_pct: Option<f64>,
}

/// A maintenance window or a silence in force.
#[derive(Debug, PartialEq)]
pub struct Hold {
    /// What it covers, for people.
    pub what: String,
    pub until: DateTime<Utc>,
    pub comment: String,
}

async fn status_page(State(state): State<AppState>) -> Result<Response, ApiError> {
    let settings = shown_or_404(&state)?;
    let page = gather(&state, &settings.page, &settings.maintenance, Utc::now()).await?;
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    Ok((headers, html::render(&page)).into_response())
}

/// The settings, or 404 when the page is off.
fn shown_or_404(state: &AppState) -> Result<Arc<Settings>, ApiError> {
    if state.page.page.enabled {
        Ok(state.page.clone())
    } else {
        Err(ApiError::not_found(
            "the status page is off ([status_page] enabled = false)",
        ))
    }
}

/// A check the page shows, by name: 404 for one it does not (hidden or unknown).
fn shown_check(state: &AppState, name: &str) -> Result<CheckStatus, ApiError> {
    let settings = shown_or_404(state)?;
    state
        .board
        .get(name)
        .filter(|s| settings.page.shows(&s.name))
        .ok_or_else(|| ApiError::not_found(format!("no check {name:?} on the status page")))
}

fn unavailable(e: StoreError) -> ApiError {
    ApiError::unavailable(format!("reading the status page's data: {e}"))
}

async fn gather(
    state: &AppState,
    page: &StatusPage,
    maintenance: &[Maintenance],
    now: DateTime<Utc>,
) -> Result<Page, ApiError> {
    let checks: Vec<CheckStatus> = (state.board.all().into_iter())
        .filter(|c| page.shows(&c.name))
        .collect();
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    let history = state.page.history.read(&state.reads, now).await?;
    let uptime = state.uptime.all(now);
    let incidents = open_incidents(state, &names).await?;
    let silences = state.reads.silences(now).await.map_err(unavailable)?;
    let silences = silences
        .iter()
        .filter(|s| s.starts_at <= now)
        .filter(|s| (checks.iter()).any(|c| silences_check(s, &c.name, &c.labels)))
        .map(|s| Hold {
            what: covered(s.check.as_deref(), &s.labels),
            until: s.ends_at,
            comment: s.comment.clone(),
        })
        .collect();
    let maintenance = maintenance
        .iter()
        .filter(|m| checks.iter().any(|c| m.covers(&c.name, &c.labels)))
        .filter_map(|m| {
            Some(Hold {
                what: covered_by_maintenance(m),
                until: m.active_until(now)?,
                comment: m.comment.clone(),
            })
        })
        .collect();
    let mut groups: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for check in checks {
        let group = group_of(&page.labels, &check.labels);
        let (days, latency) = (
            history.days(&check.name, now),
            history.hours(&check.name, now),
        );
        let uptime_30d = uptime.get(&check.name).and_then(|w| w.d30);
        groups.entry(group).or_default().push(row(
            check,
            page.show_targets,
            uptime_30d,
            days,
            latency,
        ));
    }
    let overall = Overall::of(groups.values().flatten().map(|r| &r.color));
    Ok(Page {
        title: page.title.clone(),
        at: now,
        overall,
        groups: ordered(groups),
        incidents,
        maintenance,
        silences,
    })
}

fn row(
    check: CheckStatus,
    show_targets: bool,
    uptime_30d: Option<f64>,
    days: Vec<Day>,
    latency: Vec<Option<f64>>,
) -> Row {
    Row {
        color: check.last_run_at.map(|_| check.color),
        target: show_targets.then_some(check.target),
        name: check.name,
        description: check.description,
        message: check.message,
        latency_ms: check.latency_ms,
        uptime_30d,
        days,
        latency,
    }
}

/// Groups by name, the group of checks without the labels last.
fn ordered(groups: BTreeMap<String, Vec<Row>>) -> Vec<Group> {
    let (mut named, unnamed): (Vec<Group>, Vec<Group>) = groups
        .into_iter()
        .map(|(name, rows)| Group { name, rows })
        .partition(|g| !g.name.is_empty());
    named.extend(unnamed);
    named
}

/// The values a check carries of the grouping labels, joined.
fn group_of(by: &[String], labels: &BTreeMap<String, String>) -> String {
    let values: Vec<&str> = by
        .iter()
        .filter_map(|l| labels.get(l).map(String::as_str))
        .collect();
    values.join(" / ")
}

fn covered(check: Option<&str>, labels: &BTreeMap<String, String>) -> String {
    match check {
        Some(check) => check.to_string(),
        None if labels.is_empty() => "every check".into(),
        None => labelled(labels),
    }
}

fn covered_by_maintenance(m: &Maintenance) -> String {
    match (m.checks.is_empty(), m.matches.is_empty()) {
        (true, true) => "every check".into(),
        (true, false) => format!("checks labelled {}", m.matches),
        (false, true) => m.checks.join(", "),
        (false, false) => format!("{} (checks labelled {})", m.checks.join(", "), m.matches),
    }
}

fn labelled(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("checks labelled {}", pairs.join(", "))
}

/// The open incidents of the checks shown, with their timelines: two queries.
async fn open_incidents(state: &AppState, names: &[&str]) -> Result<Vec<IncidentView>, ApiError> {
    let open = state.reads.open_incidents().await.map_err(unavailable)?;
    let open: Vec<_> = (open.into_iter())
        .filter(|i| names.contains(&i.check.as_str()))
        .collect();
    let ids: Vec<i64> = open.iter().map(|i| i.id).collect();
    let mut events = state.reads.events_of(&ids).await.map_err(unavailable)?;
    Ok(open
        .into_iter()
        .map(|i| {
            let timeline = events.remove(&i.id).unwrap_or_default();
            view_with(i, timeline)
        })
        .collect())
}

/// Every check's days and hours, as the rollups (and the hours not rolled
/// up yet) give them; read at most once a minute, whoever asks.
#[derive(Debug, Default)]
pub struct History(tokio::sync::Mutex<Option<(DateTime<Utc>, Arc<Read>)>>);

/// How long one read of the history serves every request.
const HISTORY_TTL: chrono::Duration = chrono::Duration::seconds(60);

#[derive(Debug)]
struct Read {
    days: HashMap<String, Vec<DayUptime>>,
    hours: HashMap<String, Vec<HourLatency>>,
}

impl History {
    async fn read(&self, store: &Store, now: DateTime<Utc>) -> Result<Arc<Read>, ApiError> {
        let mut cached = self.0.lock().await;
        if let Some((at, read)) = &*cached
            && *at <= now
            && now - *at < HISTORY_TTL
        {
            return Ok(read.clone());
        }
        let read = Arc::new(Read {
            days: store
                .daily_uptime(BAR_DAYS as u32, now)
                .await
                .map_err(unavailable)?,
            hours: (store.hourly_latency(SPARK_HOURS as u32, now).await).map_err(unavailable)?,
        });
        *cached = Some((now, read.clone()));
        Ok(read)
    }
}

impl Read {
    /// A check's bar: each of the last [`BAR_DAYS`] days to `now`'s, oldest first.
    fn days(&self, check: &str, now: DateTime<Utc>) -> Vec<Day> {
        let known = self.days.get(check).map_or(&[][..], Vec::as_slice);
        let today = now.date_naive();
        (0..BAR_DAYS as u64)
            .rev()
            .map(|back| {
                let date = today - chrono::Days::new(back);
                let uptime_pct = (known.iter().find(|d| d.day == date)).and_then(DayUptime::pct);
                Day { date, uptime_pct }
            })
            .collect()
    }

    /// A check's sparkline: the p95 latency of each of the last
    /// [`SPARK_HOURS`] hours to `now`'s, oldest first.
    fn hours(&self, check: &str, now: DateTime<Utc>) -> Vec<Option<f64>> {
        let known = self.hours.get(check).map_or(&[][..], Vec::as_slice);
        let open = now.timestamp().div_euclid(3600);
        (0..SPARK_HOURS as i64)
            .rev()
            .map(|back| {
                let hour = open - back;
                (known.iter())
                    .find(|h| h.hour.timestamp().div_euclid(3600) == hour)
                    .map(|h| h.latency.p95)
            })
            .collect()
    }
}

/// An uptime percentage as the page and badges write it, without the sign:
/// whole at 100 and 0, else to two decimals (`99.95`).
fn percent(pct: f64) -> String {
    if pct >= 99.995 || pct == 0.0 {
        format!("{pct:.0}")
    } else {
        format!("{pct:.2}")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowQuery {
    window: Option<String>,
}

/// The path's check name, or 400.
fn path_of<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    Ok(path?.0)
}

/// The query, or 400 with the reason.
fn query_of<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::new(axum::http::StatusCode::BAD_REQUEST, e.body_text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_is_the_worst_color_of_checks_that_ran() {
        let of = |c: &[Option<Color>]| Overall::of(c.iter());
        assert_eq!(of(&[]), Overall::Operational);
        assert_eq!(of(&[None, Some(Color::Green)]), Overall::Operational);
        assert_eq!(of(&[Some(Color::Yellow), None]), Overall::Degraded);
        assert_eq!(
            of(&[Some(Color::Yellow), Some(Color::Red)]),
            Overall::Outage
        );
    }

    #[test]
    fn checks_group_by_their_label_values_and_the_rest_go_last() {
        let labels = |pairs: &[(&str, &str)]| {
            (pairs.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let by = vec!["app".to_string(), "region".to_string()];
        assert_eq!(group_of(&by, &labels(&[("app", "web")])), "web");
        let both = labels(&[("region", "fra"), ("app", "web"), ("team", "ops")]);
        assert_eq!(group_of(&by, &both), "web / fra");
        assert_eq!(group_of(&by, &labels(&[("team", "ops")])), "");
        let rows = |names: &[&str]| -> BTreeMap<String, Vec<Row>> {
            names.iter().map(|n| (n.to_string(), vec![])).collect()
        };
        let order: Vec<String> = ordered(rows(&["", "api", "web"]))
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(order, ["api", "web", ""]);
    }
}
