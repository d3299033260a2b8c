//! The scheduler's output: each sample is classified once and fanned out to
//! the metrics, the sample writer and the engine.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Observation;
use crate::classify::classify;
use crate::config::CheckConfig;
use crate::core::Sample;
use crate::metrics::Metrics;
use crate::store::SampleRow;
use crate::store::writer::SampleBuffer;

/// The scheduler's output: fans each sample out to the metrics, the sample
/// writer and the engine. Cheap to clone.
#[derive(Clone)]
pub struct Sink {
    pub(super) checks: Arc<[Arc<CheckConfig>]>,
    pub(super) metrics: Metrics,
    pub(super) buffer: SampleBuffer,
    pub(super) engine: mpsc::Sender<Observation>,
    /// This instance's region: the samples of checks with regions say it.
    pub(super) region: Option<crate::core::CheckName>,
}

impl Sink {
    /// Takes one sample of check `check`. This is where a probe's text enters
    /// keeper: it is cleaned here ([`Sample::clean`]), once, for the store,
    /// the metrics, the engine and every notification made from it.
    pub async fn deliver(&self, check: usize, mut sample: Sample) {
        let config = &self.checks[check];
        if sample.clean() {
            tracing::debug!(check = %config.name, "probe text cleaned: control characters or too long");
        }
        let verdict = classify(&sample, &config.thresholds, config.down_severity);
        self.metrics.observe_sample(check, &sample);
        self.buffer.push(SampleRow {
            check: config.name.clone(),
            at: sample.at,
            duration_ms: sample.duration.as_secs_f64() * 1000.0,
            up: sample.is_up(),
            color: verdict.color,
            status_code: sample.http.as_ref().map(|h| h.status),
            latency_ms: sample.latency_ms(),
            message: sample.message.clone(),
            metrics: crate::core::metrics_json(&sample),
            region: (config.regions.as_ref()).and_then(|_| self.region.clone()),
        });
        // The engine only does memory work and rare transactions: waiting here is brief.
        let observation = Observation {
            check,
            sample,
            verdict,
        };
        if self.engine.send(observation).await.is_err() {
            // Only while shutting down: the sample itself is already buffered for the store.
            tracing::debug!(check = %config.name, "engine stopped; sample not classified");
        }
    }
}
