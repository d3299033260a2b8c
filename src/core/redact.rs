//! Masks for secrets in text people see: a URL's userinfo and its query and
//! fragment values become `***` (`https://***@host/path?token=***`). A leaf
//! module (std and `subtle`), so probes, config, the API and the CLI all use
//! the one mask. What is masked is judged by position, not by name: any query
//! value may be a token. Also the one comparison of secrets ([`same_secret`]).

/// What a secret is shown as.
pub const MASK: &str = "***";

/// `raw` with userinfo, query values and the fragment masked; the scheme, host,
/// port, path and query keys stay. Works on text that is not a valid URL too
/// (a relative redirect `Location`, a DSN the driver would refuse).
pub fn url(raw: &str) -> String {
    mask(raw, false)
}

/// A database URL as [`url`] masks it, but the user name stays (it says which
/// role keeper connects as): `postgres://app:***@db/x?sslmode=***`.
pub fn dsn(raw: &str) -> String {
    mask(raw, true)
}

fn mask(raw: &str, keep_user: bool) -> String {
    let (rest, fragment) = match raw.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (raw, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(&without_userinfo(rest, keep_user));
    if let Some(query) = query {
        out.push('?');
        out.push_str(&masked_query(query));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        if !fragment.is_empty() {
            out.push_str(MASK);
        }
    }
    out
}

/// `scheme://user:pass@host/path` → `scheme://***@host/path`, or
/// `scheme://user:***@host/path` keeping the user.
fn without_userinfo(rest: &str, keep_user: bool) -> String {
    let Some(scheme_end) = rest.find("://").map(|i| i + 3) else {
        return rest.to_string();
    };
    let after = &rest[scheme_end..];
    let authority_end = after.find('/').unwrap_or(after.len());
    let Some(at) = after[..authority_end].rfind('@') else {
        return rest.to_string();
    };
    let user = match after[..at].split_once(':') {
        Some((user, _)) if keep_user => format!("{user}:{MASK}"),
        None if keep_user => after[..at].to_string(),
        _ => MASK.to_string(),
    };
    format!("{}{user}{}", &rest[..scheme_end], &after[at..])
}

/// `a=1&b&c=` → `a=***&***&c=`: a value-less item may itself be the secret.
fn masked_query(query: &str) -> String {
    query
        .split('&')
        .map(|item| match item.split_once('=') {
            Some((key, "")) => format!("{key}="),
            Some((key, _)) => format!("{key}={MASK}"),
            None if item.is_empty() => String::new(),
            None => MASK.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Values the config read from secret files (`${file:…}`): wherever the
/// config is shown (its errors, `keeper check-config`), each is replaced by
/// [`MASK`], whatever key it went into. Its `Debug` shows only how many.
#[derive(Clone, Default, PartialEq)]
pub struct Secrets(Vec<String>);

/// Shorter values are not masked: masking `1` would garble every number shown.
const MIN_MASKED_CHARS: usize = 3;

impl Secrets {
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() >= MIN_MASKED_CHARS && !self.0.iter().any(|s| s == secret) {
            self.0.push(secret.to_string());
            // Longest first, so a secret holding another is masked whole.
            self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} masked)", self.0.len())
    }
}

/// Whether a secret someone presented is the expected one, in time that
/// depends only on the lengths, not on where they differ (the one comparison
/// of tokens: the API token, ingest tokens).
pub fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(expected, given).into()
}

#[cfg(test)]
mod tests {
    use super::{Secrets, dsn, url};

    #[test]
    fn secrets_are_masked_wherever_they_appear_longest_first() {
        let mut secrets = Secrets::default();
        secrets.add("hunter2");
        secrets.add("hunter2-and-more");
        secrets.add("ab");
        assert_eq!(
            secrets.mask("url https://h/hunter2-and-more/x?k=hunter2 ab"),
            "url https://h/***/x?k=*** ab"
        );
        assert_eq!(format!("{secrets:?}"), "Secrets(2 masked)");
    }

    #[test]
    fn masks_userinfo_query_values_and_fragment() {
        let cases = [
            ("https://example.com/health", "https://example.com/health"),
            ("https://example.com", "https://example.com"),
            (
                "https://user:pass@example.com/path?token=abc",
                "https://***@example.com/path?token=***",
            ),
            (
                "https://tok@example.com:8443/",
                "https://***@example.com:8443/",
            ),
            ("http://a:b@c@host/x@y", "http://***@host/x@y"),
            (
                "https://h/p?a=1&b&c=&&d=x=y",
                "https://h/p?a=***&***&c=&&d=***",
            ),
            ("https://h/p#access_token=xyz", "https://h/p#***"),
            ("https://h/p?", "https://h/p?"),
            (
                "postgres://app:pw@127.0.0.1:5432/db?sslmode=require&password=pw",
                "postgres://***@127.0.0.1:5432/db?sslmode=***&password=***",
            ),
            ("/relative/next?sig=abc", "/relative/next?sig=***"),
            ("127.0.0.1:5432", "127.0.0.1:5432"),
            ("not a url", "not a url"),
            ("", ""),
        ];
        for (raw, shown) in cases {
            assert_eq!(url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn a_dsn_keeps_its_user() {
        assert_eq!(
            dsn("postgres://app:pw@db:5432/x?password=pw&sslmode=require"),
            "postgres://app:***@db:5432/x?password=***&sslmode=***"
        );
        assert_eq!(dsn("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(dsn("sqlite://keeper.db"), "sqlite://keeper.db");
    }
}
