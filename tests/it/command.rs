//! The `command` probe against real processes: the Nagios exit-code
//! convention, the message and perfdata taken from output, a command that
//! never ends (killed at the timeout with its children), one that prints
//! 100 MiB, and its config errors.

use std::path::Path;
use std::time::Duration;

use keeper::config::Config;
use keeper::core::{Outcome, Sample};
use keeper::probe::command::{self, MESSAGE_LIMIT};
use keeper::probe::{Context, Probe, Spec};

use crate::support;
use crate::support::app::spawn_app;
use crate::support::config::{Check, TestConfig};
use crate::support::db::Backend;

/// Far longer than any run here should take: a hang fails instead of blocking the suite.
const HANG: Duration = Duration::from_secs(60);

fn probe(toml: &str) -> Probe {
    let spec: command::Spec = toml::from_str(toml).expect("command spec");
    Spec::Command(spec)
        .build("test", &Context::system())
        .expect("build command probe")
}

async fn run(toml: &str, timeout: Duration) -> Sample {
    tokio::time::timeout(HANG, probe(toml).run(timeout))
        .await
        .expect("the probe returned")
}

async fn sh(script: &str) -> Sample {
    let toml = format!("command = [{script:?}]\nshell = true\n");
    run(&toml, Duration::from_secs(20)).await
}

fn down_reason(sample: &Sample) -> &str {
    match &sample.outcome {
        Outcome::Down(reason) => reason,
        other => panic!("expected a down sample, got {other:?} in {sample:?}"),
    }
}

/// Whether process `pid` is no more: gone, or a zombie waiting for init to reap it.
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            matches!(state, Some(Some('Z' | 'X')))
        }
    }
}

#[tokio::test]
async fn exit_codes_give_green_yellow_red_and_unknown() {
    let s = sh("echo 'OK - all fine'; exit 0").await;
    assert_eq!(s.outcome, Outcome::Up, "{s:?}");
    assert_eq!(s.message, "OK - all fine");

    let s = sh("echo 'WARNING - load 7'; exit 1").await;
    assert_eq!(s.outcome, Outcome::Warn("WARNING - load 7".into()), "{s:?}");

    let s = sh("echo 'CRITICAL - disk full'; exit 2").await;
    assert_eq!(down_reason(&s), "CRITICAL - disk full");

    let s = sh("echo 'UNKNOWN - cannot parse'; exit 3").await;
    assert_eq!(down_reason(&s), "unknown: UNKNOWN - cannot parse");

    let s = sh("echo 'odd'; exit 42").await;
    assert_eq!(down_reason(&s), "unknown: exit 42: odd");

    let s = sh("echo 'about to die'; kill -9 $$").await;
    assert_eq!(
        down_reason(&s),
        "unknown: killed by signal 9 (SIGKILL): about to die"
    );

    let s = sh("exit 0").await;
    assert_eq!(s.outcome, Outcome::Up);
    assert_eq!(s.message, "exit 0, no output");
}

#[tokio::test]
async fn stderr_is_the_message_when_stdout_is_empty() {
    let s = sh("echo 'CRITICAL - backup missing' >&2; exit 2").await;
    assert_eq!(down_reason(&s), "CRITICAL - backup missing");
    // stdout wins when it has something to say.
    let s = sh("echo noise >&2; echo 'OK - backup 3h old'").await;
    assert_eq!(s.message, "OK - backup 3h old");
}

#[tokio::test]
async fn perfdata_becomes_sample_values() {
    let s = sh(concat!(
        "echo \"DISK OK - free space: / 3326 MB | /=2MB;5948;5958;0;5968 'rt time'=0.25s\"; ",
        "echo '/ 15272 MB (77%);'; ",
        "echo '/boot 68 MB (69%); | /boot=68B;88;93'; ",
        "echo 'load=12.5%;80;90 junk'"
    ))
    .await;
    assert_eq!(s.outcome, Outcome::Up, "{s:?}");
    assert_eq!(s.message, "DISK OK - free space: / 3326 MB");
    assert_eq!(
        s.values,
        vec![
            ("/_bytes".to_string(), 2.0 * 1024.0 * 1024.0),
            ("rt time_ms".to_string(), 250.0),
            ("/boot_bytes".to_string(), 68.0),
            ("load_pct".to_string(), 12.5),
        ]
    );
}

