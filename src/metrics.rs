//! Every Prometheus metric keeper exports (DESIGN.md §7), in one registry:
//! blackbox_exporter-compatible `probe_*` per check, plus `keeper_*`.
//! Every check series carries a `check` label.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::classify::{Color, Severity};
use crate::probe::Sample;
use crate::store::writer::WriterMetrics;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    probe_success: IntGaugeVec,
    probe_duration: GaugeVec,
    http_status: IntGaugeVec,
    http_phase: GaugeVec,
    cert_expiry: GaugeVec,
    check_status: IntGaugeVec,
    incidents_open: IntGaugeVec,
    pub notifications: IntCounterVec,
    pub scheduler_lag: Histogram,
    pub runs_skipped: IntCounterVec,
    pub writer: WriterMetrics,
    pub store_errors: IntCounter,
    pub last_sample: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let check = &["check"];
        let m = Metrics {
            probe_success: IntGaugeVec::new(
                Opts::new("probe_success", "Whether the last probe of the check succeeded (1) or failed (0)."),
                check,
            )
            .expect("valid metric"),
            probe_duration: GaugeVec::new(
                Opts::new("probe_duration_seconds", "How long the last probe of the check took."),
                check,
            )
            .expect("valid metric"),
            http_status: IntGaugeVec::new(
                Opts::new("probe_http_status_code", "HTTP status of the last probe's final response; 0 without one."),
                check,
            )
            .expect("valid metric"),
            http_phase: GaugeVec::new(
                Opts::new("probe_http_duration_seconds", "Duration of each phase of the last HTTP probe."),
                &["check", "phase"],
            )
            .expect("valid metric"),
            cert_expiry: GaugeVec::new(
                Opts::new(
                    "probe_ssl_earliest_cert_expiry",
                    "notAfter of the earliest-expiring certificate the peer presented, in unix seconds.",
                ),
                check,
            )
            .expect("valid metric"),
            check_status: IntGaugeVec::new(
                Opts::new("keeper_check_status", "Color of the check after hysteresis: 0 green, 1 yellow, 2 red."),
                check,
            )
            .expect("valid metric"),
            incidents_open: IntGaugeVec::new(
                Opts::new("keeper_incidents_open", "Open incidents by severity."),
                &["severity"],
            )
            .expect("valid metric"),
            notifications: IntCounterVec::new(
                Opts::new("keeper_notifications_total", "Notification sends by channel and outcome (sent, retry, failed)."),
                &["channel", "outcome"],
            )
            .expect("valid metric"),
            scheduler_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "keeper_scheduler_lag_seconds",
                    "Delay between a check's planned start and its actual start.",
                )
                .buckets(vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            )
            .expect("valid metric"),
            runs_skipped: IntCounterVec::new(
                Opts::new(
                    "keeper_probe_runs_skipped_total",
                    "Runs skipped because the previous run of the check was still going.",
                ),
                check,
            )
            .expect("valid metric"),
            writer: WriterMetrics::new().expect("valid metrics"),
            store_errors: IntCounter::new(
                "keeper_store_errors_total",
                "Incident changes the database could not take (retried on the next sample).",
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
            Box::new(m.probe_success.clone()),
            Box::new(m.probe_duration.clone()),
            Box::new(m.http_status.clone()),
            Box::new(m.http_phase.clone()),
            Box::new(m.cert_expiry.clone()),
            Box::new(m.check_status.clone()),
            Box::new(m.incidents_open.clone()),
            Box::new(m.notifications.clone()),
            Box::new(m.scheduler_lag.clone()),
            Box::new(m.runs_skipped.clone()),
            Box::new(m.store_errors.clone()),
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

    /// Records a sample's blackbox-compatible gauges.
    pub fn observe_sample(&self, check: &str, sample: &Sample) {
        self.probe_success
            .with_label_values(&[check])
            .set(i64::from(sample.is_up()));
        self.probe_duration
            .with_label_values(&[check])
            .set(sample.duration.as_secs_f64());
        if let Some(http) = &sample.http {
            self.http_status
                .with_label_values(&[check])
                .set(i64::from(http.status));
            for (phase, d) in http.phases.named() {
                self.http_phase
                    .with_label_values(&[check, phase])
                    .set(d.as_secs_f64());
            }
        }
        if let Some(cert) = &sample.cert {
            self.cert_expiry
                .with_label_values(&[check])
                .set(cert.not_after.timestamp() as f64);
        }
        self.last_sample.set(sample.at.timestamp() as f64);
    }

    /// Makes a channel's notification counters visible at 0 before its first send.
    pub fn declare_channel(&self, channel: &str) {
        for outcome in ["sent", "retry", "failed"] {
            self.notifications.with_label_values(&[channel, outcome]);
        }
    }

    pub fn set_status(&self, check: &str, color: Color) {
        self.check_status
            .with_label_values(&[check])
            .set(color.as_metric());
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
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
