//! Every Prometheus metric keeper exports (DESIGN.md §7): blackbox_exporter-
//! compatible `probe_*` per check, plus `keeper_*`. Every check series carries
//! a `check` label.
//!
//! Per-check series live in a compact table of atomics written straight into
//! the exposition ([`checks::CheckTable`]): the prometheus crate's labelled
//! vectors cost about 800 bytes a series, 70 MB for 10,000 checks. Everything
//! else is a regular registry metric.

mod checks;
pub mod labels;
mod text;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::core::Sample;
use crate::core::{Color, Severity};
use crate::store::writer::WriterMetrics;
use checks::CheckTable;

/// The git commit keeper was built from (`build.rs`): the repository's HEAD,
/// else `GIT_REVISION` at build time, else `unknown`.
pub const REVISION: &str = env!("KEEPER_REVISION");

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
    /// Live instances sharing the database, this one included (1 alone).
    pub cluster_members: IntGauge,
    /// Checks this instance probes and decides now.
    pub checks_owned: IntGauge,
    pub config_reload: ConfigReload,
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
            unwritten: int_gauge(
                "keeper_incident_changes_unwritten",
                "Incident changes made (and notified) while storage is away, waiting to be written down.",
            ),
            last_sample: Gauge::new(
                "keeper_last_sample_timestamp_seconds",
                "When the newest sample was taken, in unix seconds.",
            )
            .expect("valid metric"),
            cluster_members: int_gauge(
                "keeper_cluster_members",
                "Live keeper instances sharing this instance's database, itself included.",
            ),
            checks_owned: int_gauge(
                "keeper_checks_owned",
                "Checks this instance owns now: it probes them and decides their incidents.",
            ),
            config_reload: ConfigReload::new(&registry),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.incidents_open.clone()),
            Box::new(m.notifications.clone()),
            Box::new(m.scheduler_lag.clone()),
            Box::new(m.store_errors.clone()),
            Box::new(m.unwritten.clone()),
            Box::new(m.last_sample.clone()),
            Box::new(m.cluster_members.clone()),
            Box::new(m.checks_owned.clone()),
            Box::new(build_info()),
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

    /// The metrics of a reloaded config's `checks`: new per-check series,
    /// every other metric shared with `self` (counters go on counting).
    pub fn for_checks(&self, checks: &[Arc<str>]) -> Metrics {
        Metrics {
            checks: Arc::new(CheckTable::new(checks)),
            ..self.clone()
        }
    }

    /// Records a sample's blackbox-compatible gauges for check number `check`.
    pub fn observe_sample(&self, check: usize, sample: &Sample) {
        if let Some(slot) = self.checks.slots.get(check) {
            slot.observe(sample);
        }
        self.last_sample.set(sample.at.timestamp() as f64);
    }

    /// The kind and config labels of check number `check`, for
    /// `keeper_check_info` (set once, at build).
    pub fn describe_check(&self, check: usize, kind: &str, labels: &BTreeMap<String, String>) {
        if let Some(slot) = self.checks.slots.get(check) {
            slot.describe(kind, labels);
        }
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

    /// The Prometheus text exposition (format 0.0.4), whole.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        Ok(self.exposition()?.collect())
    }

    /// The Prometheus text exposition in pieces, for a response to stream:
    /// keeper's own metrics, then each per-check family a few hundred
    /// checks at a time, each written as it is asked for. A scrape then
    /// holds a piece (under 100 kB), not the whole text (8.6 MB at 10,000
    /// checks, which raised keeper's peak memory by 14 MB).
    pub fn exposition(
        &self,
    ) -> Result<impl Iterator<Item = String> + Send + 'static, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        let own = String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))?;
        Ok(std::iter::once(own).chain(Arc::clone(&self.checks).pieces()))
    }
}

fn int_gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid metric")
}

/// `keeper_build_info{version, revision} 1`.
fn build_info() -> IntGaugeVec {
    let info = IntGaugeVec::new(
        Opts::new(
            "keeper_build_info",
            "keeper's version and the git commit it was built from; always 1.",
        ),
        &["version", "revision"],
    )
    .expect("valid metric");
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), REVISION])
        .set(1);
    info
}

/// The config reload's gauges, named as Prometheus and Alertmanager name
/// theirs.
#[derive(Clone)]
pub struct ConfigReload {
    /// Whether the last config reload (or the start) succeeded: 1 or 0.
    pub successful: IntGauge,
    /// When the config was last loaded successfully, in unix seconds.
    pub success_at: Gauge,
}

