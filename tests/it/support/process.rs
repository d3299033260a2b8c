//! keeper as a real process (the built binary), for what only a process
//! shows: SIGKILL at any moment, exit statuses. Configs for it listen on
//! `127.0.0.1:0`: the child binds the port itself and reports the address in
//! its "keeper started" log line (JSON logs on stderr), so no port is picked
//! by the test and freed before the child can take it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// The log line keeper writes once it listens, with its address in `addr`.
const STARTED: &str = "keeper started";
/// Lines of the child's log kept (to show when it fails, or to look into).
const KEPT_LINES: usize = 10_000;

/// A keeper process, SIGKILLed when dropped.
pub struct Process {
    child: Child,
    started: Option<oneshot::Receiver<SocketAddr>>,
    addr: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Runs `keeper run -c config` without waiting for it: it may be killed
    /// before it listens.
    pub fn spawn(config: &Path) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keeper"))
            .args(["run", "-c"])
            .arg(config)
            // Warnings, and keeper's own info lines for the start address.
            .env("RUST_LOG", "warn,keeper=info")
            .env("KEEPER_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("keeper starts");
        let (tx, rx) = oneshot::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stderr.take().map(|stderr| {
            let log = log.clone();
            std::thread::spawn(move || read_log(stderr, tx, &log))
        });
        Process {
            child,
            started: Some(rx),
            addr: None,
            log,
            reader,
        }
    }

    /// Runs keeper and waits until it listens.
    pub async fn start(config: &Path) -> Process {
        let mut process = Process::spawn(config);
        process.addr().await;
        process
    }

    /// The address keeper listens on, waiting (up to 30 s) until it reports it.
    pub async fn addr(&mut self) -> SocketAddr {
        if let Some(addr) = self.addr {
            return addr;
        }
        let started = self.started.take().expect("waited for once");
        match tokio::time::timeout(Duration::from_secs(30), started).await {
            Ok(Ok(addr)) => {
                self.addr = Some(addr);
                addr
            }
            Ok(Err(_)) => panic!(
                "keeper exited without starting ({:?}); its log:\n{}",
                self.child.try_wait(),
                self.log()
            ),
            Err(_) => panic!("keeper did not start within 30 s; its log:\n{}", self.log()),
        }
    }

    /// `http://ADDR` of the running keeper.
    pub async fn base(&mut self) -> String {
        format!("http://{}", self.addr().await)
    }

    fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// SIGTERM, then waits (up to `timeout`) for keeper to exit, returning
    /// its exit status and its whole log (JSON lines).
    pub async fn terminate(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM failed");
        let until = std::time::Instant::now() + timeout;
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("polling keeper") {
                break exit;
            }
            if std::time::Instant::now() > until {
                panic!("keeper did not exit within {timeout:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The pipe is at its end once keeper is gone: the reader finishes.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (exit, self.log())
    }

    /// Sends the signal `name` (`HUP`, `TERM`…) to keeper.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the child's log to its end (a full pipe would stall it), sending
/// the address of the "keeper started" line and keeping the first lines.
fn read_log(stderr: ChildStderr, started: oneshot::Sender<SocketAddr>, log: &Mutex<Vec<String>>) {
    let mut started = Some(started);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if started.is_some()
            && let Some(addr) = started_addr(&line)
            && let Some(tx) = started.take()
        {
            let _ = tx.send(addr);
        }
        let mut kept = log.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < KEPT_LINES {
            kept.push(line);
        }
    }
}

/// The `addr` of a JSON "keeper started" log line.
fn started_addr(line: &str) -> Option<SocketAddr> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &event["fields"];
    if fields["message"] != STARTED {
        return None;
    }
    fields["addr"].as_str()?.parse().ok()
}
