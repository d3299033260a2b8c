//! A server binary of the test's own (Prometheus, Alertmanager) as a child
//! process on a free 127.0.0.1 port, with its files in a temporary
//! directory; ready once `GET /-/ready` answers 2xx, killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

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
    /// binary is missing, and when it exits or never gets ready.
    pub async fn start(
        binary: &str,
        package: &str,
        timeout: Duration,
        args: impl FnOnce(&Path, u16) -> Vec<String>,
    ) -> ChildServer {
        let dir = tempfile::tempdir().expect("a temporary directory for a test server");
        let port = free_port();
        let child = Command::new(binary)
            .args(args(dir.path(), port))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {binary} ({e}): install it with `apt-get install -y {package}` (Debian)")
            });
        let mut server = ChildServer {
            child,
            port,
            _dir: dir,
        };
        server.wait_ready(binary, timeout).await;
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self, binary: &str, timeout: Duration) {
        let url = format!("{}/-/ready", self.url());
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{binary} exited while starting: {status}");
            }
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting until {binary} answers {url}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
