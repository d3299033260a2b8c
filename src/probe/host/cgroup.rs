//! The container's own limits, for the `host` probe: when keeper runs in a
//! cgroup v2 with a memory or CPU limit (Docker, Kubernetes, Fly machines'
//! and systemd's `MemoryMax=`/`CPUQuota=`), memory and CPU are measured
//! against that limit, not the node's. The cgroup is the one
//! `/proc/self/cgroup` names (its `0::PATH` line) under `/sys/fs/cgroup`.
//! No v2 line, no such directory, or `max` (no limit) leaves that figure
//! to the node's `/proc`. cgroup v1 is not read.
//!
//! Pure parsers over the files' text, plus [`read`], which reads them from
//! a given root so the tests can point it at fixture directories.

use std::path::{Path, PathBuf};

/// The directory of this process's cgroup v2 under `root` (normally
/// `/sys/fs/cgroup`), from the text of `/proc/self/cgroup`; `None` without
/// a v2 (`0::`) line.
pub fn own_dir(proc_self_cgroup: &str, root: &Path) -> Option<PathBuf> {
    let path = proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?
        .trim();
    // "/" is the root (a cgroup namespace shows a container's own cgroup as
    // "/"); a deleted cgroup reads "/… (deleted)" and has no files to read.
    let relative = path.trim_start_matches('/');
    Some(if relative.is_empty() {
        root.to_path_buf()
    } else {
        root.join(relative)
    })
}

/// `memory.max`: the limit in bytes, `None` for `max` (no limit).
pub fn parse_memory_max(text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "max" => Ok(None),
        n => n
            .parse()
            .map(Some)
            .map_err(|e| format!("memory.max {n:?}: {e}")),
    }
}

/// `cpu.max` (`QUOTA PERIOD` in microseconds): the CPUs the cgroup may use
/// (quota / period), `None` for `max` (no limit).
pub fn parse_cpu_max(text: &str) -> Result<Option<f64>, String> {
    let mut words = text.split_whitespace();
    let quota = words.next().ok_or("cpu.max is empty")?;
    if quota == "max" {
        return Ok(None);
    }
    let quota: f64 = quota
        .parse()
        .map_err(|e| format!("cpu.max quota {quota:?}: {e}"))?;
    let period: f64 = match words.next() {
        Some(p) => p
            .parse()
            .map_err(|e| format!("cpu.max period {p:?}: {e}"))?,
        None => 100_000.0,
    };
    if period <= 0.0 {
        return Err(format!("cpu.max period {period} is not positive"));
    }
    Ok(Some(quota / period))
}

/// A `KEY VALUE` line of a flat keyed file (`memory.stat`, `cpu.stat`).
pub fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == key).then_some(())?;
        words.next()?.parse().ok()
    })
}

/// The cgroup's memory against its limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Memory {
    /// `memory.max`.
    pub limit: u64,
    /// `memory.current` less `inactive_file` of `memory.stat`: the working
    /// set, as `docker stats` and the kubelet count it (page cache the
    /// kernel can drop at once is not pressure).
    pub used: u64,
}

impl Memory {
    pub fn used_pct(&self) -> f64 {
        if self.limit == 0 {
            return 0.0;
        }
        self.used as f64 * 100.0 / self.limit as f64
    }
}

/// The limits found in a cgroup's directory.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    /// `None`: no memory limit (or no cgroup): the node's memory counts.
    pub memory: Option<Memory>,
    /// CPUs allowed (`cpu.max`) with `usage_usec` of `cpu.stat`; `None`:
    /// no CPU limit: the node's CPU counts.
    pub cpu: Option<CpuUse>,
}

/// A cgroup's CPU limit and the CPU time it used so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuUse {
    pub cpus: f64,
    pub usage_usec: u64,
}

/// Reads the limits of the cgroup `proc_self_cgroup` names under `root`.
/// A file that is missing means no limit of that kind (the root cgroup has
/// neither `memory.max` nor `cpu.max`; a controller may not be delegated);
/// a file that is there but unreadable or malformed is an error.
pub fn read(proc_self_cgroup: &str, root: &Path) -> Result<Limits, String> {
    let Some(dir) = own_dir(proc_self_cgroup, root) else {
        return Ok(Limits::default());
    };
    let memory = match optional(&dir.join("memory.max"))? {
        None => None,
        Some(text) => match parse_memory_max(&text)? {
            None => None,
            Some(limit) => Some(memory(&dir, limit)?),
        },
    };
    let cpu = match optional(&dir.join("cpu.max"))? {
        None => None,
        Some(text) => match parse_cpu_max(&text)? {
            None => None,
            Some(cpus) => Some(CpuUse {
                cpus,
                usage_usec: usage_usec(&dir)?,
            }),
        },
    };
    Ok(Limits { memory, cpu })
}

