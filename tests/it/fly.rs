//! The `fly` probe against a loopback stand-in for the Fly.io Machines API
//! (`support::target::Target` serving the documented JSON): every machine
//! state, checks passing / warning / critical, an OOM exit event, a 401,
//! garbage, a slow and an endless answer; and its config mistakes refused.
//! Probes are built the way keeper builds them: config text → check → probe.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use keeper::classify::classify;
use keeper::config::{CheckConfig, Config};
use keeper::core::{Color, Severity};
use keeper::core::{Outcome, Sample};
use keeper::probe::{Context, Probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::task::AbortOnDropHandle;

use crate::support::{
    self,
    target::{Misbehaving, Target, TestCa},
};

const TIMEOUT: Duration = Duration::from_secs(5);
const TOKEN: &str = "fo1_s3cret-token-value";

/// Parses a config of one check `fly` with `keys`; `${FLY_API_TOKEN}` is [`TOKEN`].
fn parse(keys: &str) -> Result<Config, String> {
    let text = format!("[checks.fly]\nkind = \"fly\"\n{keys}\n");
    Config::parse(Path::new("keeper.toml"), &text, &|name| {
        (name == "FLY_API_TOKEN").then(|| TOKEN.to_string())
    })
    .map_err(|e| e.to_string())
}

/// The check and its built probe, for app `my-app` at `api_url`.
fn check(api_url: &str, extra: &str) -> (CheckConfig, Probe) {
    support::init();
    let config = parse(&format!(
        "app = \"my-app\"\ntoken = \"${{FLY_API_TOKEN}}\"\napi_url = {api_url:?}\n{extra}"
    ))
    .expect("fly check config");
    let check = CheckConfig::clone(&config.checks[0]);
    let probe = check
        .probe
        .build("test", &Context::system())
        .expect("build fly probe");
    (check, probe)
}

fn verdict(check: &CheckConfig, sample: &Sample) -> (Color, Option<Severity>) {
    let v = classify(sample, &check.thresholds, check.down_severity);
    (v.color, v.severity)
}

fn value(sample: &Sample, name: &str) -> f64 {
    sample
        .values
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no value {name} in {sample:?}"))
}

/// Milliseconds since the epoch, `minutes` ago.
fn ms_ago(minutes: i64) -> i64 {
    Utc::now().timestamp_millis() - minutes * 60_000
}

/// A machine in the documented shape (external-apis.md §1), with `checks`
/// and `events` as given (JSON arrays).
fn machine(id: &str, state: &str, region: &str, checks: &str, events: &str) -> String {
    format!(
        r#"{{
  "id": "{id}", "name": "snowy-leaf-4201", "state": "{state}", "region": "{region}",
  "instance_id": "01GH8YVWQ3ZJK96N1X2D9M7ABC", "private_ip": "fdaa:0:af8e:a7b:1:2:3:2",
  "created_at": "2022-11-05T15:36:21Z", "updated_at": "2022-11-22T21:17:53Z",
  "image_ref": {{"registry": "registry.fly.io", "repository": "my-app", "tag": "deployment-01H",
                "digest": "sha256:9daa", "labels": {{"fly.version": "v0.0.32"}}}},
  "config": {{
    "image": "registry.fly.io/my-app:deployment-01H",
    "guest": {{"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024}},
    "metadata": {{"fly_platform_version": "v2", "fly_process_group": "app", "fly_release_version": "42"}},
    "checks": {{"vm": {{"type": "http", "port": 5500, "interval": "1m0s", "timeout": "10s", "path": "/flycheck/vm"}}}},
    "restart": {{"policy": "always"}}, "services": []
  }},
  "events": {events},
  "checks": {checks},
  "host_status": "ok", "cordoned": false, "nonce": "",
  "containers": [{{"name": "app", "state": "running"}}]
}}"#
    )
}

fn passing(name: &str) -> String {
    format!(
        r#"{{"name": "{name}", "status": "passing", "output": "[✓] checkDisk: 2.89 GB (73.8%) free", "updated_at": "2022-11-22T22:25:29Z"}}"#
    )
}

/// A started machine with two passing checks and a quiet event history.
fn healthy(id: &str, region: &str) -> String {
    let events = format!(
        r#"[{{"id": "01GJGK8", "type": "start", "status": "started", "source": "flyd", "timestamp": {}}},
            {{"id": "01GJGK7", "type": "launch", "status": "created", "source": "user", "timestamp": {}}}]"#,
        ms_ago(30),
        ms_ago(31)
    );
    let checks = format!(
        "[{}, {}]",
        passing("vm"),
        passing("servicecheck-00-http-8080")
    );
    machine(id, "started", region, &checks, &events)
}

