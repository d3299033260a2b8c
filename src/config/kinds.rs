//! `[checks.NAME]` and `[channels.NAME]`: each table split into the keys
//! every check (or channel) shares and its kind's own, read strictly into the
//! kind's spec, and the spec's [`SpecProblem`]s reported at their keys. The
//! specs check themselves (`problems()`); this file only places what they find.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::error::{Collector, names_field};
use super::{ChannelConfig, CheckConfig, join_key, raw, read};
use crate::core::SpecProblem;
use crate::core::value::HumanDuration;
use crate::notify::ChannelSpec;
use crate::probe;

/// `[checks.NAME]` / `[channels.NAME]`: each name with its table.
pub(super) fn named_tables<'i>(
    section: &str,
    value: Spanned<DeValue<'i>>,
    errors: &mut Collector,
) -> Vec<(Spanned<String>, Spanned<DeTable<'i>>)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        errors.at(
            span,
            section,
            format!("{section} must be a table of named tables"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in table {
        let key = join_key(section, name.get_ref());
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(t) => out.push((
                Spanned::new(name.span(), name.get_ref().to_string()),
                Spanned::new(span, t),
            )),
            _ => errors.at(span, &key, format!("{key} must be a table")),
        }
    }
    out
}

/// Splits a check or channel table into its shared keys and its kind's keys,
/// and takes out `kind`.
fn split_kind<'i>(
    key: &str,
    table: Spanned<DeTable<'i>>,
    shared: &[&str],
    errors: &mut Collector,
) -> Option<(String, Spanned<DeValue<'i>>, Spanned<DeValue<'i>>)> {
    let span = table.span();
    let mut kind = None;
    let mut common = DeTable::new();
    let mut specific = DeTable::new();
    for (k, v) in table.into_inner() {
        if k.get_ref() == "kind" {
            let vspan = v.span();
            match v.into_inner() {
                DeValue::String(s) => kind = Some(s.into_owned()),
                _ => errors.at(
                    vspan,
                    &format!("{key}.kind"),
                    "kind must be a string".into(),
                ),
            }
        } else if shared.contains(&k.get_ref().as_ref()) {
            common.insert(k, v);
        } else {
            specific.insert(k, v);
        }
    }
    let Some(kind) = kind else {
        errors.at(span, key, format!("{key}: missing key kind"));
        return None;
    };
    Some((
        kind,
        Spanned::new(span.clone(), DeValue::Table(common)),
        Spanned::new(span, DeValue::Table(specific)),
    ))
}

/// A check's name is not keeper's own (`keeper:*`) and holds no control
/// character: names go into the database, URLs, labels and messages, and
/// PostgreSQL's text cannot hold NUL.
pub(super) fn name_problems(name: &Spanned<String>, errors: &mut Collector) {
    let key = format!("checks.{}", name.get_ref().escape_debug());
    if name.get_ref().starts_with(crate::watchdog::PREFIX) {
        let prefix = crate::watchdog::PREFIX;
        let why = format!("check names starting with {prefix:?} are keeper's own");
        errors.at(name.span(), &key, why);
    }
    if name.get_ref().contains(char::is_control) {
        let why = "a check name cannot hold control characters (tab, newline, NUL…)";
        errors.at(name.span(), &key, why.to_string());
    }
}

pub(super) fn read_check(
    name: Spanned<String>,
    table: Spanned<DeTable<'_>>,
    defaults: &raw::ResolvedDefaults,
    known_checks: &BTreeSet<String>,
    errors: &mut Collector,
) -> Option<CheckConfig> {
    let key = format!("checks.{}", name.get_ref());
    let claimed = probe::Spec::own_keys(&peek_kind(&table).unwrap_or_default());
    let shared: Vec<&str> = raw::Common::KEYS
        .iter()
        .copied()
        .filter(|k| !claimed.contains(k))
        .collect();
    let (kind, common, specific) = split_kind(&key, table, &shared, errors)?;
    let written_common = common.clone();
    let common = raw::Common::deserialize(ValueDeserializer::from(common))
        .map_err(|e| reader_error(&key, &written_common, e, errors))
        .ok();
    // Kept to place the spec's problems at their keys.
    let written = specific.clone();
    let spec = probe::Spec::deserialize_kind(&kind, ValueDeserializer::from(specific))
        .map_err(|e| reader_error(&key, &written, e, errors))
        .ok();
    let mut common = common?;
    let spec = spec?;
    // The shared keys are judged too, so every error shows in one load.
    let fine = report(&key, name.span(), &written, spec.problems(), errors);
    kind_defaults(spec.check_defaults(), &mut common);
    let check = common.resolve(name, spec, defaults, known_checks, errors);
    check.filter(|_| fine)
}