#[tokio::test]
async fn argv_is_passed_as_is_without_a_shell() {
    // One argument with spaces, `$HOME` and a `;` that no shell ever sees.
    let s = run(
        r#"command = ["printf", "%s | n=%d\n", "a b; $HOME", "7"]"#,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(s.outcome, Outcome::Up, "{s:?}");
    assert_eq!(s.message, "a b; $HOME");
    assert_eq!(s.values, vec![("n".to_string(), 7.0)]);
}

#[tokio::test]
async fn shell_true_runs_the_line_through_sh() {
    let s = sh("x=6; echo \"answer $((x * 7)) | answer=$((x * 7))\"").await;
    assert_eq!(s.message, "answer 42");
    assert_eq!(s.values, vec![("answer".to_string(), 42.0)]);
}

#[tokio::test]
async fn a_command_that_never_ends_is_killed_with_its_children_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 1000 & echo $! > {p}; echo $$ >> {p}; echo started; sleep 1000",
        p = pids.display()
    );
    let toml = format!("command = [{script:?}]\nshell = true\n");
    let s = run(&toml, Duration::from_secs(1)).await;
    assert_eq!(down_reason(&s), "timed out after 1s, killed");

    let pids: Vec<u32> = std::fs::read_to_string(&pids)
        .expect("the script wrote its pids")
        .lines()
        .map(|l| l.trim().parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids {
        support::wait_until(
            &format!("process {pid} is dead"),
            Duration::from_secs(10),
            || async move { is_dead(pid) },
        )
        .await;
    }
}

#[tokio::test]
async fn what_a_finished_command_left_running_is_killed() {
    // The background sleep holds stdout open: without the group kill the
    // run would wait for it until the timeout.
    let s = run(
        "command = [\"sleep 1000 & echo started $!\"]\nshell = true\n",
        HANG,
    )
    .await;
    assert_eq!(s.outcome, Outcome::Up, "{s:?}");
    let pid: u32 = s
        .message
        .strip_prefix("started ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected message {:?}", s.message));
    support::wait_until(
        "the background sleep is dead",
        Duration::from_secs(10),
        || async move { is_dead(pid) },
    )
    .await;
}

#[tokio::test]
async fn a_hundred_mebibytes_of_output_is_read_and_the_message_capped() {
    let s = sh("head -c 104857600 /dev/zero | tr '\\0' 'a'; echo; echo '| a=1'; exit 1").await;
    match &s.outcome {
        Outcome::Warn(reason) => assert_eq!(reason, &s.message),
        other => panic!("expected warn, got {other:?}"),
    }
    assert_eq!(s.message.chars().count(), MESSAGE_LIMIT + 1);
    assert!(s.message.starts_with("aaaa") && s.message.ends_with('…'));
    // Only the first 64 KiB were kept: the perfdata at the end never made it.
    assert!(s.values.is_empty(), "{:?}", s.values);
}

#[tokio::test]
async fn endless_output_is_stopped_at_the_timeout() {
    let s = run("command = [\"yes\"]", Duration::from_secs(1)).await;
    assert_eq!(down_reason(&s), "timed out after 1s, killed");
}

#[tokio::test]
async fn a_missing_or_unrunnable_program_is_named() {
    let s = run(
        r#"command = ["/nonexistent/check_thing", "-w", "1"]"#,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        down_reason(&s),
        "cannot run \"/nonexistent/check_thing\": no such file or directory"
    );

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("check_not_executable");
    std::fs::write(&script, "#!/bin/sh\necho OK\n").unwrap();
    let toml = format!("command = [{:?}]", script.display().to_string());
    let s = run(&toml, Duration::from_secs(5)).await;
    assert_eq!(
        down_reason(&s),
        format!(
            "cannot run {:?}: permission denied",
            script.display().to_string()
        )
    );
}

