//! The facts the report's unit tests share: a day of seven checks in
//! three apps with every kind of indicator, and a section reader.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{CheckFacts, Facts, Reading, Source};
use crate::classify::Thresholds;
use crate::core::Severity;
use crate::core::deployment::Deployment;
use crate::core::{Color, Metric};
use crate::incident::Incident;
use crate::report::health::{Heartbeat, Period};
use chrono::{DateTime, Utc};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn check(name: &str, app: Option<&str>, kind: &'static str, ok: u64) -> CheckFacts {
    CheckFacts {
        name: name.into(),
        app: app.map(Into::into),
        kind,
        thresholds: Arc::new(Thresholds::builtin()),
        source: Source::Samples,
        total: 100,
        ok,
        p95_ms: Some(40.0),
        latest: Some((Color::Green, "200 OK".into(), at("2026-11-29T23:59:30Z"))),
        metrics: BTreeMap::new(),
        criticals: vec![],
        slowest: None,
        heartbeat: None,
    }
}

fn incident(id: i64, check: &str, started: &str, resolved: Option<&str>) -> Incident {
    Incident {
        id,
        check: check.into(),
        severity: Severity::Critical,
        color: Color::Red,
        message: "expected status 200, got 503".into(),
        started_at: at(started),
        acknowledged_at: None,
        resolved_at: resolved.map(at),
        notified_at: None,
    }
}

fn reading(latest: f64, peak: f64) -> Reading {
    Reading { latest, peak }
}

pub(crate) fn facts() -> Facts {
    let mut web = check("web", Some("shop"), "http", 100);
    web.p95_ms = Some(620.0);
    let mut api = check("api", Some("shop"), "http", 90);
    api.latest = Some((
        Color::Red,
        "expected status 200, got 503".into(),
        at("2026-11-29T23:59:30Z"),
    ));
    let mut host = check("api-host", Some("shop"), "host", 100);
    host.metrics.insert(Metric::MemoryPct, reading(60.0, 91.0));
    host.metrics.insert(Metric::CpuPct, reading(20.0, 65.0));
    host.metrics.insert(Metric::DiskPct, reading(41.0, 41.5));
    let mut cert = check("web-cert", Some("shop"), "tls", 100);
    cert.metrics
        .insert(Metric::CertDaysLeft, reading(12.0, 12.0));
    let mut db = check("db", Some("data"), "postgres", 100);
    db.metrics.insert(Metric::QueryMs, reading(2.0, 9.0));
    db.slowest = Some("120 ms × 30 \"SELECT * FROM orders\"".into());
    let mut backup = check("nightly-backup", None, "heartbeat", 0);
    backup.latest = Some((Color::Green, "late".into(), at("2026-11-29T23:59:30Z")));
    backup.total = 0;
    backup.p95_ms = None;
    backup.heartbeat = Some(Heartbeat {
        last_success: Some(at("2026-11-28T02:00:00Z")),
        overdue: true,
    });
    let mut log = check("app-log", None, "log", 100);
    log.metrics.insert(Metric::ErrorRatePct, reading(0.05, 0.5));
    log.criticals = vec!["Out of memory: Killed process 12 (app|x)".into()];
    let mut resolved = incident(
        3,
        "api",
        "2026-11-29T05:00:00Z",
        Some("2026-11-29T05:10:00Z"),
    );
    resolved.acknowledged_at = Some(at("2026-11-29T05:02:00Z"));
    Facts {
        period: Period::of(
            chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            at("2026-11-30T06:00:00Z"),
        )
        .unwrap(),
        made_at: at("2026-11-30T06:00:00Z"),
        checks: vec![web, api, host, cert, db, backup, log],
        incidents: vec![resolved, incident(4, "api", "2026-11-29T22:00:00Z", None)],
        deployments: vec![Deployment {
            id: 1,
            app: "shop".into(),
            version: "v42".into(),
            description: "new checkout".into(),
            by: "ci".into(),
            at: at("2026-11-29T04:50:00Z"),
        }],
    }
}
