//! How a passive probe (a heartbeat, a log feed) asks for its check to be
//! evaluated now rather than at its next scheduled run. The scheduler owns
//! the receiving end; probes get their [`Wake`] through the probe context
//! when they are built.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::core::CheckName;

/// Asks the scheduler to run a check now, off its timetable: a heartbeat's
/// ping changed what its next evaluation says. Cheap to clone; a request
/// that finds the queue full is dropped (the timetable runs the check soon
/// anyway).
#[derive(Clone, Debug)]
pub struct Wakes {
    tx: mpsc::Sender<usize>,
    /// Every job's check, in the scheduler's order.
    checks: Arc<[CheckName]>,
}

impl Wakes {
    /// The handle that wakes check `check`; `None` when the scheduler has no
    /// such job.
    pub fn of(&self, check: &str) -> Option<Wake> {
        let index = self.checks.iter().position(|c| &**c == check)?;
        Some(Wake {
            tx: self.tx.clone(),
            index,
        })
    }
}

/// Wakes one check.
#[derive(Clone, Debug)]
pub struct Wake {
    tx: mpsc::Sender<usize>,
    index: usize,
}

impl Wake {
    /// Requests a run of the check now.
    pub fn wake(&self) {
        let _ = self.tx.try_send(self.index);
    }
}

/// A [`Wakes`] handle for the jobs of `checks` (in the scheduler's order) and
/// the receiver of job indexes the scheduler takes.
pub fn wakes(checks: Arc<[CheckName]>, capacity: usize) -> (Wakes, mpsc::Receiver<usize>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Wakes { tx, checks }, rx)
}
