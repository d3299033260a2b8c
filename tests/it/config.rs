//! Config loading: the example parses, and each kind of mistake is reported
//! with file:line:column and the key.

use std::path::Path;

use keeper::config::{Config, ConfigErrors, Schedule};

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(Path::new("keeper.toml"), text, &|name| match name {
        "SET_VAR" => Some("s3cret".to_string()),
        _ => None,
    })
}

/// Parses `text`, expecting exactly one error; returns its rendering.
fn one_error(text: &str) -> String {
    let errors = parse(text).expect_err("config should be refused");
    assert_eq!(errors.0.len(), 1, "expected one error, got: {errors}");
    errors.0[0].to_string()
}

const BASE: &str = r#"
[checks.web]
kind = "http"
url = "http://127.0.0.1:1/health"
"#;

#[test]
fn example_config_is_valid() {
    let path = Path::new("examples/keeper.toml");
    let config = Config::load(path).expect("example loads");
    let text = std::fs::read_to_string(path).expect("example readable");
    let written = text
        .lines()
        .filter(|l| l.trim_start().starts_with("[checks."))
        .count();
    // Every check written in the example is loaded (`keeper:*` checks come on top).
    assert!(
        config.checks.len() >= written,
        "{} of {written}",
        config.checks.len()
    );
    let web = config.check("keeper-self").unwrap();
    assert_eq!(web.probe.kind(), "http");
    assert_eq!(
        web.schedule,
        Schedule::Every(std::time::Duration::from_secs(10))
    );
}

