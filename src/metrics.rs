//! Every Prometheus metric keeper exports (DESIGN.md §7): blackbox_exporter-
//! compatible `probe_*` per check, plus `keeper_*`. Every check series carries
//! a `check` label.
//!
//! Per-check series live in a compact table of atomics written straight into
//! the exposition ([`CheckTable`]): the prometheus crate's labelled vectors
//! cost about 800 bytes a series, 70 MB for 10,000 checks. Everything else
//! is a regular registry metric.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::core::Sample;
use crate::core::{Color, Severity};
use crate::store::writer::WriterMetrics;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    checks: Arc<CheckTable>,
    incidents_open: IntGaugeVec,
    pub notifications: IntCounterVec,
    pub scheduler_lag: Histogram,
    /// The worst lag since `keeper:scheduler` last looked.
    pub scheduler_lag_worst: crate::core::health::SchedulerLag,
    pub writer: WriterMetrics,
    pub store_errors: IntCounter,
    /// Incident changes made while storage is away, not yet written down.
    pub unwritten: IntGauge,
    pub last_sample: Gauge,
}

impl Metrics {
    /// The metrics of a keeper running `checks` (by index, as the scheduler numbers them).
    pub fn new(checks: &[Arc<str>]) -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            checks: Arc::new(CheckTable::new(checks)),
            incidents_open: IntGaugeVec::new(
                Opts::new("keeper_incidents_open", "Open incidents by severity."),
                &["severity"],
            )
            .expect("valid metric"),
            notifications: IntCounterVec::new(
                Opts::new(
                    "keeper_notifications_total",
                    "Notification sends by channel and outcome (sent, retry, failed).",
                ),
                &["channel", "outcome"],
            )
            .expect("valid metric"),
            scheduler_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "keeper_scheduler_lag_seconds",
                    "Delay between a check's planned start and its actual start.",
                )
                .buckets(vec![
                    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )
            .expect("valid metric"),
            scheduler_lag_worst: Default::default(),
            writer: WriterMetrics::new().expect("valid metrics"),
            store_errors: IntCounter::new(
                "keeper_store_errors_total",
                "Store calls of the engine that failed: the database away, or a change it refused.",
            )
            .expect("valid metric"),
            unwritten: IntGauge::new(
                "keeper_incident_changes_unwritten",
                "Incident changes made (and notified) while storage is away, waiting to be written down.",
            )
            .expect("valid metric"),
            last_sample: Gauge::new(
                "keeper_last_sample_timestamp_seconds",
                "When the newest sample was taken, in unix seconds.",
            )
            .expect("valid metric"),
            registry,
        };
        let build_info = IntGaugeVec::new(
            Opts::new("keeper_build_info", "keeper's version; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.incidents_open.clone()),
            Box::new(m.notifications.clone()),
            Box::new(m.scheduler_lag.clone()),
            Box::new(m.store_errors.clone()),
            Box::new(m.unwritten.clone()),
            Box::new(m.last_sample.clone()),
            Box::new(build_info),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m.writer
            .register(&m.registry)
            .expect("metric names are unique");
        for severity in Severity::ALL {
            m.incidents_open
                .with_label_values(&[severity.as_str()])
                .set(0);
        }
        m
    }

    /// Records a sample's blackbox-compatible gauges for check number `check`.
    pub fn observe_sample(&self, check: usize, sample: &Sample) {
        if let Some(slot) = self.checks.slots.get(check) {
            slot.observe(sample);
        }
        self.last_sample.set(sample.at.timestamp() as f64);
    }

    /// Makes a channel's notification counters visible at 0 before its first send.
    pub fn declare_channel(&self, channel: &str) {
        for outcome in ["sent", "retry", "failed"] {
            self.notifications.with_label_values(&[channel, outcome]);
        }
    }

    /// The color of check number `check` after hysteresis.
    pub fn set_status(&self, check: usize, color: Color) {
        if let Some(slot) = self.checks.slots.get(check) {
            slot.status
                .store(color.as_metric() as u8, Ordering::Relaxed);
        }
    }

    /// A run of check number `check` was skipped: the previous one was still going.
    pub fn run_skipped(&self, check: usize) {
        if let Some(slot) = self.checks.slots.get(check) {
            slot.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn set_incidents_open(&self, severity: Severity, n: i64) {
        self.incidents_open
            .with_label_values(&[severity.as_str()])
            .set(n);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        let mut out = String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))?;
        self.checks.render(&mut out);
        Ok(out)
    }
}

