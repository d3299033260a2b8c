//! The `fly` probe: lists an app's machines through the Fly.io Machines API
//! (`GET {api_url}/v1/apps/{app}/machines`) and judges them as a person
//! reading `flyctl status` would: how many are started and where, their
//! health checks, and recent OOM kills, crashes and restarts.
//!
//! Between runs it compares the releases the machines run and records a
//! deployment when a new one shows up ([`releases`]), through the context's
//! [`DeploymentSink`](super::DeploymentSink).
//!
//! Decoding is lenient (unknown states and fields, missing fields and `null`s
//! are fine: see `../shared/reference/external-apis.md` §1); the judging is a
//! pure function of the machines and the time, tested without a server.

mod releases;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use http::header::HeaderValue;
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::api::{self, Token};
use super::{BuildError, Context, DeploymentSink, Kind};
use crate::core::Sample;
use crate::core::SpecProblem;
use crate::core::deployment::NewDeployment;

/// How far back events count: an OOM kill or a crash keeps the check yellow
/// this long, enough to be seen (and to outlast `failures_before_alert`).
const RECENT: Duration = Duration::from_secs(3600);
/// The most problems a message lists; the rest are counted.
const MAX_LISTED: usize = 5;
/// How long recording a deployment it saw may hold up a run.
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// `[checks.NAME]` keys of kind `fly`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub app: String,
    /// `Bearer`, or `FlyV1` for macaroons (`fm2_…`); see [`Token::authorization`].
    pub token: Token,
    #[serde(default = "default_api_url")]
    pub api_url: String,
}

fn default_api_url() -> String {
    "https://api.machines.dev".into()
}

impl Spec {
    fn app(&self) -> Result<&str, SpecProblem> {
        let app = self.app.trim();
        if app.is_empty() || app.contains(['/', ' ']) {
            return Err(SpecProblem::new(
                "app",
                format!("app {:?}: not a Fly app name", self.app),
            ));
        }
        Ok(app)
    }
}

impl Kind for Spec {
    const NAME: &'static str = "fly";
    type Probe = Probe;

    fn target(&self) -> String {
        let api_url = crate::core::redact::url(&self.api_url);
        format!(
            "{}/v1/apps/{}/machines",
            api_url.trim_end_matches('/'),
            self.app
        )
    }

