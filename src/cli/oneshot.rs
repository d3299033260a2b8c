//! `keeper probe URL | HOST:PORT | tls://HOST:PORT`: one run of a probe from
//! the command line, for troubleshooting — the timing phases, the status, the
//! certificate's subject, issuer and dates, and the color and severity the
//! default thresholds give. Exit code 0 green, 1 yellow, 2 red.

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;

use crate::classify::{self, Thresholds, Verdict};
use crate::core::Color;
use crate::core::Sample;
use crate::probe::{self, Spec};

/// The options of `keeper probe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `https://host/path` (http), `tls://host:port` (certificate), or `host:port` (tcp).
    target: String,
    /// Give up after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Trust this CA (PEM) beside the system's.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// Do not verify the certificate (its dates are still shown).
    #[arg(long)]
    insecure: bool,
    /// SNI and the name to verify (tls:// only; default the host).
    #[arg(long)]
    server_name: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<super::Exit> {
    let spec = spec_for(&args)?;
    let ctx = tokio::task::spawn_blocking(probe::Context::system)
        .await
        .context("loading the system CA certificates")?;
    let probe = spec
        .build(&args.target, &ctx)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.target))?;
    let sample = probe.run(args.timeout).await;
    let verdict = classify::classify(
        &sample,
        &Thresholds::builtin(),
        crate::core::Severity::Critical,
    );
    print!("{}", report(&spec, &sample, &verdict));
    Ok(super::Exit::of(verdict.color))
}

/// The check a target names: a URL is `http`, `tls://host:port` is `tls`, and
/// `host:port` is `tcp`.
fn spec_for(args: &Args) -> anyhow::Result<Spec> {
    let mut keys = toml::Table::new();
    let target = args.target.as_str();
    let kind = if target.starts_with("http://") || target.starts_with("https://") {
        keys.insert("url".into(), target.into());
        "http"
    } else if let Some(host) = target.strip_prefix("tls://") {
        keys.insert("host".into(), host.into());
        if let Some(name) = &args.server_name {
            keys.insert("server_name".into(), name.clone().into());
        }
        "tls"
    } else if target.contains("://") {
        bail!("{target}: expected http://, https://, tls://HOST:PORT or HOST:PORT");
    } else {
        keys.insert("host".into(), target.into());
        "tcp"
    };
    if kind != "tls" && args.server_name.is_some() {
        bail!("--server-name is for tls:// targets");
    }
    if kind == "tcp" && (args.insecure || args.ca_file.is_some()) {
        bail!("--insecure and --ca-file are for https:// and tls:// targets");
    }
    if args.insecure {
        keys.insert("insecure_skip_verify".into(), true.into());
    }
    if let Some(ca) = &args.ca_file {
        keys.insert("ca_file".into(), ca.display().to_string().into());
    }
    Spec::deserialize_kind(kind, toml::Value::Table(keys))
        .map_err(|e| anyhow::anyhow!("{target}: {}", e.message()))
}

/// What `keeper probe` prints: one fact per line, aligned.
pub fn report(spec: &Spec, sample: &Sample, verdict: &Verdict) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", spec.kind(), spec.target());
    let line = |out: &mut String, name: &str, value: &str| {
        let _ = writeln!(out, "  {name:<9}{value}");
    };
    line(&mut out, "result", &sample.message);
    if let Some(http) = &sample.http
        && http.status != 0
    {
        let redirects = match http.redirects {
            0 => String::new(),
            1 => " after 1 redirect".into(),
            n => format!(" after {n} redirects"),
        };
        line(&mut out, "status", &format!("{}{redirects}", http.status));
    }
    if let Some(http) = &sample.http {
        let phases: Vec<String> = http
            .phases
            .named()
            .map(|(name, d)| format!("{} {}", name.replace('_', " "), ms(d)))
            .collect();
        if !phases.is_empty() {
            line(&mut out, "phases", &phases.join(" · "));
        }
    }
    line(&mut out, "total", &ms(sample.duration));
    if let Some(cert) = &sample.cert {
        line(&mut out, "subject", &cert.subject);
        line(&mut out, "issuer", &cert.issuer);
        let days = cert.days_left(Utc::now());
        line(
            &mut out,
            "expires",
            &format!(
                "{} ({})",
                cert.not_after
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                if days < 0.0 {
                    format!("expired {:.1} days ago", -days)
                } else {
                    format!("{days:.1} days left")
                }
            ),
        );
    }
    let verdict_text = match verdict.severity {
        Some(severity) if verdict.color != Color::Green => {
            format!("{} ({severity}): {}", verdict.color, verdict.reason)
        }
        _ => verdict.color.to_string(),
    };
    line(&mut out, "verdict", &verdict_text);
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn spec(argv: &[&str]) -> anyhow::Result<Spec> {
        let cli = Cli::try_parse_from(std::iter::once("probe").chain(argv.iter().copied()))?;
        spec_for(&cli.args)
    }

    #[test]
    fn the_target_names_the_kind() {
        assert_eq!(spec(&["https://example.com/x"]).unwrap().kind(), "http");
        assert_eq!(spec(&["tls://example.com:443"]).unwrap().kind(), "tls");
        assert_eq!(spec(&["example.com:5432"]).unwrap().kind(), "tcp");
        let err = spec(&["ftp://example.com"]).unwrap_err().to_string();
        assert!(err.contains("expected http://"), "{err}");
        let err = spec(&["example.com"]).unwrap_err().to_string();
        assert!(err.starts_with("example.com: "), "{err}");
        assert!(spec(&["--insecure", "example.com:22"]).is_err());
        assert!(spec(&["--server-name", "x", "https://example.com"]).is_err());
    }
}
