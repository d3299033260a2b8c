//! What one run of a probe saw ([`Sample`]): its outcome, its message and
//! its measurements. Probes make them; the writer, the metrics and
//! `classify` read them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Direction, Metric};

/// What one run of a probe saw.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the probe started.
    pub at: DateTime<Utc>,
    /// How long the whole probe took.
    pub duration: Duration,
    pub outcome: Outcome,
    /// One line for people: `200 OK in 12 ms`, or the reason it failed.
    pub message: String,
    /// Values thresholds apply to (latency_ms, cert_days_left, …).
    pub metrics: Vec<(Metric, f64)>,
    /// Other named values the probe measured (a plugin's perfdata, a
    /// database's size): stored with the sample, no thresholds apply.
    pub values: Vec<(String, f64)>,
    /// HTTP details, for `probe_http_*` metrics and the API.
    pub http: Option<HttpInfo>,
    /// The earliest-expiring certificate the peer presented, if any was seen.
    pub cert: Option<CertInfo>,
    /// What the probe learned about the connection it made, if it made one.
    pub conn: ConnInfo,
}

/// Whether the target answered as expected.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Up,
    /// The target answered but is degraded by the probe's own judgement (a
    /// machine stopped, a plugin's WARNING): yellow at medium severity unless
    /// the metrics say worse. The string says why.
    Warn(String),
    /// The probe failed; the string says why (`connection refused`, `expected status 200, got 503`).
    Down(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpInfo {
    /// Final response status; 0 when no response arrived.
    pub status: u16,
    pub redirects: u32,
    pub phases: Phases,
    /// The final response's HTTP version (major, minor); `None` without one.
    pub version: Option<(u8, u8)>,
    /// The final response's `Content-Length`: -1 when it declared none, 0
    /// when no response arrived (blackbox_exporter's values).
    pub content_length: i64,
    /// The final request went over TLS.
    pub ssl: bool,
    /// The run failed because the body did not match `body_regex`.
    pub failed_due_to_regex: bool,
    /// With `keepalive = true`: whether the first request went over the
    /// connection kept from an earlier run (`false`: a new one was opened);
    /// `None` for a check without `keepalive`, where every run opens one.
    pub connection_reused: Option<bool>,
}

/// What a probe learned about the connection it made (blackbox_exporter's
/// `probe_dns_lookup_time_seconds`, `probe_ip_protocol`, `probe_tls_*`):
/// a value the run did not measure is `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnInfo {
    /// Resolving the target's name (zero for an IP literal); a `dns` check's
    /// own question.
    pub dns_lookup: Option<Duration>,
    /// 4 or 6: the address family of the peer that answered.
    pub ip_protocol: Option<u8>,
    /// The negotiated TLS version, as blackbox_exporter names it (`TLS 1.3`).
    pub tls_version: Option<&'static str>,
    /// The earliest notAfter of the certificate chain that was verified;
    /// `None` when no chain was verified (a failed handshake, an untrusted
    /// chain, `insecure_skip_verify`).
    pub verified_chain_expiry: Option<DateTime<Utc>>,
}

impl ConnInfo {
    /// 4 or 6 for `ip`.
    pub fn ip_protocol(ip: std::net::IpAddr) -> u8 {
        if ip.is_ipv4() { 4 } else { 6 }
    }
}

/// Timing phases of an HTTP request, summed over redirects. A phase that never
/// happened (no DNS lookup for an IP literal, no TLS on http://) is `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Phases {
    pub dns: Option<Duration>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
    /// From request sent to the first byte of the response head.
    pub first_byte: Option<Duration>,
    /// From the first byte to the end of the body read.
    pub transfer: Option<Duration>,
}

