//! The `host` probe: the machine keeper runs on. memory_pct from
//! `/proc/meminfo`, cpu_pct from `/proc/stat` (the average since the previous
//! run; the first run samples twice ~250 ms apart), disk_pct per configured
//! mount through statvfs, counted the way `df` counts.
//!
//! In a container (a cgroup v2 with `memory.max` or `cpu.max` set), memory
//! and CPU are the container's, against its limits ([`cgroup`]); without a
//! limit they are the node's.
//!
//! Linux only (it reads `/proc`). A configured mount that is missing or is
//! not a mount point is red, naming it: a volume that failed to mount would
//! otherwise be measured as the root filesystem.

pub mod cgroup;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use tokio::time::{Instant, timeout_at};

use super::{BuildError, Context, Kind};
use crate::core::Metric;
use crate::core::Sample;
use crate::core::SpecProblem;

/// How far apart the two `/proc/stat` readings of a first run are.
const CPU_SAMPLE_GAP: Duration = Duration::from_millis(250);

/// `[checks.NAME]` keys of kind `host`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Mount points whose disk use is measured.
    #[serde(default = "default_mounts", deserialize_with = "mounts")]
    pub mounts: Vec<PathBuf>,
}

fn default_mounts() -> Vec<PathBuf> {
    vec![PathBuf::from("/")]
}

fn mounts<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<PathBuf>, D::Error> {
    let mounts = Vec::<PathBuf>::deserialize(de)?;
    if mounts.is_empty() {
        return Err(de::Error::custom("mounts: must name at least one mount"));
    }
    if let Some(relative) = mounts.iter().find(|m| !m.is_absolute()) {
        return Err(de::Error::custom(format!(
            "mounts: {:?} is not an absolute path",
            relative.display().to_string()
        )));
    }
    Ok(mounts)
}

impl Kind for Spec {
    const NAME: &'static str = "host";
    type Probe = Probe;

    fn target(&self) -> String {
        let mounts: Vec<String> = self
            .mounts
            .iter()
            .map(|m| m.display().to_string())
            .collect();
        format!("this host ({})", mounts.join(", "))
    }

    /// `mounts` is checked as it is read.
    fn problems(&self) -> Vec<SpecProblem> {
        Vec::new()
    }

    fn build(&self, _check: &str, _ctx: &Context) -> Result<Probe, BuildError> {
        Ok(Probe {
            mounts: self.mounts.clone(),
            previous_cpu: Mutex::new(None),
        })
    }
}

#[derive(Debug)]
pub struct Probe {
    mounts: Vec<PathBuf>,
    /// The CPU reading the previous run took.
    previous_cpu: Mutex<Option<CpuReading>>,
}

/// One reading of CPU time: the node's `/proc/stat`, or the cgroup's
/// `usage_usec` with its CPU limit and when it was read.
#[derive(Clone, Copy, Debug, PartialEq)]
enum CpuReading {
    Node(CpuTimes),
    Cgroup {
        usage_usec: u64,
        cpus: f64,
        at: Instant,
    },
}

impl CpuReading {
    /// Busy share since `earlier`, as a percentage of what may be used (the
    /// node's CPUs, or the cgroup's limit); `None` when no time passed or
    /// the two readings are of different kinds (a limit came or went).
    fn busy_pct_since(&self, earlier: &CpuReading) -> Option<f64> {
        match (self, earlier) {
            (CpuReading::Node(now), CpuReading::Node(then)) => now.busy_pct_since(then),
            (
                CpuReading::Cgroup {
                    usage_usec,
                    cpus,
                    at,
                },
                CpuReading::Cgroup {
                    usage_usec: before,
                    at: then,
                    ..
                },
            ) => {
                let wall_usec = at.saturating_duration_since(*then).as_micros() as f64;
                (wall_usec > 0.0 && *cpus > 0.0).then(|| {
                    let used = usage_usec.saturating_sub(*before) as f64;
                    (used * 100.0 / (wall_usec * cpus)).min(100.0)
                })
            }
            _ => None,
        }
    }
}

/// Memory figures of `/proc/meminfo`, in bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
}

