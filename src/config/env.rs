//! `${VAR}` and `${file:PATH}` in the config's strings: replaced from the
//! environment or from a file (a Docker or systemd secret) before any section
//! is read, so every key may take a secret from either. What came from a file
//! is remembered ([`Expander::secrets`]) and masked wherever the config is
//! shown: its errors and `keeper check-config`. And the variables that
//! override the file: `KEEPER_LISTEN`, `KEEPER_DATABASE_URL`.

use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::DeValue;

use super::error::Collector;
use super::join_key;
use super::{Config, ConfigErrors};
use crate::core::redact::Secrets;

/// What `${…}` is replaced with: variables from `env`, files read from disk
/// (a relative path from the config file's folder).
pub(super) struct Expander<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    /// The folder relative `${file:…}` paths start from.
    base: PathBuf,
    /// Every value read from a file.
    pub secrets: Secrets,
}

impl<'a> Expander<'a> {
    pub fn new(config_file: &Path, env: &'a dyn Fn(&str) -> Option<String>) -> Expander<'a> {
        Expander {
            env,
            base: config_file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            secrets: Secrets::default(),
        }
    }

    /// Replaces `${VAR}` and `${file:PATH}` in every string value, in place; a
    /// missing variable or an unreadable file is an error at that value. `$${`
    /// writes a literal `${`.
    pub fn expand(&mut self, key: &str, value: &mut Spanned<DeValue<'_>>, errors: &mut Collector) {
        let span = value.span();
        match value.get_mut() {
            DeValue::String(s) if s.contains('$') => match self.expand_str(s) {
                Ok(expanded) => *s = expanded.into(),
                Err(msg) => errors.at(span, key, msg),
            },
            DeValue::Array(items) => {
                for item in items.iter_mut() {
                    self.expand(key, item, errors);
                }
            }
            DeValue::Table(table) => {
                for (k, v) in table.iter_mut() {
                    let path = join_key(key, k.get_ref());
                    self.expand(&path, v, errors);
                }
            }
            _ => {}
        }
    }

    /// One `${…}`'s value.
    fn lookup(&mut self, name: &str) -> Result<String, String> {
        if let Some(file) = name.strip_prefix("file:") {
            let secret = self.read_file(file)?;
            self.secrets.add(&secret);
            return Ok(secret);
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "invalid variable name {name:?} in ${{…}} (expected ${{NAME}} or ${{file:/path}})"
            ));
        }
        (self.env)(name).ok_or_else(|| format!("environment variable {name} is not set"))
    }

    /// A secret file's content without its trailing newlines. The config is
    /// read before the runtime serves anything, so a blocking read is fine here.
    fn read_file(&self, file: &str) -> Result<String, String> {
        if file.trim().is_empty() {
            return Err("${file:…} needs a path, as in ${file:/run/secrets/NAME}".into());
        }
        let path = self.base.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading secret file {}: {e}", path.display()))?;
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }

    fn expand_str(&mut self, s: &str) -> Result<String, String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(escaped) = after.strip_prefix("${") {
                out.push_str("${");
                rest = escaped;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body
                    .find('}')
                    .ok_or_else(|| format!("unterminated ${{ in {s:?}"))?;
                let value = self.lookup(&body[..end])?;
                out.push_str(&value);
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl Config {
    /// `KEEPER_LISTEN` and `KEEPER_DATABASE_URL` (or `DATABASE_URL`) override
    /// the file. A `KEEPER_LISTEN` that is not an address and port is an
    /// error naming it, never ignored.
    pub fn apply_env_overrides(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigErrors> {
        if let Some(listen) = env("KEEPER_LISTEN") {
            self.server.listen = listen.trim().parse().map_err(|e| {
                let message = format!(
                    "KEEPER_LISTEN {listen:?} is not an address and port such as 0.0.0.0:9400: {e}"
                );
                ConfigErrors::single(&self.path, message)
            })?;
        }
        if let Some(url) = env("KEEPER_DATABASE_URL").or_else(|| env("DATABASE_URL")) {
            self.storage.url = url;
        }
        Ok(())
    }
}
