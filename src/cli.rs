//! The command line (DESIGN.md §8): `run` (the default), `check-config`,
//! `migrate`, and the clients of a running daemon's API ([`client`]):
//! `status`, `incidents`, `ack`, `silence`, `deploy`; and `probe`, one run of
//! a probe by hand ([`oneshot`]). What each verb prints lives in its file in `cli/`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

mod client;
mod deploy;
pub mod exit;
mod incidents;
mod memory;
mod oneshot;
mod report;
mod runtime;
mod status;
mod term;

pub use exit::Exit;

use crate::app;
use crate::config::Config;
use crate::probe;

#[derive(Debug, Parser)]
#[command(
    name = "keeper",
    version,
    about = "The keeper of production: probes, incidents, notifications",
    after_help = "Exit status: 0 done (status, probe: all green); 1 failed (status, probe: yellow); \
                  2 red (status, probe); 3 unknown (status: keeper could not say) or a command line \
                  not understood. Client verbs (status, incidents, ack, silence, deploy, report \
                  incident) take --json and read the API token from KEEPER_API_TOKEN."
)]
pub struct Cli {
    /// The config file (also from KEEPER_CONFIG; client verbs read only its
    /// server.listen, when --url is not given).
    #[arg(
        short,
        long,
        global = true,
        default_value = "keeper.toml",
        env = "KEEPER_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate the config and print what will run.
    CheckConfig,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// For example `keeper completions bash > /etc/bash_completion.d/keeper`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Probe a target once and show what keeper sees: phases, status,
    /// certificate, verdict (exit 0 green, 1 yellow, 2 red).
    Probe(oneshot::Args),
    /// Show every check's current state, from a running keeper (exit 0
    /// green, 1 yellow, 2 red, 3 unknown: unreachable, an error, or pending).
    Status(status::Args),
    /// List a running keeper's incidents with their timelines.
    Incidents(incidents::Args),
    /// Write a report: `health` (the day's), `incident ID`, or `cost` (a month's, per Fly app).
    #[command(subcommand)]
    Report(report::Report),
    /// Silence a check's notifications for a while (token from KEEPER_API_TOKEN).
    Silence(client::SilenceArgs),
    /// Acknowledge an incident: its repeats stop (token from KEEPER_API_TOKEN).
    Ack(client::AckArgs),
    /// Record a deployment: the app's checks are watched closely for a while
    /// and incidents name it (token from KEEPER_API_TOKEN).
    Deploy(deploy::Args),
}

/// Parses the command line and runs the verb; exits as [`Exit`] says.
pub fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    let command = cli.command.take().unwrap_or(Command::Run);
    // `run` reads its config before the runtime exists, which is sized for its checks.
    let config = matches!(command, Command::Run).then(|| load(&cli.config));
    let runtime = match runtime::build(config.as_ref().and_then(|c| c.as_ref().ok())) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keeper: starting the runtime: {e}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(dispatch(cli, command, config)) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("keeper: {}", said_once(&e));
            Exit::Failed.into()
        }
    }
}

/// Runs `command`; `run` gets the config [`main`] read for it.
async fn dispatch(
    cli: Cli,
    command: Command,
    config: Option<anyhow::Result<Config>>,
) -> anyhow::Result<Exit> {
    match command {
        Command::Run => run(config.unwrap_or_else(|| load(&cli.config))?).await,
        Command::CheckConfig => check_config(&cli.config).await,
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "keeper", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
        Command::Migrate => {
            let config = load(&cli.config)?;
            app::open_store(&config).await?;
            println!(
                "migrations applied to {}",
                crate::core::redact::dsn(&config.storage.url)
            );
            Ok(Exit::Ok)
        }
        Command::Probe(args) => oneshot::run(args).await,
        Command::Status(args) => Ok(status::run(&cli.config, args).await),
        Command::Incidents(args) => incidents::run(&cli.config, args).await,
        Command::Report(what) => report::run(&cli.config, what).await,
        Command::Silence(args) => client::silence(&cli.config, args).await,
        Command::Ack(args) => client::ack(&cli.config, args).await,
        Command::Deploy(args) => deploy::run(&cli.config, args).await,
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|errors| anyhow::anyhow!("invalid config:\n{errors}"))
}

