//! The one typed config builder every test that runs keeper uses: sections,
//! checks, channels and routes as values, rendered to TOML in the order they
//! were added (values escaped by the `toml` crate). Only tests about the TOML
//! itself (`config.rs`, the line:column of an error) write TOML by hand.
//!
//! ```ignore
//! let config = TestConfig::new()
//!     .set("defaults", "failures_before_alert", 2)
//!     .check(Check::http("web", target.url("/health")).interval("250ms"))
//!     .page(&hook);
//! let app = spawn_app(Backend::Sqlite, config).await;
//! ```

use std::path::Path;

use toml::Value;

use super::receiver::Receiver;
use super::smtp::SmtpServer;

/// One `[section]` (or `[[array]]` entry) and its keys, in order.
#[derive(Clone, Debug)]
struct Section {
    header: String,
    array: bool,
    entries: Vec<(String, Value)>,
}

impl Section {
    fn put(&mut self, key: &str, value: Value) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }
}

/// A keeper config under construction.
#[derive(Clone, Debug, Default)]
pub struct TestConfig {
    sections: Vec<Section>,
}

impl TestConfig {
    pub fn new() -> TestConfig {
        TestConfig::default()
    }

    /// `key = value` in `[section]` (a dotted path such as `severities` or
    /// `checks.web`), made when missing; a key set twice keeps the last value.
    pub fn set(mut self, section: &str, key: &str, value: impl Into<Value>) -> TestConfig {
        self.section(section).put(key, value.into());
        self
    }

    /// `[storage] url`. [`spawn_app`](super::app::spawn_app) fills it with its
    /// own database's URL unless the test set one (a proxy in front of it).
    pub fn storage(self, url: impl Into<String>) -> TestConfig {
        self.set("storage", "url", url.into())
    }

    /// `[server] listen`.
    pub fn listen(self, addr: impl Into<String>) -> TestConfig {
        self.set("server", "listen", addr.into())
    }

    /// `[server] api_token`.
    pub fn api_token(self, token: &str) -> TestConfig {
        self.set("server", "api_token", token)
    }

    /// `[defaults] key = value`.
    pub fn defaults(self, key: &str, value: impl Into<Value>) -> TestConfig {
        self.set("defaults", key, value)
    }

    /// `[delivery] key = value`.
    pub fn delivery(self, key: &str, value: impl Into<Value>) -> TestConfig {
        self.set("delivery", key, value)
    }

    /// `[severities] severity = { key = value, … }`, adding to what is there.
    pub fn severity(mut self, severity: &str, key: &str, value: impl Into<Value>) -> TestConfig {
        let section = self.section("severities");
        let mut table = match section.entries.iter().find(|(k, _)| k == severity) {
            Some((_, Value::Table(t))) => t.clone(),
            _ => toml::Table::new(),
        };
        table.insert(key.to_string(), value.into());
        section.put(severity, Value::Table(table));
        self
    }

    /// A check, `[checks.NAME]`.
    pub fn check(mut self, check: Check) -> TestConfig {
        let header = format!("checks.{}", quoted_key(&check.name));
        for (key, value) in check.entries {
            self.section(&header).put(&key, value);
        }
        self
    }

    /// A channel, `[channels.NAME]`.
    pub fn channel(mut self, channel: Channel) -> TestConfig {
        let header = format!("channels.{}", quoted_key(&channel.name));
        for (key, value) in channel.entries {
            self.section(&header).put(&key, value);
        }
        self
    }

    /// A `[[routes]]` entry.
    pub fn route(mut self, route: Route) -> TestConfig {
        self.sections.push(Section {
            header: "routes".to_string(),
            array: true,
            entries: route.entries,
        });
        self
    }

    /// An entry of an array of tables, `[[name]]` (`maintenance`, …).
    pub fn array(mut self, name: &str, entries: &[(&str, Value)]) -> TestConfig {
        self.sections.push(Section {
            header: name.to_string(),
            array: true,
            entries: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        });
        self
    }

    /// Every notification to `hook`: a webhook channel named `hook` and a
    /// route sending everything there.
    pub fn page(self, hook: &Receiver) -> TestConfig {
        self.channel(Channel::webhook("hook", hook))
            .route(Route::to(&["hook"]))
    }

