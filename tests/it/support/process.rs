//! keeper as a real process (the built binary), for what only a process
//! shows: SIGKILL at any moment, exit statuses.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A keeper process, SIGKILLed when dropped.
pub struct Process(Child);

impl Process {
    pub fn start(config: &Path) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_keeper"))
            .args(["run", "-c"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("keeper starts");
        Process(child)
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
