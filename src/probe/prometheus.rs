//! The `prometheus` probe: one instant PromQL query (`GET {url}/api/v1/query`)
//! against any Prometheus-compatible API (Prometheus, VictoriaMetrics, Fly's
//! managed metrics). Every returned series becomes one value of the check's
//! `metric` (so the check's thresholds apply to each and the worst decides),
//! and the message names the series by their labels, worst first.
//!
//! An empty result is green ("no series"), as in Prometheus's own alerting:
//! a query that selects only the bad series (`… > 85`) returns nothing when
//! all is well. To page on missing data, query `absent(…)` with bands on `value`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use http::StatusCode;
use http::header::HeaderValue;
use serde::{Deserialize, Deserializer};
use tokio::time::Instant;
use url::Url;

use super::api::{self, Token};
use super::{BuildError, Context, Kind};
use crate::core::Sample;
use crate::core::SpecProblem;
use crate::core::{Direction, Metric};

/// The most series a message names; the rest are counted.
const MAX_LISTED: usize = 5;

/// `[checks.NAME]` keys of kind `prometheus`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The API's base: `http://127.0.0.1:9090`, `https://api.fly.io/prometheus/<org>`.
    pub url: String,
    pub query: String,
    pub token: Option<Token>,
    /// Which threshold row applies to each series: `memory_pct`, `cpu_pct`, …
    /// or `value` (no default levels: the check's `thresholds.value` give them).
    #[serde(default = "default_metric", deserialize_with = "metric")]
    pub metric: Metric,
}

fn default_metric() -> Metric {
    Metric::Value
}

/// A metric name, refused while reading (with its line and column) when unknown.
fn metric<'de, D: Deserializer<'de>>(de: D) -> Result<Metric, D::Error> {
    let name = String::deserialize(de)?;
    name.parse().map_err(serde::de::Error::custom)
}

impl Kind for Spec {
    const NAME: &'static str = "prometheus";
    type Probe = Probe;

    fn target(&self) -> String {
        format!("{} {}", crate::core::redact::url(&self.url), self.query)
    }

    fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        if self.query.trim().is_empty() {
            out.push(SpecProblem::new("query", "query: empty"));
        }
        out.extend(api::parse_url("url", &self.url).err());
        out.extend(self.token.as_ref().and_then(|t| t.authorization().err()));
        out
    }

    fn build(&self, _check: &str, ctx: &Context) -> Result<Probe, BuildError> {
        let base = api::parse_url("url", &self.url)?;
        let mut url = if base.path().trim_end_matches('/').ends_with("/api/v1/query") {
            base
        } else {
            api::join(&base, &["api", "v1", "query"])
        };
        url.query_pairs_mut().append_pair("query", &self.query);
        let authorization = self.token.as_ref().map(Token::authorization).transpose()?;
        Ok(Probe {
            url,
            metric: self.metric,
            authorization,
            token: self.token.clone(),
            client: api::client(&ctx.roots)?,
        })
    }
}

/// A built `prometheus` probe: the query URL, the header and the client.
#[derive(Debug)]
pub struct Probe {
    url: Url,
    metric: Metric,
    authorization: Option<HeaderValue>,
    token: Option<Token>,
    client: reqwest::Client,
}

impl Probe {
    pub async fn run(&self, _deadline: Instant) -> Sample {
        let reply = match api::get(&self.client, &self.url, self.authorization.as_ref()).await {
            Ok(reply) => reply,
            Err(reason) => {
                let at = api::host_port(&self.url);
                return Sample::down(format!("Prometheus at {at}: {reason}"));
            }
        };
        read_answer(reply.status, &reply.body, self.metric, self.token.as_ref())
    }
}

