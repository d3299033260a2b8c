//! The status page (`GET /`) and badges, as a browser and an SVG reader see
//! them: headless Chromium renders the page of a keeper with green, yellow,
//! red and not-yet-run checks; badges parse as SVG.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::support::app::spawn_app;
use crate::support::config::{Check, TestConfig, table};
use crate::support::db::Backend;
use crate::support::target::Target;
use crate::support::wait_until;

/// Chromium's flags for a headless run as root, with no network but loopback.
const CHROMIUM: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
];

/// Runs headless Chromium on `url` with `extra` flags; its stdout. Panics
/// (never skips) when Chromium is missing or fails. Async: keeper serves the
/// page from this test's runtime.
async fn chromium(url: &str, extra: &[String], profile: &Path) -> String {
    let out = Command::new("chromium")
        .args(CHROMIUM)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .expect("running chromium (Debian package `chromium`; scripts/test installs it)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("chromium prints UTF-8")
}

fn config(ok: &Target, slow: &Target, failing: &Target) -> TestConfig {
    let latency = toml::Value::Table(
        [("latency_ms".to_string(), {
            let mut t = toml::Table::new();
            t.insert("yellow".into(), 20.into());
            t.insert("red".into(), 60_000.into());
            toml::Value::Table(t)
        })]
        .into_iter()
        .collect(),
    );
    TestConfig::new()
        .defaults("failures_before_alert", 1)
        .set("status_page", "title", "Acme <status>")
        .check(
            Check::http("web", ok.url("/health"))
                .interval("300ms")
                .set("labels", table(&[("app", "web")]))
                .set("description", "The public site"),
        )
        .check(
            Check::http("web-slow", slow.url("/slow"))
                .interval("300ms")
                .set("labels", table(&[("app", "web")]))
                .set("thresholds", latency),
        )
        .check(
            Check::http("api", failing.url("/api"))
                .interval("300ms")
                .set("labels", table(&[("app", "api")])),
        )
        .check(Check::http("yearly", ok.url("/yearly")).set("schedule", "0 0 1 1 *"))
}

#[tokio::test]
async fn chromium_shows_the_banner_every_check_its_bar_and_the_open_incident() {
    let (ok, slow, failing) = (
        Target::start().await,
        Target::start().await,
        Target::start().await,
    );
    slow.set_delay(Duration::from_millis(60));
    failing.set_status(500);
    let app = spawn_app(Backend::Sqlite, config(&ok, &slow, &failing)).await;
    wait_until(
        "every check but the yearly one ran, and api's incident opened",
        Duration::from_secs(20),
        || async {
            let checks = app.get_json("/api/v1/checks").await;
            let color = |name: &str| {
                let check = checks
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["name"] == name)
                    // Stored too: the page's bars are read from the database.
                    .filter(|c| c["uptime_pct"]["24h"].is_number())
                    .cloned();
                check.map(|c| {
                    (
                        c["color"].as_str().unwrap_or("").to_string(),
                        c["incident"].is_i64(),
                    )
                })
            };
            color("web") == Some(("green".into(), false))
                && color("web-slow").is_some_and(|(c, _)| c == "yellow")
                && color("api") == Some(("red".into(), true))
        },
    )
    .await;

    let profile = tempfile::tempdir().expect("a profile dir");
    let dom = chromium(
        &format!("{}/", app.base),
        &["--dump-dom".into()],
        profile.path(),
    )
    .await;
    assert!(dom.contains("<title>Acme &lt;status&gt;</title>"), "{dom}");
    assert!(
        dom.contains("id=\"banner\">Outage</div>"),
        "the worst check is red"
    );
    // One row per check, grouped by app, the unlabelled one last.
    let rows: Vec<&str> = dom
        .match_indices("data-check=\"")
        .map(|(at, _)| &dom[at + 12..])
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| &r[..r.find('"').unwrap()]).collect();
    assert_eq!(names, ["api", "web", "web-slow", "yearly"]);
    for (name, color) in [
        ("web", "green"),
        ("web-slow", "yellow"),
        ("api", "red"),
        ("yearly", "pending"),
    ] {
        assert!(
            dom.contains(&format!("data-check=\"{name}\" data-color=\"{color}\"")),
            "{name} {color}"
        );
    }
    assert!(dom.contains("The public site"));
    assert!(dom.contains("pending: not run yet"));
    // A 90-day bar per check; today's cell counts today's samples.
    assert_eq!(dom.matches("class=\"day ").count(), 4 * 90);
    let today = chrono::Utc::now().date_naive();
    assert!(
        dom.contains(&format!("class=\"day green\" title=\"{today}: 100 %\"")),
        "web's today"
    );
    assert!(
        dom.contains(&format!("class=\"day red\" title=\"{today}: 0 %\"")),
        "api's today"
    );
    // The open incidents (api's, and web-slow's: yellow opens one too) with
    // their timelines; no target shown.
    assert_eq!(dom.matches("data-incident=").count(), 2);
    assert!(
        dom.contains("<time>") && dom.contains("opened"),
        "the incident's timeline"
    );
    assert!(
        !dom.contains(&ok.host_port()) && !dom.contains(&failing.host_port()),
        "targets hidden"
    );
    assert!(dom.contains("<svg class=\"spark\""), "a latency sparkline");

    let shot = profile.path().join("page.png");
    let flags = [
        format!("--screenshot={}", shot.display()),
        "--window-size=1000,1400".into(),
    ];
    chromium(&format!("{}/", app.base), &flags, profile.path()).await;
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
}