fn list(machines: &[String]) -> String {
    format!("[{}]", machines.join(",\n"))
}

#[tokio::test]
async fn all_started_with_passing_checks_is_green_and_reads_like_flyctl_status() {
    let api = Target::start().await;
    api.set_body(list(&[
        healthy("148e127a0b4589", "fra"),
        healthy("3d8d9020a11111", "iad"),
        healthy("5683d2e2f33333", "fra"),
    ]));
    let (check, probe) = check(&api.url(""), "");

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(sample.outcome, Outcome::Up, "{sample:?}");
    assert_eq!(
        sample.message,
        "3/3 machines started (fra, iad); 6 checks passing"
    );
    assert_eq!(value(&sample, "machines_started"), 3.0);
    assert_eq!(value(&sample, "machines_total"), 3.0);
    assert_eq!(verdict(&check, &sample), (Color::Green, None));
    let seen = &api.recorded()[0];
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/v1/apps/my-app/machines");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn fly_macaroon_tokens_go_out_with_the_flyv1_scheme() {
    support::init();
    let api = Target::start().await;
    api.set_body(list(&[healthy("148e127a0b4589", "fra")]));
    for (written, sent) in [
        ("FlyV1 fm2_lJPE,fm2_abc", "FlyV1 fm2_lJPE,fm2_abc"),
        ("fm2_lJPE,fm2_abc", "FlyV1 fm2_lJPE,fm2_abc"),
        ("Bearer plain", "Bearer plain"),
    ] {
        let config = parse(&format!(
            "app = \"my-app\"\ntoken = {written:?}\napi_url = {:?}",
            api.url("")
        ))
        .expect("config");
        let probe = config.checks[0]
            .probe
            .build("test", &Context::system())
            .unwrap();
        assert!(probe.run(TIMEOUT).await.is_up());
        let last = api.recorded().pop().expect("a request");
        assert_eq!(
            last.header("authorization"),
            Some(sent),
            "token {written:?}"
        );
    }
}

#[tokio::test]
async fn every_machine_state_is_named_and_only_started_ones_count() {
    let states = [
        "created",
        "started",
        "stopped",
        "suspended",
        "failed",
        "creating",
        "starting",
        "stopping",
        "restarting",
        "suspending",
        "launch_failed",
        "updating",
        "replacing",
        "hibernating", // not a state Fly documents: named as it came
    ];
    let mut machines: Vec<String> = states
        .iter()
        .enumerate()
        .map(|(i, state)| machine(&format!("m{i:02}"), state, "ams", "[]", "[]"))
        .collect();
    // Gone, or not part of the app's service: not counted at all.
    for (i, state) in ["destroyed", "destroying", "replaced", "migrated"]
        .iter()
        .enumerate()
    {
        machines.push(machine(&format!("x{i}"), state, "ams", "[]", "[]"));
    }
    machines.push(
        r#"{"id": "r0", "state": "started", "config": {"metadata": {"fly_process_group": "fly_app_release_command"}}}"#
            .into(),
    );
    let api = Target::start().await;
    api.set_body(list(&machines));
    let (check, probe) = check(&api.url(""), "");

    let sample = probe.run(TIMEOUT).await;

    assert!(matches!(sample.outcome, Outcome::Warn(_)), "{sample:?}");
    assert_eq!(
        sample.message,
        "1/14 machines started (ams); m00 created (ams); m02 stopped (ams); \
         m03 suspended (ams); m04 failed (ams); m05 creating (ams); … and 8 more"
    );
    assert_eq!(value(&sample, "machines_started"), 1.0);
    assert_eq!(value(&sample, "machines_total"), 14.0);
    assert_eq!(
        verdict(&check, &sample),
        (Color::Yellow, Some(Severity::Medium))
    );

    // The ones cut from that message, one at a time: each named as it came.
    for state in &states[6..] {
        api.set_body(list(&[
            healthy("148e127a0b4589", "fra"),
            machine("9e784e1c55555", state, "ord", "[]", "[]"),
        ]));
        let sample = probe.run(TIMEOUT).await;
        assert_eq!(
            sample.message,
            format!("1/2 machines started (fra); 9e784e1c {state} (ord)")
        );
    }
}

