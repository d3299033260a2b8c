//! `${VAR}` in the config's strings: replaced from the environment before
//! any section is read, so every key may take a secret from it.

use toml::Spanned;
use toml::de::DeValue;

use super::error::Collector;
use super::join_key;

/// Replaces `${VAR}` in every string value, in place; a missing variable is an
/// error at that value. `$${` writes a literal `${`.
pub(super) fn expand_env(
    key: &str,
    value: &mut Spanned<DeValue<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Collector,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand_str(s, env) {
            Ok(expanded) => *s = expanded.into(),
            Err(msg) => errors.at(span, key, msg),
        },
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                expand_env(key, item, env, errors);
            }
        }
        DeValue::Table(table) => {
            for (k, v) in table.iter_mut() {
                let path = join_key(key, k.get_ref());
                expand_env(&path, v, env, errors);
            }
        }
        _ => {}
    }
}

fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
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
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name {name:?} in ${{…}}"));
            }
            let value =
                env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
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