#[test]
fn unknown_key_in_a_check_names_line_column_and_key() {
    let err = one_error(&format!("{BASE}bogus_key = 1\n"));
    assert!(
        err.starts_with("keeper.toml:5:1: checks.web.bogus_key:"),
        "{err}"
    );
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn unknown_top_level_section_is_refused() {
    let err = one_error(&format!(
        "{BASE}\n[sever1ties]\ncritical = {{ repeat = \"5m\" }}\n"
    ));
    assert!(err.starts_with("keeper.toml:6:"), "{err}");
    assert!(err.contains("sever1ties"), "{err}");
}

#[test]
fn bad_duration_names_line_column_and_key() {
    let err = one_error(&format!("{BASE}interval = \"30 parsecs\"\n"));
    assert!(err.starts_with("keeper.toml:5:12: checks.web"), "{err}");
    assert!(err.contains("invalid duration \"30 parsecs\""), "{err}");
}

#[test]
fn bad_crontab_names_line_column_and_key() {
    let err = one_error(&format!("{BASE}schedule = \"0 9 * *\"\n"));
    assert!(err.starts_with("keeper.toml:5:12: checks.web"), "{err}");
    assert!(err.contains("invalid crontab schedule"), "{err}");
}

#[test]
fn route_naming_an_unknown_channel_is_refused() {
    let text = format!(
        "{BASE}\n[channels.ops]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n\n[[routes]]\nchannels = [\"ops\", \"pager\"]\n"
    );
    let err = one_error(&text);
    assert!(
        err.starts_with("keeper.toml:11:20: routes[0].channels:"),
        "{err}"
    );
    assert!(err.contains("unknown channel \"pager\""), "{err}");
}

#[test]
fn missing_environment_variable_is_named() {
    let err = one_error(&format!(
        "{BASE}headers = {{ Authorization = \"Bearer ${{NOT_SET_ANYWHERE}}\" }}\n"
    ));
    assert!(err.starts_with("keeper.toml:5:"), "{err}");
    assert!(err.contains("checks.web.headers.Authorization"), "{err}");
    assert!(
        err.contains("environment variable NOT_SET_ANYWHERE is not set"),
        "{err}"
    );
}

#[test]
fn environment_variables_are_expanded() {
    let config = parse(&format!(
        "{BASE}body = \"token=${{SET_VAR}} price=$5 literal=$${{X}}\"\n"
    ))
    .unwrap();
    let keeper::probe::Spec::Http(http) = &config.checks[0].probe else {
        panic!("http")
    };
    assert_eq!(
        http.body.as_deref(),
        Some("token=s3cret price=$5 literal=${X}")
    );
}

#[test]
fn depends_on_an_unknown_check_is_refused() {
    let err = one_error(&format!("{BASE}depends_on = [\"db\"]\n"));
    assert!(
        err.starts_with("keeper.toml:5:15: checks.web.depends_on:"),
        "{err}"
    );
    assert!(err.contains("unknown check \"db\""), "{err}");
}

#[test]
fn key_of_another_kind_is_refused() {
    // `host` belongs to tcp and tls checks, not http
    let err = one_error(&format!("{BASE}host = \"example.com:443\"\n"));
    assert!(
        err.starts_with("keeper.toml:5:1: checks.web.host:"),
        "{err}"
    );
}

#[test]
fn unknown_kind_and_missing_kind_are_refused() {
    let err = one_error("[checks.x]\nkind = \"carrier-pigeon\"\n");
    assert!(err.contains("unknown kind \"carrier-pigeon\""), "{err}");
    let err = one_error("[checks.x]\nurl = \"http://127.0.0.1/\"\n");
    assert!(err.starts_with("keeper.toml:1:1: checks.x"), "{err}");
    assert!(err.contains("missing key kind"), "{err}");
}

#[test]
fn all_errors_are_reported_at_once() {
    let text =
        format!("{BASE}interval = \"soon\"\n\n[checks.db]\nkind = \"tcp\"\nhost = \"nope\"\n");
    let errors = parse(&text).expect_err("refused");
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert!(errors.0[0].line < errors.0[1].line);
}

#[test]
fn thresholds_short_and_long_forms() {
    let text = format!(
        "{BASE}thresholds = {{ latency_ms = {{ yellow = 300, red = 800 }}, cert_days_left = [{{ below = 30, color = \"yellow\", severity = \"low\" }}, {{ below = 7, color = \"red\", severity = \"high\" }}] }}\n"
    );
    let config = parse(&text).unwrap();
    let t = &config.checks[0].thresholds;
    let lat = t.get(keeper::core::Metric::LatencyMs).unwrap();
    assert_eq!(lat.0[0].bound, 300.0);
    let bad = one_error(&format!(
        "{BASE}thresholds = {{ latency_msec = {{ yellow = 1, red = 2 }} }}\n"
    ));
    assert!(bad.contains("unknown metric \"latency_msec\""), "{bad}");
}

#[test]
fn defaults_apply_and_schedule_and_interval_exclude_each_other() {
    let config = parse(&format!(
        "[defaults]\ninterval = \"1m\"\nfailures_before_alert = 3\n{BASE}"
    ))
    .unwrap();
    let web = &config.checks[0];
    assert_eq!(
        web.schedule,
        Schedule::Every(std::time::Duration::from_secs(60))
    );
    assert_eq!(web.failures_before_alert, 3);
    assert_eq!(web.successes_before_resolve, 2);
    let err = one_error(&format!(
        "{BASE}interval = \"1m\"\nschedule = \"* * * * *\"\n"
    ));
    assert!(err.contains("either interval or schedule"), "{err}");
}

#[test]
fn maintenance_windows_are_checked() {
    let ok = parse(&format!(
        "{BASE}\n[[maintenance]]\nschedule = \"0 3 * * SUN\"\nduration = \"1h\"\nmatch = {{ app = \"web\" }}\nchecks = [\"web\"]\n"
    ))
    .unwrap();
    assert_eq!(ok.maintenance.len(), 1);
    assert_eq!(
        ok.maintenance[0].duration,
        std::time::Duration::from_secs(3600)
    );
    let err = one_error(&format!(
        "{BASE}\n[[maintenance]]\nschedule = \"0 3 * * SUN\"\nduration = \"1h\"\nchecks = [\"wbe\"]\n"
    ));
    assert!(
        err.starts_with("keeper.toml:9:11: maintenance[0].checks:"),
        "{err}"
    );
    assert!(err.contains("unknown check \"wbe\""), "{err}");
    let err = one_error(&format!(
        "{BASE}\n[[maintenance]]\nschedule = \"0 3 * * FUNDAY\"\nduration = \"1h\"\n"
    ));
    assert!(err.contains("invalid crontab schedule"), "{err}");
    let err = one_error(&format!(
        "{BASE}\n[[maintenance]]\nschedule = \"0 3 * * *\"\nduration = \"0s\"\n"
    ));
    assert!(
        err.contains("maintenance[0].duration: must be above 0"),
        "{err}"
    );
}

#[test]
fn watchdog_makes_keepers_own_checks_and_reserves_their_names() {
    let config = parse(&format!(
        "{BASE}\n[channels.ops]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n"
    ))
    .unwrap();
    let own: Vec<&str> = config
        .checks
        .iter()
        .filter(|c| c.probe.kind() == "keeper")
        .map(|c| &*c.name)
        .collect();
    assert_eq!(
        own,
        ["keeper:storage", "keeper:scheduler", "keeper:channel:ops"]
    );
    let storage = config.check("keeper:storage").unwrap();
    assert_eq!(
        storage.schedule,
        Schedule::Every(std::time::Duration::from_secs(15))
    );
    assert_eq!(storage.down_severity.as_str(), "critical");

    let off = parse(&format!("{BASE}\n[watchdog]\nenabled = false\n")).unwrap();
    assert!(off.checks.iter().all(|c| c.probe.kind() != "keeper"));

    let err = one_error(&format!("{BASE}\n[watchdog]\nchannel_failing = \"1m\"\n"));
    assert!(
        err.starts_with("keeper.toml:7:1: watchdog.channel_failing:"),
        "{err}"
    );

    let err = one_error("[checks.\"keeper:mine\"]\nkind = \"tcp\"\nhost = \"127.0.0.1:1\"\n");
    assert!(
        err.starts_with("keeper.toml:1:9: checks.keeper:mine:"),
        "{err}"
    );
    assert!(err.contains("keeper's own"), "{err}");

    let err = one_error("[checks.\"a\\u0000b\"]\nkind = \"tcp\"\nhost = \"127.0.0.1:1\"\n");
    assert!(err.starts_with("keeper.toml:1:9: checks.a\\0b:"), "{err}");
    assert!(err.contains("control characters"), "{err}");
}

#[test]
fn the_low_digest_has_a_default_a_crontab_or_off() {
    let default = parse(BASE).unwrap();
    assert_eq!(
        default
            .severities
            .low_digest
            .as_ref()
            .map(|d| d.source.as_str()),
        Some("0 9 * * *")
    );
    let monday = parse(&format!(
        "{BASE}\n[severities]\nlow = {{ digest = \"0 9 * * 1\" }}\n"
    ))
    .unwrap();
    assert_eq!(
        monday
            .severities
            .low_digest
            .as_ref()
            .map(|d| d.source.as_str()),
        Some("0 9 * * 1")
    );
    let off = parse(&format!(
        "{BASE}\n[severities]\nlow = {{ repeat = \"12h\", digest = \"off\" }}\n"
    ))
    .unwrap();
    assert!(off.severities.low_digest.is_none());
    assert_eq!(
        off.severities.repeat[&keeper::core::Severity::Low],
        std::time::Duration::from_secs(12 * 3600)
    );
    let err = one_error(&format!(
        "{BASE}\n[severities]\nlow = {{ digest = \"never\" }}\n"
    ));
    assert!(err.starts_with("keeper.toml:7:"), "{err}");
    assert!(err.contains("\"off\""), "{err}");
}

/// `[checks.c]` of `kind` with `keys` from line 3 on.
fn check_of(kind: &str, keys: &str) -> String {
    format!("[checks.c]\nkind = \"{kind}\"\n{keys}\n")
}

/// `[channels.n]` of `kind` with `keys` from line 3 on.
fn channel_of(kind: &str, keys: &str) -> String {
    format!("[channels.n]\nkind = \"{kind}\"\n{keys}\n")
}

/// Each case's only error starts with `line:column: key` and says `what`.
fn assert_refused(cases: &[(String, &str, &str)]) {
    for (text, at, what) in cases {
        let err = one_error(text);
        assert!(
            err.starts_with(&format!("keeper.toml:{at}: ")),
            "expected {at}, got: {err}\n{text}"
        );
        assert!(err.contains(what), "expected {what:?} in: {err}\n{text}");
    }
}

/// What building a probe refused before (so `check-config` passed and `run`
/// failed without a position) is refused at load, at the key.
#[test]
fn probe_values_that_cannot_be_built_are_refused_at_load_with_their_key() {
    let url = "url = \"http://127.0.0.1:1/\"\n";
    let host = "host = \"example.com:443\"\n";
    assert_refused(&[
        (
            check_of("http", "url = \"htp//x\""),
            "3:7: checks.c.url",
            "url \"htp//x\": relative URL without a base",
        ),
        (
            check_of("http", &format!("{url}ca_file = \"/nonexistent/ca.pem\"")),
            "4:11: checks.c.ca_file",
            "reading ca_file /nonexistent/ca.pem",
        ),
        (
            check_of("http", &format!("{url}method = \"GE T\"")),
            "4:10: checks.c.method",
            "not an HTTP method",
        ),
        (
            check_of("http", &format!("{url}headers = {{ X-Token = \"a\\nb\" }}")),
            "4:23: checks.c.headers.X-Token",
            "the value has invalid characters",
        ),
        (
            check_of("http", &format!("{url}expect_status = [200, 42]")),
            "4:17: checks.c.expect_status",
            "42 is not an HTTP status",
        ),
        (
            check_of("http", &format!("{url}body_regex = \"(unclosed\"")),
            "4:14: checks.c.body_regex",
            "invalid regex",
        ),
        (
            check_of("tls", &format!("{host}server_name = \"bad name\"")),
            "4:15: checks.c.server_name",
            "not a valid DNS name or IP address",
        ),
        (
            check_of("tls", &format!("{host}ca_file = \"/nonexistent/ca.pem\"")),
            "4:11: checks.c.ca_file",
            "reading ca_file",
        ),
        (
            check_of("tcp", "host = \"127.0.0.1:1\"\nexpect = \"\""),
            "4:10: checks.c.expect",
            "must not be empty",
        ),
        (
            check_of("fly", "app = \"my app\"\ntoken = \"t\""),
            "3:7: checks.c.app",
            "not a Fly app name",
        ),
        (
            check_of(
                "prometheus",
                "url = \"http://x:9090\"\nquery = \"up\"\ntoken = \"\"",
            ),
            "5:9: checks.c.token",
            "token: empty",
        ),
    ]);
}

/// A log check's source keys: a bad ingest token, a bad Fly token or API
/// URL (refused when the poller started before), a bad regex.
#[test]
fn log_values_that_cannot_be_built_are_refused_at_load_with_their_key() {
    assert_refused(&[
        (
            check_of("log", "ingest = \"web\"\ntoken = \"short\""),
            "4:9: checks.c.token",
            "at least 16 characters",
        ),
        (
            check_of("log", "fly = \"app\"\ntoken = \"fm2_\\u0001\""),
            "4:9: checks.c.token",
            "not allowed in an HTTP header",
        ),
        (
            check_of(
                "log",
                "fly = \"app\"\ntoken = \"fm2_x\"\napi_url = \"ftp://x\"",
            ),
            "5:11: checks.c.api_url",
            "scheme \"ftp\" is not http or https",
        ),
        (
            check_of("log", "file = \"/a\"\nerror_pattern = \"(unclosed\""),
            "4:17: checks.c.error_pattern",
            "invalid regex",
        ),
        (
            check_of("log", "file = \"/a\"\npatterns = { slow = \"took [0-9\" }"),
            "4:21: checks.c.patterns.slow",
            "invalid regex",
        ),
    ]);
}

/// What building a channel refused before is refused at load, at the key.
#[test]
fn channel_values_that_cannot_be_built_are_refused_at_load_with_their_key() {
    let url = "url = \"http://127.0.0.1:1/\"\n";
    let mail = "smtp = \"smtp://127.0.0.1:2525\"\nfrom = \"keeper@example.com\"\n";
    assert_refused(&[
        (
            channel_of("webhook", "url = \"ftp://x/\""),
            "3:7: channels.n.url",
            "invalid url",
        ),
        (
            channel_of(
                "webhook",
                &format!("{url}headers = {{ \"bad name\" = \"v\" }}"),
            ),
            "4:26: channels.n.headers.bad name",
            "invalid header name",
        ),
        (
            channel_of("webhook", &format!("{url}secret = \"\"")),
            "4:10: channels.n.secret",
            "secret is empty",
        ),
        (
            channel_of("slack", "url = \"not a url\""),
            "3:7: channels.n.url",
            "invalid url",
        ),
        (
            channel_of(
                "email",
                "smtp = \"http://x\"\nfrom = \"k@example.com\"\nto = [\"o@example.com\"]",
            ),
            "3:8: channels.n.smtp",
            "invalid smtp url",
        ),
        (
            channel_of(
                "email",
                "smtp = \"smtp://x\"\nfrom = \"not an address\"\nto = [\"o@example.com\"]",
            ),
            "4:8: channels.n.from",
            "invalid from address",
        ),
        (
            channel_of("email", &format!("{mail}to = []")),
            "5:6: channels.n.to",
            "at least one address",
        ),
        (
            channel_of(
                "email",
                &format!("{mail}to = [\"o@example.com\"]\nca_file = \"/nonexistent/ca.pem\""),
            ),
            "6:11: channels.n.ca_file",
            "reading ca_file",
        ),
        (
            channel_of(
                "email",
                "smtp = \"smtps://x\"\nfrom = \"k@example.com\"\nto = [\"o@example.com\"]\ninsecure_plaintext = true",
            ),
            "6:22: channels.n.insecure_plaintext",
            "smtps:// is always encrypted",
        ),
        (
            channel_of("pagerduty", "routing_key = \" \""),
            "3:15: channels.n.routing_key",
            "routing_key is empty",
        ),
        (
            channel_of("ntfy", "url = \"http://x/t\"\ntoken = \" \""),
            "4:9: channels.n.token",
            "token is empty",
        ),
        (
            channel_of("alertmanager", "url = \"http://x:9093/?a=b\""),
            "3:7: channels.n.url",
            "a base URL takes no query",
        ),
    ]);
}

/// Values two checks cannot share, refused at load (they failed at start
/// before), at the second check; a token is never shown.
#[test]
fn values_two_checks_cannot_share_are_refused_at_load() {
    let token = "0123456789abcdef";
    let heartbeats = format!(
        "[checks.a]\nkind = \"heartbeat\"\nperiod = \"1d\"\ntoken = \"{token}\"\n\
         [checks.b]\nkind = \"heartbeat\"\nperiod = \"1d\"\ntoken = \"{token}\"\n"
    );
    let err = one_error(&heartbeats);
    assert!(
        err.starts_with("keeper.toml:5:9: checks.b.token: "),
        "{err}"
    );
    assert!(err.contains("checks.a"), "{err}");
    assert!(!err.contains(token), "{err}");
    let logs = format!(
        "[checks.a]\nkind = \"log\"\ningest = \"web\"\ntoken = \"{token}\"\n\
         [checks.b]\nkind = \"log\"\ningest = \"web\"\ntoken = \"{token}\"\n"
    );
    let err = one_error(&logs);
    assert!(
        err.starts_with("keeper.toml:5:9: checks.b.ingest: "),
        "{err}"
    );
}

/// `check-config` refuses what `run` would: a `ca_file` that is not there.
#[test]
fn check_config_refuses_a_missing_ca_file_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let text = format!(
        "[checks.web]\nkind = \"http\"\nurl = \"https://127.0.0.1:1/\"\nca_file = \"{}\"\n",
        missing.display()
    );
    let out = crate::support::keeper_on_config(dir.path(), &["check-config"], &text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("keeper.toml:4:11: checks.web.ca_file: reading ca_file"),
        "{stderr}"
    );
}

/// A `KEEPER_LISTEN` keeper cannot use is an error naming it, never
/// ignored in favour of the file's address.
#[test]
fn a_keeper_listen_that_is_no_address_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:9400\"\n").unwrap();
    let check = |listen: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
            .args(["check-config", "-c"])
            .arg(&path)
            .env("KEEPER_LISTEN", listen)
            .output()
            .expect("runs")
    };
    let out = check("0.0.0.0:94oo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("KEEPER_LISTEN \"0.0.0.0:94oo\" is not an address and port"),
        "{stderr}"
    );
    let out = check("127.0.0.1:9500");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9500"));
}

/// A spec's problems and the shared keys' are reported in one load.
#[test]
fn spec_problems_and_shared_key_errors_show_together() {
    let errors =
        parse(&check_of("http", "url = \"ftp://x/\"\ninterval = \"0s\"")).expect_err("refused");
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["checks.c.url", "checks.c.interval"], "{errors}");
}
