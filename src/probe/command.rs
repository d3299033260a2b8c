//! The `command` probe: runs a program (a Nagios plugin, a backup check, any
//! script) in a process group of its own, by the Nagios plugin convention:
//! exit 0 green, 1 yellow, 2 red, 3 or anything else red "unknown". The first
//! line of output is the message; perfdata after `|` become sample values
//! (parsed in [`perfdata`]).
//!
//! A run gets a clean environment, not keeper's (which holds the API token,
//! the database URL, channel passwords): `PATH`, `LANG` and `HOME` as keeper
//! has them, plus what the check's `env` names.
//!
//! Nothing a run starts outlives it: when the program exits, or the deadline
//! passes, or the run is abandoned, its whole process group gets SIGKILL.
//! Output is read to the end but only the first [`OUTPUT_KEEP`] bytes of each
//! stream are kept, so a chatty program neither blocks on a full pipe nor
//! fills keeper's memory.

pub mod perfdata;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::{Instant, timeout_at};

use super::{BuildError, Context, Kind};
use crate::core::Sample;
use crate::core::SpecProblem;

/// How much of each output stream (stdout, stderr) is kept; the rest is read and dropped.
pub const OUTPUT_KEEP: usize = 64 * 1024;
/// The longest message kept, in characters (the plugin's first line).
pub const MESSAGE_LIMIT: usize = 500;
/// What a run inherits from keeper's own environment (when set there).
pub const INHERITED_ENV: [&str; 3] = ["PATH", "LANG", "HOME"];

/// `[checks.NAME]` keys of kind `command`.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawSpec")]
pub struct Spec {
    /// The program and its arguments; with `shell`, one string for `/bin/sh -c`.
    pub command: Vec<String>,
    pub shell: bool,
    /// Variables set for the run, beside [`INHERITED_ENV`] (and over them).
    pub env: Env,
    /// How the API and `check-config` show the command (`display`); by
    /// default only the program, as its arguments may carry secrets.
    pub display: Option<String>,
}

/// The keys as written, before the checks that span both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    command: Argv,
    #[serde(default)]
    shell: bool,
    #[serde(default)]
    env: Env,
    display: Option<String>,
}

impl TryFrom<RawSpec> for Spec {
    type Error = String;
    fn try_from(raw: RawSpec) -> Result<Spec, String> {
        let command = raw.command.0;
        if raw.shell && command.len() != 1 {
            return Err(format!(
                "with shell = true, command must be one string (the shell command line), got {} elements",
                command.len()
            ));
        }
        if raw.display.as_deref().is_some_and(|d| d.trim().is_empty()) {
            return Err("display: must not be empty (leave it out to show the program)".into());
        }
        Ok(Spec {
            command,
            shell: raw.shell,
            env: raw.env,
            display: raw.display,
        })
    }
}

/// `command = ["argv0", …]`: refused (with the value's line and column) when
/// empty or when the program is an empty string.
struct Argv(Vec<String>);

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let argv = Vec::<String>::deserialize(de)?;
        match argv.first() {
            None => Err(de::Error::custom(
                "command must not be empty: give the program and its arguments, e.g. [\"/usr/lib/nagios/plugins/check_load\", \"-w\", \"5\"]",
            )),
            Some(program) if program.trim().is_empty() => Err(de::Error::custom(
                "command: the program (the first element) must not be empty",
            )),
            Some(_) => Ok(Argv(argv)),
        }
    }
}

/// `env = { NAME = "value" }`: names as a shell would accept them (letters,
/// digits and `_`, not starting with a digit), values without NUL; refused
/// with the value's line and column. Its `Debug` shows the names only: the
/// values are often secrets (`PGPASSWORD = "${PGPASSWORD}"`).
#[derive(Clone, Default)]
pub struct Env(pub BTreeMap<String, String>);

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let vars = BTreeMap::<String, String>::deserialize(de)?;
        for (name, value) in &vars {
            if !is_env_name(name) {
                return Err(de::Error::custom(format!(
                    "env: {name:?} is not a valid environment variable name \
                     (letters, digits and _, not starting with a digit)"
                )));
            }
            if value.contains('\0') {
                return Err(de::Error::custom(format!(
                    "env.{name}: the value must not contain a NUL byte"
                )));
            }
        }
        Ok(Env(vars))
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Kind for Spec {
    const NAME: &'static str = "command";
    type Probe = Probe;

    /// The command as people see it: `display`, else only the program
    /// (`check_disk`, or `sh -c …` for a shell line): arguments, after
    /// `${VAR}` expansion, may carry secrets.
    fn target(&self) -> String {
        match (&self.display, self.shell) {
            (Some(display), _) => display.clone(),
            (None, true) => "sh -c …".into(),
            (None, false) => self.command.first().cloned().unwrap_or_default(),
        }
    }

    fn problems(&self) -> Vec<SpecProblem> {
        if self.command.is_empty() {
            return vec![SpecProblem::new("command", "command: must not be empty")];
        }
        Vec::new()
    }

    fn build(&self, _check: &str, _ctx: &Context) -> Result<Probe, BuildError> {
        let (program, args) = match (self.shell, self.command.split_first()) {
            (_, None) => return Err(BuildError("command: must not be empty".into())),
            (true, Some(_)) => (
                "/bin/sh".to_string(),
                vec!["-c".to_string(), self.command.join(" ")],
            ),
            (false, Some((program, args))) => (program.clone(), args.to_vec()),
        };
        Ok(Probe {
            program,
            args,
            env: self.environment(&|name| std::env::var_os(name)),
        })
    }
}