    fn problems(&self) -> Vec<SpecProblem> {
        [
            self.app().err(),
            api::parse_url("api_url", &self.api_url).err(),
            self.token.authorization().err(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn build(&self, check: &str, ctx: &Context) -> Result<Probe, BuildError> {
        let app = self.app()?;
        let base = api::parse_url("api_url", &self.api_url)?;
        Ok(Probe {
            url: api::join(&base, &["v1", "apps", app, "machines"]),
            authorization: self.token.authorization()?,
            token: self.token.clone(),
            client: api::client(&ctx.roots)?,
            check: check.to_string(),
            app: app.to_string(),
            deployments: ctx.deployments.clone(),
            releases: Mutex::new(None),
        })
    }
}

/// A built `fly` probe: the URL, the header and the client, made once; and
/// the releases seen on the last run.
#[derive(Debug)]
pub struct Probe {
    url: Url,
    authorization: HeaderValue,
    token: Token,
    client: reqwest::Client,
    check: String,
    app: String,
    /// Where deployments it sees go; `None` outside the daemon.
    deployments: Option<Arc<dyn DeploymentSink>>,
    /// The releases the machines ran on the last run; `None` before the first.
    releases: Mutex<Option<BTreeSet<releases::Release>>>,
}

impl Probe {
    pub async fn run(&self, _deadline: Instant) -> Sample {
        let reply = match api::get(&self.client, &self.url, Some(&self.authorization)).await {
            Ok(reply) => reply,
            Err(reason) => {
                let at = api::host_port(&self.url);
                return Sample::down(format!("Machines API at {at}: {reason}"));
            }
        };
        if !reply.status.is_success() {
            let reason = api::status_reason(reply.status, &reply.body, Some(&self.token));
            return Sample::down(format!("Machines API: {reason}"));
        }
        let machines = match serde_json::from_slice::<Vec<Machine>>(&reply.body) {
            Ok(machines) => machines,
            Err(e) => return Sample::down(format!("invalid JSON from the Machines API: {e}")),
        };
        self.watch_releases(&machines).await;
        judge(&machines, Utc::now().timestamp_millis())
    }

    /// Records a deployment for each release the machines run that the last
    /// run did not see. A release whose record failed is looked for again
    /// next run; a run listing no release changes nothing.
    async fn watch_releases(&self, machines: &[Machine]) {
        let Some(sink) = &self.deployments else {
            return;
        };
        let listed: Vec<&Machine> = machines.iter().filter(|m| m.is_listed()).collect();
        let now = releases::releases(&listed);
        if now.is_empty() {
            return;
        }
        let before = self
            .releases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut recorded = true;
        for (release, ids) in releases::new_since(before.as_ref(), &now) {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let deployment = NewDeployment {
                app: self.app.clone(),
                version: release.label(),
                description: release.describe(&ids),
                by: "fly".into(),
                at: Utc::now(),
            };
            let result = tokio::time::timeout(RECORD_TIMEOUT, sink.record(&self.check, deployment));
            let problem = match result.await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(_) => format!("no answer within {RECORD_TIMEOUT:?}"),
            };
            tracing::warn!(check = %self.check, version = %release.label(), error = %problem, "recording a deployment seen on Fly");
            recorded = false;
        }
        if recorded {
            let now: BTreeSet<_> = now.into_iter().map(|(r, _)| r).collect();
            *self.releases.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        }
    }
}

/// The sample for a successful answer's body (the machine list) at `now_ms`
/// (Unix milliseconds). Public for the fuzz target `fly_machines`.
#[doc(hidden)]
pub fn read_machines(body: &[u8], now_ms: i64) -> Sample {
    match serde_json::from_slice::<Vec<Machine>>(body) {
        Ok(machines) => judge(&machines, now_ms),
        Err(e) => Sample::down(format!("invalid JSON from the Machines API: {e}")),
    }
}

/// Whether a machine in `state` of process group `group` is part of the
/// app as `flyctl status` lists it: not gone or going (`destroyed`,
/// `destroying`, `replaced`, `migrated`), not a one-off (release command,
/// console). Shared with the cost report.
pub fn is_listed(state: Option<&str>, group: Option<&str>) -> bool {
    let gone = matches!(
        state,
        Some("destroyed" | "destroying" | "replaced" | "migrated")
    );
    let one_off = matches!(group, Some("fly_app_release_command" | "fly_app_console"));
    !gone && !one_off
}

/// A machine as listed; every field may be missing (only `id` and `state`
/// are reliably there).
#[derive(Debug, Default, Deserialize)]
struct Machine {
    id: Option<String>,
    state: Option<String>,
    region: Option<String>,
    host_status: Option<String>,
    /// `{registry, repository, tag, digest}`: read by hand in [`releases`].
    image_ref: Option<serde_json::Value>,
    config: Option<MachineConfig>,
    checks: Option<Vec<Check>>,
    events: Option<Vec<Event>>,
}

#[derive(Debug, Default, Deserialize)]
struct MachineConfig {
    /// A string; anything else is not an image ([`releases`]).
    image: Option<serde_json::Value>,
    metadata: Option<Metadata>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    fly_process_group: Option<String>,
    /// A string (`"42"`), perhaps a number.
    fly_release_version: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Check {
    name: Option<String>,
    status: Option<String>,
    output: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: Option<String>,
    source: Option<String>,
    /// Unix milliseconds.
    timestamp: Option<serde_json::Value>,
    /// Shape differs by event type: read by hand.
    request: Option<serde_json::Value>,
}

impl Machine {
    fn state(&self) -> &str {
        self.state.as_deref().unwrap_or("")
    }

    /// Gone or going (flyctl's `ListActive` leaves these out), or a one-off
    /// machine (release command, console) that is not part of the app's service.
    fn is_listed(&self) -> bool {
        let group = self
            .config
            .as_ref()
            .and_then(|c| c.metadata.as_ref())
            .and_then(|m| m.fly_process_group.as_deref());
        is_listed(self.state.as_deref(), group)
    }

    /// The first 8 characters of the id, as people quote machine ids.
    fn short_id(&self) -> &str {
        let id = self.id.as_deref().unwrap_or("?");
        id.char_indices().nth(8).map_or(id, |(cut, _)| &id[..cut])
    }

    fn region(&self) -> &str {
        self.region.as_deref().unwrap_or("")
    }
}

impl Event {
    fn at_ms(&self) -> Option<i64> {
        self.timestamp.as_ref()?.as_f64().map(|ms| ms as i64)
    }

    /// The exit details of an `exit` event: under `request.MonitorEvent`
    /// first (as fly-go reads them), else `request`.
    fn exit(&self) -> Option<&serde_json::Value> {
        if self.kind.as_deref() != Some("exit") {
            return None;
        }
        let request = self.request.as_ref()?;
        request
            .get("MonitorEvent")
            .and_then(|m| m.get("exit_event"))
            .or_else(|| request.get("exit_event"))
    }
}

/// How bad one listed problem is; the message lists the worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Critical,
    NotStarted,
    Host,
    Warning,
    Event,
}

/// Events of one kind on one machine within [`RECENT`].
#[derive(Clone, Copy, Default)]
struct Tally {
    count: u32,
    /// Unix milliseconds of the newest.
    newest: i64,
    /// The newest one's exit code, for exits.
    code: Option<i64>,
}

impl Tally {
    fn add(&mut self, at: i64, code: Option<i64>) {
        self.count += 1;
        if at >= self.newest {
            self.newest = at;
            self.code = code;
        }
    }

    /// `OOM-killed (12m ago)`, `OOM-killed 2× in the last hour (last 3m ago)`.
    fn describe(&self, what: &str, now_ms: i64) -> Option<String> {
        let ago = ago(now_ms - self.newest);
        match self.count {
            0 => None,
            1 => Some(format!("{what} ({ago})")),
            n => Some(format!("{what} {n}× in the last hour (last {ago})")),
        }
    }
}

/// Judges the machines at `now_ms` (Unix milliseconds).
fn judge(machines: &[Machine], now_ms: i64) -> Sample {
    let mut listed: Vec<&Machine> = machines.iter().filter(|m| m.is_listed()).collect();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let started: Vec<&Machine> = listed
        .iter()
        .copied()
        .filter(|m| m.state() == "started")
        .collect();

    let mut problems: Vec<(Rank, String)> = Vec::new();
    let mut passing = 0;
    for m in &listed {
        passing += problems_of(m, now_ms, &mut problems);
    }
    problems.sort_by_key(|(rank, _)| *rank);

    let mut message = if listed.is_empty() {
        "no machines".to_string()
    } else {
        headline(started.len(), &listed)
    };
    for (_, text) in problems.iter().take(MAX_LISTED) {
        message.push_str("; ");
        message.push_str(text);
    }
    if problems.len() > MAX_LISTED {
        message.push_str(&format!("; … and {} more", problems.len() - MAX_LISTED));
    }
    if problems.is_empty() && passing > 0 {
        let s = if passing == 1 { "" } else { "s" };
        message.push_str(&format!("; {passing} check{s} passing"));
    }

    let critical = problems.iter().any(|(rank, _)| *rank == Rank::Critical);
    let mut sample = if started.is_empty() || critical {
        Sample::down(message)
    } else if !problems.is_empty() {
        Sample::warn(message)
    } else {
        Sample::up(message)
    };
    sample
        .values
        .push(("machines_started".into(), started.len() as f64));
    sample
        .values
        .push(("machines_total".into(), listed.len() as f64));
    sample
}

/// `2/3 machines started (fra, iad)`: the regions of the started ones.
fn headline(started: usize, listed: &[&Machine]) -> String {
    let regions: BTreeSet<&str> = listed
        .iter()
        .filter(|m| m.state() == "started")
        .map(|m| m.region())
        .filter(|r| !r.is_empty())
        .collect();
    let mut line = format!("{started}/{} machines started", listed.len());
    if !regions.is_empty() {
        let regions: Vec<&str> = regions.into_iter().collect();
        line.push_str(&format!(" ({})", regions.join(", ")));
    }
    line
}

/// Adds what is wrong with machine `m` to `problems`; returns how many of its
/// checks pass. Only a started machine's checks count: a stopped one's are stale.
fn problems_of(m: &Machine, now_ms: i64, problems: &mut Vec<(Rank, String)>) -> usize {
    let id = m.short_id();
    let mut passing = 0;
    if m.state() != "started" {
        let state = match m.state() {
            "" => "in an unknown state",
            s => s,
        };
        let region = match m.region() {
            "" => String::new(),
            r => format!(" ({r})"),
        };
        problems.push((Rank::NotStarted, format!("{id} {state}{region}")));
    } else {
        for check in m.checks.iter().flatten() {
            let name = check.name.as_deref().unwrap_or("?");
            // Injected by flaps for old deployments; flyctl hides them too.
            if name.starts_with("bg_deployments_compat") {
                continue;
            }
            let (rank, status) = match check.status.as_deref() {
                Some("passing") => {
                    passing += 1;
                    continue;
                }
                Some("critical") => (Rank::Critical, "critical"),
                Some("warning") => (Rank::Warning, "warning"),
                _ => continue,
            };
            let output = match first_line(check.output.as_deref().unwrap_or("")) {
                line if line.is_empty() => line,
                line => format!(": {line}"),
            };
            problems.push((rank, format!("check {name:?} {status} on {id}{output}")));
        }
    }
    if let Some(host) = m
        .host_status
        .as_deref()
        .filter(|h| !h.is_empty() && *h != "ok")
    {
        problems.push((Rank::Host, format!("{id} host {host}")));
    }
    problems.extend(
        recent_events(m, now_ms)
            .into_iter()
            .map(|text| (Rank::Event, format!("{id} {text}"))),
    );
    passing
}

/// The machine's OOM kills, crashes and platform restarts within [`RECENT`],
/// in words: `OOM-killed (12m ago)`, `exited with code 1 2× in the last hour
/// (last 3m ago)`. A stop someone asked for (a deploy, `fly machine stop`) or
/// a restart by a user is not a problem.
fn recent_events(machine: &Machine, now_ms: i64) -> Vec<String> {
    let since = now_ms - RECENT.as_millis() as i64;
    let (mut oom, mut crashed, mut restarted) =
        (Tally::default(), Tally::default(), Tally::default());
    for event in machine.events.iter().flatten() {
        let Some(at) = event.at_ms().filter(|at| *at >= since) else {
            continue;
        };
        if let Some(exit) = event.exit() {
            let flag = |key: &str| exit.get(key).and_then(|v| v.as_bool()) == Some(true);
            if flag("oom_killed") {
                oom.add(at, None);
            } else if !flag("requested_stop") {
                crashed.add(at, exit.get("exit_code").and_then(|c| c.as_i64()));
            }
        } else if event.kind.as_deref() == Some("restart")
            && event.source.as_deref() != Some("user")
        {
            restarted.add(at, None);
        }
    }
    let exited = match crashed.code {
        Some(code) => format!("exited with code {code}"),
        None => "exited unexpectedly".into(),
    };
    [
        oom.describe("OOM-killed", now_ms),
        crashed.describe(&exited, now_ms),
        restarted.describe("restarted", now_ms),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `42s ago`, `12m ago`, `2h ago`; `just now` for the future (clock skew).
fn ago(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        ..=0 => "just now".into(),
        1..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

/// The first non-empty line of a check's output, shortened.
fn first_line(output: &str) -> String {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    match line.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Outcome;

    const NOW: i64 = 1_800_000_000_000;

    fn machines(json: &str) -> Vec<Machine> {
        serde_json::from_str(json).expect("machines JSON")
    }

    fn started(id: &str, region: &str, checks: &str) -> String {
        format!(r#"{{"id":"{id}","state":"started","region":"{region}","checks":{checks}}}"#)
    }

    #[test]
    fn missing_fields_and_nulls_decode() {
        let ms = machines(
            r#"[{"id":"148e127a0b4589","state":"started","checks":null,"events":null,"config":null},
                {"state":"stopped","surprise":{"deep":[1,2]}},
                {}]"#,
        );
        assert_eq!(ms.len(), 3);
        let sample = judge(&ms, NOW);
        assert_eq!(
            sample.message,
            "1/3 machines started; ? stopped; ? in an unknown state"
        );
    }

    #[test]
    fn all_started_and_passing_is_up_like_flyctl_status() {
        let ms = machines(&format!(
            "[{},{},{}]",
            started(
                "3d8d9020a11111",
                "iad",
                r#"[{"name":"vm","status":"passing"}]"#
            ),
            started(
                "148e127a0b4589",
                "fra",
                r#"[{"name":"vm","status":"passing"}]"#
            ),
            started(
                "2a8e6f1b3c2222",
                "fra",
                r#"[{"name":"bg_deployments_compat_x","status":"critical"}]"#
            ),
        ));
        let sample = judge(&ms, NOW);
        assert_eq!(sample.outcome, Outcome::Up);
        assert_eq!(
            sample.message,
            "3/3 machines started (fra, iad); 2 checks passing"
        );
        assert_eq!(
            sample.values,
            vec![
                ("machines_started".to_string(), 3.0),
                ("machines_total".to_string(), 3.0)
            ]
        );
    }

    #[test]
    fn critical_check_is_down_and_listed_first() {
        let ms = machines(&format!(
            r#"[{},{},{{"id":"5683d2e2f33333","state":"stopped","region":"ams"}}]"#,
            started(
                "148e127a0b4589",
                "fra",
                r#"[{"name":"vm","status":"critical","output":"\n  HTTP GET http://172.19.0.2:5500/flycheck/vm: 500\nmore"}]"#
            ),
            started("3d8d9020a11111", "iad", "[]"),
        ));
        let sample = judge(&ms, NOW);
        assert!(matches!(sample.outcome, Outcome::Down(_)), "{sample:?}");
        assert_eq!(
            sample.message,
            "2/3 machines started (fra, iad); check \"vm\" critical on 148e127a: \
             HTTP GET http://172.19.0.2:5500/flycheck/vm: 500; 5683d2e2 stopped (ams)"
        );
    }

    #[test]
    fn oom_kills_crashes_and_restarts_count_only_within_the_hour() {
        let exit = |ago_ms: i64, body: &str| {
            format!(
                r#"{{"type":"exit","source":"flyd","timestamp":{},"request":{body}}}"#,
                NOW - ago_ms
            )
        };
        let events = [
            exit(
                12 * 60_000,
                r#"{"exit_event":{"exit_code":137,"oom_killed":true}}"#,
            ),
            exit(
                20 * 60_000,
                r#"{"MonitorEvent":{"exit_event":{"exit_code":137,"oom_killed":true}}}"#,
            ),
            exit(
                2 * 3_600_000,
                r#"{"exit_event":{"exit_code":137,"oom_killed":true}}"#,
            ),
            exit(
                3 * 60_000,
                r#"{"exit_event":{"exit_code":1,"requested_stop":false}}"#,
            ),
            exit(
                60_000,
                r#"{"exit_event":{"exit_code":0,"requested_stop":true}}"#,
            ),
            format!(
                r#"{{"type":"restart","source":"user","timestamp":{}}}"#,
                NOW - 1000
            ),
            format!(
                r#"{{"type":"restart","source":"flyd","timestamp":{}}}"#,
                NOW - 42_000
            ),
            r#"{"type":"launch","source":"user","timestamp":"garbage","request":[1]}"#.into(),
        ];
        let ms = machines(&format!(
            r#"[{{"id":"148e127a0b4589","state":"started","region":"fra","events":[{}]}}]"#,
            events.join(",")
        ));
        let sample = judge(&ms, NOW);
        assert!(matches!(sample.outcome, Outcome::Warn(_)), "{sample:?}");
        assert_eq!(
            sample.message,
            "1/1 machines started (fra); 148e127a OOM-killed 2× in the last hour (last 12m ago); \
             148e127a exited with code 1 (3m ago); 148e127a restarted (42s ago)"
        );
    }

    #[test]
    fn none_started_or_none_at_all_is_down() {
        let ms = machines(r#"[{"id":"148e127a0b4589","state":"suspended","region":"fra"}]"#);
        let sample = judge(&ms, NOW);
        assert!(matches!(sample.outcome, Outcome::Down(_)));
        assert_eq!(
            sample.message,
            "0/1 machines started; 148e127a suspended (fra)"
        );
        let gone = machines(
            r#"[{"id":"a","state":"destroyed"},
                {"id":"b","state":"started","config":{"metadata":{"fly_process_group":"fly_app_release_command"}}}]"#,
        );
        let sample = judge(&gone, NOW);
        assert!(matches!(sample.outcome, Outcome::Down(_)));
        assert_eq!(sample.message, "no machines");
    }

    #[test]
    fn long_lists_are_cut() {
        let list: Vec<String> = (0..9)
            .map(|i| format!(r#"{{"id":"m{i}","state":"stopped"}}"#))
            .chain([started("z", "fra", "[]")])
            .collect();
        let sample = judge(&machines(&format!("[{}]", list.join(","))), NOW);
        assert_eq!(
            sample.message,
            "1/10 machines started (fra); m0 stopped; m1 stopped; m2 stopped; m3 stopped; m4 stopped; … and 4 more"
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(-5), "just now");
        assert_eq!(ago(42_000), "42s ago");
        assert_eq!(ago(12 * 60_000 + 5), "12m ago");
        assert_eq!(ago(3 * 3_600_000), "3h ago");
    }
}