async fn run(config: Config) -> anyhow::Result<Exit> {
    let keeper = app::start_with(config, run_options()).await?;
    memory::release_start_up_memory();
    let stop = keeper.stopper();
    let reloads = reload_on_sighup(&keeper)?;
    let mut done = std::pin::pin!(keeper.wait());
    tokio::select! {
        signal = shutdown_signal() => {
            let name = signal?;
            tracing::info!(signal = name, "shutting down");
            stop.cancel();
            done.await?;
        }
        // Ended on its own: a task died or the listener failed (an error, so
        // the exit status is not 0 and a supervisor restarts keeper).
        result = &mut done => result?,
    }
    reloads.abort();
    Ok(Exit::Ok)
}

/// Reloads the config on each SIGHUP (`systemctl reload`); the outcome is
/// logged by the reload itself.
fn reload_on_sighup(keeper: &app::Keeper) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let keeper = keeper.reloader();
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(signal = "SIGHUP", "reloading the config");
            // Refused or done, the reload logged why.
            let _ = keeper.reload().await;
        }
    }))
}

/// Start options. Debug builds read `KEEPER_DEBUG_PANIC=TASK` so tests can
/// show what a dying task does to the process; release builds ignore it.
fn run_options() -> app::Options {
    app::Options {
        panic_task: cfg!(debug_assertions)
            .then(|| std::env::var("KEEPER_DEBUG_PANIC").ok())
            .flatten(),
    }
}

/// Resolves on SIGTERM or SIGINT, naming which.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

async fn check_config(path: &std::path::Path) -> anyhow::Result<Exit> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            return Ok(Exit::Failed);
        }
    };
    // The build step start and reload run: a file they refuse is refused here.
    if let Err(errors) = app::check(&config).await {
        eprintln!("{}", config.secrets.mask(&errors.to_string()));
        eprintln!("{}: {} error(s)", path.display(), errors.0.len());
        return Ok(Exit::Failed);
    }
    // A value read from a secret file never shows, whichever key it went in.
    print!("{}", config.secrets.mask(&describe(&config)));
    print!("{}", config.secrets.mask(&heartbeat_urls(&config).await));
    Ok(Exit::Ok)
}

/// `check-config`'s heartbeat lines: each heartbeat's ping URL. A generated
/// token is read from the configured storage when it can be opened (never
/// created or migrated here); a token from the config is a secret and is not
/// printed.
async fn heartbeat_urls(config: &Config) -> String {
    use std::fmt::Write;
    let beats: Vec<(&str, bool)> = config
        .checks
        .iter()
        .filter_map(|c| match &c.probe {
            probe::Spec::Heartbeat(h) => Some((&*c.name, h.has_token())),
            _ => None,
        })
        .collect();
    if beats.is_empty() {
        return String::new();
    }
    let base = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.listen));
    let stored = stored_heartbeat_tokens(&config.storage.url).await;
    let mut out = String::from("heartbeats:\n");
    for (name, configured) in beats {
        let _ = match (configured, stored.as_ref().ok().and_then(|s| s.get(name))) {
            (true, _) => writeln!(out, "  {name}  {base}/ping/<token from the config>"),
            (false, Some(token)) => writeln!(out, "  {name}  {base}/ping/{token}"),
            (false, None) => writeln!(
                out,
                "  {name}  token will be generated at first run (then shown here)"
            ),
        };
    }
    if let Err(why) = stored {
        let _ = writeln!(out, "  (generated tokens not read: {why})");
    }
    out
}