impl Spec {
    /// The whole environment of a run: [`INHERITED_ENV`] from `keeper_env`
    /// where set, then the configured `env` over it.
    fn environment(
        &self,
        keeper_env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Vec<(OsString, OsString)> {
        let mut vars: BTreeMap<OsString, OsString> = INHERITED_ENV
            .iter()
            .filter_map(|name| Some((OsString::from(name), keeper_env(name)?)))
            .collect();
        for (name, value) in &self.env.0 {
            vars.insert(name.into(), value.into());
        }
        vars.into_iter().collect()
    }
}

/// A built `command` probe.
pub struct Probe {
    program: String,
    args: Vec<String>,
    /// The run's whole environment.
    env: Vec<(OsString, OsString)>,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.env.iter().map(|(name, _)| name).collect();
        f.debug_struct("Probe")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &names)
            .finish()
    }
}

impl Probe {
    pub async fn run(&self, deadline: Instant) -> Sample {
        let budget = as_configured(deadline.saturating_duration_since(Instant::now()));
        let mut child = match Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                return Sample::down(format!("cannot run {:?}: {}", self.program, io_words(&e)));
            }
        };
        // The child leads its own group: its id is the group's.
        let Some(group) = child.id().and_then(|id| Group::new(id as i32)) else {
            return Sample::down(format!(
                "{:?} exited before it could be watched",
                self.program
            ));
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let exited = async {
            let status = child.wait().await;
            // What it left running in the background goes with it; that also
            // closes the pipes they held, so the reads below end.
            group.kill();
            status
        };
        let all = async { tokio::join!(exited, read_capped(stdout), read_capped(stderr)) };
        match timeout_at(deadline, all).await {
            Err(_) => {
                group.kill();
                Sample::down(format!(
                    "timed out after {}, killed",
                    humantime::format_duration(budget)
                ))
            }
            Ok((Err(e), _, _)) => {
                Sample::down(format!("waiting for {:?}: {}", self.program, io_words(&e)))
            }
            Ok((Ok(status), out, err)) => judge(status, &out, &err),
        }
    }
}

