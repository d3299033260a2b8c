//! The per-check series: each check's last sample in a compact slot of
//! atomics, written straight into the exposition at scrape time.
//!
//! The `probe_*` names, meanings, units and label sets are blackbox_exporter's
//! (its http, tcp/tls and dns probers). A value the last run did not measure
//! has no series: a failed handshake leaves no certificate expiry, a check
//! that stopped reporting `memory_pct` no `keeper_check_value` for it.
//! Observing a sample allocates nothing once the slot has seen the check's
//! values: every copy reuses the slot's buffers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::labels::info_labels;
use super::text::{escape_label, family, push_value, sample};
use crate::core::Metric;
use crate::core::Sample;
use crate::core::sample::measured;

/// Marks a value that was not measured (not a bit pattern `f64::to_bits` gives
/// for a measured value).
const ABSENT: u64 = u64::MAX;

// Indexes of `CheckSlot::gauges`.
const DURATION: usize = 0;
const HTTP_STATUS: usize = 1;
const HTTP_REDIRECTS: usize = 2;
const HTTP_SSL: usize = 3;
const HTTP_VERSION: usize = 4;
const HTTP_CONTENT_LENGTH: usize = 5;
const FAILED_DUE_TO_REGEX: usize = 6;
const DNS_LOOKUP: usize = 7;
const IP_PROTOCOL: usize = 8;
const CERT_EXPIRY: usize = 9;
const CHAIN_EXPIRY: usize = 10;
const CONNECTION_REUSED: usize = 11;
/// The five phases of `probe_http_duration_seconds`, in [`PHASES`] order.
const PHASE: usize = 12;
const GAUGES: usize = PHASE + PHASES.len();

/// blackbox_exporter's phase names.
const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// The single-series `probe_*` families, in exposition order (the phases,
/// the TLS version and the status come between, see [`CheckTable::render`]):
/// (gauge, name, help).
const FAMILIES: [(usize, &str, &str); 11] = [
    (
        HTTP_STATUS,
        "probe_http_status_code",
        "HTTP status of the last probe's final response; 0 without one.",
    ),
    (
        HTTP_REDIRECTS,
        "probe_http_redirects",
        "The number of redirects the last HTTP probe followed.",
    ),
    (
        HTTP_SSL,
        "probe_http_ssl",
        "Whether the final request of the last HTTP probe went over TLS (1) or not (0).",
    ),
    (
        HTTP_VERSION,
        "probe_http_version",
        "HTTP version of the last HTTP probe's final response (1.1, 2); 0 without one.",
    ),
    (
        HTTP_CONTENT_LENGTH,
        "probe_http_content_length",
        "Content-Length of the last HTTP probe's final response; -1 undeclared, 0 without one.",
    ),
    (
        FAILED_DUE_TO_REGEX,
        "probe_failed_due_to_regex",
        "Whether the last HTTP probe failed because the body did not match body_regex.",
    ),
    (
        DNS_LOOKUP,
        "probe_dns_lookup_time_seconds",
        "How long resolving the target took in the last probe (a dns check: its query).",
    ),
    (
        IP_PROTOCOL,
        "probe_ip_protocol",
        "Address family of the peer of the last probe: 4 or 6.",
    ),
    (
        CERT_EXPIRY,
        "probe_ssl_earliest_cert_expiry",
        "notAfter of the earliest-expiring certificate the peer presented, in unix seconds.",
    ),
    (
        CHAIN_EXPIRY,
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "Earliest notAfter of the certificate chain the last probe verified, in unix seconds.",
    ),
    (
        CONNECTION_REUSED,
        "keeper_http_connection_reused",
        "Whether the last run of a keepalive HTTP check reused its kept connection (1) or opened one (0).",
    ),
];

/// The TLS versions `probe_tls_version_info` names; a slot keeps an index + 1.
const TLS_VERSIONS: [&str; 5] = ["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3", "unknown"];

