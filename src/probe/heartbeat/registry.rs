//! Heartbeat tokens and signals: which token belongs to which check, each
//! check's latest signals, and keeping them in the database so a restart does
//! not forget yesterday's ping.
//!
//! The registry is made with what pings need ([`Wiring`]: where signals are
//! kept, the scheduler's wakes, the base of ping URLs) before any probe is
//! built; probes register here when they are built; `app` then restores the
//! stored signals and generated tokens ([`Registry::load`]); the ping endpoint
//! looks tokens up and records signals. Tokens are looked up by their
//! SHA-256, so the lookup's timing says nothing about how close a guess came.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::{Rules, Signals, evaluate};
use crate::core::CheckName;
use crate::core::heartbeat::HeartbeatRow;
use crate::core::{Outcome, Sample};
use crate::probe::BuildError;
use crate::probe::wake::{Wake, Wakes};

/// The longest a ping waits for its signal to be saved.
const SAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a ping says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `/ping/<token>`: the job succeeded.
    Success,
    /// `/ping/<token>/start`: the job began.
    Start,
    /// `/ping/<token>/fail`: the job failed.
    Fail,
    /// `/ping/<token>/<1-255>`: the job failed with this exit status
    /// (`/ping/<token>/0` is [`Signal::Success`]).
    Exit(u8),
    /// `/ping/<token>/log`: output only; the check's state does not change.
    Log,
}

/// Every heartbeat check of one keeper. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    beats: Mutex<Vec<Arc<Beat>>>,
    by_token: RwLock<HashMap<TokenKey, Arc<Beat>>>,
    wiring: Option<Wiring>,
}

/// Where heartbeat signals (and generated tokens) are kept across restarts.
/// A trait rather than the store itself, so the registry is testable alone;
/// `app` implements it for the store.
pub trait Persistence: std::fmt::Debug + Send + Sync {
    /// Every stored heartbeat row.
    fn load(&self) -> BoxFuture<'_, Result<Vec<HeartbeatRow>, PersistError>>;
    /// Saves one check's row; returns the token kept for it (another instance
    /// on the same database may have stored one first).
    fn save<'a>(
        &'a self,
        row: &'a HeartbeatRow,
    ) -> BoxFuture<'a, Result<Option<String>, PersistError>>;
}

/// Why the persistence could not load or save (the store's own error).
pub type PersistError = Box<dyn std::error::Error + Send + Sync>;

/// What recording a ping needs beyond memory, handed over when the
/// registry is made (in the daemon; tests and one-shot runs go without).
#[derive(Clone, Debug)]
pub struct Wiring {
    pub persistence: Arc<dyn Persistence>,
    /// The scheduler's wakes, by check name.
    pub wakes: Wakes,
    /// `public_url` or `http://<listen address>`, for ping URLs.
    pub base_url: String,
}

type TokenKey = [u8; 32];

fn token_key(token: &str) -> TokenKey {
    Sha256::digest(token.as_bytes()).into()
}

/// One heartbeat check: its rules, its token and its latest signals.
pub struct Beat {
    check: CheckName,
    rules: Rules,
    /// Whether the config sets the token (else keeper generated it).
    configured: bool,
    /// `None` until a generated token is loaded or made.
    token: RwLock<Option<String>>,
    signals: Mutex<Signals>,
    /// Runs the check's evaluation now; `None` outside the daemon.
    wake: Option<Wake>,
}

impl std::fmt::Debug for Beat {
    /// Without the token: it is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beat")
            .field("check", &self.check)
            .field("rules", &self.rules)
            .field("configured", &self.configured)
            .finish_non_exhaustive()
    }
}

impl Beat {
    /// The check's sample at `now`.
    pub fn evaluate(&self, now: DateTime<Utc>) -> Sample {
        let signals = self.signals().clone();
        evaluate(&self.rules, &signals, now)
    }

    pub fn check(&self) -> &str {
        &self.check
    }