/// The sample for the API's answer to the query (status and body), each
/// series judged as `metric`. Public for the fuzz target `prometheus_answer`.
#[doc(hidden)]
pub fn read_answer(
    status: StatusCode,
    body: &[u8],
    metric: Metric,
    token: Option<&Token>,
) -> Sample {
    // A refused query comes back as 400/422/503 with Prometheus's own
    // JSON error: its words are the reason.
    let envelope = serde_json::from_slice::<Envelope>(body);
    if let Ok(Envelope {
        status: Some(said),
        error_type,
        error,
        ..
    }) = &envelope
        && said == "error"
    {
        let kind = error_type.as_deref().unwrap_or("error");
        let text = error.as_deref().unwrap_or("(no error text)");
        return Sample::down(format!("query failed: {kind}: {}", api::shorten(text)));
    }
    if !status.is_success() {
        let reason = api::status_reason(status, body, token);
        return Sample::down(format!("Prometheus: {reason}"));
    }
    let data = match envelope {
        Err(e) => return Sample::down(format!("invalid JSON from Prometheus: {e}")),
        Ok(Envelope {
            data: Some(data), ..
        }) => data,
        Ok(_) => return Sample::down("invalid answer from Prometheus: no data".to_string()),
    };
    match data.series() {
        Ok(series) => judge(series, metric),
        Err(reason) => Sample::down(reason),
    }
}

/// The API's answer (prometheus `docs/querying/api.md`), read leniently.
#[derive(Debug, Deserialize)]
struct Envelope {
    status: Option<String>,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: Option<String>,
    result: Option<serde_json::Value>,
}

/// One series of a vector: its labels and `[timestamp, "value"]`.
#[derive(Debug, Deserialize)]
struct VectorSample {
    metric: Option<BTreeMap<String, String>>,
    value: (serde_json::Value, String),
}

/// A series' labels (without `__name__`) and its value as text.
type Series = (BTreeMap<String, String>, String);

impl Data {
    /// The result as series, or why it cannot be judged.
    fn series(self) -> Result<Vec<Series>, String> {
        let result = self.result.unwrap_or(serde_json::Value::Null);
        let invalid = |e: serde_json::Error| format!("invalid answer from Prometheus: {e}");
        match self.result_type.as_deref().unwrap_or("") {
            "vector" => {
                let samples: Option<Vec<VectorSample>> =
                    serde_json::from_value(result).map_err(invalid)?;
                Ok(samples
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| {
                        let mut labels = s.metric.unwrap_or_default();
                        labels.remove("__name__");
                        (labels, s.value.1)
                    })
                    .collect())
            }
            "scalar" => {
                let (_, value): (serde_json::Value, String) =
                    serde_json::from_value(result).map_err(invalid)?;
                Ok(vec![(BTreeMap::new(), value)])
            }
            "matrix" => Err(
                "the query returns a range vector (matrix); keeper needs an \
                 instant vector or a scalar: drop the [range] selector or wrap it in a \
                 function such as max_over_time"
                    .into(),
            ),
            "string" => Err("the query returns a string, not a number".into()),
            other => Err(format!(
                "invalid answer from Prometheus: unknown resultType {other:?}"
            )),
        }
    }
}

/// Every series with a number becomes a value of `metric`; NaN ones are
/// counted and skipped. The message lists the worst first.
fn judge(series: Vec<Series>, metric: Metric) -> Sample {
    let mut numbers = Vec::new();
    let mut nan = 0;
    let mut unreadable = Vec::new();
    for (labels, text) in series {
        match parse_value(&text) {
            Some(v) if v.is_nan() => nan += 1,
            Some(v) => numbers.push((labels, v)),
            None => unreadable.push(text),
        }
    }
    if let Some(text) = unreadable.first() {
        return Sample::down(format!(
            "invalid answer from Prometheus: sample value {text:?} is not a number"
        ));
    }
    numbers.sort_by(|(_, a), (_, b)| worst_first(metric, *a, *b));
    let mut message = if numbers.is_empty() {
        "no series".to_string()
    } else {
        let listed: Vec<String> = numbers
            .iter()
            .take(MAX_LISTED)
            .map(|(labels, v)| {
                if labels.is_empty() {
                    number(*v)
                } else {
                    format!("{} {}", number(*v), label_set(labels))
                }
            })
            .collect();
        let mut text = format!("{metric}: {}", listed.join(", "));
        if numbers.len() > MAX_LISTED {
            text.push_str(&format!(", … and {} more", numbers.len() - MAX_LISTED));
        }
        text
    };
    if nan > 0 {
        message.push_str(&format!(" ({nan} NaN series skipped)"));
    }
    let mut sample = Sample::up(message);
    sample
        .values
        .push(("series".into(), (numbers.len() + nan) as f64));
    sample.metrics = numbers.into_iter().map(|(_, v)| (metric, v)).collect();
    sample
}

