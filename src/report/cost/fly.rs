//! What the cost report reads from the Fly.io Machines API: an app's
//! machines with their sizes (`GET /v1/apps/{app}/machines`, `config.guest`)
//! and its volumes (`GET /v1/apps/{app}/volumes`, `size_gb`), through the
//! same client, URL rules and `Authorization` as the `fly` probe
//! (`probe::api`). Decoded leniently: any field may be missing
//! (`../shared/reference/external-apis.md` §1 and §4).

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::price::{CpuKind, Guest};
use crate::probe::fly::Spec;
use crate::probe::{self, api};

/// How long one Machines API request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A machine as the report needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    pub id: String,
    pub region: String,
    pub state: String,
    /// `Err` says why the size is not known (no `config.guest`, a CPU kind
    /// keeper has no price for).
    pub guest: Result<Guest, String>,
}

impl Machine {
    /// Whether it is billed for CPU and RAM: any state but stopped,
    /// suspended, created (never started) and failed.
    pub fn running(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "stopped" | "suspended" | "created" | "failed"
        )
    }
}

/// A volume as the report needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub region: String,
    pub size_gb: f64,
}

/// The app's machines and volumes, or why they could not be read.
pub async fn read(
    client: &reqwest::Client,
    spec: &Spec,
) -> Result<(Vec<Machine>, Vec<Volume>), String> {
    let base = api::parse_url("api_url", &spec.api_url).map_err(|p| p.message)?;
    let auth = spec.token.authorization().map_err(|p| p.message)?;
    let app = spec.app.trim();
    let get = |what: &'static str| {
        let url = api::join(&base, &["v1", "apps", app, what]);
        fetch(client, url, auth.clone(), spec)
    };
    let machines = get("machines").await?;
    let volumes = get("volumes").await?;
    Ok((decode_machines(&machines)?, decode_volumes(&volumes)?))
}

async fn fetch(
    client: &reqwest::Client,
    url: Url,
    auth: http::HeaderValue,
    spec: &Spec,
) -> Result<Vec<u8>, String> {
    let shown = format!("Machines API at {}{}", api::host_port(&url), url.path());
    let reply = tokio::time::timeout(TIMEOUT, api::get(client, &url, Some(&auth)))
        .await
        .map_err(|_| format!("{shown}: no answer within {}s", TIMEOUT.as_secs()))?
        .map_err(|reason| format!("{shown}: {reason}"))?;
    if !reply.status.is_success() {
        let reason = api::status_reason(reply.status, &reply.body, Some(&spec.token));
        return Err(format!("{shown}: {reason}"));
    }
    Ok(reply.body.to_vec())
}

#[derive(Default, Deserialize)]
struct RawMachine {
    id: Option<String>,
    state: Option<String>,
    region: Option<String>,
    config: Option<RawConfig>,
}

#[derive(Default, Deserialize)]
struct RawConfig {
    guest: Option<RawGuest>,
    metadata: Option<RawMetadata>,
}

#[derive(Default, Deserialize)]
struct RawGuest {
    cpu_kind: Option<String>,
    cpus: Option<f64>,
    memory_mb: Option<f64>,
}

#[derive(Default, Deserialize)]
struct RawMetadata {
    fly_process_group: Option<String>,
}

#[derive(Default, Deserialize)]
struct RawVolume {
    id: Option<String>,
    name: Option<String>,
    state: Option<String>,
    region: Option<String>,
    size_gb: Option<f64>,
}

/// The machines that make up the app: not gone or going, not one-offs
/// (release commands, consoles), as `flyctl status` lists them; by id.
pub fn decode_machines(body: &[u8]) -> Result<Vec<Machine>, String> {
    let raw: Vec<RawMachine> = serde_json::from_slice(body)
        .map_err(|e| format!("invalid JSON from the Machines API (machines): {e}"))?;
    let mut machines: Vec<Machine> = raw
        .into_iter()
        .filter(|m| {
            let group = m
                .config
                .as_ref()
                .and_then(|c| c.metadata.as_ref())
                .and_then(|m| m.fly_process_group.as_deref());
            probe::fly::is_listed(m.state.as_deref(), group)
        })
        .map(|m| Machine {
            id: m.id.unwrap_or_else(|| "?".into()),
            region: m.region.unwrap_or_default(),
            state: m.state.unwrap_or_else(|| "unknown".into()),
            guest: guest(m.config.and_then(|c| c.guest)),
        })
        .collect();
    machines.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(machines)
}

