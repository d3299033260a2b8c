//! What people see of every check: a snapshot the engine updates and the API
//! and status page read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::CheckConfig;
use crate::state::{CheckStatus, Seen};

/// The current status of every check, for the API and status page.
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<RwLock<BoardInner>>,
}

#[derive(Default)]
struct BoardInner {
    checks: Vec<CheckStatus>,
    by_name: HashMap<String, usize>,
    /// Checks with regions: their state from this instance's region, when
    /// it probes them (published to the instance deciding them).
    regional: HashMap<usize, Seen>,
}

impl Board {
    pub(super) fn new(checks: &[Arc<CheckConfig>]) -> Board {
        let statuses: Vec<CheckStatus> = checks
            .iter()
            .map(|c| CheckStatus {
                name: c.name.to_string(),
                kind: c.probe.kind(),
                target: c.probe.target(),
                description: c.description.clone(),
                labels: c.labels.clone(),
                color: crate::core::Color::Green,
                severity: None,
                message: "not run yet".into(),
                since: None,
                last_run_at: None,
                latency_ms: None,
                incident: None,
                streaks: Default::default(),
            })
            .collect();
        let by_name = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Board {
            inner: Arc::new(RwLock::new(BoardInner {
                checks: statuses,
                by_name,
                regional: HashMap::new(),
            })),
        }
    }

    pub fn all(&self) -> Vec<CheckStatus> {
        self.inner
            .read()
            .map(|b| b.checks.clone())
            .unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<CheckStatus> {
        let b = self.inner.read().ok()?;
        b.by_name.get(name).map(|&i| b.checks[i].clone())
    }

    /// Shows what the instance owning check `i` saw of it (a cluster member
    /// shows checks it does not own as their owners see them).
    pub fn show(&self, i: usize, seen: Seen) {
        self.update(i, |s| s.show(seen));
    }

    /// What this instance shows of check `i` now.
    pub fn seen(&self, i: usize) -> Option<Seen> {
        let b = self.inner.read().ok()?;
        b.checks.get(i).map(CheckStatus::seen)
    }

    /// Check `i`'s state from this instance's region (a check with regions).
    pub(super) fn set_regional(&self, i: usize, seen: Seen) {
        if let Ok(mut b) = self.inner.write() {
            b.regional.insert(i, seen);
        }
    }

    /// What this instance saw of check `i` from its region, if it probes it.
    pub fn regional(&self, i: usize) -> Option<Seen> {
        self.inner.read().ok()?.regional.get(&i).cloned()
    }

    /// Every check's status anew (a config reload), in the new config's order.
    pub(super) fn replace(&self, checks: Vec<CheckStatus>) {
        let by_name = (checks.iter().enumerate())
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        if let Ok(mut b) = self.inner.write() {
            *b = BoardInner {
                checks,
                by_name,
                regional: HashMap::new(),
            };
        }
    }

    pub(super) fn update(&self, i: usize, f: impl FnOnce(&mut CheckStatus)) {
        if let Ok(mut b) = self.inner.write()
            && let Some(s) = b.checks.get_mut(i)
        {
            f(s);
        }
    }
}