/// The last sample's values of one check.
pub(super) struct CheckSlot {
    name: Arc<str>,
    /// Whether a sample arrived yet; `probe_*` series appear only after one.
    seen: AtomicBool,
    success: AtomicBool,
    /// f64 bits per gauge index, or [`ABSENT`].
    gauges: [AtomicU64; GAUGES],
    /// Index + 1 into [`TLS_VERSIONS`]; 0 when no handshake completed.
    tls_version: AtomicU8,
    pub(super) status: AtomicU8,
    pub(super) skipped: AtomicU64,
    /// The last sample's metrics and values, for `keeper_check_value`.
    measured: Mutex<Measured>,
    /// `,kind="…",label="…"`: the rest of the check's `keeper_check_info`.
    info: OnceLock<String>,
}

#[derive(Default)]
struct Measured {
    metrics: Vec<(Metric, f64)>,
    values: Vec<(String, f64)>,
}

impl CheckSlot {
    fn new(name: Arc<str>) -> CheckSlot {
        CheckSlot {
            name,
            seen: AtomicBool::new(false),
            success: AtomicBool::new(false),
            gauges: std::array::from_fn(|_| AtomicU64::new(ABSENT)),
            tls_version: AtomicU8::new(0),
            status: AtomicU8::new(0),
            skipped: AtomicU64::new(0),
            measured: Mutex::new(Measured::default()),
            info: OnceLock::new(),
        }
    }

    /// Records the check's kind and config labels (the first call wins).
    pub(super) fn describe(&self, kind: &str, labels: &BTreeMap<String, String>) {
        let _ = self.info.set(info_labels(kind, labels));
    }

    pub(super) fn observe(&self, sample: &Sample) {
        for (slot, value) in self.gauges.iter().zip(gauges(sample)) {
            slot.store(value.map_or(ABSENT, f64::to_bits), Ordering::Relaxed);
        }
        let tls = sample.conn.tls_version.map_or(0, |v| {
            TLS_VERSIONS.iter().position(|k| *k == v).unwrap_or(4) + 1
        });
        self.tls_version.store(tls as u8, Ordering::Relaxed);
        {
            // `clone_from` reuses the buffers (and the names' strings) of
            // the last sample: no allocation while the check's values keep
            // their names.
            let mut measured = self.measured.lock().unwrap_or_else(PoisonError::into_inner);
            measured.metrics.clone_from(&sample.metrics);
            measured.values.clone_from(&sample.values);
        }
        self.success.store(sample.is_up(), Ordering::Relaxed);
        self.seen.store(true, Ordering::Release);
    }

    fn gauge(&self, index: usize) -> Option<f64> {
        let bits = self.gauges[index].load(Ordering::Relaxed);
        (bits != ABSENT).then(|| f64::from_bits(bits))
    }
}

/// Every gauge's value in `sample`, by index; `None` where it measured none.
fn gauges(sample: &Sample) -> [Option<f64>; GAUGES] {
    let mut g = [None; GAUGES];
    let secs = |d: std::time::Duration| d.as_secs_f64();
    g[DURATION] = Some(secs(sample.duration));
    if let Some(http) = &sample.http {
        g[HTTP_STATUS] = Some(f64::from(http.status));
        g[HTTP_REDIRECTS] = Some(f64::from(http.redirects));
        g[HTTP_SSL] = Some(f64::from(u8::from(http.ssl)));
        g[HTTP_VERSION] = Some(http.version.map_or(0.0, |(major, minor)| {
            f64::from(major) + f64::from(minor) / 10.0
        }));
        g[HTTP_CONTENT_LENGTH] = Some(http.content_length as f64);
        g[FAILED_DUE_TO_REGEX] = Some(f64::from(u8::from(http.failed_due_to_regex)));
        g[CONNECTION_REUSED] = http.connection_reused.map(|r| f64::from(u8::from(r)));
        // As blackbox_exporter: every phase, 0 for one that did not happen.
        let p = &http.phases;
        let phases = [p.dns, p.connect, p.tls, p.first_byte, p.transfer];
        for (i, phase) in phases.into_iter().enumerate() {
            g[PHASE + i] = Some(phase.map_or(0.0, secs));
        }
    }
    g[DNS_LOOKUP] = sample.conn.dns_lookup.map(secs);
    g[IP_PROTOCOL] = sample.conn.ip_protocol.map(f64::from);
    g[CERT_EXPIRY] = sample.cert.as_ref().map(|c| c.not_after.timestamp() as f64);
    g[CHAIN_EXPIRY] = sample
        .conn
        .verified_chain_expiry
        .map(|at| at.timestamp() as f64);
    g
}