/// Marks a value that was never measured (a phase that did not happen).
const ABSENT: u64 = u64::MAX;

/// The last sample's values of one check, lock-free.
struct CheckSlot {
    name: Arc<str>,
    /// Whether a sample arrived yet; `probe_*` series appear only after one.
    seen: AtomicBool,
    success: AtomicBool,
    /// f64 bits.
    duration_s: AtomicU64,
    /// HTTP status; `ABSENT` for checks that are not HTTP.
    http_status: AtomicU64,
    /// f64 bits per phase (dns, connect, tls, first_byte, transfer), or `ABSENT`.
    phases: [AtomicU64; 5],
    /// notAfter in unix seconds, or `ABSENT`.
    cert_expiry: AtomicU64,
    status: AtomicU8,
    skipped: AtomicU64,
}

const PHASES: [&str; 5] = ["dns", "connect", "tls", "first_byte", "transfer"];

impl CheckSlot {
    fn observe(&self, sample: &Sample) {
        self.success.store(sample.is_up(), Ordering::Relaxed);
        self.duration_s
            .store(sample.duration.as_secs_f64().to_bits(), Ordering::Relaxed);
        if let Some(http) = &sample.http {
            self.http_status
                .store(u64::from(http.status), Ordering::Relaxed);
            let p = &http.phases;
            let values = [p.dns, p.connect, p.tls, p.first_byte, p.transfer];
            for (slot, value) in self.phases.iter().zip(values) {
                slot.store(
                    value.map_or(ABSENT, |d| d.as_secs_f64().to_bits()),
                    Ordering::Relaxed,
                );
            }
        }
        if let Some(cert) = &sample.cert {
            self.cert_expiry
                .store(cert.not_after.timestamp() as u64, Ordering::Relaxed);
        }
        self.seen.store(true, Ordering::Release);
    }
}

/// Every check's slot, in check order.
struct CheckTable {
    slots: Vec<CheckSlot>,
}

