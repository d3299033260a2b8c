//! The daily health report from a database filled by a real run, on both
//! backends: `keeper report health` (the binary, with the daemon stopped)
//! writes `HEALTH_REPORT_YYYY-MM-DD.md` into `--out`, checked section by
//! section; and `[reports] health` sends it on schedule, whole as text and
//! HTML to aiosmtpd and as a summary with a link to a chat channel.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use crate::support::app::TestApp;
use crate::support::config::{Channel, Check, Route, TestConfig, table};
use crate::support::db::{DEFAULT_PG_URL, TestDb, both_backends};
use crate::support::receiver::Receiver;
use crate::support::smtp::SmtpServer;
use crate::support::target::{Target, TestCa};
use crate::support::{section, wait_for, wait_until};

const TOKEN: &str = "backup-token-0123456789";
const API_TOKEN: &str = "s3cret-api-token-0001";

/// The table row of `check` in `text`.
fn row<'a>(text: &'a str, check: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("| {check} |")))
        .unwrap_or_else(|| panic!("no row for {check} in\n{text}"))
}

/// What a run watches: `web` (app shop, green), `api` (app shop, fails
/// once), `web-cert` (app shop, a certificate 20 days from expiry), `db`
/// (app data, PostgreSQL), `nightly-backup` (a heartbeat) and `app-log` (a
/// log file with an error and a critical line).
struct World {
    web: Target,
    api: Target,
    tls: Target,
    ca: TestCa,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let ca = TestCa::new();
        let tls = Target::start_tls(&ca.leaf_expiring_in(chrono::Duration::days(20))).await;
        let dir = tempfile::tempdir().unwrap();
        let mut log = std::fs::File::create(dir.path().join("app.log")).unwrap();
        for i in 0..40 {
            writeln!(log, "INFO request {i} ok").unwrap();
        }
        writeln!(log, "ERROR payment failed").unwrap();
        writeln!(log, "Out of memory: Killed process 4242 (worker)").unwrap();
        World {
            web: Target::start().await,
            api: Target::start().await,
            tls,
            ca,
            dir,
        }
    }

    fn config(&self) -> TestConfig {
        let shop = table(&[("app", "shop")]);
        TestConfig::new()
            // keeper's own checks run within the test too (the default 15 s
            // spreads keeper:scheduler's first run 7.5 s after the start).
            .set("watchdog", "interval", "1s")
            .check(
                Check::http("web", self.web.url("/"))
                    .interval("200ms")
                    .set("labels", shop.clone()),
            )
            .check(
                Check::http("api", self.api.url("/"))
                    .interval("200ms")
                    .set("labels", shop.clone()),
            )
            .check(
                Check::new("web-cert", "tls")
                    .set("host", self.tls.host_port())
                    .set("server_name", "localhost")
                    .set("ca_file", self.ca.ca_file().display().to_string())
                    .interval("1s")
                    .set("labels", shop),
            )
            .check(
                Check::new("db", "postgres")
                    .set("url", format!("{DEFAULT_PG_URL}/postgres"))
                    .interval("1s")
                    .set("labels", table(&[("app", "data")])),
            )
            .check(
                Check::heartbeat("nightly-backup")
                    .set("token", TOKEN)
                    .set("period", "1d")
                    .set("grace", "1h"),
            )
            .check(
                Check::new("app-log", "log")
                    .set(
                        "file",
                        self.dir.path().join("app.log").display().to_string(),
                    )
                    .set("from_start", true)
                    .interval("500ms"),
            )
    }
}

