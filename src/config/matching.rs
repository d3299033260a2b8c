//! `match` in `[[routes]]` and `[[maintenance]]`: a table of equalities
//! (`{ team = "ops" }`) or a list of Alertmanager matchers
//! (`['env =~ "prod|staging"', 'team != "db"']`, see
//! [`crate::notify::policy::matchers`]). A bad matcher or regex is an error
//! at its own string.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use super::error::Collector;
use crate::notify::policy::{Matcher, Matchers, Op};

/// `match` as written.
#[derive(Debug, Default)]
pub enum RawMatch {
    #[default]
    Nothing,
    Equal(BTreeMap<String, String>),
    List(Vec<Spanned<String>>),
}

impl RawMatch {
    /// The matchers, each bad one reported at its string (`key` is `routes[0].match`).
    pub fn resolve(self, key: &str, errors: &mut Collector) -> Matchers {
        let matchers = match self {
            RawMatch::Nothing => Vec::new(),
            RawMatch::Equal(pairs) => pairs
                .iter()
                .filter_map(|(label, value)| {
                    Matcher::new(label, Op::Equal, value)
                        .map_err(|e| errors.at(0..0, key, e))
                        .ok()
                })
                .collect(),
            RawMatch::List(items) => items
                .into_iter()
                .filter_map(|item| {
                    item.get_ref()
                        .parse()
                        .map_err(|e| errors.at(item.span(), key, e))
                        .ok()
                })
                .collect(),
        };
        Matchers(matchers)
    }
}

impl<'de> Deserialize<'de> for RawMatch {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(RawMatchVisitor)
    }
}

struct RawMatchVisitor;

impl<'de> Visitor<'de> for RawMatchVisitor {
    type Value = RawMatch;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a table of label = \"value\", or a list of matchers such as ['env =~ \"prod|staging\"']",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMatch, A::Error> {
        let mut pairs = BTreeMap::new();
        while let Some((label, value)) = map.next_entry::<String, String>()? {
            pairs.insert(label, value);
        }
        Ok(RawMatch::Equal(pairs))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawMatch, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<String>>()? {
            items.push(item);
        }
        Ok(RawMatch::List(items))
    }
}