/// The size from `config.guest`; missing `cpus`/`memory_mb` take Fly's
/// defaults (1 vCPU, 256 MB), a missing `cpu_kind` is `shared`.
fn guest(raw: Option<RawGuest>) -> Result<Guest, String> {
    let raw = raw.ok_or("size unknown (no config.guest)")?;
    let kind = raw.cpu_kind.as_deref().unwrap_or("shared");
    let cpu_kind = CpuKind::parse(kind).ok_or_else(|| format!("no price for CPU kind {kind:?}"))?;
    let whole = |v: Option<f64>, default: u32| match v {
        None => Some(default),
        Some(v) if v >= 1.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) => Some(v as u32),
        Some(_) => None,
    };
    let cpus = whole(raw.cpus, 1).ok_or("size unknown (cpus is not a whole number)")?;
    let memory_mb =
        whole(raw.memory_mb, 256).ok_or("size unknown (memory_mb is not a whole number)")?;
    Ok(Guest {
        cpu_kind,
        cpus,
        memory_mb,
    })
}

/// The app's volumes that exist (not being destroyed), by id.
pub fn decode_volumes(body: &[u8]) -> Result<Vec<Volume>, String> {
    let raw: Vec<RawVolume> = serde_json::from_slice(body)
        .map_err(|e| format!("invalid JSON from the Machines API (volumes): {e}"))?;
    let mut volumes: Vec<Volume> = raw
        .into_iter()
        .filter(|v| {
            !matches!(
                v.state.as_deref(),
                Some("destroyed" | "destroying" | "pending_destroy")
            )
        })
        .map(|v| Volume {
            id: v.id.unwrap_or_else(|| "?".into()),
            name: v.name.unwrap_or_default(),
            region: v.region.unwrap_or_default(),
            size_gb: v
                .size_gb
                .filter(|g| g.is_finite() && *g >= 0.0)
                .unwrap_or(0.0),
        })
        .collect();
    volumes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(volumes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_come_from_config_guest_leniently() {
        let body = br#"[
          {"id":"b","state":"started","region":"fra","config":{"guest":{"cpu_kind":"performance","cpus":2,"memory_mb":4096}}},
          {"id":"a","state":"stopped","config":{"guest":{}}},
          {"id":"c","state":"started","config":{"guest":{"cpu_kind":"a100-pcie-40gb","cpus":8}}},
          {"id":"d","state":"started"},
          {"id":"e","state":"destroyed","config":{"guest":{"cpus":1}}},
          {"id":"f","state":"started","config":{"metadata":{"fly_process_group":"fly_app_release_command"}}},
          {"id":"g","state":"started","config":{"guest":{"cpus":1.5}}, "surprise": [1]}
        ]"#;
        let ms = decode_machines(body).unwrap();
        let ids: Vec<&str> = ms.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "g"]);
        assert_eq!(
            ms[0].guest.as_ref().unwrap().to_string(),
            "shared-cpu-1x 256MB"
        );
        assert!(!ms[0].running());
        assert_eq!(
            ms[1].guest.as_ref().unwrap().to_string(),
            "performance-2x 4GB"
        );
        assert!(ms[1].running());
        assert_eq!(
            ms[2].guest,
            Err("no price for CPU kind \"a100-pcie-40gb\"".into())
        );
        assert_eq!(ms[3].guest, Err("size unknown (no config.guest)".into()));
        assert!(ms[4].guest.is_err());
        assert!(decode_machines(b"{}").unwrap_err().contains("invalid JSON"));
    }

    #[test]
    fn volumes_being_destroyed_cost_nothing() {
        let body = br#"[{"id":"vol_2","name":"data","state":"created","size_gb":3,"region":"fra"},
                        {"id":"vol_1","state":"pending_destroy","size_gb":10},
                        {"id":"vol_0","size_gb":null}]"#;
        let vs = decode_volumes(body).unwrap();
        assert_eq!(vs.len(), 2);
        assert_eq!((vs[0].id.as_str(), vs[0].size_gb), ("vol_0", 0.0));
        assert_eq!((vs[1].name.as_str(), vs[1].size_gb), ("data", 3.0));
    }
}
