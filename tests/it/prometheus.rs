//! The `prometheus` probe against a real Prometheus (Debian's, started per
//! test by `support::prometheus`) scraping a loopback target of the test's
//! own; and against a loopback stand-in for what a real one cannot be made
//! to do (a token, Fly's URL prefix, a 503 page, garbage). Probes are built
//! the way keeper builds them: config text → check → probe → classify.

use std::path::Path;
use std::time::Duration;

use keeper::classify::classify;
use keeper::config::{CheckConfig, Config};
use keeper::core::{Color, Metric, Severity};
use keeper::core::{Outcome, Sample};
use keeper::probe::{Context, Probe};

use crate::support::{self, prometheus::PrometheusServer, target::Target};

const TIMEOUT: Duration = Duration::from_secs(5);

/// What the scraped target exposes.
const EXPOSITION: &str = "# HELP test_memory_pct Memory used.\n\
# TYPE test_memory_pct gauge\n\
test_memory_pct{instance=\"a\"} 91\n\
test_memory_pct{instance=\"b\"} 40\n";

/// Parses a config of one check `mem` of kind `prometheus` with `keys`.
fn parse(keys: &str) -> Result<Config, String> {
    let text = format!("[checks.mem]\nkind = \"prometheus\"\n{keys}\n");
    Config::parse(Path::new("keeper.toml"), &text, &|name| {
        (name == "PROM_TOKEN").then(|| "fm2_lJPE,fm2_abc".to_string())
    })
    .map_err(|e| e.to_string())
}

fn check(keys: &str) -> (CheckConfig, Probe) {
    support::init();
    let config = parse(keys).expect("prometheus check config");
    let check = CheckConfig::clone(&config.checks[0]);
    let probe = check
        .probe
        .build("test", &Context::system())
        .expect("build prometheus probe");
    (check, probe)
}

fn verdict(check: &CheckConfig, sample: &Sample) -> (Color, Option<Severity>, String) {
    let v = classify(sample, &check.thresholds, check.down_severity);
    (v.color, v.severity, v.reason)
}

/// Prometheus scraping a target that serves [`EXPOSITION`], both scraped series in.
async fn scraping() -> (PrometheusServer, Target) {
    support::init();
    let exporter = Target::start().await;
    exporter.set_body(EXPOSITION);
    let prometheus = PrometheusServer::start(&[exporter.host_port()]).await;
    prometheus.wait_for_series("test_memory_pct", 2).await;
    (prometheus, exporter)
}

#[tokio::test]
async fn series_are_judged_one_by_one_against_the_checks_thresholds() {
    let (prometheus, _exporter) = scraping().await;

    // A named metric: DESIGN's memory_pct bands (yellow 70, red 85).
    let (mem, probe) = check(&format!(
        "url = {:?}\nquery = \"test_memory_pct\"\nmetric = \"memory_pct\"",
        prometheus.url()
    ));
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(sample.outcome, Outcome::Up, "{sample:?}");
    assert_eq!(
        sample.message,
        "memory_pct: 91 {instance=\"a\", job=\"keeper-test\"}, 40 {instance=\"b\", job=\"keeper-test\"}"
    );
    assert_eq!(
        sample.metrics,
        vec![(Metric::MemoryPct, 91.0), (Metric::MemoryPct, 40.0)]
    );
    let (color, severity, reason) = verdict(&mem, &sample);
    assert_eq!((color, severity), (Color::Red, Some(Severity::High)));
    assert!(reason.ends_with("(memory_pct 91 past 85)"), "{reason}");

    // Bands of the check's own on `value` (the default metric).
    let banded = |query: &str| {
        check(&format!(
            "url = {:?}\nquery = {query:?}\nthresholds = {{ value = {{ yellow = 30, red = 50 }} }}",
            prometheus.url()
        ))
    };
    let (check_b, probe) = banded("test_memory_pct{instance=\"b\"}");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.message,
        "value: 40 {instance=\"b\", job=\"keeper-test\"}"
    );
    let (color, severity, _) = verdict(&check_b, &sample);
    assert_eq!((color, severity), (Color::Yellow, Some(Severity::Medium)));

    // Arithmetic keeps the labels and drops the name; scalars have neither.
    let (check_s, probe) = banded("scalar(test_memory_pct{instance=\"b\"}) - 20");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(sample.message, "value: 20");
    assert_eq!(verdict(&check_s, &sample).0, Color::Green);

    // `value` without bands of its own never colors anything.
    let (plain, probe) = check(&format!(
        "url = {:?}\nquery = \"test_memory_pct\"",
        prometheus.url()
    ));
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(verdict(&plain, &sample).0, Color::Green);
}