/// Reports a spec's problems, each at its key (where the spec does not know
/// the position, where the key is written; else at the table's name).
/// Returns whether there were none.
fn report(
    key: &str,
    name: Range<usize>,
    written: &Spanned<DeValue<'_>>,
    problems: Vec<SpecProblem>,
    errors: &mut Collector,
) -> bool {
    let table = match written.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => None,
    };
    let none = problems.is_empty();
    for p in problems {
        let located = table.and_then(|t| span_of(t, &p.key));
        let at = p.span.or(located).unwrap_or_else(|| name.clone());
        let at_key = if p.key.is_empty() {
            key.to_string()
        } else {
            join_key(key, &p.key)
        };
        errors.at(at, &at_key, p.message);
    }
    none
}

/// A reader's error in a kind's keys (a bad regex, a bad URL), named by the
/// key whose value it is about when the message does not name a field.
fn reader_error(
    key: &str,
    written: &Spanned<DeValue<'_>>,
    e: toml::de::Error,
    errors: &mut Collector,
) {
    let inner = match (written.get_ref(), e.span()) {
        (DeValue::Table(t), Some(span)) if !names_field(e.message()) => key_at(t, span.start),
        _ => None,
    };
    match inner {
        Some(inner) => errors.toml(&join_key(key, &inner), e),
        None => errors.toml(key, e),
    }
}

/// The dotted key whose value holds byte `at` of the file, the deepest one.
fn key_at(table: &DeTable<'_>, at: usize) -> Option<String> {
    table.iter().find_map(|(name, value)| {
        if !value.span().contains(&at) {
            return None;
        }
        let inner = match value.get_ref() {
            DeValue::Table(t) => key_at(t, at),
            _ => None,
        };
        Some(match inner {
            Some(inner) => join_key(name.get_ref(), &inner),
            None => name.get_ref().to_string(),
        })
    })
}

/// Where the value of dotted `key` is written in `table`: `headers.X-Token`
/// is `X-Token` in `headers` (a key may itself hold dots).
fn span_of(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let find = |k: &str| table.iter().find(|(name, _)| name.get_ref() == k);
    if let Some((_, value)) = find(key) {
        return Some(value.span());
    }
    key.match_indices('.').find_map(|(i, _)| {
        let (_, value) = find(&key[..i])?;
        match value.get_ref() {
            DeValue::Table(inner) => span_of(inner, &key[i + 1..]),
            _ => None,
        }
    })
}

/// Values no two checks of a kind may share (a heartbeat's token, a log
/// check's ingest source), each refused at the second check that claims it.
/// The value is not shown: a token is a secret.
pub(super) fn check_claims(checks: &[(Spanned<String>, CheckConfig)], errors: &mut Collector) {
    let mut claimed: BTreeMap<(&str, &str, String), &str> = BTreeMap::new();
    for (name, check) in checks {
        for (key, value) in check.probe.claims() {
            let kind = check.probe.kind();
            match claimed.get(&(kind, key, value.clone())) {
                Some(other) => errors.at(
                    name.span(),
                    &format!("checks.{}.{key}", name.get_ref()),
                    format!(
                        "{key}: the same as checks.{other}'s; two {kind} checks cannot share one"
                    ),
                ),
                None => {
                    claimed.insert((kind, key, value), name.get_ref());
                }
            }
        }
    }
}

/// The `kind` a check table names, looked at before its keys are split.
fn peek_kind(table: &Spanned<DeTable<'_>>) -> Option<String> {
    table.get_ref().iter().find_map(|(k, v)| match v.get_ref() {
        DeValue::String(s) if k.get_ref() == "kind" => Some(s.to_string()),
        _ => None,
    })
}

/// Gives the shared keys a check leaves out its kind's defaults.
fn kind_defaults(d: probe::CheckDefaults, common: &mut raw::Common) {
    // Spanned at 0..0: not written in the file.
    let unwritten = |v| Spanned::new(0..0, v);
    if let Some(i) = d.interval {
        common
            .interval
            .get_or_insert_with(|| Spanned::new(0..0, HumanDuration(i)));
    }
    if let Some(s) = d.down_severity {
        common.down_severity.get_or_insert(s);
    }
    if let Some(n) = d.failures_before_alert {
        common
            .failures_before_alert
            .get_or_insert_with(|| unwritten(n));
    }
    if let Some(n) = d.successes_before_resolve {
        common
            .successes_before_resolve
            .get_or_insert_with(|| unwritten(n));
    }
}

pub(super) fn read_channel(
    name: Spanned<String>,
    table: Spanned<DeTable<'_>>,
    errors: &mut Collector,
) -> Option<ChannelConfig> {
    let key = format!("channels.{}", name.get_ref());
    let (kind, common, specific) = split_kind(&key, table, raw::ChannelCommon::KEYS, errors)?;
    let common: Option<raw::ChannelCommon> = read(&key, common, errors);
    let written = specific.clone();
    let spec = ChannelSpec::deserialize_kind(&kind, ValueDeserializer::from(specific))
        .map_err(|e| reader_error(&key, &written, e, errors))
        .ok()?;
    let fine = report(&key, name.span(), &written, spec.problems(), errors);
    let min_interval = common?
        .min_interval
        .map_or_else(|| spec.default_min_interval(), |d| d.0);
    fine.then(|| ChannelConfig {
        name: name.into_inner(),
        spec,
        min_interval,
    })
}