    fn signals(&self) -> std::sync::MutexGuard<'_, Signals> {
        self.signals.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn token(&self) -> Option<String> {
        self.token.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The row that stores the signals (and a generated token).
    fn row(&self, s: &Signals) -> HeartbeatRow {
        HeartbeatRow {
            check: self.check.to_string(),
            token: if self.configured { None } else { self.token() },
            first_seen: s.first_seen,
            last_success: s.last_success,
            last_start: s.last_start,
            last_fail: s.last_fail,
            last_run_s: s.last_run.map(|d| d.as_secs_f64()),
        }
    }

    /// Takes the stored signals in, keeping the later of each.
    fn restore(&self, row: &HeartbeatRow) {
        let mut s = self.signals();
        s.first_seen = s.first_seen.min(row.first_seen);
        if row.last_success > s.last_success {
            s.last_success = row.last_success;
            s.last_run = row
                .last_run_s
                .and_then(|r| Duration::try_from_secs_f64(r).ok());
        }
        s.last_start = s.last_start.max(row.last_start);
        s.last_fail = s.last_fail.max(row.last_fail);
    }
}

impl Registry {
    /// A registry whose pings are saved and wake their checks through `wiring`.
    pub fn new(mut wiring: Wiring) -> Registry {
        wiring.base_url = wiring.base_url.trim_end_matches('/').to_string();
        Registry {
            inner: Arc::new(Inner {
                wiring: Some(wiring),
                ..Inner::default()
            }),
        }
    }

    /// Adds a heartbeat check. A token set in the config is claimed now (two
    /// checks cannot share one); without one, [`Registry::load`] restores or
    /// generates it.
    pub fn register(
        &self,
        check: CheckName,
        token: Option<String>,
        rules: Rules,
    ) -> Result<Arc<Beat>, BuildError> {
        let beat = Arc::new(Beat {
            check: check.clone(),
            rules,
            configured: token.is_some(),
            token: RwLock::new(token.clone()),
            signals: Mutex::new(Signals::new(Utc::now())),
            wake: self.inner.wiring.as_ref().and_then(|w| w.wakes.of(&check)),
        });
        if let Some(token) = &token {
            let mut by_token = self.by_token_mut();
            let key = token_key(token);
            if let Some(other) = by_token.get(&key) {
                return Err(BuildError(format!(
                    "token: the same token as checks.{}; each heartbeat needs its own",
                    other.check
                )));
            }
            by_token.insert(key, beat.clone());
        }
        self.beats().push(beat.clone());
        Ok(beat)
    }

    /// Restores every registered check's stored signals, and its generated
    /// token, making one (128 random bits, hex) for a check that has none yet.
    /// Saves each check's state once, so `first_seen` survives restarts too.
    /// Without persistence, does nothing.
    pub async fn load(&self) -> Result<(), PersistError> {
        let Some(wiring) = &self.inner.wiring else {
            return Ok(());
        };
        let store = &wiring.persistence;
        let stored: HashMap<String, HeartbeatRow> = store
            .load()
            .await?
            .into_iter()
            .map(|row| (row.check.clone(), row))
            .collect();
        let beats = self.beats().clone();
        for beat in beats {
            let row = stored.get(&*beat.check);
            if let Some(row) = row {
                beat.restore(row);
            }
            if !beat.configured {
                let token = row
                    .and_then(|r| r.token.clone())
                    .unwrap_or_else(generate_token);
                *beat.token.write().unwrap_or_else(|e| e.into_inner()) = Some(token);
            }
            let snapshot = beat.row(&beat.signals());
            // Another instance on the same database may have stored a token first.
            let kept = store.save(&snapshot).await?;
            if !beat.configured {
                let Some(token) = kept else {
                    return Err(format!("heartbeats: no token stored for {}", beat.check).into());
                };
                *beat.token.write().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
                let mut by_token = self.by_token_mut();
                let key = token_key(&token);
                if let Some(other) = by_token.get(&key) {
                    tracing::warn!(
                        check = %beat.check,
                        other = %other.check,
                        "the generated heartbeat token is also set in the config of another check; pings reach that one"
                    );
                } else {
                    by_token.insert(key, beat.clone());
                }
            }
        }
        Ok(())
    }

    /// The check a ping token belongs to.
    pub fn lookup(&self, token: &str) -> Option<Arc<Beat>> {
        self.inner
            .by_token
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token_key(token))
            .cloned()
    }

