//! How a passive probe (a heartbeat, a log feed) asks for its check to be
//! evaluated now rather than at its next scheduled run. The scheduler owns
//! the receiving end.

use tokio::sync::mpsc;

/// Asks the scheduler to run a check now, off its timetable: a heartbeat's
/// ping changed what its next evaluation says. Cheap to clone; a request
/// that finds the queue full is dropped (the timetable runs the check soon
/// anyway).
#[derive(Clone, Debug)]
pub struct Wakes(mpsc::Sender<usize>);

impl Wakes {
    /// Requests a run of check `check` (its index among the jobs).
    pub fn wake(&self, check: usize) {
        let _ = self.0.try_send(check);
    }
}

/// A [`Wakes`] handle and the receiver the scheduler takes.
pub fn wakes(capacity: usize) -> (Wakes, mpsc::Receiver<usize>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Wakes(tx), rx)
}
