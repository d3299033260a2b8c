//! A throwaway PostgreSQL cluster of a test's own: `initdb` in a temp dir with
//! password (SCRAM) authentication for every connection and
//! `pg_stat_statements` preloaded, listening on a free loopback port only.
//! Stopped (`pg_ctl stop -m immediate`) and removed when dropped.
//! [`Cluster::start_tls`] also turns on `ssl` with a certificate the test made.
//!
//! `initdb` refuses to run as root, and tests run as root: then every server
//! command runs as the `postgres` user through `runuser`, in a directory
//! owned by it. Blocking: call it from a test before anything else runs.

use super::free_port;
use super::target::Leaf;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser's password in every throwaway cluster.
pub const PASSWORD: &str = "keeper-test-pw";

pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// Initialises and starts a cluster; panics with the server log when it won't start.
    pub fn start() -> Cluster {
        Cluster::start_with(None)
    }

    /// Like [`Cluster::start`], with `ssl = on` and `leaf` as the server
    /// certificate (clients may still connect without TLS).
    pub fn start_tls(leaf: &Leaf) -> Cluster {
        Cluster::start_with(Some(leaf))
    }

    fn start_with(leaf: Option<&Leaf>) -> Cluster {
        let bin = server_bin();
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let dir = tempfile::Builder::new()
            .prefix("keeper-pg-")
            .tempdir()
            .expect("temp dir for a throwaway cluster");
        std::fs::write(dir.path().join("pw"), PASSWORD).expect("writing the password file");
        let mut ssl = String::new();
        if let Some(leaf) = leaf {
            let (cert, key) = leaf.write_pem(dir.path());
            // The server refuses a key file others can read.
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600 the server key");
            ssl = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            );
        }
        if as_postgres {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(dir.path()));
        }
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        let data = cluster.data();
        run(cluster
            .server_command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!(
                "--pwfile={}",
                cluster.dir.path().join("pw").display()
            )));
        // A free port can be taken between our probe of it and the server's
        // bind: try a few.
        for _ in 0..5 {
            cluster.port = free_port();
            let options = format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {} \
                 -c shared_preload_libraries=pg_stat_statements -c fsync=off{ssl}",
                cluster.port,
                cluster.dir.path().display()
            );
            let started = cluster
                .server_command("pg_ctl")
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.path().join("log"))
                .args(["-o", &options])
                .status()
                .expect("running pg_ctl start");
            if started.success() {
                return cluster;
            }
        }
        let log = std::fs::read_to_string(cluster.dir.path().join("log")).unwrap_or_default();
        panic!("throwaway PostgreSQL cluster did not start:\n{log}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres:<password>@127.0.0.1:<port>/postgres`.
    pub fn url(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        // The postgres user may not be allowed into the test's working directory.
        cmd.current_dir(self.dir.path());
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.port == 0 {
            return;
        }
        let stopped = self
            .server_command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.data())
            .output();
        if !matches!(&stopped, Ok(out) if out.status.success()) {
            eprintln!(
                "stopping the throwaway cluster on port {}: {stopped:?}",
                self.port
            );
        }
    }
}

/// The newest installed server's `bin` dir (`/usr/lib/postgresql/<version>/bin`).
fn server_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("reading {}: {e} (is postgresql installed?)", root.display()))
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("no initdb under {}", root.display()))
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
