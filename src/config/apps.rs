//! Apps and their deployments: `[defaults] deploy_watch` and `[apps.NAME]`
//! (`deploy_watch`, `rollback_hint`). A check belongs to the app its `app`
//! label names; a `fly` check without one to its Fly app. After a deployment
//! of an app, its checks are watched closely for the app's `deploy_watch`,
//! and incidents suggest its rollback: the configured hint, else for an app
//! with a `fly` check `flyctl releases rollback --app <its Fly app>`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::Collector;
use super::{CheckConfig, read};
use crate::core::value::HumanDuration;
use crate::probe;

/// How long a deployment is watched without `deploy_watch` (DESIGN.md §4).
pub const DEFAULT_DEPLOY_WATCH: Duration = Duration::from_secs(10 * 60);
/// The longest `deploy_watch`: a day of alerting at the first failure is a typo.
const MAX_DEPLOY_WATCH: Duration = Duration::from_secs(86_400);

/// `[apps.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    deploy_watch: Option<Spanned<HumanDuration>>,
    rollback_hint: Option<Spanned<String>>,
}

/// What keeper does after deployments, per app.
#[derive(Clone, Debug, PartialEq)]
pub struct Deploys {
    /// `[defaults] deploy_watch`.
    pub watch: Duration,
    /// Apps with a watch or a rollback hint of their own.
    pub apps: BTreeMap<String, AppDeploys>,
}

/// One app's watch and rollback hint.
#[derive(Clone, Debug, PartialEq)]
pub struct AppDeploys {
    pub watch: Duration,
    pub rollback_hint: Option<String>,
}

impl Default for Deploys {
    fn default() -> Deploys {
        Deploys {
            watch: DEFAULT_DEPLOY_WATCH,
            apps: BTreeMap::new(),
        }
    }
}

impl Deploys {
    /// How long after a deployment of `app` its checks are watched closely.
    pub fn watch(&self, app: &str) -> Duration {
        self.apps.get(app).map_or(self.watch, |a| a.watch)
    }

    /// How to roll `app` back, when keeper knows.
    pub fn rollback_hint(&self, app: &str) -> Option<&str> {
        self.apps.get(app)?.rollback_hint.as_deref()
    }

    /// The longest watch of any app: how far back deployments matter.
    pub fn longest_watch(&self) -> Duration {
        self.apps
            .values()
            .map(|a| a.watch)
            .fold(self.watch, Duration::max)
    }
}

impl CheckConfig {
    /// The app the check belongs to: its `app` label, or a `fly` check's Fly app.
    pub fn app(&self) -> Option<&str> {
        match (self.labels.get("app"), &self.probe) {
            (Some(app), _) => Some(app),
            (None, probe::Spec::Fly(fly)) => Some(fly.app.trim()),
            (None, _) => None,
        }
    }
}

/// `[defaults] deploy_watch` and every `[apps.NAME]`, with the hints `fly`
/// checks give their apps. An `[apps.NAME]` no check belongs to is an error
/// (a typo would otherwise never watch anything).
pub(super) fn read_apps(
    default_watch: Option<Spanned<HumanDuration>>,
    tables: Vec<(Spanned<String>, Spanned<DeTable<'_>>)>,
    checks: &[CheckConfig],
    errors: &mut Collector,
) -> Deploys {
    let watch = default_watch
        .and_then(|w| watch_of("defaults.deploy_watch", w, errors))
        .unwrap_or(DEFAULT_DEPLOY_WATCH);
    let mut apps: BTreeMap<String, AppDeploys> = BTreeMap::new();
    for check in checks {
        if let (Some(app), probe::Spec::Fly(fly)) = (check.app(), &check.probe) {
            apps.entry(app.to_string()).or_insert_with(|| AppDeploys {
                watch,
                rollback_hint: Some(format!("flyctl releases rollback --app {}", fly.app.trim())),
            });
        }
    }
    for (name, table) in tables {
        let key = format!("apps.{}", name.get_ref());
        if !checks.iter().any(|c| c.app() == Some(name.get_ref())) {
            errors.at(
                name.span(),
                &key,
                format!(
                    "no check belongs to app {:?} (give its checks labels = {{ app = {:?} }})",
                    name.get_ref(),
                    name.get_ref()
                ),
            );
        }
        let value = Spanned::new(table.span(), DeValue::Table(table.into_inner()));
        let Some(raw) = read::<RawApp>(&key, value, errors) else {
            continue;
        };
        let app = apps.entry(name.into_inner()).or_insert(AppDeploys {
            watch,
            rollback_hint: None,
        });
        if let Some(w) = raw.deploy_watch {
            app.watch = watch_of(&format!("{key}.deploy_watch"), w, errors).unwrap_or(watch);
        }
        if let Some(hint) = raw.rollback_hint {
            app.rollback_hint = hint_of(&format!("{key}.rollback_hint"), hint, errors);
        }
    }
    Deploys { watch, apps }
}

/// A `deploy_watch`: above 0, at most a day.
fn watch_of(key: &str, w: Spanned<HumanDuration>, errors: &mut Collector) -> Option<Duration> {
    let d = w.get_ref().0;
    if d.is_zero() || d > MAX_DEPLOY_WATCH {
        errors.at(w.span(), key, "must be above 0 and at most 1d".into());
        return None;
    }
    Some(d)
}

/// A `rollback_hint`: one line of text.
fn hint_of(key: &str, hint: Spanned<String>, errors: &mut Collector) -> Option<String> {
    let text = hint.get_ref().trim();
    if text.is_empty() || text.contains(char::is_control) {
        errors.at(
            hint.span(),
            key,
            "must be one line of text (the command that rolls the app back)".into(),
        );
        return None;
    }
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("keeper.toml"), text, &|_| {
            Some("fo1_token".into())
        })
        .map_err(|e| e.to_string())
    }

    const CHECKS: &str = r#"
