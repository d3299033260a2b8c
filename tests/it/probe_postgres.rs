//! The `postgres` probe against the real PostgreSQL (a fresh database per
//! test) and against throwaway clusters of the tests' own (password
//! authentication, `pg_stat_statements` preloaded): what it measures when
//! the database is well, and the reason it gives when it is not.

use std::path::Path;
use std::time::Duration;

use keeper::classify::{Levels, Thresholds, classify};
use keeper::config::Config;
use keeper::core::{Color, Metric, Severity};
use keeper::core::{Outcome, Sample};
use keeper::probe::{Context, Probe, Spec, postgres};
use sqlx::Connection;

use crate::support::db::TestDb;
use crate::support::pgcluster::{self, Cluster};
use crate::support::target::Misbehaving;

const TIMEOUT: Duration = Duration::from_secs(10);

fn probe(toml: &str) -> Probe {
    let spec: postgres::Spec = toml::from_str(toml).expect("postgres spec");
    Spec::Postgres(spec)
        .build("test", &Context::system())
        .expect("build postgres probe")
}

fn reason(sample: &Sample) -> &str {
    match &sample.outcome {
        Outcome::Down(reason) => reason,
        Outcome::Up | Outcome::Warn(_) => panic!("expected a down sample, got {sample:?}"),
    }
}

fn value(sample: &Sample, name: &str) -> f64 {
    sample
        .values
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no value {name} in {sample:?}"))
}

#[tokio::test]
async fn healthy_database_is_up_with_query_time_connections_and_size() {
    let db = TestDb::postgres().await;
    let probe = probe(&format!("url = {:?}", db.url()));

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(sample.outcome, Outcome::Up, "{sample:?}");
    assert!(sample.metric(Metric::QueryMs).is_some(), "{sample:?}");
    let connections = value(&sample, "connections");
    let max = value(&sample, "max_connections");
    assert!(connections >= 1.0, "the probe's own connection counts");
    assert!(max >= connections, "{sample:?}");
    let pct = sample
        .metric(Metric::ConnectionsPct)
        .expect("connections_pct");
    assert!((pct - connections * 100.0 / max).abs() < 1e-9, "{pct}");
    // An empty database still has its catalog: several MB.
    assert!(value(&sample, "db_size_bytes") > 1_000_000.0, "{sample:?}");
    let message = &sample.message;
    assert!(message.starts_with("SELECT 1 in "), "{message}");
    assert!(
        message.contains(&format!(
            "; {}/{} connections (",
            connections as i64, max as i64
        )),
        "{message}"
    );
    assert!(
        message.contains(" MB") || message.contains(" kB"),
        "{message}"
    );
}

#[tokio::test]
async fn query_ms_past_its_thresholds_is_red() {
    let db = TestDb::postgres().await;
    let probe = probe(&format!("url = {:?}", db.url()));
    let sample = probe.run(TIMEOUT).await;
    assert!(sample.is_up(), "{sample:?}");
    let tight = Thresholds::builtin().layered(&Thresholds(
        [(
            Metric::QueryMs,
            Levels::short(Metric::QueryMs, 0.0001, 0.0002),
        )]
        .into(),
    ));

    let verdict = classify(&sample, &tight, Severity::Critical);

    assert_eq!(verdict.color, Color::Red, "{verdict:?}");
    assert_eq!(verdict.severity, Some(Severity::High));
    assert!(verdict.reason.contains("query_ms"), "{}", verdict.reason);
}

#[tokio::test]
async fn closed_port_is_red_connection_refused_at_critical() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let probe = probe(&format!(
        "url = \"postgres://postgres:pw@127.0.0.1:{port}/postgres\""
    ));

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(
        reason(&sample),
        format!("connect 127.0.0.1:{port}: connection refused")
    );
    let verdict = classify(&sample, &Thresholds::builtin(), Severity::Critical);
    assert_eq!(
        (verdict.color, verdict.severity),
        (Color::Red, Some(Severity::Critical))
    );
}

#[tokio::test]
async fn missing_database_is_red_naming_it() {
    let admin = std::env::var("KEEPER_TEST_PG_URL")
        .unwrap_or_else(|_| crate::support::db::DEFAULT_PG_URL.to_string());
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path("keeper_no_such_database");
    let probe = probe(&format!("url = {:?}", url.as_str()));

    let sample = probe.run(TIMEOUT).await;

    assert!(
        reason(&sample).ends_with("database \"keeper_no_such_database\" does not exist"),
        "{sample:?}"
    );
}

#[tokio::test]
async fn silent_peer_is_red_within_the_timeout() {
    let peer = Misbehaving::never_answers().await;
    let probe = probe(&format!(
        "url = \"postgres://postgres@{}/postgres\"",
        peer.host_port()
    ));

    let sample = probe.run(Duration::from_secs(1)).await;

    assert_eq!(
        reason(&sample),
        format!("timed out connecting to {}", peer.host_port())
    );
}

