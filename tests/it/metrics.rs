//! `/metrics` is valid Prometheus text (checked by the real `promtool`) and
//! carries the names DESIGN.md §7 promises, each check series labelled
//! `check`: blackbox_exporter's `probe_*` families for http, dns and tls
//! checks with its phase names, `keeper_check_info` with the config labels,
//! `keeper_check_value` with the last sample's measurements. A run that did
//! not measure a value removes its series.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::AbortOnDropHandle;

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Check, TestConfig, table};
use crate::support::db::Backend;
use crate::support::dns::{DnsServer, Mode};
use crate::support::receiver::Receiver;
use crate::support::target::{Target, TestCa};
use crate::support::wait_until;

const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// The value of the series written exactly `series` (name and every label).
fn value(metrics: &str, series: &str) -> Option<f64> {
    crate::e2e::metric_value(metrics, &format!("{series} "))
}

/// Like [`value`], failing the test with the exposition when it is missing.
fn must(metrics: &str, series: &str) -> f64 {
    value(metrics, series).unwrap_or_else(|| panic!("missing {series} in\n{metrics}"))
}

fn promtool_check(metrics: &str) {
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
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics is not clean:\n{}{}\n--- exposition ---\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until every check has run and a sample is written.
async fn every_check_ran(app: &TestApp) {
    wait_until(
        "every check has run and a sample is written",
        Duration::from_secs(20),
        || async {
            let checks = app.get_json("/api/v1/checks").await;
            let all_ran = checks
                .as_array()
                .is_some_and(|cs| cs.iter().all(|c| !c["last_run_at"].is_null()));
            let metrics = app.get_text("/metrics").await;
            all_ran && value(&metrics, "keeper_samples_written_total").unwrap_or(0.0) > 0.0
        },
    )
    .await;
}

#[tokio::test]
async fn metrics_pass_promtool_and_carry_the_design_names() {
    crate::support::init();
    let web = Target::start().await;
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(60));
    let tls = Target::start_tls(&leaf).await;
    let dns = DnsServer::start(Mode::Zone).await;
    let hook = Receiver::start().await;
    let ca_file = ca.ca_file().display().to_string();
    // keeper's own checks (`keeper:*`) are waited for too: the watchdog runs
    // them every 200 ms instead of spreading them over its default 30 s.
    let config = TestConfig::new()
        .set("watchdog", "interval", "200ms")
        .check(
            Check::http("web", web.url("/"))
                .set(
                    "labels",
                    table(&[("team", "shop"), ("app.name", "front"), ("check", "x")]),
                )
                .interval("200ms"),
        )
        .check(
            Check::http("secure", tls.url_localhost("/"))
                .set("ca_file", ca_file.as_str())
                .interval("200ms"),
        )
        .check(Check::http("moved", web.url("/redirect/2")).interval("200ms"))
        .check(
            Check::http("regex", web.url("/"))
                .set("body_regex", "^never$")
                .interval("200ms"),
        )
        .check(
            Check::new("lookup", "dns")
                .set("name", "www.test")
                .set("resolver", dns.addr.to_string())
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
    every_check_ran(&app).await;
    let metrics = app.get_text("/metrics").await;
    promtool_check(&metrics);

    for series in [
        "probe_success{check=\"web\"} 1",
        "probe_success{check=\"cert\"} 1",
        "probe_success{check=\"lookup\"} 1",
        "probe_success{check=\"regex\"} 0",
        "probe_duration_seconds{check=\"web\"}",
        "probe_http_status_code{check=\"web\"} 200",
        "probe_ssl_earliest_cert_expiry{check=\"secure\"}",
        "keeper_check_status{check=\"web\"} 0",
        "keeper_incidents_open{severity=\"critical\"} ",
        "keeper_notifications_total{channel=\"hook\",outcome=\"sent\"} ",
        "keeper_samples_written_total",
        "keeper_samples_dropped_total 0",
        "keeper_scheduler_lag_seconds_bucket{le=",
        "keeper_build_info{",
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    http_series(&metrics);
    tls_and_dns_series(&metrics, leaf_expiry(&metrics));
    info_value_and_build(&metrics);
    app.stop().await;
}

/// Every HTTP check has blackbox's five phases and its `probe_http_*` gauges.
fn http_series(metrics: &str) {
    for check in ["web", "secure", "moved", "regex"] {
        for phase in PHASES {
            let v = must(
                metrics,
                &format!("probe_http_duration_seconds{{check=\"{check}\",phase=\"{phase}\"}}"),
            );
            assert!((0.0..10.0).contains(&v), "{check} {phase} = {v}");
        }
        let s = |name: &str| must(metrics, &format!("{name}{{check=\"{check}\"}}"));
        assert_eq!(s("probe_http_version"), 1.1, "{check}");
        assert_eq!(
            s("probe_http_content_length"),
            2.0,
            "{check}: the body `ok`"
        );
        assert_eq!(s("probe_ip_protocol"), 4.0, "{check}");
        assert!(s("probe_dns_lookup_time_seconds") >= 0.0, "{check}");
        assert_eq!(s("probe_http_status_code"), 200.0, "{check}");
    }
    let phase = |check: &str, phase: &str| {
        must(
            metrics,
            &format!("probe_http_duration_seconds{{check=\"{check}\",phase=\"{phase}\"}}"),
        )
    };
    // Plain HTTP to an IP literal: no lookup, no handshake (0, as blackbox).
    assert_eq!(phase("web", "tls"), 0.0);
    assert_eq!(phase("web", "resolve"), 0.0);
    assert!(phase("web", "connect") > 0.0);
    assert!(phase("web", "processing") > 0.0);
    assert!(phase("secure", "tls") > 0.0, "a TLS handshake took time");
    assert!(phase("secure", "resolve") > 0.0, "localhost was looked up");
    let gauge = |name: &str, check: &str| must(metrics, &format!("{name}{{check=\"{check}\"}}"));
    assert_eq!(gauge("probe_http_redirects", "moved"), 2.0);
    assert_eq!(gauge("probe_http_redirects", "web"), 0.0);
    assert_eq!(gauge("probe_http_ssl", "secure"), 1.0);
    assert_eq!(gauge("probe_http_ssl", "web"), 0.0);
    assert_eq!(gauge("probe_failed_due_to_regex", "regex"), 1.0);
    assert_eq!(gauge("probe_failed_due_to_regex", "web"), 0.0);
    // Only over TLS: the version and the verified chain.
    assert_eq!(
        value(
            metrics,
            "probe_tls_version_info{check=\"secure\",version=\"TLS 1.3\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(!metrics.contains("probe_tls_version_info{check=\"web\""));
    assert!(!metrics.contains("probe_ssl_earliest_cert_expiry{check=\"web\"}"));
    assert!(!metrics.contains("probe_ssl_last_chain_expiry_timestamp_seconds{check=\"web\"}"));
}

/// The leaf's notAfter as the `tls` check reports it, checked to be ~60 days out.
fn leaf_expiry(metrics: &str) -> f64 {
    let expiry = must(metrics, "probe_ssl_earliest_cert_expiry{check=\"cert\"}");
    let in_60_days = (chrono::Utc::now() + chrono::Duration::days(60)).timestamp() as f64;
    assert!(
        (expiry - in_60_days).abs() < 86_400.0,
        "{expiry} vs {in_60_days}"
    );
    expiry
}

/// The `tls` check's and the `dns` check's families; none of the HTTP ones.
fn tls_and_dns_series(metrics: &str, expiry: f64) {
    for check in ["cert", "secure"] {
        assert_eq!(
            must(
                metrics,
                &format!("probe_ssl_last_chain_expiry_timestamp_seconds{{check=\"{check}\"}}")
            ),
            expiry,
            "{check}: the chain presented is the leaf, the earliest to expire"
        );
    }
    assert_eq!(
        value(
            metrics,
            "probe_tls_version_info{check=\"cert\",version=\"TLS 1.3\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(must(metrics, "probe_ip_protocol{check=\"cert\"}"), 4.0);
    // A host:port with an IP: nothing to look up, measured as such.
    assert_eq!(
        must(metrics, "probe_dns_lookup_time_seconds{check=\"cert\"}"),
        0.0
    );
    let lookup = must(metrics, "probe_dns_lookup_time_seconds{check=\"lookup\"}");
    assert!(lookup > 0.0 && lookup < 10.0, "{lookup}");
    assert_eq!(must(metrics, "probe_ip_protocol{check=\"lookup\"}"), 4.0);
    for check in ["cert", "lookup"] {
        for name in [
            "probe_http_status_code",
            "probe_http_redirects",
            "probe_http_ssl",
        ] {
            let series = format!("{name}{{check=\"{check}\"}}");
            assert!(!metrics.contains(&series), "{series} for a non-HTTP check");
        }
        let series = format!("probe_http_duration_seconds{{check=\"{check}\"");
        assert!(!metrics.contains(&series), "{series} for a non-HTTP check");
    }
    for series in [
        "probe_ssl_earliest_cert_expiry{check=\"lookup\"}",
        "probe_tls_version_info{check=\"lookup\"",
    ] {
        assert!(!metrics.contains(series), "{series} for a dns check");
    }
}

fn info_value_and_build(metrics: &str) {
    // Labels sorted by their raw names: `app.name` < `check` < `team`.
    assert_eq!(
        value(
            metrics,
            "keeper_check_info{check=\"web\",kind=\"http\",app_name=\"front\",exported_check=\"x\",team=\"shop\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    for (check, kind) in [("lookup", "dns"), ("cert", "tls"), ("secure", "http")] {
        let series = format!("keeper_check_info{{check=\"{check}\",kind=\"{kind}\"}}");
        assert_eq!(value(metrics, &series), Some(1.0), "{series}");
    }
    let days = must(
        metrics,
        "keeper_check_value{check=\"cert\",metric=\"cert_days_left\"}",
    );
    assert!((days - 60.0).abs() < 1.0, "{days}");
    assert!(
        !metrics.contains("keeper_check_value{check=\"web\""),
        "plain HTTP measures only its latency, which is not a keeper_check_value"
    );
    let build = metrics
        .lines()
        .find(|l| l.starts_with("keeper_build_info{"))
        .expect("keeper_build_info");
    let revision = build
        .split("revision=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a revision label");
    assert!(
        revision == "unknown"
            || (revision.len() >= 7 && revision.chars().all(|c| c.is_ascii_hexdigit())),
        "{build}"
    );
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{build}"
    );
}

/// A loopback front for `upstream` that forwards while `on`, and otherwise
/// answers every connection with bytes that are not TLS, so the handshake fails.
struct Switch {
    addr: SocketAddr,
    on: Arc<AtomicBool>,
    _accept: AbortOnDropHandle<()>,
}

impl Switch {
    async fn start(upstream: SocketAddr) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind switch");
        let addr = listener.local_addr().expect("switch address");
        let on = Arc::new(AtomicBool::new(true));
        let forwarding = on.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let forward = forwarding.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if !forward {
                        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
                        return;
                    }
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Switch {
            addr,
            on,
            _accept: AbortOnDropHandle::new(accept),
        }
    }

    fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }
}

/// A failed TLS handshake leaves no certificate series of the run before,
/// and `cert_days_left` leaves `keeper_check_value` until a handshake works again.
#[tokio::test]
async fn a_failed_handshake_removes_the_expiry_and_the_values_it_measured() {
    crate::support::init();
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(30));
    let tls = Target::start_tls(&leaf).await;
    let switch = Switch::start(tls.addr()).await;
    let ca_file = ca.ca_file().display().to_string();
    let config = TestConfig::new()
        .check(
            Check::new("cert", "tls")
                .set("host", switch.addr.to_string())
                .set("server_name", "localhost")
                .set("ca_file", ca_file.as_str())
                .interval("200ms"),
        )
        .check(
            Check::http(
                "secure",
                format!("https://localhost:{}/", switch.addr.port()),
            )
            .set("ca_file", ca_file.as_str())
            .interval("200ms"),
        );
    let app = spawn_app(Backend::Sqlite, config).await;
    let measured = |check: &str| {
        [
            format!("probe_ssl_earliest_cert_expiry{{check=\"{check}\"}}"),
            format!("probe_ssl_last_chain_expiry_timestamp_seconds{{check=\"{check}\"}}"),
            format!("probe_tls_version_info{{check=\"{check}\",version=\"TLS 1.3\"}}"),
            format!("keeper_check_value{{check=\"{check}\",metric=\"cert_days_left\"}}"),
        ]
    };
    let success =
        |metrics: &str, check: &str| value(metrics, &format!("probe_success{{check=\"{check}\"}}"));
    let all_there = |metrics: &str| {
        ["cert", "secure"].iter().all(|check| {
            success(metrics, check) == Some(1.0)
                && measured(check).iter().all(|s| value(metrics, s).is_some())
        })
    };
    wait_until(
        "both checks saw the certificate",
        Duration::from_secs(20),
        || async { all_there(&app.get_text("/metrics").await) },
    )
    .await;

    switch.set(false);
    wait_until(
        "both checks failed their handshake",
        Duration::from_secs(20),
        || async {
            let metrics = app.get_text("/metrics").await;
            ["cert", "secure"]
                .iter()
                .all(|check| success(&metrics, check) == Some(0.0))
        },
    )
    .await;
    let metrics = app.get_text("/metrics").await;
    promtool_check(&metrics);
    for check in ["cert", "secure"] {
        for series in measured(check) {
            let name = &series[..series.find('{').unwrap() + 1];
            let own = format!("{name}check=\"{check}\"");
            assert!(
                !metrics.contains(&own),
                "{own} outlived a failed handshake:\n{metrics}"
            );
        }
        // What the failed run did measure stays: it connected over IPv4.
        assert_eq!(
            value(&metrics, &format!("probe_ip_protocol{{check=\"{check}\"}}")),
            Some(4.0),
            "{metrics}"
        );
    }
    assert_eq!(
        value(&metrics, "probe_http_status_code{check=\"secure\"}"),
        Some(0.0),
        "no response"
    );

    switch.set(true);
    wait_until(
        "the certificate series came back",
        Duration::from_secs(20),
        || async { all_there(&app.get_text("/metrics").await) },
    )
    .await;
    app.stop().await;
}
