//! What probes must not give away: the `http` probe's configured headers
//! (Authorization, cookies) stay with the configured origin when a redirect
//! leads elsewhere, and an `https` → `http` redirect is refused; a `command`
//! check runs with a clean environment, not keeper's.

use std::collections::BTreeMap;
use std::time::Duration;

use keeper::core::{Outcome, Sample};
use keeper::probe::{Context, Probe, Spec, http};

use crate::support::config::{Check, TestConfig, table};
use crate::support::{
    self,
    target::{Target, TestCa},
};

const TIMEOUT: Duration = Duration::from_secs(5);
const SECRET: &str = "Bearer s3cret-token";

/// An `http` probe of `url` sending `Authorization` and a cookie.
fn probe_with_secrets(url: &str, ca: Option<&TestCa>) -> Probe {
    let mut toml = format!(
        "url = {url:?}\nheaders = {{ Authorization = {SECRET:?}, Cookie = \"session=abc\" }}\n"
    );
    if let Some(ca) = ca {
        toml.push_str(&format!("ca_file = {:?}\n", ca.ca_file()));
    }
    let spec: http::Spec = toml::from_str(&toml).expect("http spec");
    Spec::Http(spec)
        .build("test", &Context::system())
        .expect("build http probe")
}

fn reason(sample: &Sample) -> &str {
    match &sample.outcome {
        Outcome::Down(reason) => reason,
        Outcome::Up | Outcome::Warn(_) => panic!("expected a down sample, got {sample:?}"),
    }
}

#[tokio::test]
async fn a_redirect_to_another_port_does_not_carry_the_configured_headers() {
    support::init();
    let other = Target::start().await;
    let first = Target::start().await;
    first.redirect_to(other.url("/landing"));
    let probe = probe_with_secrets(&first.url("/login"), None);

    let sample = probe.run(TIMEOUT).await;

    assert!(sample.is_up(), "{sample:?}");
    assert_eq!(first.recorded()[0].header("authorization"), Some(SECRET));
    let landed = other.recorded();
    assert_eq!(landed.len(), 1, "{landed:?}");
    assert_eq!(landed[0].path, "/landing");
    assert_eq!(landed[0].header("authorization"), None, "{landed:?}");
    assert_eq!(landed[0].header("cookie"), None, "{landed:?}");
    assert!(landed[0].header("user-agent").is_some(), "{landed:?}");
}

#[tokio::test]
async fn a_redirect_to_another_host_name_on_the_same_port_is_another_origin() {
    support::init();
    let target = Target::start().await;
    // 127.0.0.1 → localhost: same server, but not the origin the headers were configured for.
    target.redirect_to(target.url_localhost("/redirect/0"));
    let probe = probe_with_secrets(&target.url("/start"), None);

    let sample = probe.run(TIMEOUT).await;

    assert!(sample.is_up(), "{sample:?}");
    let seen = target.recorded();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].header("authorization"), Some(SECRET));
    assert_eq!(seen[1].header("authorization"), None, "{seen:?}");
}

#[tokio::test]
async fn a_redirect_back_from_another_origin_does_not_get_the_headers_again() {
    support::init();
    let home = Target::start().await;
    let other = Target::start().await;
    home.redirect_to(other.url("/away"));
    other.redirect_to(home.url("/redirect/0"));
    let probe = probe_with_secrets(&home.url("/start"), None);

    let sample = probe.run(TIMEOUT).await;

    assert!(sample.is_up(), "{sample:?}");
    let seen = home.recorded();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].header("authorization"), Some(SECRET));
    assert_eq!(seen[1].path, "/redirect/0");
    assert_eq!(seen[1].header("authorization"), None, "{seen:?}");
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_the_configured_headers() {
    support::init();
    let target = Target::start().await;
    let probe = probe_with_secrets(&target.url("/redirect/2"), None);

    let sample = probe.run(TIMEOUT).await;

    assert!(sample.is_up(), "{sample:?}");
    let seen = target.recorded();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let host = target.addr().to_string();
    for request in &seen {
        assert_eq!(request.header("authorization"), Some(SECRET), "{seen:?}");
        assert_eq!(request.header("cookie"), Some("session=abc"), "{seen:?}");
        // keeper's own headers go with them on every hop.
        assert_eq!(request.header("host"), Some(host.as_str()), "{seen:?}");
        assert_eq!(request.header("connection"), Some("close"), "{seen:?}");
        let agent = request.header("user-agent").unwrap_or_default();
        assert!(agent.starts_with("keeper"), "{seen:?}");
    }
}

