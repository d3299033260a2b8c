//! `keeper deploy APP VERSION`: records a deployment through a running
//! keeper's API (`POST /api/v1/deployments`), so the app's checks are
//! watched closely for `deploy_watch` and an incident in that time names it.

use super::Exit;
use super::client::{self, Api};

/// `keeper deploy`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app deployed, as the `app` label of its checks.
    app: String,
    /// The version deployed (a tag, a release number, a commit).
    version: String,
    /// What changed.
    #[arg(long, default_value = "")]
    description: String,
    /// Who deployed it (default: $USER).
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    pub client: client::Client,
}

/// The request body `args` make; `user` stands in for a missing `--by`.
fn body(args: &Args, user: Option<String>) -> serde_json::Value {
    serde_json::json!({
        "app": args.app,
        "version": args.version,
        "description": args.description,
        "by": args.by.clone().or(user).unwrap_or_default(),
    })
}

pub async fn run(config: &std::path::Path, args: Args) -> anyhow::Result<Exit> {
    let api = Api::new(config, args.client.url.clone())?;
    let body = body(&args, std::env::var("USER").ok());
    let (text, recorded) = api.post("/api/v1/deployments", &body).await?;
    client::print(args.client.json, &text, || {
        format!(
            "deployment {} recorded: {} {} at {}",
            recorded["id"],
            recorded["app"].as_str().unwrap_or("?"),
            recorded["version"].as_str().unwrap_or("?"),
            recorded["at"].as_str().unwrap_or("?"),
        )
    });
    Ok(Exit::Ok)
}

/// `check-config`'s `apps:` section: each app with a watch or rollback
/// hint of its own; nothing when there is none.
pub fn describe_apps(config: &crate::config::Config) -> String {
    use std::fmt::Write;
    let deploys = &config.deploys;
    if deploys.apps.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "apps (deploy_watch {} unless given):\n",
        humantime::format_duration(deploys.watch)
    );
    for (name, app) in &deploys.apps {
        let _ = writeln!(
            out,
            "  {name}  watch {}{}",
            humantime::format_duration(app.watch),
            app.rollback_hint
                .as_deref()
                .map_or(String::new(), |h| format!(", rollback: {h}"))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn check_config_lists_apps_with_their_watch_and_rollback() {
        let text = "[checks.fly]\nkind = \"fly\"\napp = \"web-prod\"\ntoken = \"fo1_x\"\n\
                    labels = { app = \"web\" }\n\n[apps.web]\ndeploy_watch = \"20m\"\n";
        let config = crate::config::Config::parse(std::path::Path::new("k.toml"), text, &|_| None)
            .expect("config");
        assert_eq!(
            describe_apps(&config),
            "apps (deploy_watch 10m unless given):\n  web  watch 20m, rollback: flyctl releases rollback --app web-prod\n"
        );
    }

    #[test]
    fn by_falls_back_to_the_user() {
        let args = Cli::parse_from(["deploy", "web", "v42", "--description", "fix login"]).args;
        assert_eq!(
            body(&args, Some("alice".into())),
            serde_json::json!({"app": "web", "version": "v42", "description": "fix login", "by": "alice"})
        );
        let args = Cli::parse_from(["deploy", "web", "v42", "--by", "ci"]).args;
        assert_eq!(body(&args, Some("alice".into()))["by"], "ci");
        assert_eq!(body(&args, None)["description"], "");
    }
}