#[tokio::test]
async fn invalid_queries_empty_results_and_nan_are_reported_as_prometheus_says() {
    support::init();
    let prometheus = PrometheusServer::start(&[]).await;
    let probe_for = |query: &str| {
        check(&format!(
            "url = {:?}\nquery = {query:?}\nmetric = \"cpu_pct\"",
            prometheus.url()
        ))
    };

    let (bad, probe) = probe_for("sum(rate(fly_instance_cpu{mode!=\"idle\"}[1m]) by");
    let sample = probe.run(TIMEOUT).await;
    let Outcome::Down(reason) = &sample.outcome else {
        panic!("expected red, got {sample:?}");
    };
    assert!(
        reason.starts_with("query failed: bad_data: invalid parameter \"query\": "),
        "{reason}"
    );
    assert!(reason.contains("parse error"), "{reason}");
    assert_eq!(verdict(&bad, &sample).0, Color::Red);

    let (empty, probe) = probe_for("fly_instance_cpu > 80");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(sample.outcome, Outcome::Up);
    assert_eq!(sample.message, "no series");
    assert_eq!(verdict(&empty, &sample).0, Color::Green);

    let (_, probe) = probe_for("label_replace(vector(0) / 0, \"instance\", \"a\", \"\", \"\")");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(sample.message, "no series (1 NaN series skipped)");
    assert!(sample.metrics.is_empty());

    let (_, probe) = probe_for("test_memory_pct[5m]");
    let sample = probe.run(TIMEOUT).await;
    assert!(
        sample
            .message
            .starts_with("the query returns a range vector"),
        "{}",
        sample.message
    );
    assert!(!sample.is_up());
}

