//! A check's `regions` and `quorum` (DESIGN.md §11): the regions it is
//! probed from, one instance in each, and how many of them must see it
//! failing before an incident opens (default: a majority).

use toml::Spanned;

use super::error::Collector;
use crate::core::ownership::Regions;

/// `regions` and `quorum` of check `key`, checked: each region a word named
/// once, `quorum` between 1 and the number of regions, no `quorum` alone.
pub(super) fn read(
    key: &str,
    regions: Option<Spanned<Vec<Spanned<String>>>>,
    quorum: Option<Spanned<u32>>,
    errors: &mut Collector,
) -> Option<Regions> {
    let Some(regions) = regions else {
        if let Some(q) = quorum {
            let message = "quorum needs regions (the regions to count it in)".into();
            errors.at(q.span(), &format!("{key}.quorum"), message);
        }
        return None;
    };
    let span = regions.span();
    let written = regions.get_ref().len();
    let mut names: Vec<String> = Vec::new();
    for region in regions.into_inner() {
        let text = region.get_ref();
        let problem = if !is_word(text) {
            Some(format!(
                "{text:?} must be letters, digits, '-', '_' or '.', as [cluster] region"
            ))
        } else if names.contains(text) {
            Some(format!("{text:?} is listed twice"))
        } else {
            None
        };
        match problem {
            Some(message) => errors.at(region.span(), &format!("{key}.regions"), message),
            None => names.push(region.into_inner()),
        }
    }
    if written == 0 {
        let message = "list at least one region (or leave regions out)".into();
        errors.at(span, &format!("{key}.regions"), message);
    }
    if names.len() < written || written == 0 {
        return None;
    }
    let quorum = match quorum {
        None => Regions::majority(names.len()),
        Some(q) => {
            let n = *q.get_ref() as usize;
            if n == 0 || n > names.len() {
                let message = format!("must be between 1 and the {} regions listed", names.len());
                errors.at(q.span(), &format!("{key}.quorum"), message);
                return None;
            }
            n
        }
    };
    Some(Regions { names, quorum })
}

/// What `[cluster] region` accepts too.
fn is_word(text: &str) -> bool {
    !text.is_empty() && (text.chars()).all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