/// Runs keeper on `db` until `api` opened and resolved an incident, the
/// backup pinged and every check ran, a deployment of shop posted before
/// api failed. Stops keeper and returns the database.
async fn fill(db: TestDb, world: &World) -> TestDb {
    let app = TestApp::start_on(db, world.config().api_token(API_TOKEN)).await;
    let ping = app
        .http
        .get(format!("{}/ping/{TOKEN}", app.base))
        .send()
        .await
        .unwrap();
    assert!(ping.status().is_success(), "{}", ping.status());
    wait_until("every check ran", Duration::from_secs(30), || async {
        let mut all = true;
        for c in ["web", "api", "web-cert", "db", "nightly-backup", "app-log"]
            .into_iter()
            .chain(["keeper:storage", "keeper:scheduler"])
        {
            all &= app.check(c).await["last_run_at"].is_string();
        }
        all
    })
    .await;
    let deployed = app
        .http
        .post(format!("{}/api/v1/deployments", app.base))
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({
            "app": "shop", "version": "v42", "description": "new checkout", "by": "ci"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status(), 201);
    world.api.set_status(503);
    let id = wait_for("api's incident", Duration::from_secs(20), || async {
        app.check("api").await["incident"].as_i64()
    })
    .await;
    world.api.set_status(200);
    wait_until(
        "api's incident resolved",
        Duration::from_secs(20),
        || async {
            let i = app.get_json(&format!("/api/v1/incidents/{id}")).await;
            i["resolved_at"].is_string()
        },
    )
    .await;
    wait_until(
        "the backup's ping shows",
        Duration::from_secs(20),
        || async {
            app.check("nightly-backup").await["message"]
                .as_str()
                .is_some_and(|m| m.contains("last ping"))
        },
    )
    .await;
    app.stop().await
}

/// Runs `keeper report health` with `args` against `config`; (exit ok, stdout, stderr).
async fn report_health(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["report", "health", "-c"])
        .arg(config)
        .args(args)
        .env_remove("KEEPER_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .await
        .expect("keeper runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

both_backends!(
    async fn the_report_of_a_real_run_section_by_section(db) {
        let world = World::start().await;
        let db = fill(db, &world).await;
        // The daemon is down: the verb reads the database itself.
        let config = world.config().storage(db.url()).write_in(world.dir.path());
        let out = world.dir.path().join("reports");
        let (ok, stdout, stderr) = report_health(&config, &["--out", out.to_str().unwrap()]).await;
        assert!(ok, "{stdout}\n{stderr}");
        let today = Utc::now().date_naive();
        let file = out.join(format!("HEALTH_REPORT_{}.md", today.format("%Y-%m-%d")));
        assert_eq!(stdout.trim(), file.display().to_string());
        let report = std::fs::read_to_string(&file).unwrap();
        assert!(report.starts_with(&format!("# Health report {}\n", today.format("%Y-%m-%d"))));
        assert!(report.contains("Covers the 24 hours up to now (the day is not over)"), "{report}");

        let overall = section(&report, "Overall status");
        // Six checks of the run's and keeper's own two (storage, scheduler).
        assert!(overall.contains(": 8 checks, "), "{report}");
        assert!(overall.contains(", 0 without samples in the period."), "{overall}");
        assert!(overall.contains(" opened, 1 resolved, "), "{overall}");
        assert!(overall.contains("- Deployments: 1\n"), "{overall}");

        let shop = section(&report, "App shop");
        assert!(shop.contains("- Deployments: v42 at "), "{shop}");
        assert!(shop.contains(" by ci (new checkout)"), "{shop}");
        let api_incident = shop
            .lines()
            .find(|l| l.starts_with("  - incident ") && l.contains(" on api: "))
            .unwrap_or_else(|| panic!("no api incident in\n{shop}"));
        assert!(api_incident.contains(", resolved 20"), "{api_incident}");
        // Opened within the deploy watch: its message names the deployment.
        assert!(api_incident.contains("after deploy v42 of shop (by ci)"), "{api_incident}");
        assert!(shop.contains("; MTTR "), "{shop}");
        let web = row(shop, "web");
        assert!(web.starts_with("| web | http | green | 100.00 % (green) | "), "{web}");
        let api = row(shop, "api");
        assert!(api.starts_with("| api | http | green | "), "{api}");
        assert!(!api.contains("| 100.00 %"), "api failed for a while: {api}");
        assert!(row(shop, "web-cert").starts_with("| web-cert | tls | yellow |"), "{shop}");
        let data = section(&report, "App data");
        assert!(row(data, "db").starts_with("| db | postgres | green | 100.00 % (green) | "), "{data}");
        let other = section(&report, "App other");
        assert!(row(other, "nightly-backup").starts_with("| nightly-backup | heartbeat | green |"), "{other}");
        assert!(row(other, "app-log").starts_with("| app-log | log | red |"), "{other}");
        assert!(row(other, "app-log").contains(" % (peak "), "error rate: {other}");

        let certs = section(&report, "Certificates expiring within 30 days");
        let cert = row(certs, "web-cert");
        let days: f64 = cert.split('|').nth(2).unwrap().trim().parse().unwrap();
        assert!((19.0..=20.0).contains(&days), "{cert}");
        assert!(cert.ends_with("| yellow |"), "{cert}");

        let sql = section(&report, "Slowest database statements");
        let db_row = row(sql, "db");
        assert!(db_row.contains(" ms (peak "), "{db_row}");

        let beats = section(&report, "Backups and heartbeats");
        let beat = row(beats, "nightly-backup");
        assert!(beat.contains(&format!("| {}", today.format("%Y-%m-%d"))), "{beat}");
        assert!(beat.ends_with("| on time |"), "{beat}");

        let logs = section(&report, "Logs");
        let log = row(logs, "app-log");
        assert!(log.contains("`Out of memory: Killed process 4242 (worker)`"), "{log}");

        let actions = section(&report, "Actions");
        assert!(
            actions.contains("- **yellow** web-cert: cert\\_days\\_left "),
            "{actions}"
        );
        assert!(actions.contains("is below the yellow bound 30.0 days"), "{actions}");
        assert!(actions.contains("- **red** app-log: status is red now: critical line"), "{actions}");
        // api's uptime is an action exactly when it fell below 99 %.
        let uptime: f64 = api.split('|').nth(4).unwrap().trim().split(' ').next().unwrap().parse().unwrap();
        let named = actions.lines().any(|l| l.contains(" api: uptime ") && l.contains(&format!("{uptime:.2} % is below the ")));
        assert_eq!(named, uptime < 99.0, "{uptime}\n{actions}");
        assert!(!actions.contains(" web: "), "web was green throughout: {actions}");

        // Past retention: the same counts from the hourly rollups.
        let store = db.store().await;
        let now = Utc::now();
        let hour = keeper::store::rollup::hour_of(now);
        for h in [hour - chrono::Duration::hours(1), hour] {
            store.roll_up_hour(h).await.unwrap();
        }
        assert!(store.delete_samples_before(now + chrono::Duration::minutes(1)).await.unwrap() > 0);
        let (ok, stdout, stderr) = report_health(&config, &["--out", out.to_str().unwrap()]).await;
        assert!(ok, "{stdout}\n{stderr}");
        let rolled = std::fs::read_to_string(&file).unwrap();
        let overall = section(&rolled, "Overall status");
        assert!(overall.contains(" red, 0 without samples in the period (8 from hourly rollups only"), "{overall}");
        let shop = section(&rolled, "App shop");
        let web = row(shop, "web");
        assert!(web.starts_with("| web | http | past retention | 100.00 % (green) | "), "{web}");
        assert!(web.contains(" ms (worst hour, from rollups) |"), "{web}");
        let uptime_of = |row: &str| row.split('|').nth(4).unwrap().trim().to_string();
        assert_eq!(uptime_of(row(shop, "api")), uptime_of(api), "{shop}");

        // A past day: a whole day, nothing in it, its own file name.
        let yesterday = today - chrono::Duration::days(1);
        let date = yesterday.format("%Y-%m-%d").to_string();
        let (ok, stdout, stderr) =
            report_health(&config, &["--date", &date, "--out", out.to_str().unwrap()]).await;
        assert!(ok, "{stdout}\n{stderr}");
        let past = std::fs::read_to_string(out.join(format!("HEALTH_REPORT_{date}.md"))).unwrap();
        assert!(past.contains("Covers the whole day"), "{past}");
        assert!(past.contains(": 8 checks, 0 green, 0 yellow, 0 red, 8 without samples"), "{past}");
    }
);

#[tokio::test]
async fn a_day_not_begun_or_a_missing_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("none.db").display());
    let config = TestConfig::new()
        .check(Check::http("web", "http://127.0.0.1:9/"))
        .storage(missing)
        .write_in(dir.path());
    let (ok, _, stderr) = report_health(&config, &["--out", dir.path().to_str().unwrap()]).await;
    assert!(!ok);
    assert!(stderr.contains("no keeper database at"), "{stderr}");
    assert!(
        !dir.path().join("none.db").exists(),
        "the report created a database"
    );
    let tomorrow = (Utc::now() + chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let (ok, _, stderr) = report_health(&config, &["--date", &tomorrow]).await;
    assert!(!ok);
    assert!(stderr.contains("has not begun yet"), "{stderr}");
}

#[tokio::test]
async fn the_scheduled_report_arrives_as_text_and_html_and_as_a_chat_summary() {
    let smtp = SmtpServer::start().await;
    let chat = Receiver::start().await;
    let web = Target::start().await;
    let config = TestConfig::new()
        .set("server", "public_url", "https://status.example.test")
        .set("reports", "health", "*/2 * * * * *")
        .check(
            Check::http("web", web.url("/"))
                .interval("200ms")
                .set("labels", table(&[("app", "shop")])),
        )
        .channel(Channel::email("mail", &smtp, &["ops@example.test"]))
        .channel(Channel::new("chat", "slack").set("url", chat.url()))
        .route(Route::to(&["mail"]).set("severities", vec!["critical"]))
        .route(Route::to(&["chat", "mail"]));
    let app = crate::support::app::spawn_app(crate::support::db::Backend::Sqlite, config).await;
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let mail = wait_for("the report by email", Duration::from_secs(20), || async {
        // The first firings may come before web's first sample is stored.
        smtp.messages().into_iter().find_map(|mut m| {
            m.body = m.body.replace("\r\n", "\n");
            m.body.contains("| web | http | green |").then_some(m)
        })
    })
    .await;
    assert!(
        mail.subject
            .starts_with(&format!("Health report {today}: ")),
        "{}",
        mail.subject
    );
    assert_eq!(mail.content_type, "multipart/alternative");
    assert_eq!(mail.rcpt_tos, ["ops@example.test"]);
    assert!(
        mail.body.starts_with(&format!("# Health report {today}\n")),
        "{}",
        mail.body
    );
    assert!(mail.body.contains("\n## Actions\n"), "{}", mail.body);
    assert!(mail.body.contains("| web | http | "), "{}", mail.body);
    assert!(mail.html.starts_with("<!DOCTYPE html>"), "{}", mail.html);
    assert!(mail.html.contains("<h2>App shop</h2>"), "{}", mail.html);
    assert!(
        mail.html.contains("<tr><td>web</td><td>http</td>"),
        "{}",
        mail.html
    );
    assert!(
        mail.message_id
            .contains(&format!("health-report-{today}-mail")),
        "{}",
        mail.message_id
    );
    let summary = wait_for("the chat summary", Duration::from_secs(20), || async {
        // Once web and keeper's own checks have samples.
        chat.json_bodies()
            .into_iter()
            .find(|b| b["text"].as_str().is_some_and(|t| !t.contains(": 0 green")))
    })
    .await;
    let text = summary["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("*Health report {today}: ")),
        "{text}"
    );
    // web and keeper's own four (storage, scheduler, each channel).
    assert!(text.contains("\n5 checks: "), "{text}");
    assert!(
        text.ends_with("<https://status.example.test|Status page>"),
        "{text}"
    );
    drop(app);
}

#[test]
fn reports_keys_are_read_strictly_with_line_and_column() {
    let config = crate::support::parse_config("[reports]\nhealth = \"0 8 * * *\"\n").unwrap();
    let health = config.reports.health.expect("reports.health is read");
    assert_eq!(health.source, "0 8 * * *");
    let unknown =
        crate::support::config_error("[reports]\nhealth = \"0 8 * * *\"\nweekly = \"0 8 * * 1\"\n");
    assert!(unknown.starts_with("keeper.toml:3:1: reports"), "{unknown}");
    assert!(unknown.contains("unknown field `weekly`"), "{unknown}");
    let bad = crate::support::config_error("[reports]\nhealth = \"0 25 * * *\"\n");
    assert!(bad.starts_with("keeper.toml:2:10: reports"), "{bad}");
    assert!(bad.contains("crontab"), "{bad}");
    assert!(
        crate::support::parse_config("")
            .unwrap()
            .reports
            .health
            .is_none()
    );
}

#[tokio::test]
async fn a_refused_report_is_tried_again_and_never_stops_keeper() {
    let smtp = SmtpServer::start().await;
    let hook = Receiver::start().await;
    // The first attempt is refused (503): the webhook gets it on the retry.
    hook.push_response(crate::support::receiver::Reply::status(503));
    let web = Target::start().await;
    let config = TestConfig::new()
        .set("reports", "health", "*/2 * * * * *")
        .check(Check::http("web", web.url("/")).interval("200ms"))
        // 451 for every attempt: a transient failure that never ends.
        .channel(Channel::email("mail", &smtp, &["later@example.test"]))
        .channel(Channel::webhook("hook", &hook))
        .route(Route::to(&["mail", "hook"]));
    let app = crate::support::app::spawn_app(crate::support::db::Backend::Sqlite, config).await;
    let requests = hook.wait_for_requests(2, Duration::from_secs(40)).await;
    assert_eq!(requests[0].replied, 503);
    assert_eq!(requests[1].replied, 200);
    let key = |i: usize| requests[i].header("idempotency-key").unwrap().to_string();
    assert_eq!(key(0), key(1), "a retry carries the same key");
    let body: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body["kind"], "health_report");
    assert!(
        body["markdown"]
            .as_str()
            .unwrap()
            .starts_with("# Health report ")
    );
    assert!(smtp.messages().is_empty(), "451 for every recipient");
    // keeper carries on: its checks run and it answers.
    let runs = app.check("web").await["last_run_at"].clone();
    wait_until("web runs on", Duration::from_secs(10), || async {
        app.check("web").await["last_run_at"] != runs
    })
    .await;
    let (status, _) = app.get_status("/healthz").await;
    assert_eq!(status, 200);
}