impl Memory {
    /// `(MemTotal − MemAvailable) / MemTotal`, as a percentage.
    pub fn used_pct(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.total.saturating_sub(self.available) as f64 * 100.0 / self.total as f64
    }
}

/// Parses `/proc/meminfo`. Kernels older than 3.14 lack MemAvailable: then
/// MemFree + Buffers + Cached stands in for it.
pub fn parse_meminfo(text: &str) -> Result<Memory, String> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let mut words = rest.split_whitespace();
            let value: u64 = words.next()?.parse().ok()?;
            let scale = match words.next() {
                Some("kB") => 1024,
                _ => 1,
            };
            Some(value * scale)
        })
    };
    let total = field("MemTotal").ok_or("no MemTotal")?;
    let available = match field("MemAvailable") {
        Some(available) => available,
        None => {
            let free = field("MemFree").ok_or("neither MemAvailable nor MemFree")?;
            free + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0)
        }
    };
    Ok(Memory { total, available })
}

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest
    /// time is already inside user and nice).
    pub total: u64,
    /// idle + iowait.
    pub idle: u64,
}

impl CpuTimes {
    /// The busy share of the time between `earlier` and `self`, as a
    /// percentage; `None` when no tick passed.
    pub fn busy_pct_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let idle = self.idle.saturating_sub(earlier.idle).min(total);
        if total == 0 {
            return None;
        }
        Some((total - idle) as f64 * 100.0 / total as f64)
    }
}

/// Parses the first (`cpu `) line of `/proc/stat`.
pub fn parse_stat(text: &str) -> Result<CpuTimes, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or("no aggregate cpu line")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cpu line {line:?}: {e}"))?;
    if fields.len() < 4 {
        return Err(format!("cpu line {line:?}: fewer than 4 fields"));
    }
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Ok(CpuTimes {
        total: fields.iter().sum(),
        idle,
    })
}

/// The mount points listed in `/proc/self/mountinfo` (field 5, with the
/// kernel's octal escapes such as `\040` for a space undone).
pub fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(value) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One mount's use, as `df` counts it: used = blocks − free, and the
/// percentage is of what non-root users can have (used + available).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Disk {
    pub used_pct: f64,
    pub avail_bytes: u64,
}

fn statvfs(path: &Path, mount_points: &[PathBuf]) -> Result<Disk, String> {
    let shown = path.display();
    let real = std::fs::canonicalize(path).map_err(|e| format!("mount {shown}: {}", words(&e)))?;
    if !mount_points.contains(&real) {
        return Err(format!("{shown} is not a mount point"));
    }
    let st = rustix::fs::statvfs(&real).map_err(|e| format!("mount {shown}: statvfs: {e}"))?;
    let used = st.f_blocks.saturating_sub(st.f_bfree);
    let usable = used + st.f_bavail;
    let used_pct = if usable == 0 {
        0.0
    } else {
        used as f64 * 100.0 / usable as f64
    };
    Ok(Disk {
        used_pct,
        avail_bytes: st.f_bavail.saturating_mul(st.f_frsize),
    })
}

/// An I/O error without the `(os error 2)` tail.
fn words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

async fn read_proc(path: &str) -> Result<String, String> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("reading {path}: {}", words(&e)))
}

impl Probe {
    pub async fn run(&self, deadline: Instant) -> Sample {
        match self.measure(deadline).await {
            Ok(sample) => sample,
            Err(reason) => Sample::down(reason),
        }
    }