// ---- config -----------------------------------------------------------

#[test]
fn an_empty_command_is_refused_with_line_and_column() {
    let err = support::config_error("[checks.backup]\nkind = \"command\"\ncommand = []\n");
    assert!(
        err.starts_with("keeper.toml:3:11: checks.backup.command: command must not be empty"),
        "{err}"
    );

    let err =
        support::config_error("[checks.backup]\nkind = \"command\"\ncommand = [\"\", \"-v\"]\n");
    assert!(err.starts_with("keeper.toml:3:11:"), "{err}");
    assert!(err.contains("the program"), "{err}");

    let err = support::config_error("[checks.backup]\nkind = \"command\"\n");
    assert!(err.contains("missing field `command`"), "{err}");
}

#[test]
fn shell_wants_one_string_and_keys_are_strict() {
    let err = support::config_error(
        "[checks.backup]\nkind = \"command\"\ncommand = [\"echo\", \"hi\"]\nshell = true\n",
    );
    assert!(err.starts_with("keeper.toml:1:"), "{err}");
    assert!(
        err.contains("with shell = true, command must be one string"),
        "{err}"
    );

    let err = support::config_error(
        "[checks.backup]\nkind = \"command\"\ncommand = [\"true\"]\nshell = \"yes\"\n",
    );
    assert!(err.starts_with("keeper.toml:4:9:"), "{err}");

    let err = support::config_error(
        "[checks.backup]\nkind = \"command\"\ncommand = [\"true\"]\nshel = true\n",
    );
    assert!(err.starts_with("keeper.toml:4:1:"), "{err}");
    assert!(err.contains("unknown field `shel`"), "{err}");
}

#[test]
fn a_good_command_check_loads() {
    let config = Config::parse(
        Path::new("keeper.toml"),
        "[checks.load]\nkind = \"command\"\ncommand = [\"/usr/lib/nagios/plugins/check_load\", \"-w\", \"5\"]\n",
        &|_| None,
    )
    .expect("loads");
    let check = config.check("load").unwrap();
    assert_eq!(check.probe.kind(), "command");
    // Only the program: arguments may carry secrets (see secrets.rs).
    assert_eq!(check.probe.target(), "/usr/lib/nagios/plugins/check_load");
}

#[tokio::test]
async fn a_plugins_warning_and_perfdata_reach_the_api() {
    let config = TestConfig::new().check(
        Check::new("disk", "command")
            .set("shell", true)
            .set(
                "command",
                vec!["echo 'DISK WARNING - / is 83% full | used=83%;80;90 free=4.5GB'; exit 1"],
            )
            .interval("200ms")
            .set("failures_before_alert", 1),
    );
    let app = spawn_app(Backend::Sqlite, config).await;
    let samples = support::wait_for("a stored sample", Duration::from_secs(20), || async {
        let s = app.get_json("/api/v1/checks/disk/samples").await;
        (!s.as_array().unwrap().is_empty()).then_some(s)
    })
    .await;
    let sample = &samples[0];
    assert_eq!(sample["color"], "yellow", "{sample}");
    assert_eq!(
        sample["message"], "DISK WARNING - / is 83% full",
        "{sample}"
    );
    assert_eq!(sample["metrics"]["used_pct"], 83.0, "{sample}");
    assert_eq!(
        sample["metrics"]["free_bytes"],
        4.5 * 1024.0 * 1024.0 * 1024.0,
        "{sample}"
    );
    let check = app.check("disk").await;
    assert_eq!(check["color"], "yellow", "{check}");
    assert_eq!(check["severity"], "medium", "{check}");
    app.stop().await;
}