/// `GET path` parsed as SVG: the root element and all its text.
async fn svg_text(base: &str, path: &str) -> String {
    let resp = reqwest::get(format!("{base}{path}"))
        .await
        .expect("GET badge");
    assert_eq!(resp.status(), 200, "{path}");
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("image/svg+xml"), "{path}: {kind}");
    let body = resp.text().await.unwrap();
    let doc = roxmltree::Document::parse(&body).unwrap_or_else(|e| panic!("{path}: {e}\n{body}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert_eq!(
        doc.root_element().tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    texts.join("|")
}

#[tokio::test]
async fn badges_are_svg_and_bad_requests_get_json_reasons() {
    let (ok, failing) = (Target::start().await, Target::start().await);
    failing.set_status(503);
    let config = TestConfig::new()
        .check(Check::http("web", ok.url("/")).interval("300ms"))
        .check(Check::http("api", failing.url("/")).interval("300ms"))
        .check(Check::http("yearly", ok.url("/y")).set("schedule", "0 0 1 1 *"))
        .set("status_page", "checks", vec!["web", "api", "yearly"]);
    let app = spawn_app(Backend::Sqlite, config).await;
    wait_until(
        "web's and api's samples stored",
        Duration::from_secs(10),
        || async {
            let (web, api) = (app.check("web").await, app.check("api").await);
            web["uptime_pct"]["24h"].is_number() && api["uptime_pct"]["24h"].is_number()
        },
    )
    .await;
    assert!(svg_text(&app.base, "/badge/web.svg").await.contains("|up|"));
    assert!(
        svg_text(&app.base, "/badge/api.svg")
            .await
            .contains("|down|")
    );
    assert!(
        svg_text(&app.base, "/badge/yearly.svg")
            .await
            .contains("|pending|")
    );
    let uptime = svg_text(&app.base, "/badge/web/uptime.svg?window=24h").await;
    assert!(uptime.contains("uptime 24h|100%"), "{uptime}");
    assert!(
        svg_text(&app.base, "/badge/api/uptime.svg")
            .await
            .contains("uptime 30d|0%")
    );
    assert!(
        svg_text(&app.base, "/badge/web/latency.svg")
            .await
            .contains(" ms|")
    );

    for (path, status, reason) in [
        ("/badge/nope.svg", 404, "no check \"nope\""),
        ("/badge/web.png", 404, ".svg"),
        ("/badge/web/uptime.svg?window=1y", 400, "window must be"),
        ("/badge/web/uptime.svg?colour=red", 400, "unknown field"),
        ("/badge/web/p99.svg", 404, "no badge"),
    ] {
        let (got, body) = app.get_status(path).await;
        assert_eq!(got, status, "{path}: {body}");
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(
            json["error"].as_str().unwrap().contains(reason),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn a_page_turned_off_answers_404_and_keepers_own_checks_stay_off_it() {
    let ok = Target::start().await;
    let on = TestConfig::new().check(Check::http("web", ok.url("/")).interval("300ms"));
    let app = spawn_app(Backend::Sqlite, on.clone()).await;
    let page = app.get_text("/").await;
    assert!(page.contains("data-check=\"web\""));
    assert!(
        !page.contains("data-check=\"keeper:"),
        "keeper's own checks are not listed unless named"
    );
    let (status, _) = app.get_status("/badge/keeper:storage.svg").await;
    assert_eq!(status, 404);

    let off = on.set("status_page", "enabled", false);
    let app = spawn_app(Backend::Sqlite, off).await;
    for path in ["/", "/badge/web.svg", "/badge/web/uptime.svg"] {
        let (status, body) = app.get_status(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("status page is off"), "{path}: {body}");
    }
}

#[test]
fn a_status_page_naming_an_unknown_check_or_key_is_refused_with_line_and_column() {
    let parse = |page: &str| {
        let text = format!(
            "[checks.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n\n[status_page]\n{page}"
        );
        keeper::config::Config::parse(Path::new("k.toml"), &text, &|_| None)
            .expect_err("a bad [status_page]")
            .to_string()
    };
    let err = parse("checks = [\"web\", \"nope\"]\n");
    assert_eq!(
        err,
        "k.toml:6:18: status_page.checks: no check named \"nope\""
    );
    let err = parse("title = \"Acme\"\nsurprise = 1\n");
    assert!(
        err.starts_with("k.toml:7:1: status_page.surprise: unknown field `surprise`"),
        "{err}"
    );
    let err = parse("title = \" \"\n");
    assert_eq!(err, "k.toml:6:9: status_page.title: must not be empty");
}