    async fn measure(&self, deadline: Instant) -> Result<Sample, String> {
        let limits = own_limits().await?;
        let memory = match limits.memory {
            Some(m) => Memory {
                total: m.limit,
                available: m.limit.saturating_sub(m.used),
            },
            None => parse_meminfo(&read_proc("/proc/meminfo").await?)
                .map_err(|e| format!("/proc/meminfo: {e}"))?,
        };
        let cpu_pct = self.cpu_pct(deadline, limits.cpu).await?;
        let mountinfo = parse_mountinfo(&read_proc("/proc/self/mountinfo").await?);
        // statvfs can block for as long as a hung network filesystem does: off
        // the runtime, and abandoned at the deadline.
        let mounts = self.mounts.clone();
        let disks = tokio::task::spawn_blocking(move || {
            mounts
                .iter()
                .map(|m| (m.clone(), statvfs(m, &mountinfo)))
                .collect::<Vec<_>>()
        });
        let disks = match timeout_at(deadline, disks).await {
            Err(_) => return Err("timed out reading disk use (statvfs)".into()),
            Ok(Err(e)) => return Err(format!("reading disk use: {e}")),
            Ok(Ok(disks)) => disks,
        };

        let memory_pct = memory.used_pct();
        let mut parts = vec![
            match limits.memory {
                Some(m) => format!("memory {memory_pct:.0}% of {} (cgroup)", mib(m.limit)),
                None => format!("memory {memory_pct:.0}%"),
            },
            match limits.cpu {
                Some(c) => format!("cpu {cpu_pct:.0}% of {} CPUs (cgroup)", c.cpus),
                None => format!("cpu {cpu_pct:.0}%"),
            },
        ];
        let mut metrics = vec![(Metric::MemoryPct, memory_pct), (Metric::CpuPct, cpu_pct)];
        let mut values = vec![
            ("memory_total_bytes".to_string(), memory.total as f64),
            (
                "memory_available_bytes".to_string(),
                memory.available as f64,
            ),
        ];
        let mut failures = Vec::new();
        let mut disk_parts = Vec::new();
        for (mount, disk) in disks {
            match disk {
                Ok(disk) => {
                    disk_parts.push(format!("{} {:.0}%", mount.display(), disk.used_pct));
                    metrics.push((Metric::DiskPct, disk.used_pct));
                    values.push((
                        format!("disk_avail_bytes:{}", mount.display()),
                        disk.avail_bytes as f64,
                    ));
                }
                Err(reason) => failures.push(reason),
            }
        }
        if !disk_parts.is_empty() {
            parts.push(format!("disk {}", disk_parts.join(", ")));
        }
        let message = parts.join(", ");
        let mut sample = if failures.is_empty() {
            Sample::up(message)
        } else {
            Sample::down(format!("{}; {message}", failures.join("; ")))
        };
        sample.metrics = metrics;
        sample.values = values;
        Ok(sample)
    }

