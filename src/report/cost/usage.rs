//! How much of its size an app used over the month, from the checks that
//! measure it: a `prometheus` check with `metric = "memory_pct"` or
//! `"cpu_pct"` (two instant queries at the window's end:
//! `avg_over_time((QUERY)[Ns:1m])` and `max_over_time(…)`, a subquery, so
//! any expression works; each series is one machine: the average is the
//! mean of theirs, the peak the highest), or a `host` check (its stored
//! samples' `memory_pct` and `cpu_pct`, read from keeper's database).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::probe::api;
use crate::probe::prometheus::Spec;
use crate::store::Store;

/// How long one query may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The subquery's resolution.
const STEP_S: i64 = 60;
/// Samples read from the store at a time.
const PAGE: u32 = 10_000;

/// Use of one resource over the window, in percent of what the size has.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Use {
    pub average_pct: f64,
    pub peak_pct: f64,
}

/// Averages and peaks gathered from several series or samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    sum: f64,
    count: u64,
    peak: f64,
}

impl Tally {
    pub fn add(&mut self, average: f64, peak: f64) {
        if !average.is_finite() || !peak.is_finite() {
            return;
        }
        if self.count == 0 || peak > self.peak {
            self.peak = peak;
        }
        self.sum += average;
        self.count += 1;
    }

    pub fn merge(&mut self, other: Tally) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 || other.peak > self.peak {
            self.peak = other.peak;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    pub fn result(&self) -> Option<Use> {
        (self.count > 0).then(|| Use {
            average_pct: self.sum / self.count as f64,
            peak_pct: self.peak,
        })
    }
}

/// The check's query over `from..to`: each returned series' average and peak.
pub async fn prometheus(
    client: &reqwest::Client,
    spec: &Spec,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Tally, String> {
    let base = api::parse_url("url", &spec.url).map_err(|p| p.message)?;
    let url = if base.path().trim_end_matches('/').ends_with("/api/v1/query") {
        base
    } else {
        api::join(&base, &["api", "v1", "query"])
    };
    let auth = spec
        .token
        .as_ref()
        .map(|t| t.authorization())
        .transpose()
        .map_err(|p| p.message)?;
    let range_s = (to - from).num_seconds().max(STEP_S);
    let window = format!("({})[{range_s}s:{STEP_S}s]", spec.query);
    let mut answers = Vec::new();
    for function in ["avg_over_time", "max_over_time"] {
        let mut url = url.clone();
        url.query_pairs_mut()
            .append_pair("query", &format!("{function}({window})"))
            .append_pair("time", &to.timestamp().to_string());
        let shown = format!("Prometheus at {}", api::host_port(&url));
        let reply = tokio::time::timeout(TIMEOUT, api::get(client, &url, auth.as_ref()))
            .await
            .map_err(|_| format!("{shown}: no answer within {}s", TIMEOUT.as_secs()))?
            .map_err(|reason| format!("{shown}: {reason}"))?;
        answers.push(values(reply.status, &reply.body, spec).map_err(|e| format!("{shown}: {e}"))?);
    }
    let mut tally = Tally::default();
    let (averages, peaks) = (&answers[0], &answers[1]);
    for (labels, average) in averages {
        let peak = peaks
            .iter()
            .find(|(l, _)| l == labels)
            .map_or(*average, |(_, p)| *p);
        tally.add(*average, peak);
    }
    Ok(tally)
}

#[derive(Deserialize)]
struct Envelope {
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: serde_json::Map<String, serde_json::Value>,
    /// `[unix seconds, "value"]`.
    value: Option<(serde_json::Value, String)>,
}

/// Each series of an instant vector answer: its labels (as JSON text, to
/// match the two answers) and its value.
fn values(
    status: http::StatusCode,
    body: &[u8],
    spec: &Spec,
) -> Result<Vec<(String, f64)>, String> {
    // Prometheus refuses a query with 400/422/503 and its JSON `error`,
    // which the reason quotes.
    if !status.is_success() {
        return Err(api::status_reason(status, body, spec.token.as_ref()));
    }
    let envelope: Result<Envelope, _> = serde_json::from_slice(body);
    let data = envelope
        .map_err(|e| format!("invalid JSON: {e}"))?
        .data
        .ok_or("no data in the answer")?;
    Ok(data
        .result
        .into_iter()
        .filter_map(|s| {
            let value = s.value?.1.parse::<f64>().ok()?;
            Some((serde_json::Value::Object(s.metric).to_string(), value))
        })
        .collect())
}

/// A `host` check's stored `memory_pct` and `cpu_pct` over `from..to`.
pub async fn host(
    store: &Store,
    check: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(Tally, Tally), String> {
    let (mut memory, mut cpu) = (Tally::default(), Tally::default());
    let mut since = from;
    loop {
        let rows = store
            .samples(check, since, PAGE)
            .await
            .map_err(|e| format!("reading the samples of {check:?}: {e}"))?;
        let full = rows.len() == PAGE as usize;
        for row in rows.iter().filter(|r| r.at < to) {
            let Some(metrics) = row.metrics.as_deref() else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(metrics) else {
                continue;
            };
            if let Some(v) = json.get("memory_pct").and_then(|v| v.as_f64()) {
                memory.add(v, v);
            }
            if let Some(v) = json.get("cpu_pct").and_then(|v| v.as_f64()) {
                cpu.add(v, v);
            }
        }
        match rows.last() {
            Some(last) if full && last.at < to => {
                since = last.at + chrono::Duration::microseconds(1)
            }
            _ => return Ok((memory, cpu)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_average_the_averages_and_keep_the_highest_peak() {
        let mut t = Tally::default();
        assert_eq!(t.result(), None);
        t.add(20.0, 40.0);
        t.add(10.0, 25.0);
        t.add(f64::NAN, 99.0);
        let mut other = Tally::default();
        other.add(30.0, 90.0);
        t.merge(other);
        t.merge(Tally::default());
        assert_eq!(
            t.result(),
            Some(Use {
                average_pct: 20.0,
                peak_pct: 90.0
            })
        );
    }
}