/// The sample for a finished run: the exit status by the Nagios convention,
/// the message and perfdata from stdout (stderr when stdout is blank).
fn judge(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> Sample {
    let text = if String::from_utf8_lossy(stdout).trim().is_empty() {
        String::from_utf8_lossy(stderr)
    } else {
        String::from_utf8_lossy(stdout)
    };
    let output = perfdata::Output::parse(&text);
    let line = cap(&output.message, MESSAGE_LIMIT);
    let said = |default: String| {
        if line.is_empty() {
            default
        } else {
            line.clone()
        }
    };
    let mut sample = match (status.code(), status.signal()) {
        (Some(0), _) => Sample::up(said("exit 0, no output".into())),
        (Some(1), _) => Sample::warn(said("exit 1 (warning), no output".into())),
        (Some(2), _) => Sample::down(said("exit 2 (critical), no output".into())),
        (Some(3), _) => Sample::down(format!("unknown: {}", said("exit 3, no output".into()))),
        (Some(code), _) => Sample::down(format!("unknown: exit {code}{}", with_output(&line))),
        (None, Some(signal)) => Sample::down(format!(
            "unknown: killed by signal {signal}{}{}",
            signal_name(signal).map_or(String::new(), |n| format!(" ({n})")),
            with_output(&line)
        )),
        (None, None) => Sample::down(format!(
            "unknown: ended without an exit code{}",
            with_output(&line)
        )),
    };
    sample.values = output.values;
    sample
}

fn with_output(line: &str) -> String {
    if line.is_empty() {
        ", no output".into()
    } else {
        format!(": {line}")
    }
}

/// At most `limit` characters of `s`, with `…` when cut.
fn cap(s: &str, limit: usize) -> String {
    match s.char_indices().nth(limit) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        7 => "SIGBUS",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// Reads `pipe` to its end, keeping the first [`OUTPUT_KEEP`] bytes. A read
/// error ends the read: what was kept is what there is.
async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_KEEP - kept.len();
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// The process group of one run. Killed (SIGKILL to every member) when the
/// leader exits, at the deadline, or when the run is dropped half-way (the
/// probe abandoned at shutdown), whichever comes first; once only, so a
/// group id the system has since handed to someone else is never signalled
/// later.
struct Group {
    pgid: Pid,
    killed: AtomicBool,
}

impl Group {
    fn new(pgid: i32) -> Option<Group> {
        Some(Group {
            pgid: Pid::from_raw(pgid)?,
            killed: AtomicBool::new(false),
        })
    }

    fn kill(&self) {
        if !self.killed.swap(true, Ordering::SeqCst) {
            // ESRCH (nobody left in the group) is the usual, happy case.
            let _ = kill_process_group(self.pgid, Signal::KILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The time a run has left, rounded as timeouts are written (`5s`, not
/// `4s 999ms 998µs`): to 100 ms from a second up, else to 10 ms. The deadline
/// was set a moment before the run began; the rounding absorbs that moment,
/// even when the machine is busy.
pub(crate) fn as_configured(d: Duration) -> Duration {
    let step: u128 = if d >= Duration::from_secs(1) { 100 } else { 10 };
    let ms = (d.as_micros() + step * 500) / (step * 1000) * step;
    Duration::from_millis(ms as u64)
}

/// A spawn or wait error in a few words, without the `(os error 2)` tail.
fn io_words(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let text = err.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_lowercase(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn exit_codes_follow_the_nagios_convention() {
        use crate::core::Outcome;
        let s = judge(exit(0), b"OK - fine|load=1", b"");
        assert_eq!(s.outcome, Outcome::Up);
        assert_eq!(s.message, "OK - fine");
        let s = judge(exit(1), b"WARNING - busy\n", b"");
        assert_eq!(s.outcome, Outcome::Warn("WARNING - busy".into()));
        let s = judge(exit(2), b"", b"CRITICAL - gone\nmore\n");
        assert_eq!(s.outcome, Outcome::Down("CRITICAL - gone".into()));
        let s = judge(exit(3), b"", b"");
        assert_eq!(s.message, "unknown: exit 3, no output");
        let s = judge(exit(42), b"odd\n", b"");
        assert_eq!(s.message, "unknown: exit 42: odd");
        let s = judge(ExitStatus::from_raw(9), b"", b"");
        assert_eq!(
            s.message,
            "unknown: killed by signal 9 (SIGKILL), no output"
        );
    }

    #[test]
    fn long_lines_are_capped() {
        let s = judge(exit(0), "é".repeat(10_000).as_bytes(), b"");
        assert_eq!(s.message.chars().count(), MESSAGE_LIMIT + 1);
        assert!(s.message.ends_with('…'));
    }

    #[test]
    fn the_environment_is_path_lang_home_and_env_over_them() {
        let spec = Spec {
            command: vec!["true".into()],
            shell: false,
            env: Env([("HOME".into(), "/srv".into()), ("A_B".into(), "1".into())].into()),
            display: None,
        };
        let keeper = |name: &str| match name {
            "PATH" => Some(OsString::from("/bin")),
            "HOME" => Some(OsString::from("/root")),
            "KEEPER_API_TOKEN" => Some(OsString::from("secret")),
            _ => None,
        };
        let env: Vec<(String, String)> = spec
            .environment(&keeper)
            .into_iter()
            .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
            .collect();
        let want = [("A_B", "1"), ("HOME", "/srv"), ("PATH", "/bin")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(env, want);
        assert_eq!(format!("{:?}", spec.env), r#"{"A_B", "HOME"}"#);
    }

    #[test]
    fn env_names() {
        for good in ["PATH", "_X", "pg_password2"] {
            assert!(is_env_name(good), "{good}");
        }
        for bad in ["", "1ST", "A-B", "A B", "A=B", "É"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn budget_reads_as_the_configured_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(as_configured(ms(4_999) + ms(1) / 2), ms(5_000));
        assert_eq!(as_configured(ms(4_960)), ms(5_000));
        assert_eq!(as_configured(ms(2_499)), ms(2_500));
        assert_eq!(as_configured(ms(2_000)), ms(2_000));
        assert_eq!(as_configured(ms(249)), ms(250));
        assert_eq!(as_configured(ms(1)), ms(0));
    }
}