#[tokio::test]
async fn no_machine_started_is_red_at_the_checks_down_severity() {
    let api = Target::start().await;
    api.set_body(list(&[
        machine("148e127a0b4589", "stopped", "fra", "[]", "[]"),
        machine("3d8d9020a11111", "suspended", "iad", "[]", "[]"),
    ]));
    let (check, probe) = check(&api.url(""), "down_severity = \"high\"");

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(
        sample.outcome,
        Outcome::Down(
            "0/2 machines started; 148e127a stopped (fra); 3d8d9020 suspended (iad)".into()
        )
    );
    assert_eq!(verdict(&check, &sample), (Color::Red, Some(Severity::High)));
    assert_eq!(value(&sample, "machines_started"), 0.0);

    api.set_body("[]");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(sample.outcome, Outcome::Down("no machines".into()));
}

#[tokio::test]
async fn a_warning_check_is_yellow_and_a_critical_one_red() {
    let api = Target::start().await;
    let (check, probe) = check(&api.url(""), "");
    let with_vm_check = |status: &str, output: &str| {
        let checks = format!(
            r#"[{{"name": "vm", "status": "{status}", "output": {output:?}, "updated_at": "2022-11-22T22:25:29Z"}}, {}]"#,
            passing("role")
        );
        list(&[
            machine("148e127a0b4589", "started", "fra", &checks, "[]"),
            healthy("3d8d9020a11111", "iad"),
            machine("5683d2e2f33333", "stopped", "ams", "[]", "[]"),
        ])
    };

    api.set_body(with_vm_check(
        "warning",
        "[!] checkDisk: 310 MB (7.9%) free",
    ));
    let sample = probe.run(TIMEOUT).await;
    assert!(matches!(sample.outcome, Outcome::Warn(_)), "{sample:?}");
    assert_eq!(
        sample.message,
        "2/3 machines started (fra, iad); 5683d2e2 stopped (ams); \
         check \"vm\" warning on 148e127a: [!] checkDisk: 310 MB (7.9%) free"
    );
    assert_eq!(
        verdict(&check, &sample),
        (Color::Yellow, Some(Severity::Medium))
    );

    api.set_body(with_vm_check(
        "critical",
        "[✗] checkDisk: 12 MB (0.3%) free\n[✓] checkLoad: load averages: 0.01 0.02 0.00",
    ));
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.message,
        "2/3 machines started (fra, iad); check \"vm\" critical on 148e127a: \
         [✗] checkDisk: 12 MB (0.3%) free; 5683d2e2 stopped (ams)"
    );
    assert_eq!(
        verdict(&check, &sample),
        (Color::Red, Some(Severity::Critical))
    );
}