#[tokio::test]
async fn peer_speaking_another_protocol_is_red_saying_so() {
    let peer = Misbehaving::garbage().await;
    let probe = probe(&format!(
        "url = \"postgres://postgres@{}/postgres\"",
        peer.host_port()
    ));

    let sample = probe.run(TIMEOUT).await;

    let reason = reason(&sample);
    assert!(
        reason.starts_with(&format!(
            "{}: does not speak the PostgreSQL protocol: ",
            peer.host_port()
        )),
        "{reason}"
    );
    assert!(!reason.contains("(sqlx_"), "{reason}");
}

#[tokio::test]
async fn wrong_password_is_red_naming_authentication_and_never_the_password() {
    let cluster = Cluster::start();
    let wrong = "not-the-password-q7";
    let spec: postgres::Spec =
        toml::from_str(&format!("url = {:?}", cluster.url(wrong))).expect("spec");
    let target = Spec::Postgres(spec.clone()).target();
    let probe = Spec::Postgres(spec)
        .build("test", &Context::system())
        .unwrap();

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(
        reason(&sample),
        format!(
            "127.0.0.1:{}: password authentication failed for user \"postgres\"",
            cluster.port()
        )
    );
    assert!(!sample.message.contains(wrong));
    assert!(!target.contains(wrong), "{target}");
    assert!(target.contains("postgres:***@127.0.0.1"), "{target}");
    assert!(!format!("{probe:?}").contains(wrong));
}

#[tokio::test]
async fn pg_stat_statements_names_the_slowest_statement() {
    let cluster = Cluster::start();
    let url = cluster.url(pgcluster::PASSWORD);
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query("CREATE EXTENSION pg_stat_statements")
        .execute(&mut conn)
        .await
        .expect("create extension");
    // Setting up is not what the test looks at: on a loaded machine creating
    // the extension can take longer than the slow statement.
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&mut conn)
        .await
        .expect("reset the statistics");
    sqlx::query("SELECT pg_sleep(0.3)")
        .execute(&mut conn)
        .await
        .expect("slow statement");
    conn.close().await.expect("close");
    let probe = probe(&format!("url = {url:?}\nslow_statements = 2"));

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(sample.outcome, Outcome::Up, "{sample:?}");
    let message = &sample.message;
    let slowest = message
        .split_once("; slowest: ")
        .unwrap_or_else(|| panic!("no slowest statements in {message}"))
        .1;
    // The slowest first: `300 ms × 1 "SELECT pg_sleep($1)"`.
    let (first_ms, rest) = slowest.split_once(' ').expect("a mean time first");
    let first_ms: f64 = first_ms
        .parse()
        .unwrap_or_else(|_| panic!("no mean time first in {slowest:?}"));
    assert!(first_ms >= 300.0, "{message}");
    assert!(
        rest.starts_with("ms × 1 \"SELECT pg_sleep($1)\""),
        "{message}"
    );
    assert_eq!(slowest.matches(" × ").count(), 2, "{message}");
    assert!(!message.contains(pgcluster::PASSWORD));
}

#[tokio::test]
async fn without_pg_stat_statements_no_statements_are_named() {
    let db = TestDb::postgres().await;
    let probe = probe(&format!("url = {:?}", db.url()));
    let sample = probe.run(TIMEOUT).await;
    assert!(sample.is_up(), "{sample:?}");
    assert!(!sample.message.contains("slowest"), "{}", sample.message);
    assert!(
        !sample.message.contains("pg_stat_statements"),
        "{}",
        sample.message
    );
}

// ---- config ---------------------------------------------------------------

fn config_error(keys: &str) -> String {
    crate::support::config_error(&format!("[checks.db]\nkind = \"postgres\"\n{keys}\n"))
}

#[test]
fn postgres_config_mistakes_are_refused_with_line_and_column() {
    let err = config_error("url = \"postgres://127.0.0.1/x\"\nslow_statment = 3");
    assert!(
        err.starts_with("keeper.toml:4:1: checks.db.slow_statment:"),
        "{err}"
    );
    assert!(err.contains("unknown field"), "{err}");

    let err = config_error("url = \"mysql://app:hunter22@db/x\"");
    assert!(err.starts_with("keeper.toml:3:7: checks.db"), "{err}");
    assert!(err.contains("is not postgres or postgresql"), "{err}");
    assert!(!err.contains("hunter22"), "{err}");

    let err = config_error("url = \"postgres://db/x\"\nslow_statements = 99");
    assert!(err.starts_with("keeper.toml:4:19: checks.db"), "{err}");
    assert!(err.contains("at most 20"), "{err}");

    let err = config_error("slow_statements = 1");
    assert!(err.contains("missing field `url`"), "{err}");
}

#[test]
fn postgres_config_reads_with_defaults() {
    let text = "[checks.db]\nkind = \"postgres\"\nurl = \"postgres://app:${PW}@db:5432/app\"\n";
    let config = Config::parse(Path::new("keeper.toml"), text, &|name| {
        (name == "PW").then(|| "s3cr3t-pw".to_string())
    })
    .expect("valid");
    let check = &config.checks[0];
    assert_eq!(check.probe.kind(), "postgres");
    assert_eq!(check.probe.target(), "postgres://app:***@db:5432/app");
    assert_eq!(check.down_severity, Severity::Critical);
    let Spec::Postgres(spec) = &check.probe else {
        panic!("postgres spec")
    };
    assert_eq!(spec.slow_statements, 3);
}
