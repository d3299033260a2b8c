//! A server binary of the test's own (Prometheus, Alertmanager) as a child
//! process on a free 127.0.0.1 port, with its files in a temporary
//! directory; ready once `GET /-/ready` answers 2xx, killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// Ports tried before giving up.
const ATTEMPTS: usize = 5;

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
    /// from its directory and port (writing its config there), then waits up
    /// to `timeout` until it is ready. Panics with the install hint when the
    /// binary is missing, when it exits at start on every port tried, and
    /// when it never gets ready.
    pub async fn start(
        binary: &str,
        package: &str,
        timeout: Duration,
        args: impl Fn(&Path, u16) -> Vec<String>,
    ) -> ChildServer {
        let dir = tempfile::tempdir().expect("a temporary directory for a test server");
        // The port is free when picked but not held: another test may bind it
        // before the child does, which then exits. Try a few ports.
        let mut exits = Vec::new();
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let mut child = Command::new(binary)
                .args(args(dir.path(), port))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("starting {binary} ({e}): install it with `apt-get install -y {package}` (Debian)")
                });
            match wait_ready(&mut child, binary, port, timeout).await {
                Ok(()) => {
                    return ChildServer {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                Err(status) => exits.push(status),
            }
        }
        panic!("{binary} exited while starting, {ATTEMPTS} times: {exits:?}")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Waits until the child answers `GET /-/ready` with 2xx on `port`; its exit
/// status when it exits first (its port was taken). Panics after `timeout`.
async fn wait_ready(
    child: &mut Child,
    binary: &str,
    port: u16,
    timeout: Duration,
) -> Result<(), std::process::ExitStatus> {
    let url = format!("http://127.0.0.1:{port}/-/ready");
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out waiting until {binary} answers {url}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