impl CheckTable {
    fn new(names: &[Arc<str>]) -> CheckTable {
        CheckTable {
            slots: names
                .iter()
                .map(|name| CheckSlot {
                    name: name.clone(),
                    seen: AtomicBool::new(false),
                    success: AtomicBool::new(false),
                    duration_s: AtomicU64::new(0),
                    http_status: AtomicU64::new(ABSENT),
                    phases: std::array::from_fn(|_| AtomicU64::new(ABSENT)),
                    cert_expiry: AtomicU64::new(ABSENT),
                    status: AtomicU8::new(0),
                    skipped: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// Appends the per-check families to an exposition. The probe series
    /// start with a check's first sample; its status and skip count are
    /// there from the start.
    fn render(&self, out: &mut String) {
        let seen: Vec<&CheckSlot> = self
            .slots
            .iter()
            .filter(|s| s.seen.load(Ordering::Acquire))
            .collect();
        let all: Vec<&CheckSlot> = self.slots.iter().collect();
        per_check(
            out,
            &seen,
            ("probe_success", "gauge"),
            "Whether the last probe of the check succeeded (1) or failed (0).",
            |s| Some(f64::from(u8::from(s.success.load(Ordering::Relaxed)))),
        );
        per_check(
            out,
            &seen,
            ("probe_duration_seconds", "gauge"),
            "How long the last probe of the check took.",
            |s| Some(f64::from_bits(s.duration_s.load(Ordering::Relaxed))),
        );
        per_check(
            out,
            &seen,
            ("probe_http_status_code", "gauge"),
            "HTTP status of the last probe's final response; 0 without one.",
            |s| present(&s.http_status).map(|status| status as f64),
        );
        render_phases(out, &seen);
        per_check(
            out,
            &seen,
            ("probe_ssl_earliest_cert_expiry", "gauge"),
            "notAfter of the earliest-expiring certificate the peer presented, in unix seconds.",
            |s| present(&s.cert_expiry).map(|expiry| expiry as i64 as f64),
        );
        per_check(
            out,
            &all,
            ("keeper_check_status", "gauge"),
            "Color of the check after hysteresis: 0 green, 1 yellow, 2 red.",
            |s| Some(f64::from(s.status.load(Ordering::Relaxed))),
        );
        per_check(
            out,
            &all,
            ("keeper_probe_runs_skipped_total", "counter"),
            "Runs skipped because the previous run of the check was still going.",
            |s| Some(s.skipped.load(Ordering::Relaxed) as f64),
        );
    }
}

/// A family with one sample per slot in `slots`, `value` giving it (none: no line).
fn per_check(
    out: &mut String,
    slots: &[&CheckSlot],
    (name, kind): (&str, &str),
    help: &str,
    value: impl Fn(&CheckSlot) -> Option<f64>,
) {
    family(out, name, kind, help);
    for s in slots {
        if let Some(v) = value(s) {
            sample(out, name, &s.name, None, v);
        }
    }
}

/// `probe_http_duration_seconds`: one sample per phase the last HTTP probe measured.
fn render_phases(out: &mut String, seen: &[&CheckSlot]) {
    family(
        out,
        "probe_http_duration_seconds",
        "gauge",
        "Duration of each phase of the last HTTP probe.",
    );
    for s in seen {
        for (phase, value) in PHASES.iter().zip(&s.phases) {
            if let Some(bits) = present(value) {
                sample(
                    out,
                    "probe_http_duration_seconds",
                    &s.name,
                    Some(("phase", phase)),
                    f64::from_bits(bits),
                );
            }
        }
    }
}

/// A slot's value, unless it holds [`ABSENT`].
fn present(slot: &AtomicU64) -> Option<u64> {
    let v = slot.load(Ordering::Relaxed);
    (v != ABSENT).then_some(v)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One exposition line: `name{check="…"[,k="v"]} value`.
fn sample(out: &mut String, name: &str, check: &str, extra: Option<(&str, &str)>, value: f64) {
    out.push_str(name);
    out.push_str("{check=\"");
    escape_label(out, check);
    out.push('"');
    if let Some((k, v)) = extra {
        let _ = write!(out, ",{k}=\"");
        escape_label(out, v);
        out.push('"');
    }
    out.push_str("} ");
    if value.is_finite() {
        let _ = write!(out, "{value}");
    } else if value.is_nan() {
        out.push_str("NaN");
    } else if value > 0.0 {
        out.push_str("+Inf");
    } else {
        out.push_str("-Inf");
    }
    out.push('\n');
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "probe_success", "a\"b\\c\nd", None, 1.0);
        assert_eq!(out, "probe_success{check=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn per_check_series_appear_after_the_first_sample() {
        let m = Metrics::new(&[Arc::from("web")]);
        let before = m.render().unwrap();
        assert!(!before.contains("probe_success{check=\"web\"}"), "{before}");
        assert!(
            before.contains("keeper_check_status{check=\"web\"} 0"),
            "{before}"
        );
        m.observe_sample(0, &Sample::down("refused"));
        m.set_status(0, Color::Red);
        let after = m.render().unwrap();
        assert!(
            after.contains("probe_success{check=\"web\"} 0\n"),
            "{after}"
        );
        assert!(
            after.contains("keeper_check_status{check=\"web\"} 2\n"),
            "{after}"
        );
        assert!(!after.contains("probe_http_status_code{check"), "{after}");
    }
}