[checks.web]
kind = "tcp"
host = "127.0.0.1:1"
labels = { app = "web" }

[checks.fly-web]
kind = "fly"
app = "web-prod"
token = "${FLY_API_TOKEN}"
labels = { app = "web" }

[checks.worker]
kind = "fly"
app = "worker-prod"
token = "${FLY_API_TOKEN}"
"#;

    #[test]
    fn defaults_fly_hints_and_app_tables_combine() {
        let config = parse(&format!(
            "[defaults]\ndeploy_watch = \"15m\"\n{CHECKS}\n[apps.worker-prod]\ndeploy_watch = \"30m\"\n"
        ))
        .unwrap();
        let d = &config.deploys;
        assert_eq!(d.watch("web"), Duration::from_secs(900));
        assert_eq!(d.watch("worker-prod"), Duration::from_secs(1800));
        assert_eq!(d.watch("other"), Duration::from_secs(900));
        assert_eq!(d.longest_watch(), Duration::from_secs(1800));
        assert_eq!(
            d.rollback_hint("web"),
            Some("flyctl releases rollback --app web-prod")
        );
        assert_eq!(
            d.rollback_hint("worker-prod"),
            Some("flyctl releases rollback --app worker-prod")
        );
        assert_eq!(d.rollback_hint("other"), None);
        let apps: Vec<Option<&str>> = config.checks.iter().map(|c| c.app()).collect();
        assert_eq!(apps[..3], [Some("web"), Some("web"), Some("worker-prod")]);
    }

    #[test]
    fn a_configured_hint_wins_and_the_default_watch_is_ten_minutes() {
        let config = parse(&format!(
            "{CHECKS}\n[apps.web]\nrollback_hint = \"kubectl rollout undo deploy/web\"\n"
        ))
        .unwrap();
        assert_eq!(
            config.deploys.rollback_hint("web"),
            Some("kubectl rollout undo deploy/web")
        );
        assert_eq!(config.deploys.watch("web"), DEFAULT_DEPLOY_WATCH);
    }

    #[test]
    fn mistakes_name_the_line_column_and_key() {
        let cases = [
            (
                "[apps.web]\nbogus = 1\n",
                "keeper.toml:",
                "unknown field `bogus`",
            ),
            (
                "[apps.nope]\ndeploy_watch = \"5m\"\n",
                "apps.nope",
                "no check belongs to app \"nope\"",
            ),
            (
                "[apps.web]\ndeploy_watch = \"0s\"\n",
                "apps.web.deploy_watch",
                "must be above 0",
            ),
            (
                "[apps.web]\ndeploy_watch = \"2d\"\n",
                "apps.web.deploy_watch",
                "at most 1d",
            ),
            (
                "[apps.web]\nrollback_hint = \" \"\n",
                "apps.web.rollback_hint",
                "one line",
            ),
            (
                "[defaults]\ndeploy_watch = \"soon\"\n",
                "defaults",
                "invalid duration \"soon\"",
            ),
            ("[apps]\nweb = 1\n", "apps.web", "must be a table"),
        ];
        for (text, key, want) in cases {
            let err = parse(&format!("{CHECKS}\n{text}")).expect_err(text);
            assert!(err.contains(key) && err.contains(want), "{text}: {err}");
        }
        let err = parse(&format!("{CHECKS}\n[apps.web]\nbogus = 1\n")).unwrap_err();
        let line = CHECKS.lines().count() + 3;
        assert!(err.contains(&format!("keeper.toml:{line}:1")), "{err}");
    }
}