/// Every check's slot, in check order.
pub(super) struct CheckTable {
    pub(super) slots: Vec<CheckSlot>,
}

impl CheckTable {
    pub(super) fn new(names: &[Arc<str>]) -> CheckTable {
        CheckTable {
            slots: names.iter().cloned().map(CheckSlot::new).collect(),
        }
    }

    /// Every piece ([`CheckTable::render_piece`]) in order, each written
    /// when asked for; none empty (an empty chunk would end a response).
    pub(super) fn pieces(self: Arc<Self>) -> impl Iterator<Item = String> + Send + 'static {
        let starts = (0..self.slots.len().max(1)).step_by(SLOTS_PER_PIECE);
        (0..FAMILY_COUNT)
            .flat_map(move |family| starts.clone().map(move |start| (family, start)))
            .map(move |(family, start)| {
                let mut out = String::new();
                self.render_piece(family, start, &mut out);
                out
            })
            .filter(|piece| !piece.is_empty())
    }

    /// Appends family number `family`'s lines (its header first when
    /// `start` is 0) for the [`SLOTS_PER_PIECE`] slots from `start`: one
    /// piece of a streamed exposition, which holds no more than a piece in
    /// memory (10,000 checks' whole text is 8.6 MB). The probe series
    /// start with a check's first sample; its status, skip count and info
    /// are there from the start.
    fn render_piece(&self, family: usize, start: usize, out: &mut String) {
        let end = (start + SLOTS_PER_PIECE).min(self.slots.len());
        let all = self.slots.get(start..end).unwrap_or_default();
        let seen = || all.iter().filter(|s| s.seen.load(Ordering::Acquire));
        let header = start == 0;
        match family {
            0 => per_check(
                out,
                header,
                ("probe_success", "gauge"),
                "Whether the last probe of the check succeeded (1) or failed (0).",
                seen(),
                |s| Some(f64::from(u8::from(s.success.load(Ordering::Relaxed)))),
            ),
            1 => per_check(
                out,
                header,
                ("probe_duration_seconds", "gauge"),
                "How long the last probe of the check took.",
                seen(),
                |s| s.gauge(DURATION),
            ),
            2 => render_phases(out, header, seen()),
            f if f < FIRST_AFTER_GAUGES => {
                let (index, name, help) = FAMILIES[f - 3];
                per_check(out, header, (name, "gauge"), help, seen(), |s| {
                    s.gauge(index)
                });
            }
            f if f == FIRST_AFTER_GAUGES => render_tls_versions(out, header, seen()),
            f if f == FIRST_AFTER_GAUGES + 1 => per_check(
                out,
                header,
                ("keeper_check_status", "gauge"),
                "Color of the check after hysteresis: 0 green, 1 yellow, 2 red.",
                all.iter(),
                |s| Some(f64::from(s.status.load(Ordering::Relaxed))),
            ),
            f if f == FIRST_AFTER_GAUGES + 2 => per_check(
                out,
                header,
                ("keeper_probe_runs_skipped_total", "counter"),
                "Runs skipped because the previous run of the check was still going.",
                all.iter(),
                |s| Some(s.skipped.load(Ordering::Relaxed) as f64),
            ),
            f if f == FIRST_AFTER_GAUGES + 3 => render_info(out, header, all.iter()),
            _ => render_values(out, header, seen()),
        }
    }
}