impl ConfigReload {
    /// The gauges in `registry`, saying a load succeeded now (keeper's start).
    fn new(registry: &Registry) -> ConfigReload {
        let successful = IntGauge::new(
            "keeper_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
        )
        .expect("valid metric");
        let success_at = Gauge::new(
            "keeper_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(successful.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(success_at.clone()))
            .expect("metric names are unique");
        let reload = ConfigReload {
            successful,
            success_at,
        };
        reload.succeeded();
        reload
    }

    /// A load succeeded now.
    pub fn succeeded(&self) {
        self.successful.set(1);
        self.success_at.set(chrono::Utc::now().timestamp() as f64);
    }

    /// A reload failed: the last success stays as it was.
    pub fn failed(&self) {
        self.successful.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_run_that_measured_nothing_leaves_no_old_value() {
        use crate::core::{CertInfo, Metric};
        let m = Metrics::new(&[Arc::from("cert")]);
        let mut good = Sample::up("ok");
        good.cert = Some(CertInfo {
            not_after: chrono::DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
            subject: "CN=x".into(),
            issuer: "CN=ca".into(),
        });
        good.conn.verified_chain_expiry = good.cert.as_ref().map(|c| c.not_after);
        good.conn.tls_version = Some("TLS 1.3");
        good.metrics.push((Metric::CertDaysLeft, 30.0));
        good.values.push(("rows".into(), 7.0));
        m.observe_sample(0, &good);
        let before = m.render().unwrap();
        for series in [
            "probe_ssl_earliest_cert_expiry{check=\"cert\"} 2000000000\n",
            "probe_ssl_last_chain_expiry_timestamp_seconds{check=\"cert\"} 2000000000\n",
            "probe_tls_version_info{check=\"cert\",version=\"TLS 1.3\"} 1\n",
            "keeper_check_value{check=\"cert\",metric=\"cert_days_left\"} 30\n",
            "keeper_check_value{check=\"cert\",metric=\"rows\"} 7\n",
        ] {
            assert!(before.contains(series), "missing {series} in\n{before}");
        }
        m.observe_sample(0, &Sample::down("handshake failed"));
        let after = m.render().unwrap();
        for gone in [
            "probe_ssl_earliest_cert_expiry{",
            "probe_ssl_last_chain_expiry_timestamp_seconds{",
            "probe_tls_version_info{",
            "keeper_check_value{",
        ] {
            assert!(
                !after.contains(gone),
                "{gone} outlived a failed run:\n{after}"
            );
        }
    }

    #[test]
    fn the_exposition_comes_in_small_pieces_each_family_whole_and_once() {
        let names: Vec<Arc<str>> = (0..2_000)
            .map(|i| Arc::from(format!("check-{i}")))
            .collect();
        let m = Metrics::new(&names);
        let mut up = Sample::up("200 OK");
        up.http = Some(crate::core::HttpInfo::default());
        for i in (0..names.len()).step_by(2) {
            m.observe_sample(i, &up);
        }
        let pieces: Vec<String> = m.exposition().unwrap().collect();
        let largest = pieces.iter().map(String::len).max().unwrap_or(0);
        assert!(largest < 100 * 1024, "a piece of {largest} bytes");
        assert!(pieces.iter().all(|p| !p.is_empty()));
        let text = pieces.concat();
        // Each family's lines together, after its one header.
        let mut names_seen: Vec<&str> = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = name.trim_end_matches("_bucket").trim_end_matches("_sum");
            let family = family.trim_end_matches("_count");
            if names_seen.last() != Some(&family) {
                assert!(!names_seen.contains(&family), "{family} split in two");
                names_seen.push(family);
            }
        }
        for family in [
            "probe_success",
            "probe_http_duration_seconds",
            "keeper_check_status",
        ] {
            let header = format!("# TYPE {family} ");
            assert_eq!(text.matches(&header).count(), 1, "{family}");
        }
        let lines = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(lines("probe_success{"), 1_000);
        assert_eq!(lines("keeper_check_status{"), 2_000);
        assert_eq!(text, m.render().unwrap());
    }

    #[test]
    fn check_info_carries_kind_and_sanitized_labels() {
        let m = Metrics::new(&[Arc::from("web")]);
        let labels = [
            ("team".to_string(), "a".to_string()),
            ("check".into(), "b".into()),
        ];
        m.describe_check(0, "http", &labels.into_iter().collect());
        let out = m.render().unwrap();
        assert!(
            out.contains(
                "keeper_check_info{check=\"web\",kind=\"http\",exported_check=\"b\",team=\"a\"} 1\n"
            ),
            "{out}"
        );
        assert!(out.contains(&format!("revision=\"{REVISION}\"")), "{out}");
    }
}