    /// Whether `[storage] url` is set.
    pub fn has_storage(&self) -> bool {
        self.sections
            .iter()
            .any(|s| s.header == "storage" && s.entries.iter().any(|(k, _)| k == "url"))
    }

    /// The config as TOML.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        for section in &self.sections {
            if section.array {
                out.push_str(&format!("[[{}]]\n", section.header));
            } else {
                out.push_str(&format!("[{}]\n", section.header));
            }
            for (key, value) in &section.entries {
                out.push_str(&format!("{} = {value}\n", quoted_key(key)));
            }
            out.push('\n');
        }
        out
    }

    /// Writes the TOML to `dir/keeper.toml`, returning its path (for a keeper process).
    pub fn write_in(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("keeper.toml");
        std::fs::write(&path, self.toml())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    fn section(&mut self, header: &str) -> &mut Section {
        let at = match self
            .sections
            .iter()
            .position(|s| !s.array && s.header == header)
        {
            Some(at) => at,
            None => {
                self.sections.push(Section {
                    header: header.to_string(),
                    array: false,
                    entries: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        &mut self.sections[at]
    }
}

/// A bare key when it is one, else a quoted one (`"keeper:storage"`).
fn quoted_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        Value::from(key).to_string()
    }
}

/// One check: its name and keys.
#[derive(Clone, Debug)]
pub struct Check {
    name: String,
    entries: Vec<(String, Value)>,
}

impl Check {
    /// A check of `kind` with no other keys yet.
    pub fn new(name: &str, kind: &str) -> Check {
        Check {
            name: name.to_string(),
            entries: vec![("kind".to_string(), kind.into())],
        }
    }

    /// An `http` check of `url`.
    pub fn http(name: &str, url: impl Into<String>) -> Check {
        Check::new(name, "http").set("url", url.into())
    }

    /// A `tcp` check of `host` (`HOST:PORT`).
    pub fn tcp(name: &str, host: impl Into<String>) -> Check {
        Check::new(name, "tcp").set("host", host.into())
    }

    /// A `heartbeat` check (give it `period` or `schedule`).
    pub fn heartbeat(name: &str) -> Check {
        Check::new(name, "heartbeat")
    }

    /// `key = value`; a key set twice keeps the last value.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Check {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
        self
    }

    /// `interval` (a duration such as `"250ms"`).
    pub fn interval(self, every: &str) -> Check {
        self.set("interval", every)
    }

    /// `timeout` (a duration).
    pub fn timeout(self, timeout: &str) -> Check {
        self.set("timeout", timeout)
    }
}

/// One channel: its name and keys.
#[derive(Clone, Debug)]
pub struct Channel {
    name: String,
    entries: Vec<(String, Value)>,
}

impl Channel {
    /// A channel of `kind` with no other keys yet.
    pub fn new(name: &str, kind: &str) -> Channel {
        Channel {
            name: name.to_string(),
            entries: vec![("kind".to_string(), kind.into())],
        }
    }

    /// A `webhook` channel posting to `hook`.
    pub fn webhook(name: &str, hook: &Receiver) -> Channel {
        Channel::new(name, "webhook").set("url", hook.url())
    }

    /// An `email` channel sending through `smtp` to `to`.
    pub fn email(name: &str, smtp: &SmtpServer, to: &[&str]) -> Channel {
        Channel::new(name, "email")
            .set("smtp", smtp.url())
            .set("from", "keeper@example.test")
            .set("to", to.to_vec())
    }

    /// `key = value`; a key set twice keeps the last value.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Channel {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
        self
    }
}

/// One `[[routes]]` entry.
#[derive(Clone, Debug)]
pub struct Route {
    entries: Vec<(String, Value)>,
}

impl Route {
    /// A route sending to `channels` (add matchers with [`Route::set`]).
    pub fn to(channels: &[&str]) -> Route {
        Route {
            entries: vec![("channels".to_string(), channels.to_vec().into())],
        }
    }

    /// `key = value`.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Route {
        self.entries.push((key.to_string(), value.into()));
        self
    }
}

/// An inline table of strings, `{ key = "value", … }` (labels, matchers, env).
pub fn table(pairs: &[(&str, &str)]) -> Value {
    Value::Table(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect(),
    )
}
