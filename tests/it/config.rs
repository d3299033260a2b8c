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
