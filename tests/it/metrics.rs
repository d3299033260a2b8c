//! `/metrics` is valid Prometheus text (checked by the real `promtool`) and
//! carries the names DESIGN.md §7 promises, each check series labelled `check`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::app::spawn_app;
use crate::support::config::{Check, TestConfig};
use crate::support::db::Backend;
use crate::support::receiver::Receiver;
use crate::support::target::{Target, TestCa};
use crate::support::wait_until;

#[tokio::test]
async fn metrics_pass_promtool_and_carry_the_design_names() {
    crate::support::init();
    let web = Target::start().await;
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(60));
    let tls = Target::start_tls(&leaf).await;
    let hook = Receiver::start().await;
    let ca_file = ca.ca_file().display().to_string();
    // keeper's own checks (`keeper:*`) are waited for too: the watchdog runs
    // them every 200 ms instead of spreading them over its default 30 s.
    let config = TestConfig::new()
        .set("watchdog", "interval", "200ms")
        .check(Check::http("web", web.url("/")).interval("200ms"))
        .check(
            Check::http("secure", tls.url_localhost("/"))
                .set("ca_file", ca_file.as_str())
                .interval("200ms"),
        )
        .check(
            Check::new("cert", "tls")
                .set("host", tls.host_port())
                .set("server_name", "localhost")
                .set("ca_file", ca_file.as_str())
                .interval("200ms"),
        )
        .page(&hook);
    let app = spawn_app(Backend::Sqlite, config).await;
    wait_until(
        "every check has run and a sample is written",
        Duration::from_secs(20),
        || async {
            let checks = app.get_json("/api/v1/checks").await;
            let all_ran = checks
                .as_array()
                .is_some_and(|cs| cs.iter().all(|c| !c["last_run_at"].is_null()));
            let metrics = app.get_text("/metrics").await;
            all_ran
                && crate::e2e::metric_value(&metrics, "keeper_samples_written_total").unwrap_or(0.0)
                    > 0.0
        },
    )
    .await;
    let metrics = app.get_text("/metrics").await;

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    for series in [
        "probe_success{check=\"web\"} 1",
        "probe_success{check=\"cert\"} 1",
        "probe_duration_seconds{check=\"web\"}",
        "probe_http_status_code{check=\"web\"} 200",
        "probe_http_duration_seconds{check=\"web\",phase=\"connect\"}",
        "probe_http_duration_seconds{check=\"secure\",phase=\"tls\"}",
        "probe_ssl_earliest_cert_expiry{check=\"secure\"}",
        "probe_ssl_earliest_cert_expiry{check=\"cert\"}",
        "keeper_check_status{check=\"web\"} 0",
        "keeper_incidents_open{severity=\"critical\"} 0",
        "keeper_notifications_total{channel=\"hook\",outcome=\"sent\"} 0",
        "keeper_samples_written_total",
        "keeper_samples_dropped_total 0",
        "keeper_scheduler_lag_seconds_bucket{le=",
        "keeper_build_info{version=",
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    app.stop().await;
}