    /// Busy CPU since the previous run; on the first run (or when no tick
    /// passed since it) over a short gap, bounded by the deadline. Against
    /// the cgroup's limit when it has one.
    async fn cpu_pct(
        &self,
        deadline: Instant,
        limit: Option<cgroup::CpuUse>,
    ) -> Result<f64, String> {
        let now = match limit {
            Some(c) => CpuReading::Cgroup {
                usage_usec: c.usage_usec,
                cpus: c.cpus,
                at: Instant::now(),
            },
            None => CpuReading::Node(read_cpu().await?),
        };
        let previous = self.swap_previous(now);
        if let Some(pct) = previous.and_then(|p| now.busy_pct_since(&p)) {
            return Ok(pct);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(CPU_SAMPLE_GAP.min(left / 2)).await;
        let later = match now {
            CpuReading::Node(_) => CpuReading::Node(read_cpu().await?),
            CpuReading::Cgroup { cpus, .. } => CpuReading::Cgroup {
                usage_usec: own_usage().await?,
                cpus,
                at: Instant::now(),
            },
        };
        self.swap_previous(later);
        Ok(later.busy_pct_since(&now).unwrap_or(0.0))
    }

    fn swap_previous(&self, now: CpuReading) -> Option<CpuReading> {
        let mut previous = self
            .previous_cpu
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        previous.replace(now)
    }
}

async fn read_cpu() -> Result<CpuTimes, String> {
    parse_stat(&read_proc("/proc/stat").await?).map_err(|e| format!("/proc/stat: {e}"))
}

/// Where cgroup v2 is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// This process's cgroup limits (none without a cgroup v2 line).
async fn own_limits() -> Result<cgroup::Limits, String> {
    let own = read_proc("/proc/self/cgroup").await?;
    tokio::task::spawn_blocking(move || cgroup::read(&own, Path::new(CGROUP_ROOT)))
        .await
        .map_err(|e| format!("reading the cgroup's limits: {e}"))?
}

/// This process's cgroup's CPU time so far.
async fn own_usage() -> Result<u64, String> {
    let own = read_proc("/proc/self/cgroup").await?;
    tokio::task::spawn_blocking(move || cgroup::read_usage(&own, Path::new(CGROUP_ROOT)))
        .await
        .map_err(|e| format!("reading the cgroup's cpu.stat: {e}"))?
}

/// Bytes as the message shows a limit: `512 MiB`, `1.5 GiB`.
fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{} GiB", (mib / 1024.0 * 10.0).round() / 10.0)
    } else {
        format!("{} MiB", mib.round())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16000000 kB\n\
                           MemFree:         2000000 kB\n\
                           MemAvailable:    4000000 kB\n\
                           Buffers:          500000 kB\n\
                           Cached:          1500000 kB\n\
                           SwapTotal:             0 kB\n";

    #[test]
    fn meminfo_used_is_total_minus_available() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.total, 16_000_000 * 1024);
        assert_eq!(m.available, 4_000_000 * 1024);
        assert_eq!(m.used_pct(), 75.0);
    }

    #[test]
    fn meminfo_without_memavailable_falls_back_to_free_buffers_cached() {
        let old = MEMINFO.replace("MemAvailable:    4000000 kB\n", "");
        let m = parse_meminfo(&old).unwrap();
        assert_eq!(m.available, 4_000_000 * 1024);
        assert!(parse_meminfo("SwapTotal: 0 kB\n").is_err());
    }

    #[test]
    fn stat_delta_gives_busy_share() {
        let before = parse_stat(
            "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\nintr 1 2\n",
        )
        .unwrap();
        assert_eq!(
            before,
            CpuTimes {
                total: 1000,
                idle: 800
            }
        );
        let after = parse_stat("cpu  250 0 150 1500 100 0 0 0 0 0\n").unwrap();
        // 1000 ticks passed, 800 of them idle.
        assert_eq!(after.busy_pct_since(&before), Some(20.0));
        assert_eq!(after.busy_pct_since(&after), None);
        // A counter going backwards (a reset) is not a measurement.
        assert_eq!(before.busy_pct_since(&after), None);
    }

    #[test]
    fn cgroup_cpu_is_a_share_of_its_limit_and_a_change_of_kind_starts_over() {
        let t0 = Instant::now();
        let before = CpuReading::Cgroup {
            usage_usec: 1_000_000,
            cpus: 0.5,
            at: t0,
        };
        // 0.25 s of CPU in 1 s of wall time, with half a CPU allowed: 50 %.
        let after = CpuReading::Cgroup {
            usage_usec: 1_250_000,
            cpus: 0.5,
            at: t0 + Duration::from_secs(1),
        };
        assert_eq!(after.busy_pct_since(&before), Some(50.0));
        assert_eq!(after.busy_pct_since(&after), None, "no time passed");
        let node = CpuReading::Node(CpuTimes { total: 10, idle: 5 });
        assert_eq!(after.busy_pct_since(&node), None);
        assert_eq!(node.busy_pct_since(&after), None);
        assert_eq!(mib(536_870_912), "512 MiB");
        assert_eq!(mib(1_610_612_736), "1.5 GiB");
    }

    #[test]
    fn stat_without_cpu_line_or_with_garbage_is_an_error() {
        assert!(parse_stat("intr 1 2\n").is_err());
        assert!(parse_stat("cpu  1 2 x 4\n").is_err());
        assert!(parse_stat("cpu  1 2\n").is_err());
    }

    #[test]
    fn mountinfo_lists_mount_points_unescaped() {
        let text = "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    40 22 0:35 / /mnt/my\\040disk rw - tmpfs tmpfs rw\n";
        assert_eq!(
            parse_mountinfo(text),
            vec![PathBuf::from("/"), PathBuf::from("/mnt/my disk")]
        );
    }
}