    /// Records a ping received at `at`, with the last lines of its body
    /// (`output`, [`super::body::tail`]): in memory at once, then saved (one
    /// upsert; the output stays in memory). When it changes the check's color,
    /// its evaluation is woken so the change shows now rather than at the
    /// next `interval`. A failure to save is logged; the signal still counts
    /// in memory.
    pub async fn record(
        &self,
        beat: &Beat,
        signal: Signal,
        output: Option<String>,
        at: DateTime<Utc>,
    ) {
        let (changed, row) = {
            let mut s = beat.signals();
            let before = evaluate(&beat.rules, &s, at);
            s.record(signal, at);
            if let Some(output) = output {
                s.record_output(output, at);
            }
            let after = evaluate(&beat.rules, &s, at);
            (is_red(&before) != is_red(&after), beat.row(&s))
        };
        if changed && let Some(wake) = &beat.wake {
            wake.wake();
        }
        let Some(wiring) = &self.inner.wiring else {
            return;
        };
        match tokio::time::timeout(SAVE_TIMEOUT, wiring.persistence.save(&row)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(check = %beat.check, error = %e, "saving a heartbeat ping");
            }
            Err(_) => tracing::warn!(
                check = %beat.check,
                "saving a heartbeat ping: the database did not answer within {SAVE_TIMEOUT:?}"
            ),
        }
    }

    /// Takes in signals another keeper instance saved (pings it received),
    /// keeping the later of each; a check whose color that changes is woken
    /// so the change shows now.
    pub fn merge(&self, rows: &[HeartbeatRow], now: DateTime<Utc>) {
        let beats = self.beats().clone();
        for row in rows {
            let Some(beat) = beats.iter().find(|b| *b.check == row.check) else {
                continue;
            };
            let before = is_red(&beat.evaluate(now));
            beat.restore(row);
            if before != is_red(&beat.evaluate(now))
                && let Some(wake) = &beat.wake
            {
                wake.wake();
            }
        }
    }

    /// The ping URL of `check` when keeper generated its token; `None` for a
    /// token from the config (a secret from the environment) or an unknown check.
    pub fn ping_url(&self, check: &str) -> Option<String> {
        let beats = self.beats();
        let beat = beats.iter().find(|b| &*b.check == check)?;
        if beat.configured {
            return None;
        }
        let base = self
            .inner
            .wiring
            .as_ref()
            .map_or("", |w| w.base_url.as_str());
        Some(format!("{base}/ping/{}", beat.token()?))
    }

    /// `(check, ping URL)` of every check whose token keeper generated.
    pub fn generated(&self) -> Vec<(CheckName, String)> {
        let checks: Vec<CheckName> = self.beats().iter().map(|b| b.check.clone()).collect();
        checks
            .into_iter()
            .filter_map(|c| self.ping_url(&c).map(|url| (c, url)))
            .collect()
    }

    fn beats(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Beat>>> {
        self.inner.beats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn by_token_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TokenKey, Arc<Beat>>> {
        self.inner
            .by_token
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }
}

fn is_red(sample: &Sample) -> bool {
    matches!(sample.outcome, Outcome::Down(_))
}

/// 128 random bits as 32 lowercase hex digits: URL-safe as is.
fn generate_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::super::Expected;
    use super::*;

    fn rules() -> Rules {
        Rules {
            expected: Expected::Every(Duration::from_secs(3600)),
            grace: Duration::from_secs(60),
            max_runtime: None,
        }
    }

    #[test]
    fn configured_tokens_are_found_and_not_shared() {
        let registry = Registry::default();
        registry
            .register("backup".into(), Some("0123456789abcdef".into()), rules())
            .unwrap();
        assert_eq!(
            registry.lookup("0123456789abcdef").unwrap().check(),
            "backup"
        );
        assert!(registry.lookup("0123456789abcdeF").is_none());
        assert!(registry.lookup("").is_none());
        let err = registry
            .register("other".into(), Some("0123456789abcdef".into()), rules())
            .unwrap_err();
        assert!(err.0.contains("checks.backup"), "{err}");
        // A configured token is a secret from the environment: no ping URL for it.
        assert_eq!(registry.ping_url("backup"), None);
    }

    #[test]
    fn generated_tokens_are_128_bits_of_hex() {
        let a = generate_token();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, generate_token());
    }
}