#[tokio::test]
async fn an_https_to_http_redirect_is_red_and_not_followed() {
    support::init();
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(30));
    let plain = Target::start().await;
    let secure = Target::start_tls(&leaf).await;
    secure.redirect_to(plain.url("/after?token=hidden"));
    let probe = probe_with_secrets(&secure.url("/login"), Some(&ca));

    let sample = probe.run(TIMEOUT).await;

    let reason = reason(&sample);
    let from = secure.url("/login");
    let to = plain.url("/after");
    assert_eq!(
        reason,
        format!("redirect from {from} to insecure {to} refused"),
        "{sample:?}"
    );
    assert_eq!(plain.requests(), 0, "the insecure hop must not be made");
    assert_eq!(sample.http.as_ref().map(|h| h.status), Some(302));
}

// ---- command environment ------------------------------------------------

/// A `keeper run` child, killed when dropped.
struct Keeper(std::process::Child);

impl Drop for Keeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `NAME=value` lines of `env` output as a map (values may hold `=`).
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_command_check_runs_with_path_lang_home_and_its_env_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dump = dir.path().join("env.txt");
    let config = TestConfig::new()
        .listen("127.0.0.1:0")
        .storage(format!(
            "sqlite://{}",
            dir.path().join("keeper.db").display()
        ))
        .check(
            Check::new("envdump", "command")
                .interval("1s")
                .set("shell", true)
                .set(
                    "command",
                    vec![format!(
                        "env > {dump}.tmp && mv {dump}.tmp {dump}; echo OK",
                        dump = dump.display()
                    )],
                )
                // Expanded by keeper when it reads the config.
                .set(
                    "env",
                    table(&[("PGPASSWORD", "${TEST_PGPASSWORD}"), ("APP_MODE", "check")]),
                ),
        )
        .write_in(dir.path());
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let _keeper = Keeper(
        std::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
            .args(["run", "-c"])
            .arg(&config)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", dir.path())
            .env("LANG", "C.UTF-8")
            .env("KEEPER_API_TOKEN", "api-token-that-must-stay-home")
            .env("SMTP_PASSWORD", "smtp-password-that-must-stay-home")
            .env("TEST_PGPASSWORD", "pg-secret-passed-on-purpose")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("keeper starts"),
    );

    support::wait_until(
        "the command check has dumped its environment",
        Duration::from_secs(30),
        || async { dump.exists() },
    )
    .await;

    let seen = parse_env(&std::fs::read_to_string(&dump).expect("reading the dump"));
    assert_eq!(seen.get("PATH"), Some(&path), "{seen:?}");
    assert_eq!(
        seen.get("HOME").map(String::as_str),
        dir.path().to_str(),
        "{seen:?}"
    );
    assert_eq!(seen.get("LANG").map(String::as_str), Some("C.UTF-8"));
    assert_eq!(
        seen.get("PGPASSWORD").map(String::as_str),
        Some("pg-secret-passed-on-purpose")
    );
    assert_eq!(seen.get("APP_MODE").map(String::as_str), Some("check"));
    // What the shell itself adds (PWD, SHLVL, `_`) aside, nothing else.
    let shell_own = ["PWD", "OLDPWD", "SHLVL", "_"];
    let expected = ["PATH", "HOME", "LANG", "PGPASSWORD", "APP_MODE"];
    let extra: Vec<&String> = seen
        .keys()
        .filter(|k| !shell_own.contains(&k.as_str()) && !expected.contains(&k.as_str()))
        .collect();
    assert!(extra.is_empty(), "the check saw more: {extra:?}");
}

#[test]
fn command_env_names_are_checked_at_load_with_line_and_column() {
    let check = "[checks.backup]\nkind = \"command\"\ncommand = [\"true\"]\n";
    let err = support::config_error(&format!("{check}env = {{ \"BAD-NAME\" = \"x\" }}\n"));
    assert!(err.starts_with("keeper.toml:4:7:"), "{err}");
    assert!(err.contains("\"BAD-NAME\""), "{err}");
    assert!(
        err.contains("not a valid environment variable name"),
        "{err}"
    );

    let err = support::config_error(&format!("{check}env = {{ \"1ST\" = \"x\" }}\n"));
    assert!(err.contains("\"1ST\""), "{err}");

    let err = support::config_error(&format!("{check}env = {{ PORT = 5432 }}\n"));
    assert!(err.starts_with("keeper.toml:4:"), "{err}");

    let err = support::config_error(&format!("{check}env = [\"A=b\"]\n"));
    assert!(err.starts_with("keeper.toml:4:7:"), "{err}");

    let ok = support::parse_config(&format!(
        "{check}env = {{ PGPASSWORD = \"pw\", _X1 = \"\" }}\n"
    ));
    assert!(ok.is_ok(), "{ok:?}");
}
