//! A server binary of the test's own (Prometheus, Alertmanager) as a child
//! process with its files in a temporary directory. It binds
//! `127.0.0.1:0` itself and says which port it got (`msg="Listening on"
//! address=127.0.0.1:PORT`, the exporter-toolkit log line both print), so
//! no other test can take its port; ready once `GET /-/ready` answers 2xx,
//! killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the child is told to listen on.
pub const LISTEN: &str = "--web.listen-address=127.0.0.1:0";

#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildServer {
    /// Runs `binary` (from Debian's `package`) with the arguments `args` makes
    /// from its directory (writing its config there; they must include
    /// [`LISTEN`] and log at info level), then waits up to `timeout` until it
    /// is ready. Panics with the install hint when the binary is missing, and
    /// with its log when it exits at start or never gets ready.
    pub async fn start(
        binary: &str,
        package: &str,
        timeout: Duration,
        args: impl Fn(&Path) -> Vec<String>,
    ) -> ChildServer {
        let dir = tempfile::tempdir().expect("a temporary directory for a test server");
        let log = dir.path().join("stderr.log");
        let mut child = Command::new(binary)
            .args(args(dir.path()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the server's log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {binary} ({e}): install it with `apt-get install -y {package}` (Debian)")
            });
        let start = Instant::now();
        let port = loop {
            if let Some(port) = listening_port(&log) {
                break port;
            }
            check_alive(&mut child, binary, &log, start, timeout);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let url = format!("http://127.0.0.1:{port}/-/ready");
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return ChildServer {
                    child,
                    port,
                    _dir: dir,
                };
            }
            check_alive(&mut child, binary, &log, start, timeout);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The port of the child's `msg="Listening on" address=127.0.0.1:PORT` line, once written.
fn listening_port(log: &PathBuf) -> Option<u16> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter(|line| line.contains("msg=\"Listening on\""))
        .find_map(|line| {
            let address = line.split("address=").nth(1)?.split_whitespace().next()?;
            address.strip_prefix("127.0.0.1:")?.parse().ok()
        })
}

/// Panics with the child's log when it exited or `timeout` passed since `start`.
fn check_alive(child: &mut Child, binary: &str, log: &PathBuf, start: Instant, timeout: Duration) {
    let exited = child.try_wait().ok().flatten();
    if exited.is_none() && start.elapsed() <= timeout {
        return;
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match exited {
        Some(status) => panic!("{binary} exited while starting ({status}):\n{text}"),
        None => panic!("{binary} was not ready within {timeout:?}:\n{text}"),
    }
}