#[tokio::test]
async fn a_recent_oom_kill_is_yellow_and_an_old_one_is_forgotten() {
    let api = Target::start().await;
    let (check, probe) = check(&api.url(""), "");
    let oom_killed = |minutes_ago: i64| {
        let events = format!(
            r#"[
  {{"id": "01GJGK9", "type": "start", "status": "started", "source": "flyd", "timestamp": {}}},
  {{"id": "01GJGK8", "type": "exit", "status": "stopped", "source": "flyd", "timestamp": {},
   "request": {{"exit_event": {{"exit_code": 137, "oom_killed": true, "requested_stop": false,
               "restarting": true, "guest_exit_code": 0, "guest_signal": -1, "signal": -1,
               "exited_at": "2022-11-22T21:17:51.924Z"}}, "restart_count": 2}}}},
  {{"id": "01GJGK7", "type": "launch", "status": "created", "source": "user", "timestamp": {}}}
]"#,
            ms_ago(minutes_ago) + 1000,
            ms_ago(minutes_ago),
            ms_ago(600)
        );
        list(&[
            machine(
                "148e127a0b4589",
                "started",
                "fra",
                &format!("[{}]", passing("vm")),
                &events,
            ),
            healthy("3d8d9020a11111", "iad"),
        ])
    };

    api.set_body(oom_killed(12));
    let sample = probe.run(TIMEOUT).await;
    assert!(matches!(sample.outcome, Outcome::Warn(_)), "{sample:?}");
    assert_eq!(
        sample.message,
        "2/2 machines started (fra, iad); 148e127a OOM-killed (12m ago)"
    );
    assert_eq!(
        verdict(&check, &sample),
        (Color::Yellow, Some(Severity::Medium))
    );

    api.set_body(oom_killed(90));
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(sample.outcome, Outcome::Up, "{sample:?}");
    assert_eq!(
        sample.message,
        "2/2 machines started (fra, iad); 3 checks passing"
    );
}

#[tokio::test]
async fn minimal_machines_with_unknown_fields_decode() {
    let api = Target::start().await;
    // The docs' own list example has no checks, no events, no updated_at.
    api.set_body(
        r#"[{"id": "148e127a0b4589", "state": "started", "region": "fra", "new_field": {"x": [1]}},
            {"id": "3d8d9020a11111", "state": "started", "checks": null, "events": null, "config": null}]"#,
    );
    let (_, probe) = check(&api.url(""), "");

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(sample.outcome, Outcome::Up, "{sample:?}");
    assert_eq!(sample.message, "2/2 machines started (fra)");
}

#[tokio::test]
async fn unauthorized_is_red_and_never_shows_the_token() {
    let api = Target::start().await;
    let (check, probe) = check(&api.url(""), "");
    for status in [401, 403] {
        api.set_status(status);
        api.set_body(format!(
            r#"{{"error":"Authenticate: token validation error for {TOKEN}"}}"#
        ));

        let sample = probe.run(TIMEOUT).await;

        let words = if status == 401 {
            "Unauthorized"
        } else {
            "Forbidden"
        };
        assert_eq!(
            sample.message,
            format!(
                "Machines API: unauthorized: check the token \
                 (HTTP {status} {words}: Authenticate: token validation error for ***)"
            )
        );
        assert!(!format!("{sample:?}").contains(TOKEN));
        assert_eq!(
            verdict(&check, &sample),
            (Color::Red, Some(Severity::Critical))
        );
    }
}

#[tokio::test]
async fn server_errors_are_red_with_status_and_what_the_server_said() {
    let api = Target::start().await;
    let (_, probe) = check(&api.url(""), "");

    api.set_status(503);
    api.set_body("<html>\n<body>upstream   overloaded</body>\n</html>");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.outcome,
        Outcome::Down(
            "Machines API: HTTP 503 Service Unavailable: <html> <body>upstream overloaded</body> </html>"
                .into()
        )
    );

    api.set_status(404);
    api.set_body(r#"{"error":"app not found","status":"unknown"}"#);
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.message,
        "Machines API: HTTP 404 Not Found: app not found"
    );
}

#[tokio::test]
async fn garbage_is_red_invalid_json() {
    let api = Target::start().await;
    let (_, probe) = check(&api.url(""), "");

    api.set_body("<html>Service temporarily unavailable</html>");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.outcome,
        Outcome::Down(
            "invalid JSON from the Machines API: expected value at line 1 column 1".into()
        )
    );

    api.set_body(r#"{"machines": []}"#);
    let sample = probe.run(TIMEOUT).await;
    assert!(
        sample.message.starts_with(
            "invalid JSON from the Machines API: invalid type: map, expected a sequence"
        ),
        "{}",
        sample.message
    );

    // Bytes that are not HTTP at all.
    let junk = Misbehaving::garbage().await;
    let (_, probe) = check(&junk.url(""), "");
    let sample = probe.run(TIMEOUT).await;
    assert_eq!(
        sample.outcome,
        Outcome::Down(format!(
            "Machines API at {}: invalid HTTP version parsed",
            junk.host_port()
        ))
    );
}