/// Generated heartbeat tokens by check, from the configured storage, which
/// must already exist: a SQLite file is not created by looking.
async fn stored_heartbeat_tokens(
    url: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let file = rest.split('?').next().unwrap_or_default();
        if file.is_empty() || file.contains(":memory:") || url.contains("mode=memory") {
            return Err("the database is in memory".into());
        }
        if !std::path::Path::new(file).exists() {
            return Err(format!("{file} does not exist yet"));
        }
    }
    let read = async {
        let store = crate::store::Store::connect(url).await?;
        store.heartbeats().await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
        Ok(Ok(rows)) => Ok(rows
            .into_iter()
            .filter_map(|r| Some((r.check, r.token?)))
            .collect()),
        Ok(Err(e)) => Err(format!("{}: {e}", crate::core::redact::dsn(url))),
        Err(_) => Err(format!(
            "{} did not answer within 5s",
            crate::core::redact::dsn(url)
        )),
    }
}

/// What `check-config` prints: everything that will run, without secrets.
pub fn describe(config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let own = config
        .checks
        .iter()
        .filter(|c| matches!(c.probe, crate::probe::Spec::Keeper(_)))
        .count();
    let disabled = match config.disabled.len() {
        0 => String::new(),
        n => format!(", {n} disabled"),
    };
    let _ = writeln!(
        out,
        "{}: OK: {} checks (and {own} of keeper's own){disabled}, {} channels, {} routes",
        config.path.display(),
        config.checks.len() - own,
        config.channels.len(),
        config.routes.len()
    );
    if config.timezone != chrono_tz::UTC {
        let _ = writeln!(out, "timezone: {} (crontab schedules)", config.timezone);
    }
    let _ = writeln!(out, "listen:  {}", config.server.listen);
    let _ = writeln!(
        out,
        "storage: {}",
        crate::core::redact::dsn(&config.storage.url)
    );
    out.push_str(&describe_checks(config));
    if !config.disabled.is_empty() {
        let _ = writeln!(out, "disabled (enabled = false: not run):");
        for c in &config.disabled {
            let _ = writeln!(out, "  {}  {} {}", c.name, c.probe.kind(), c.probe.target());
        }
    }
    let _ = writeln!(out, "channels:");
    for ch in &config.channels {
        let _ = writeln!(out, "  {}  {}", ch.name, ch.spec.kind());
    }
    out.push_str(&describe_routes(config));
    out.push_str(&deploy::describe_apps(config));
    out
}

/// `check-config`'s `checks:` section: one aligned line per check.
fn describe_checks(config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::from("checks:\n");
    let width = config
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    let kind_width = config
        .checks
        .iter()
        .map(|c| c.probe.kind().len())
        .max()
        .unwrap_or(0);
    for c in &config.checks {
        let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "  {:width$}  {:kind_width$} {}  {}, timeout {}, down={}, alert after {} / resolve after {}{}{}",
            c.name,
            c.probe.kind(),
            c.probe.target(),
            c.schedule,
            humantime::format_duration(c.timeout),
            c.down_severity,
            c.failures_before_alert,
            c.successes_before_resolve,
            if labels.is_empty() {
                String::new()
            } else {
                format!(", labels {}", labels.join(","))
            },
            if c.depends_on.is_empty() {
                String::new()
            } else {
                format!(", depends on {}", c.depends_on.join(","))
            },
        );
    }
    out
}

/// `check-config`'s `routes:` section.
fn describe_routes(config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::from("routes:\n");
    for r in &config.routes {
        let severities: Vec<&str> = r.severities.iter().map(|s| s.as_str()).collect();
        let matches = r.matches.to_string();
        let _ = writeln!(
            out,
            "  [{}] -> {}{}",
            if severities.is_empty() {
                "any".to_string()
            } else {
                severities.join(", ")
            },
            r.channels.join(", "),
            if matches.is_empty() {
                String::new()
            } else {
                format!(" (match {matches})")
            },
        );
    }
    out
}

/// An error and its causes, each said once: keeper's errors mostly end with
/// their cause's words already, which `{:#}` would repeat.
pub(crate) fn said_once(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