/// CPU time the cgroup `proc_self_cgroup` names has used, from its
/// `cpu.stat`: for the second reading of a first run.
pub fn read_usage(proc_self_cgroup: &str, root: &Path) -> Result<u64, String> {
    let dir = own_dir(proc_self_cgroup, root).ok_or("no cgroup v2 line in /proc/self/cgroup")?;
    usage_usec(&dir)
}

fn memory(dir: &Path, limit: u64) -> Result<Memory, String> {
    let current = required(&dir.join("memory.current"))?;
    let current: u64 = current
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", dir.join("memory.current").display()))?;
    let inactive = optional(&dir.join("memory.stat"))?
        .and_then(|stat| stat_field(&stat, "inactive_file"))
        .unwrap_or(0);
    Ok(Memory {
        limit,
        used: current.saturating_sub(inactive),
    })
}

fn usage_usec(dir: &Path) -> Result<u64, String> {
    let path = dir.join("cpu.stat");
    stat_field(&required(&path)?, "usage_usec")
        .ok_or_else(|| format!("{}: no usage_usec", path.display()))
}

/// The file's text; `None` when it does not exist.
fn optional(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

fn required(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tests/fixtures/cgroup: `limited/` (a container with 512 MiB and 1.5
    /// CPUs), `unlimited/` (`max` for both), `root/` (no limit files, as the
    /// root cgroup or a host without v2 controllers).
    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgroup")
    }

    #[test]
    fn own_dir_is_the_v2_line_under_the_root() {
        let root = Path::new("/sys/fs/cgroup");
        let hybrid = "4:memory:/docker/abc\n1:cpu:/\n0::/system.slice/keeper.service\n";
        assert_eq!(
            own_dir(hybrid, root),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/keeper.service"))
        );
        assert_eq!(own_dir("0::/\n", root), Some(root.to_path_buf()));
        assert_eq!(own_dir("4:memory:/docker/abc\n", root), None, "v1 only");
    }

    #[test]
    fn limit_files_parse_and_max_is_no_limit() {
        assert_eq!(parse_memory_max("536870912\n"), Ok(Some(536_870_912)));
        assert_eq!(parse_memory_max("max\n"), Ok(None));
        assert!(parse_memory_max("lots").is_err());
        assert_eq!(parse_cpu_max("150000 100000\n"), Ok(Some(1.5)));
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert_eq!(parse_cpu_max("50000"), Ok(Some(0.5)), "default period");
        assert!(parse_cpu_max("50000 0").is_err());
        assert!(parse_cpu_max("").is_err());
    }

    #[test]
    fn a_limited_container_is_measured_against_its_limits() {
        let limits = read("0::/limited\n", &fixtures()).expect("reads");
        let memory = limits.memory.expect("a memory limit");
        // memory.current 268435456 less inactive_file 67108864, of 512 MiB.
        assert_eq!(memory.limit, 536_870_912);
        assert_eq!(memory.used, 201_326_592);
        assert_eq!(memory.used_pct(), 37.5);
        let cpu = limits.cpu.expect("a cpu limit");
        assert_eq!(cpu.cpus, 1.5);
        assert_eq!(cpu.usage_usec, 123_456_789);
        assert_eq!(read_usage("0::/limited\n", &fixtures()), Ok(123_456_789));
    }

    #[test]
    fn without_limits_the_node_counts() {
        assert_eq!(read("0::/unlimited\n", &fixtures()), Ok(Limits::default()));
        assert_eq!(read("0::/root\n", &fixtures()), Ok(Limits::default()));
        assert_eq!(read("0::/absent\n", &fixtures()), Ok(Limits::default()));
        assert_eq!(read("1:cpu:/\n", &fixtures()), Ok(Limits::default()));
    }

    #[test]
    fn a_limit_without_its_usage_file_is_an_error_naming_it() {
        let err = read("0::/broken\n", &fixtures()).expect_err("memory.current is missing");
        assert!(err.contains("broken/memory.current"), "{err}");
    }
}