/// Slots in one piece of a streamed exposition: under 100 kB of text for
/// the longest family (`probe_http_duration_seconds`, five lines a check).
const SLOTS_PER_PIECE: usize = 256;

/// The per-check families, in the order they are written: success,
/// duration, phases, [`FAMILIES`], TLS version, status, skipped runs,
/// info, values.
const FAMILY_COUNT: usize = FIRST_AFTER_GAUGES + 5;
const FIRST_AFTER_GAUGES: usize = 3 + FAMILIES.len();

/// A family with one sample per slot of `slots`, `value` giving it (none:
/// no line); its `# HELP` and `# TYPE` first with `header`.
fn per_check<'a>(
    out: &mut String,
    header: bool,
    (name, kind): (&str, &str),
    help: &str,
    slots: impl Iterator<Item = &'a CheckSlot>,
    value: impl Fn(&CheckSlot) -> Option<f64>,
) {
    if header {
        family(out, name, kind, help);
    }
    for s in slots {
        if let Some(v) = value(s) {
            sample(out, name, &s.name, None, v);
        }
    }
}

/// `probe_http_duration_seconds`: the five phases of each check whose last
/// probe was an HTTP one.
fn render_phases<'a>(out: &mut String, header: bool, seen: impl Iterator<Item = &'a CheckSlot>) {
    let name = "probe_http_duration_seconds";
    let help = "Duration of each phase of the last HTTP probe, summed over redirects.";
    if header {
        family(out, name, "gauge", help);
    }
    for s in seen {
        for (i, phase) in PHASES.iter().enumerate() {
            if let Some(v) = s.gauge(PHASE + i) {
                sample(out, name, &s.name, Some(("phase", phase)), v);
            }
        }
    }
}

/// `probe_tls_version_info{version}`: 1 for the version the last handshake agreed on.
fn render_tls_versions<'a>(
    out: &mut String,
    header: bool,
    seen: impl Iterator<Item = &'a CheckSlot>,
) {
    let name = "probe_tls_version_info";
    let help = "The TLS version the last probe's handshake negotiated; always 1.";
    if header {
        family(out, name, "gauge", help);
    }
    for s in seen {
        let index = s.tls_version.load(Ordering::Relaxed);
        if index > 0 {
            let version = TLS_VERSIONS[usize::from(index) - 1];
            sample(out, name, &s.name, Some(("version", version)), 1.0);
        }
    }
}

/// `keeper_check_info{check, kind, …labels}` = 1 for every described check.
fn render_info<'a>(out: &mut String, header: bool, all: impl Iterator<Item = &'a CheckSlot>) {
    let name = "keeper_check_info";
    let help = "A check's kind and config labels (names sanitized); always 1. Join on check.";
    if header {
        family(out, name, "gauge", help);
    }
    for s in all {
        if let Some(labels) = s.info.get() {
            out.push_str(name);
            out.push_str("{check=\"");
            escape_label(out, &s.name);
            out.push('"');
            out.push_str(labels);
            out.push_str("} 1\n");
        }
    }
}

/// `keeper_check_value{check, metric}`: each value the last sample measured
/// (as stored with it), none for a value it no longer measures.
fn render_values<'a>(out: &mut String, header: bool, seen: impl Iterator<Item = &'a CheckSlot>) {
    let name = "keeper_check_value";
    let help = "Each value the last sample of the check measured (cert_days_left, memory_pct, perfdata, ...).";
    if header {
        family(out, name, "gauge", help);
    }
    for s in seen {
        let m = s.measured.lock().unwrap_or_else(PoisonError::into_inner);
        for (metric, value) in measured(&m.metrics, &m.values) {
            out.push_str(name);
            out.push_str("{check=\"");
            escape_label(out, &s.name);
            out.push_str("\",metric=\"");
            escape_label(out, metric);
            out.push_str("\"} ");
            push_value(out, value);
            out.push('\n');
        }
    }
}