/// Orders values so the worst for `metric` comes first.
fn worst_first(metric: Metric, a: f64, b: f64) -> Ordering {
    match metric.direction() {
        Direction::Above => b.total_cmp(&a),
        Direction::Below => a.total_cmp(&b),
    }
}

/// A sample value as Prometheus writes it: `91.2`, `1e+06`, `+Inf`, `NaN`.
fn parse_value(text: &str) -> Option<f64> {
    text.trim().parse().ok()
}

/// `91`, `91.2`, `0.913`, `1.235e-5`, `+Inf`.
fn number(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let fixed = format!("{v:.3}");
    let fixed = fixed.trim_end_matches('0').trim_end_matches('.');
    if fixed == "0" || fixed == "-0" || v.abs() >= 1e15 {
        format!("{v:.3e}")
    } else {
        fixed.to_string()
    }
}

/// `{instance="a", region="fra"}`.
fn label_set(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(items: &[(&[(&str, &str)], &str)]) -> Vec<Series> {
        items
            .iter()
            .map(|(labels, v)| {
                let labels = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (labels, v.to_string())
            })
            .collect()
    }

    #[test]
    fn values_parse_as_prometheus_writes_them() {
        assert_eq!(parse_value("91.2"), Some(91.2));
        assert_eq!(parse_value("1e+06"), Some(1e6));
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert!(parse_value("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_value("ninety"), None);
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(number(91.0), "91");
        assert_eq!(number(91.2), "91.2");
        assert_eq!(number(0.91234), "0.912");
        assert_eq!(number(0.0000123), "1.230e-5");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }

    #[test]
    fn series_are_listed_worst_first_with_their_labels() {
        let s = judge(
            series(&[
                (&[("instance", "b"), ("__name__", "x")], "40.1"),
                (&[("instance", "a")], "91.2"),
                (&[("instance", "c")], "NaN"),
            ])
            .into_iter()
            .map(|(mut l, v)| {
                l.remove("__name__");
                (l, v)
            })
            .collect(),
            Metric::MemoryPct,
        );
        assert_eq!(
            s.message,
            "memory_pct: 91.2 {instance=\"a\"}, 40.1 {instance=\"b\"} (1 NaN series skipped)"
        );
        assert_eq!(
            s.metrics,
            vec![(Metric::MemoryPct, 91.2), (Metric::MemoryPct, 40.1)]
        );
        // lower is worse for days left: the smallest comes first
        let s = judge(
            series(&[(&[], "40"), (&[], "3"), (&[], "12")]),
            Metric::CertDaysLeft,
        );
        assert_eq!(s.message, "cert_days_left: 3, 12, 40");
    }

    #[test]
    fn long_lists_are_cut_and_empty_results_are_green() {
        let many: Vec<(&[(&str, &str)], &str)> = vec![(&[], "1"); 8];
        let s = judge(series(&many), Metric::Value);
        assert_eq!(s.message, "value: 1, 1, 1, 1, 1, … and 3 more");
        assert_eq!(s.metrics.len(), 8);
        let s = judge(Vec::new(), Metric::Value);
        assert_eq!(s.message, "no series");
        assert!(s.metrics.is_empty());
        let s = judge(series(&[(&[], "NaN"), (&[], "NaN")]), Metric::Value);
        assert_eq!(s.message, "no series (2 NaN series skipped)");
    }

    #[test]
    fn result_types() {
        let data = |json: &str| -> Data { serde_json::from_str(json).unwrap() };
        let scalar = data(r#"{"resultType":"scalar","result":[1717171717.1,"2"]}"#);
        assert_eq!(
            scalar.series().unwrap(),
            vec![(BTreeMap::new(), "2".into())]
        );
        let matrix = data(r#"{"resultType":"matrix","result":[]}"#);
        assert!(matrix.series().unwrap_err().contains("range vector"));
        let empty = data(r#"{"resultType":"vector","result":null}"#);
        assert!(empty.series().unwrap().is_empty());
    }
}