#[tokio::test]
async fn a_slow_answer_is_red_at_the_timeout() {
    let api = Target::start().await;
    api.set_body(list(&[healthy("148e127a0b4589", "fra")]));
    api.set_delay(Duration::from_secs(60));
    let (check, probe) = check(&api.url(""), "");

    let sample = probe.run(Duration::from_secs(1)).await;

    assert_eq!(sample.outcome, Outcome::Down("timed out after 1s".into()));
    assert_eq!(
        verdict(&check, &sample),
        (Color::Red, Some(Severity::Critical))
    );
    assert_eq!(api.requests(), 1);
}

/// A server that answers 200 without a length and then sends `[` and spaces
/// forever; returns its URL.
async fn endless_json() -> (String, AbortOnDropHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = tcp.read(&mut head).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[")
                    .await;
                let spaces = vec![b' '; 64 * 1024];
                while tcp.write_all(&spaces).await.is_ok() {}
            });
        }
    });
    (url, AbortOnDropHandle::new(server))
}

#[tokio::test]
async fn a_huge_answer_is_red_and_not_read_whole() {
    let (url, _server) = endless_json().await;
    let (_, probe) = check(&url, "");

    let sample = probe.run(Duration::from_secs(30)).await;
    let at = url.trim_start_matches("http://");
    assert_eq!(
        sample.outcome,
        Outcome::Down(format!("Machines API at {at}: answer larger than 4 MiB"))
    );

    // One that announces its size is refused before reading.
    let huge = Misbehaving::huge_body(64 * 1024 * 1024).await;
    let (_, probe) = check(&huge.url(""), "");
    let sample = probe.run(Duration::from_secs(30)).await;
    assert_eq!(
        sample.message,
        format!(
            "Machines API at {}: answer larger than 4 MiB",
            huge.host_port()
        )
    );
}

#[tokio::test]
async fn an_unreachable_api_is_red_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_, probe) = check(&format!("http://127.0.0.1:{port}"), "");

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(
        sample.outcome,
        Outcome::Down(format!(
            "Machines API at 127.0.0.1:{port}: connection refused"
        ))
    );
}

#[tokio::test]
async fn an_api_with_an_untrusted_certificate_is_red_naming_why() {
    support::init();
    let leaf = TestCa::new().leaf_expiring_in(chrono::Duration::days(30));
    let api = Target::start_tls(&leaf).await;
    api.set_body(list(&[healthy("148e127a0b4589", "fra")]));
    let (_, probe) = check(&api.url(""), "");

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(
        sample.outcome,
        Outcome::Down(format!(
            "Machines API at {}: unknown issuer: the certificate chain does not lead to a trusted CA",
            api.host_port()
        ))
    );
    assert_eq!(api.requests(), 0);
}

#[test]
fn fly_config_mistakes_are_refused_with_line_and_column() {
    let err = parse("app = \"my-app\"\ntoken = \"t\"\nap_url = \"http://x\"").unwrap_err();
    assert!(err.starts_with("keeper.toml:5:1: checks.fly"), "{err}");
    assert!(err.contains("unknown field `ap_url`"), "{err}");

    let err = parse("app = \"my-app\"\ntoken = 42").unwrap_err();
    assert!(err.starts_with("keeper.toml:4:9: checks.fly"), "{err}");
    assert!(
        err.contains("invalid type: integer `42`, expected a string"),
        "{err}"
    );

    let err = parse("app = \"my-app\"").unwrap_err();
    assert!(err.contains("missing field `token`"), "{err}");

    // Values that parse but cannot be probed are refused at load too, at their key.
    let err = parse("app = \"my-app\"\ntoken = \"t\"\napi_url = \"ftp://x\"").unwrap_err();
    assert_eq!(
        err,
        "keeper.toml:5:11: checks.fly.api_url: api_url \"ftp://x\": scheme \"ftp\" is not http or https"
    );
    let err = parse("app = \"my-app\"\ntoken = \"\"").unwrap_err();
    assert!(
        err.starts_with("keeper.toml:4:9: checks.fly.token: token: empty"),
        "{err}"
    );
}