impl Phases {
    /// `(name, duration)` for each phase that happened, for people
    /// (`probe_http_duration_seconds` names them as blackbox_exporter does).
    pub fn named(&self) -> impl Iterator<Item = (&'static str, Duration)> {
        [
            ("dns", self.dns),
            ("connect", self.connect),
            ("tls", self.tls),
            ("first_byte", self.first_byte),
            ("transfer", self.transfer),
        ]
        .into_iter()
        .filter_map(|(name, d)| d.map(|d| (name, d)))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CertInfo {
    /// notAfter of the earliest-expiring certificate the peer presented.
    pub not_after: DateTime<Utc>,
    pub subject: String,
    pub issuer: String,
}

impl CertInfo {
    /// Days from `now` to notAfter, fractional; negative once expired.
    pub fn days_left(&self, now: DateTime<Utc>) -> f64 {
        (self.not_after - now).num_seconds() as f64 / 86_400.0
    }
}

impl Sample {
    /// An up sample started now with no measurements yet.
    pub fn up(message: impl Into<String>) -> Sample {
        Sample {
            at: Utc::now(),
            duration: Duration::ZERO,
            outcome: Outcome::Up,
            message: message.into(),
            metrics: Vec::new(),
            values: Vec::new(),
            http: None,
            cert: None,
            conn: ConnInfo::default(),
        }
    }

    /// A down sample started now: the reason is also the message.
    pub fn down(reason: impl Into<String>) -> Sample {
        let reason = reason.into();
        Sample {
            outcome: Outcome::Down(reason.clone()),
            ..Sample::up(reason)
        }
    }

    /// A degraded sample: the reason is also the message.
    pub fn warn(reason: impl Into<String>) -> Sample {
        let reason = reason.into();
        Sample {
            outcome: Outcome::Warn(reason.clone()),
            ..Sample::up(reason)
        }
    }

    /// Applies keeper's text rule ([`super::text`]) to everything in the
    /// sample a peer may have written: its message, its reason, the names of
    /// its values, a certificate's subject and issuer. True when anything changed.
    pub fn clean(&mut self) -> bool {
        use super::text::{clean_in_place, clean_to};
        let mut changed = clean_in_place(&mut self.message);
        if let Outcome::Down(reason) | Outcome::Warn(reason) = &mut self.outcome {
            changed |= clean_in_place(reason);
        }
        for (name, _) in &mut self.values {
            if let std::borrow::Cow::Owned(cleaned) = clean_to(name, super::text::NAME_MAX) {
                *name = cleaned;
                changed = true;
            }
        }
        if let Some(cert) = &mut self.cert {
            changed |= clean_in_place(&mut cert.subject);
            changed |= clean_in_place(&mut cert.issuer);
        }
        changed
    }

    /// Whether the target answered (`probe_success`): a degraded answer counts.
    pub fn is_up(&self) -> bool {
        !matches!(self.outcome, Outcome::Down(_))
    }

    pub fn metric(&self, metric: Metric) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|(_, v)| *v)
    }

    /// The latency people read: `latency_ms` when measured, else the probe's duration.
    pub fn latency_ms(&self) -> f64 {
        self.metric(Metric::LatencyMs)
            .unwrap_or(self.duration.as_secs_f64() * 1000.0)
    }
}

/// A sample's measurements beyond its latency: each thresholded metric at
/// its worst value (several series or mounts may report one), then the
/// probe's own named values, one per name (the last wins). What
/// [`metrics_json`] stores and `keeper_check_value` exports.
pub fn measured<'a>(metrics: &[(Metric, f64)], values: &'a [(String, f64)]) -> Vec<(&'a str, f64)> {
    let mut out: Vec<(&str, f64)> = Vec::new();
    for &(metric, value) in metrics {
        if metric == Metric::LatencyMs || !value.is_finite() {
            continue;
        }
        let name = metric.as_str();
        match out.iter_mut().find(|(m, _)| *m == name) {
            Some((_, w)) => {
                *w = match metric.direction() {
                    Direction::Above => w.max(value),
                    Direction::Below => w.min(value),
                }
            }
            None => out.push((name, value)),
        }
    }
    for (name, value) in values {
        if !value.is_finite() {
            continue;
        }
        match out.iter_mut().find(|(n, _)| *n == name.as_str()) {
            Some((_, v)) => *v = *value,
            None => out.push((name, *value)),
        }
    }
    out
}

/// A sample's [`measured`] values as one JSON object; `None` when there are none.
pub fn metrics_json(sample: &Sample) -> Option<String> {
    let measured = measured(&sample.metrics, &sample.values);
    if measured.is_empty() {
        return None;
    }
    let mut out = serde_json::Map::new();
    for (name, value) in measured {
        out.insert(name.to_string(), value.into());
    }
    Some(serde_json::Value::Object(out).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_keeps_the_worst_of_each_metric_and_the_last_of_each_value() {
        let metrics = [
            (Metric::LatencyMs, 12.0),
            (Metric::DiskPct, 40.0),
            (Metric::CertDaysLeft, 30.0),
            (Metric::DiskPct, 90.0),
            (Metric::CertDaysLeft, 5.0),
            (Metric::MemoryPct, f64::NAN),
        ];
        let values = [
            ("rows".to_string(), 1.0),
            ("load".to_string(), f64::INFINITY),
            ("rows".to_string(), 2.0),
        ];
        assert_eq!(
            measured(&metrics, &values),
            [("disk_pct", 90.0), ("cert_days_left", 5.0), ("rows", 2.0)]
        );
        let mut sample = Sample::up("ok");
        sample.metrics = metrics.to_vec();
        sample.values = values.to_vec();
        assert_eq!(
            metrics_json(&sample).as_deref(),
            Some(r#"{"cert_days_left":5.0,"disk_pct":90.0,"rows":2.0}"#)
        );
        assert_eq!(metrics_json(&Sample::up("latency only")), None);
    }
}