/// Series shaped as Fly's (external-apis.md §3), for docs/configuration.md's queries.
const FLY_EXPOSITION: &str = "\
fly_instance_memory_mem_total{app=\"my-app\",region=\"fra\",host=\"7a3c\",instance=\"148e127a0b4589\"} 1000
fly_instance_memory_mem_available{app=\"my-app\",region=\"fra\",host=\"7a3c\",instance=\"148e127a0b4589\"} 100
fly_instance_cpu{app=\"my-app\",region=\"fra\",host=\"7a3c\",instance=\"148e127a0b4589\",cpu_id=\"0\",mode=\"idle\"} 1000
fly_instance_cpu{app=\"my-app\",region=\"fra\",host=\"7a3c\",instance=\"148e127a0b4589\",cpu_id=\"0\",mode=\"user\"} 500
fly_instance_filesystem_blocks{app=\"my-app\",region=\"fra\",host=\"7a3c\",instance=\"148e127a0b4589\",mount=\"/\"} 800
fly_instance_filesystem_blocks_avail{app=\"my-app\",region=\"fra\",host=\"7a3c\",instance=\"148e127a0b4589\",mount=\"/\"} 600
fly_volume_used_pct{app=\"my-app\",region=\"fra\",host=\"7a3c\",id=\"vol_52e\"} 93.5
";

#[tokio::test]
async fn the_documented_fly_queries_give_one_percentage_per_machine_or_volume() {
    support::init();
    let exporter = Target::start().await;
    exporter.set_body(FLY_EXPOSITION);
    let prometheus = PrometheusServer::start(&[exporter.host_port()]).await;
    let readme = include_str!("../../docs/configuration.md");
    // The labels of the machine's series, as scraped (job added, instance honoured).
    let labels = |extra: &str| {
        format!(
            "{{app=\"my-app\", host=\"7a3c\", instance=\"148e127a0b4589\", job=\"keeper-test\", {extra}region=\"fra\"}}"
        )
    };
    let cases = [
        (
            "memory_pct",
            "100 * (1 - fly_instance_memory_mem_available{app=\"my-app\"} / fly_instance_memory_mem_total{app=\"my-app\"})",
            format!("memory_pct: 90 {}", labels("")),
            Color::Red,
        ),
        (
            "cpu_pct",
            "sum by (instance, region) (rate(fly_instance_cpu{app=\"my-app\", mode!=\"idle\"}[1m])) / count by (instance, region) (fly_instance_cpu{app=\"my-app\", mode=\"idle\"})",
            // a counter that stands still: no CPU used
            "cpu_pct: 0 {instance=\"148e127a0b4589\", region=\"fra\"}".to_string(),
            Color::Green,
        ),
        (
            "disk_pct",
            "fly_volume_used_pct{app=\"my-app\"}",
            // Fly's volume series have no instance; Prometheus adds the target's.
            format!(
                "disk_pct: 93.5 {{app=\"my-app\", host=\"7a3c\", id=\"vol_52e\", instance={:?}, job=\"keeper-test\", region=\"fra\"}}",
                exporter.host_port()
            ),
            Color::Red,
        ),
        (
            "disk_pct",
            "100 * (1 - fly_instance_filesystem_blocks_avail{app=\"my-app\", mount=\"/\"} / fly_instance_filesystem_blocks{app=\"my-app\", mount=\"/\"})",
            format!("disk_pct: 25 {}", labels("mount=\"/\", ")),
            Color::Green,
        ),
    ];
    for (metric, query, message, color) in cases {
        assert!(
            readme.contains(&format!("| `{metric}` | `{query}` |")),
            "docs/configuration.md lists {query}"
        );
        // rate() needs two scrapes in its window: wait until every query answers.
        prometheus.wait_for_series(query, 1).await;
        let (check, probe) = check(&format!(
            "url = {:?}\nquery = {query:?}\nmetric = {metric:?}",
            prometheus.url()
        ));
        let sample = probe.run(TIMEOUT).await;
        assert_eq!(sample.message, message, "{query}");
        assert_eq!(verdict(&check, &sample).0, color, "{query}");
    }

    // Missing data made red, as docs/configuration.md says.
    let (absent, probe) = check(&format!(
        "url = {:?}\nquery = \"absent(fly_instance_up{{app=\\\"my-app\\\"}})\"\n\
         thresholds = {{ value = [{{ above = 0, color = \"red\", severity = \"high\" }}] }}",
        prometheus.url()
    ));
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(sample.message, "value: 1 {app=\"my-app\"}");
    let (color, severity, _) = verdict(&absent, &sample);
    assert_eq!((color, severity), (Color::Red, Some(Severity::High)));
}

#[tokio::test]
async fn an_unreachable_prometheus_is_red_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (check, probe) = check(&format!(
        "url = \"http://127.0.0.1:{port}\"\nquery = \"up\"\ndown_severity = \"high\""
    ));

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(
        sample.outcome,
        Outcome::Down(format!(
            "Prometheus at 127.0.0.1:{port}: connection refused"
        ))
    );
    let (color, severity, _) = verdict(&check, &sample);
    assert_eq!((color, severity), (Color::Red, Some(Severity::High)));
}

#[tokio::test]
async fn flys_url_prefix_and_token_are_used_and_other_failures_are_red() {
    let api = Target::start().await;
    api.set_body(
        r#"{"status": "success", "data": {"resultType": "vector",
  "result": [{"metric": {"__name__": "fly_volume_used_pct", "app": "my-app", "region": "fra", "host": "7a3c", "id": "vol_52e"},
              "value": [1717171717.123, "93.5"]}]}}"#,
    );
    let (disk, probe) = check(&format!(
        "url = {:?}\nquery = \"fly_volume_used_pct\"\nmetric = \"disk_pct\"\ntoken = \"${{PROM_TOKEN}}\"",
        api.url("/prometheus/my-org")
    ));

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(
        sample.message,
        "disk_pct: 93.5 {app=\"my-app\", host=\"7a3c\", id=\"vol_52e\", region=\"fra\"}"
    );
    assert_eq!(verdict(&disk, &sample).0, Color::Red);
    let seen = &api.recorded()[0];
    assert_eq!(
        seen.path,
        "/prometheus/my-org/api/v1/query?query=fly_volume_used_pct"
    );
    assert_eq!(seen.header("authorization"), Some("FlyV1 fm2_lJPE,fm2_abc"));

    api.set_status(401);
    api.set_body("Unauthorized");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.message,
        "Prometheus: unauthorized: check the token (HTTP 401 Unauthorized: Unauthorized)"
    );

    api.set_status(503);
    api.set_body("<html>maintenance</html>");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.outcome,
        Outcome::Down("Prometheus: HTTP 503 Service Unavailable: <html>maintenance</html>".into())
    );

    api.set_status(200);
    api.set_body("not json");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.outcome,
        Outcome::Down("invalid JSON from Prometheus: expected ident at line 1 column 2".into())
    );

    api.set_body(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"many"]}]}}"#);
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.message,
        "invalid answer from Prometheus: sample value \"many\" is not a number"
    );
}

#[test]
fn prometheus_config_mistakes_are_refused_with_line_and_column() {
    let err = parse("url = \"http://127.0.0.1:9090\"\nquery = \"up\"\nmetric = \"memory_percent\"")
        .unwrap_err();
    assert!(err.starts_with("keeper.toml:5:10: checks.mem"), "{err}");
    assert!(err.contains("unknown metric \"memory_percent\""), "{err}");

    let err = parse("url = \"http://127.0.0.1:9090\"\nqeury = \"up\"").unwrap_err();
    assert!(err.starts_with("keeper.toml:4:1: checks.mem"), "{err}");
    assert!(err.contains("unknown field `qeury`"), "{err}");

    // Values that parse but cannot be probed are refused at load too, at their key.
    let err = parse("url = \"127.0.0.1:9090\"\nquery = \"up\"").unwrap_err();
    assert!(
        err.starts_with("keeper.toml:3:7: checks.mem.url: url \"127.0.0.1:9090\": "),
        "{err}"
    );
    let err = parse("url = \"http://127.0.0.1:9090\"\nquery = \" \"").unwrap_err();
    assert_eq!(err, "keeper.toml:4:9: checks.mem.query: query: empty");
}
