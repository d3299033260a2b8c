//! The `host` probe against the machine the tests run on: its figures agree
//! with what `free` and `df` say, and a mount that is missing or is not a
//! mount point is red, naming it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keeper::classify::{Thresholds, classify};
use keeper::config::Config;
use keeper::core::{Color, Metric, Severity};
use keeper::core::{Outcome, Sample};
use keeper::probe::{Context, Probe, Spec, host};

const TIMEOUT: Duration = Duration::from_secs(5);

fn probe(toml: &str) -> Probe {
    let spec: host::Spec = toml::from_str(toml).expect("host spec");
    Spec::Host(spec)
        .build("test", &Context::system())
        .expect("build host probe")
}

fn reason(sample: &Sample) -> &str {
    match &sample.outcome {
        Outcome::Down(reason) => reason,
        Outcome::Up | Outcome::Warn(_) => panic!("expected a down sample, got {sample:?}"),
    }
}

fn disk_pcts(sample: &Sample) -> Vec<f64> {
    sample
        .metrics
        .iter()
        .filter(|(m, _)| *m == Metric::DiskPct)
        .map(|(_, v)| *v)
        .collect()
}

/// Output of a command, which must succeed.
fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Used memory as `free -b` reports it: (total − available) / total.
fn free_memory_pct() -> f64 {
    let text = output("free", &["-b"]);
    let mem: Vec<f64> = text
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .expect("a Mem: line from free")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().expect("a number from free"))
        .collect();
    // total used free shared buff/cache available
    (mem[0] - mem[5]) * 100.0 / mem[0]
}

#[tokio::test]
async fn memory_agrees_with_free() {
    let probe = probe("");

    let sample = probe.run(TIMEOUT).await;
    let free = free_memory_pct();

    assert_eq!(sample.outcome, Outcome::Up, "{sample:?}");
    let memory = sample.metric(Metric::MemoryPct).expect("memory_pct");
    assert!((memory - free).abs() < 3.0, "probe {memory}, free {free}");
    assert!(
        sample
            .message
            .starts_with(&format!("memory {memory:.0}%, cpu ")),
        "{}",
        sample.message
    );
}

#[tokio::test]
async fn root_disk_agrees_with_df() {
    let probe = probe("mounts = [\"/\"]");

    let sample = probe.run(TIMEOUT).await;
    let df: f64 = output("df", &["--output=pcent", "/"])
        .lines()
        .nth(1)
        .and_then(|l| l.trim().trim_end_matches('%').parse().ok())
        .expect("a percentage from df");

    assert_eq!(disk_pcts(&sample).len(), 1, "{sample:?}");
    let disk = disk_pcts(&sample)[0];
    // df rounds up; the probe keeps the fraction.
    assert!((disk - df).abs() <= 1.0, "probe {disk}, df {df}");
    assert!(
        sample.message.ends_with(&format!(", disk / {disk:.0}%")),
        "{}",
        sample.message
    );
}

#[tokio::test]
async fn each_mount_is_its_own_disk_metric_named_in_the_message() {
    // /proc is a mount point on every Linux and has no blocks: 0 %.
    let probe = probe("mounts = [\"/\", \"/proc\"]");

    let sample = probe.run(TIMEOUT).await;

    assert!(sample.is_up(), "{sample:?}");
    let disks = disk_pcts(&sample);
    assert_eq!(disks.len(), 2, "{sample:?}");
    assert_eq!(disks[1], 0.0);
    assert!(
        sample
            .message
            .ends_with(&format!(", disk / {:.0}%, /proc 0%", disks[0])),
        "{}",
        sample.message
    );
}

#[tokio::test]
async fn missing_mount_is_red_naming_it() {
    let probe = probe("mounts = [\"/\", \"/keeper-no-such-mount\"]");

    let sample = probe.run(TIMEOUT).await;

    let reason = reason(&sample);
    assert!(
        reason.starts_with("mount /keeper-no-such-mount: no such file or directory; memory "),
        "{reason}"
    );
    // What could be measured still is.
    assert_eq!(disk_pcts(&sample).len(), 1);
    assert!(sample.metric(Metric::MemoryPct).is_some());
    let verdict = classify(&sample, &Thresholds::builtin(), Severity::Critical);
    assert_eq!(
        (verdict.color, verdict.severity),
        (Color::Red, Some(Severity::Critical))
    );
}

#[tokio::test]
async fn directory_that_is_not_a_mount_point_is_red() {
    let dir = tempfile::tempdir().unwrap();
    let unmounted = dir.path().join("data");
    std::fs::create_dir(&unmounted).unwrap();
    let probe = probe(&format!("mounts = [{:?}]", unmounted.display().to_string()));

    let sample = probe.run(TIMEOUT).await;

    assert!(
        reason(&sample).starts_with(&format!("{} is not a mount point", unmounted.display())),
        "{sample:?}"
    );
}

#[tokio::test]
async fn cpu_is_a_percentage_on_the_first_run_and_after() {
    let probe = probe("");

    for run in 0..2 {
        let sample = probe.run(TIMEOUT).await;
        let cpu = sample.metric(Metric::CpuPct).expect("cpu_pct");
        assert!((0.0..=100.0).contains(&cpu), "run {run}: cpu {cpu}");
        assert!(
            sample.message.contains(&format!(", cpu {cpu:.0}%, ")),
            "{}",
            sample.message
        );
    }
}

// ---- config ---------------------------------------------------------------

fn config_error(keys: &str) -> String {
    crate::support::config_error(&format!("[checks.box]\nkind = \"host\"\n{keys}\n"))
}

#[test]
fn host_config_mistakes_are_refused_with_line_and_column() {
    let err = config_error("mount = [\"/\"]");
    assert!(
        err.starts_with("keeper.toml:3:1: checks.box.mount:"),
        "{err}"
    );
    assert!(err.contains("unknown field"), "{err}");

    let err = config_error("mounts = [\"var\"]");
    assert!(err.starts_with("keeper.toml:3:10: checks.box"), "{err}");
    assert!(err.contains("\"var\" is not an absolute path"), "{err}");

    let err = config_error("mounts = []");
    assert!(err.starts_with("keeper.toml:3:10: checks.box"), "{err}");
    assert!(err.contains("at least one mount"), "{err}");
}

#[test]
fn host_config_defaults_to_the_root_mount() {
    let text = "[checks.box]\nkind = \"host\"\n";
    let config = Config::parse(Path::new("keeper.toml"), text, &|_| None).expect("valid");
    let Spec::Host(spec) = &config.checks[0].probe else {
        panic!("host spec")
    };
    assert_eq!(spec.mounts, vec![std::path::PathBuf::from("/")]);
    assert_eq!(config.checks[0].probe.target(), "this host (/)");
}
