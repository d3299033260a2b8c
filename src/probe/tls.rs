//! The `tls` probe: handshake with SNI, read the peer's chain; report the
//! earliest-expiring certificate's days left (even when the chain is invalid or
//! expired), hostname match and chain validity. Whether the days left are
//! worrying is for the thresholds to say, not this probe.

use std::path::PathBuf;

use chrono::Utc;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use tokio::time::{Instant, timeout_at};

use super::{BuildError, Context, Kind, tcp, tlsconf};
use crate::core::Metric;
use crate::core::SpecProblem;
use crate::core::sample::ConnInfo;
use crate::core::value::HostPort;
use crate::core::{CertInfo, Sample};

/// `[checks.NAME]` keys of kind `tls`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub host: HostPort,
    /// SNI and the name the certificate must match; default the host.
    pub server_name: Option<String>,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl Spec {
    /// The name to send and verify: `server_name`, else the host.
    fn name(&self) -> &str {
        self.server_name.as_deref().unwrap_or(&self.host.host)
    }

    fn server_name(&self) -> Result<ServerName<'static>, SpecProblem> {
        tlsconf::server_name(self.name())
            .map_err(|e| SpecProblem::new("server_name", format!("server_name: {}", e.0)))
    }
}

impl Kind for Spec {
    const NAME: &'static str = "tls";
    type Probe = Probe;

    fn target(&self) -> String {
        self.host.to_string()
    }

    fn problems(&self) -> Vec<SpecProblem> {
        let mut out: Vec<SpecProblem> = self.server_name().err().into_iter().collect();
        out.extend(tlsconf::ca_file_problem(self.ca_file.as_deref()));
        out
    }

    fn build(&self, _check: &str, ctx: &Context) -> Result<Probe, BuildError> {
        let name = self.name();
        let server_name = self.server_name()?;
        let tls = tlsconf::Tls::new(
            &ctx.roots,
            self.ca_file.as_deref(),
            self.insecure_skip_verify,
            &[],
        )?;
        Ok(Probe {
            host: self.host.clone(),
            name: name.to_string(),
            server_name,
            tls,
        })
    }
}

#[derive(Debug)]
pub struct Probe {
    host: HostPort,
    /// The name as configured, for messages.
    name: String,
    server_name: ServerName<'static>,
    tls: tlsconf::Tls,
}

impl Probe {
    pub async fn run(&self, deadline: Instant) -> Sample {
        let conn = match tcp::connect(&self.host.host, self.host.port, None, deadline).await {
            Ok(conn) => conn,
            Err(reason) => return Sample::down(reason),
        };
        let addr = conn.addr;
        let mut seen = ConnInfo {
            dns_lookup: Some(conn.dns.unwrap_or_default()),
            ip_protocol: Some(ConnInfo::ip_protocol(addr.ip())),
            ..ConnInfo::default()
        };
        let down = |reason: String, seen: ConnInfo| Sample {
            conn: seen,
            ..Sample::down(reason)
        };
        let handshake = self
            .tls
            .connector()
            .connect(self.server_name.clone(), conn.stream);
        let stream = match timeout_at(deadline, handshake).await {
            Err(_) => return down(format!("timed out in the TLS handshake with {addr}"), seen),
            Ok(Err(e)) => {
                let reason = match tlsconf::rustls_error(&e) {
                    Some(err) => tlsconf::describe(err, None),
                    None => tcp::io_reason(&e),
                };
                return down(format!("TLS handshake with {addr}: {reason}"), seen);
            }
            Ok(Ok(stream)) => stream,
        };
        seen.tls_version = tlsconf::version_name(stream.get_ref().1);
        let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
        let Some(cert) = tlsconf::earliest_expiring(chain) else {
            return down(format!("{addr} presented no readable certificate"), seen);
        };
        let verdict = self.tls.verify(chain, &self.server_name);
        drop(stream);
        if verdict.is_ok() && self.tls.verifies() {
            seen.verified_chain_expiry = Some(cert.not_after);
        }
        Sample {
            conn: seen,
            ..self.sample(cert, verdict)
        }
    }

    fn sample(&self, cert: CertInfo, verdict: Result<(), rustls::Error>) -> Sample {
        let now = Utc::now();
        let days = cert.days_left(now);
        let date = cert.not_after.format("%Y-%m-%d");
        let mut sample = match verdict {
            Ok(()) if days < 0.0 => {
                // Only reachable with insecure_skip_verify: the chain is not
                // judged, the dates are still reported.
                Sample::up(format!(
                    "certificate for {} expired on {date} ({}), issued by {}",
                    self.name,
                    days_text(days),
                    cert.issuer
                ))
            }
            Ok(()) => Sample::up(format!(
                "certificate for {} expires {date} ({}), issued by {}",
                self.name,
                days_text(days),
                cert.issuer
            )),
            Err(err) => {
                let problem = tlsconf::describe(&err, Some(&cert));
                Sample::down(format!(
                    "{problem}; certificate for {}, {}, issued by {}",
                    self.name,
                    days_text(days),
                    cert.issuer
                ))
            }
        };
        sample.metrics.push((Metric::CertDaysLeft, days));
        sample.cert = Some(cert);
        sample
    }
}

/// `5 days`, `1 day`, `3 days ago`.
fn days_text(days: f64) -> String {
    let n = days.abs().round() as i64;
    let unit = if n == 1 { "day" } else { "days" };
    if days < 0.0 {
        format!("{n} {unit} ago")
    } else {
        format!("{n} {unit} left")
    }
}
