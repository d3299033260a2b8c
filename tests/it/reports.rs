//! Reports from a database filled by a real run: an incident report (`GET
//! /api/v1/incidents/{id}/report` and `keeper report incident`) checked
//! section by section, on both backends.

use std::time::Duration;

use chrono::Utc;
use keeper::core::deployment::NewDeployment;

use crate::support::app::TestApp;
use crate::support::config::{Check, TestConfig};
use crate::support::db::both_backends;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{section, wait_for, wait_until};

/// Incident `id`'s timeline kinds, as the API lists them.
async fn kinds(app: &TestApp, id: i64) -> Vec<String> {
    let incident = app.get_json(&format!("/api/v1/incidents/{id}")).await;
    incident["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Incident `id`'s report once the samples around its start are stored
/// (they reach the store within the writer's flush interval).
async fn settled_report(app: &TestApp, id: i64) -> String {
    let path = format!("/api/v1/incidents/{id}/report");
    wait_for(
        "five samples each side of the start",
        Duration::from_secs(20),
        || async {
            let report = app.get_text(&path).await;
            let rows = section(&report, "Samples around the start")
                .lines()
                .filter(|l| l.starts_with("| 20"))
                .count();
            (rows == 2 * keeper::report::incident::AROUND).then_some(report)
        },
    )
    .await
}

fn deployment(app: &str, version: &str, minutes_ago: i64) -> NewDeployment {
    NewDeployment {
        app: app.into(),
        version: version.into(),
        description: format!("{version} of {app}"),
        by: "ci".into(),
        at: Utc::now() - chrono::Duration::minutes(minutes_ago),
    }
}

/// A run: `db` (app `shop`) fails, opens an incident, is reminded of and
/// acknowledged by bob, and recovers; `web` depends on it, fails with it
/// (held back) and pages once `db` is back. Returns the app and the
/// incidents of `db` and `web`.
async fn run_an_incident(
    db: crate::support::db::TestDb,
    hook: &Receiver,
) -> (TestApp, Target, Target, i64, i64) {
    let store = db.store().await;
    for d in [
        deployment("shop", "v40", 180),
        deployment("shop", "v41", 30),
        deployment("billing", "b7", 20),
    ] {
        store.record_deployment(&d).await.unwrap();
    }
    let database = Target::start().await;
    let web = Target::start().await;
    let config = TestConfig::new()
        .severity("critical", "repeat", "1s")
        .check(
            Check::http("db", database.url("/db"))
                .interval("200ms")
                .set("labels", crate::support::config::table(&[("app", "shop")])),
        )
        .check(
            Check::http("web", web.url("/web"))
                .interval("200ms")
                .set("depends_on", vec!["db"]),
        )
        .page(hook);
    let app = TestApp::start_on(db, config).await;
    wait_until("both checks ran green", Duration::from_secs(20), || async {
        app.check("db").await["last_run_at"].is_string()
            && app.check("web").await["last_run_at"].is_string()
    })
    .await;
    // A few green samples before the start.
    let seen = database.requests();
    wait_until("five green samples", Duration::from_secs(20), || async {
        database.requests() >= seen + 6
    })
    .await;
    database.set_status(503);
    web.set_status(503);
    let db_id = wait_for("db's incident", Duration::from_secs(20), || async {
        app.check("db").await["incident"].as_i64()
    })
    .await;
    let web_id = wait_for(
        "web's incident, held back",
        Duration::from_secs(20),
        || async { app.check("web").await["incident"].as_i64() },
    )
    .await;
    wait_until("a reminder", Duration::from_secs(20), || async {
        kinds(&app, db_id).await.contains(&"reminder".to_string())
    })
    .await;
    let resp = app
        .http
        .post(format!("{}/api/v1/incidents/{db_id}/ack", app.base))
        .json(&serde_json::json!({"by": "bob"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    database.set_status(200);
    wait_until(
        "web paged once db is back",
        Duration::from_secs(20),
        || async { kinds(&app, web_id).await.contains(&"notified".to_string()) },
    )
    .await;
    web.set_status(200);
    wait_until("both resolved", Duration::from_secs(20), || async {
        app.check("db").await["incident"].is_null() && app.check("web").await["incident"].is_null()
    })
    .await;
    (app, database, web, db_id, web_id)
}

both_backends!(
    async fn the_incident_report_tells_a_real_run_section_by_section(db) {
        let hook = Receiver::start().await;
        let (app, _database, _web, db_id, web_id) = run_an_incident(db, &hook).await;
        let path = format!("/api/v1/incidents/{db_id}/report");
        let resp = app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/markdown; charset=utf-8");
        let report = settled_report(&app, db_id).await;
        assert!(report.starts_with(&format!("# Incident {db_id}: db\n")), "{report}");

        let summary = section(&report, "Summary");
        assert!(summary.contains("- Check: db (app shop)\n"), "{summary}");
        assert!(summary.contains("- Severity: critical (red)\n"), "{summary}");
        assert!(summary.contains("- State: resolved at "), "{summary}");
        assert!(summary.contains("- Message: expected a 2xx status, got 503"), "{summary}");
        assert!(summary.contains("- Notified: when it opened\n"), "{summary}");

        let impact = section(&report, "Impact");
        assert!(impact.contains("- Duration: "), "{impact}");
        assert!(impact.contains("- Checks affected: 2 (db, web)\n"), "{impact}");
        assert!(impact.contains("- Dependents held back: 1\n"), "{impact}");
        assert!(
            impact.contains(&format!("  - web (incident {web_id}, started ")),
            "{impact}"
        );
        assert!(impact.contains("held back while dependency db is failing"), "{impact}");

        let timeline = section(&report, "Timeline");
        let kinds: Vec<&str> = timeline
            .lines()
            .filter(|l| l.starts_with("| 20"))
            .map(|l| l.split(" | ").nth(2).unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"opened"), "{timeline}");
        assert_eq!(kinds.last(), Some(&"resolved"), "{timeline}");
        assert!(kinds.contains(&"reminder"), "{timeline}");
        assert!(timeline.contains("| acknowledged | by bob |"), "{timeline}");

        let samples = section(&report, "Samples around the start");
        let rows: Vec<&str> = samples.lines().filter(|l| l.starts_with("| 20")).collect();
        assert_eq!(rows.len(), 10, "five before, five after:\n{samples}");
        assert!(rows[0].contains(" | before | yes | green | 200 | "), "{samples}");
        assert!(rows[5].contains(" | after | no | red | 503 | "), "{samples}");
        assert!(rows[9].contains(" | after | "), "{samples}");

        let deployments = section(&report, "Deployments before it");
        assert!(deployments.contains("Deployments of shop in the two hours before"), "{deployments}");
        assert!(deployments.contains(" | shop | v41 | ci | v41 of shop |"), "{deployments}");
        assert!(!deployments.contains("v40"), "three hours before: {deployments}");
        assert!(!deployments.contains("billing"), "another app: {deployments}");

        let response = section(&report, "Response");
        assert!(response.contains("- Time to acknowledge (MTTA): "), "{response}");
        assert!(!response.contains("not acknowledged"), "{response}");
        assert!(!response.contains("not resolved"), "{response}");
        for heading in ["Root cause", "Prevention"] {
            let text = section(&report, heading);
            assert!(
                text.lines().all(|l| l.trim().is_empty() || l.starts_with("<!--")),
                "{heading} is left for a person: {text}"
            );
        }

        // The dependent's own report: held back, then paged; no app label, so every app's deployments.
        let (status, dependent) = app.get_status(&format!("/api/v1/incidents/{web_id}/report")).await;
        assert_eq!(status, 200);
        let summary = section(&dependent, "Summary");
        assert!(summary.contains("(held back until then)"), "{summary}");
        let deployments = section(&dependent, "Deployments before it");
        assert!(deployments.contains("Deployments of any app"), "{deployments}");
        assert!(deployments.contains("| billing | b7 |"), "{deployments}");
        assert!(deployments.contains("| shop | v41 |"), "{deployments}");

        // Unknown and bad ids.
        let (status, body) = app.get_status("/api/v1/incidents/999999/report").await;
        assert_eq!(status, 404, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(body["error"], "no incident 999999");
        let (status, body) = app.get_status("/api/v1/incidents/x/report").await;
        assert_eq!(status, 400, "{body}");
        app.stop().await;
    }
);

/// Runs `keeper ARGS…` in `dir`; returns (exit code, stdout, stderr).
async fn keeper_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    crate::cli::keeper_in(Some(dir), args, &[]).await
}

/// The report without its first lines (the time it was made differs).
fn body(report: &str) -> &str {
    &report[report.find("\n## ").expect("sections")..]
}

#[tokio::test]
async fn keeper_report_incident_writes_the_file_named_for_the_day_it_started() {
    let hook = Receiver::start().await;
    let db = crate::support::db::TestDb::sqlite();
    let (app, _database, _web, id, _) = run_an_incident(db, &hook).await;
    let started = app.get_json(&format!("/api/v1/incidents/{id}")).await["started_at"]
        .as_str()
        .unwrap()[..10]
        .to_string();
    let name = format!("INCIDENT_REPORT_{started}-{id}.md");
    let served = app
        .get_text(&format!("/api/v1/incidents/{id}/report"))
        .await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports/2026");
    let (code, stdout, stderr) = keeper_in(
        dir.path(),
        &[
            "report",
            "incident",
            &id.to_string(),
            "--out",
            out.to_str().unwrap(),
            "--url",
            &app.base,
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let path = out.join(&name);
    assert_eq!(stdout.trim(), path.display().to_string());
    let written = std::fs::read_to_string(&path).expect("the report file");
    assert_eq!(body(&written), body(&served));

    // Without --out: the current directory.
    let (code, _, stderr) = keeper_in(
        dir.path(),
        &["report", "incident", &id.to_string(), "--url", &app.base],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        dir.path().join(&name).exists(),
        "{name} in the current directory"
    );

    let (code, _, stderr) = keeper_in(
        dir.path(),
        &["report", "incident", "999999", "--url", &app.base],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("404") && stderr.contains("no incident 999999"),
        "{stderr}"
    );
    app.stop().await;
}
