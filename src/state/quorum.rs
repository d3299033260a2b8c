//! A check with regions (DESIGN.md §11), as the regions see it together:
//! each region's state (after its own hysteresis, on the instance probing
//! from there) counts, and the check fails only when at least `quorum`
//! regions see it failing. A region without a recent state is unknown:
//! neither up nor down. When the unknown ones could tip the count either
//! way, nothing is decided and the check stays as it is. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Seen;
use crate::classify::Verdict;
use crate::core::ownership::Regions;
use crate::core::{Color, Severity};

/// What the regions say together.
#[derive(Clone, Debug, PartialEq)]
pub enum Combined {
    /// At least `quorum` regions agree it fails (the color they all reach),
    /// or too few could for it to: green.
    Decided(Verdict),
    /// Unknown regions could tip it: it stays as it is. Why, in words.
    Undecided(String),
}

/// Combines the regions' `views`, counting only those that ran since
/// `fresh_since`.
pub fn combine(
    regions: &Regions,
    views: &BTreeMap<String, Seen>,
    fresh_since: DateTime<Utc>,
) -> Combined {
    let mut failing: Vec<(&str, &Seen)> = Vec::new();
    let mut up: Vec<&str> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    for region in &regions.names {
        let fresh =
            (views.get(region)).filter(|v| v.last_run_at.is_some_and(|at| at >= fresh_since));
        match fresh {
            None => unknown.push(region),
            Some(view) if view.color == Color::Green => up.push(region),
            Some(view) => failing.push((region, view)),
        }
    }
    // Worst first; regions in their configured order among equals.
    failing.sort_by_key(|(_, v)| std::cmp::Reverse(v.color));
    let words = words(&failing, &up, &unknown, regions);
    if failing.len() >= regions.quorum {
        let color = failing[regions.quorum - 1].1.color;
        let severity = (failing.iter())
            .filter(|(_, v)| v.color >= color)
            .filter_map(|(_, v)| v.severity)
            .max()
            .unwrap_or(Severity::Critical);
        return Combined::Decided(Verdict {
            color,
            severity: Some(severity),
            reason: words,
        });
    }
    if failing.len() + unknown.len() < regions.quorum {
        return Combined::Decided(Verdict::green(words));
    }
    Combined::Undecided(words)
}

/// `down from fra, iad; up from syd (quorum 2 of 3) — fra: 503 Service Unavailable`.
fn words(failing: &[(&str, &Seen)], up: &[&str], unknown: &[&str], regions: &Regions) -> String {
    let names = |color: Color| -> Vec<&str> {
        (failing.iter())
            .filter(|(_, v)| v.color == color)
            .map(|(r, _)| *r)
            .collect()
    };
    let mut parts = Vec::new();
    for (what, list) in [
        ("down from", names(Color::Red)),
        ("degraded from", names(Color::Yellow)),
        ("up from", up.to_vec()),
        ("unknown from", unknown.to_vec()),
    ] {
        if !list.is_empty() {
            parts.push(format!("{what} {}", list.join(", ")));
        }
    }
    let mut text = format!(
        "{} (quorum {} of {})",
        parts.join("; "),
        regions.quorum,
        regions.names.len()
    );
    if let Some((region, view)) = failing.first() {
        text.push_str(&format!(" — {region}: {}", view.message));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(quorum: usize) -> Regions {
        Regions {
            names: ["fra", "iad", "syd"].map(String::from).to_vec(),
            quorum,
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn seen(color: Color, message: &str, ran: i64) -> Seen {
        Seen {
            color,
            severity: (color != Color::Green).then_some(match color {
                Color::Red => Severity::Critical,
                _ => Severity::Low,
            }),
            message: message.into(),
            since: None,
            last_run_at: Some(at(ran)),
            latency_ms: None,
            incident: None,
            streaks: Default::default(),
        }
    }

    fn views(list: &[(&str, Seen)]) -> BTreeMap<String, Seen> {
        list.iter()
            .map(|(r, s)| (r.to_string(), s.clone()))
            .collect()
    }

    /// What `quorum` regions decide of `list`, counting states since `at(0)`.
    fn decided(quorum: usize, list: &[(&str, Seen)]) -> Verdict {
        match combine(&regions(quorum), &views(list), at(0)) {
            Combined::Decided(verdict) => verdict,
            other => panic!("decided, not {other:?}"),
        }
    }

    #[test]
    fn one_region_down_of_three_is_no_quorum_of_two() {
        let verdict = decided(
            2,
            &[
                ("fra", seen(Color::Red, "connection refused", 100)),
                ("iad", seen(Color::Green, "200 OK", 100)),
                ("syd", seen(Color::Green, "200 OK", 100)),
            ],
        );
        assert_eq!(verdict.color, Color::Green);
        assert_eq!(verdict.severity, None);
        assert_eq!(
            verdict.reason,
            "down from fra; up from iad, syd (quorum 2 of 3) — fra: connection refused"
        );
    }

    #[test]
    fn two_regions_down_reach_the_quorum_and_are_named() {
        let verdict = decided(
            2,
            &[
                ("fra", seen(Color::Red, "connection refused", 100)),
                ("iad", seen(Color::Red, "503", 100)),
                ("syd", seen(Color::Green, "200 OK", 100)),
            ],
        );
        assert_eq!(verdict.color, Color::Red);
        assert_eq!(verdict.severity, Some(Severity::Critical));
        assert!(
            verdict
                .reason
                .starts_with("down from fra, iad; up from syd"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn the_quorum_th_worst_color_is_the_checks() {
        // One red and one yellow of quorum 2: both fail, the second worst is yellow.
        let verdict = decided(
            2,
            &[
                ("fra", seen(Color::Red, "refused", 100)),
                ("iad", seen(Color::Yellow, "slow", 100)),
                ("syd", seen(Color::Green, "ok", 100)),
            ],
        );
        assert_eq!(verdict.color, Color::Yellow);
        assert_eq!(
            verdict.severity,
            Some(Severity::Critical),
            "the worst of those failing"
        );
        assert!(
            verdict.reason.contains("degraded from iad"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn unknown_regions_count_neither_way() {
        // fra down, iad stale, syd up: iad could make the quorum, so undecided.
        let v = views(&[
            ("fra", seen(Color::Red, "refused", 100)),
            ("iad", seen(Color::Red, "refused", -50)),
            ("syd", seen(Color::Green, "ok", 100)),
        ]);
        match combine(&regions(2), &v, at(0)) {
            Combined::Undecided(why) => assert_eq!(
                why,
                "down from fra; up from syd; unknown from iad (quorum 2 of 3) — fra: refused"
            ),
            other => panic!("undecided, not {other:?}"),
        }
        // Two up and one never seen: it cannot reach the quorum, green.
        let verdict = decided(
            2,
            &[
                ("fra", seen(Color::Green, "ok", 100)),
                ("syd", seen(Color::Green, "ok", 100)),
            ],
        );
        assert_eq!(verdict.color, Color::Green);
        assert!(verdict.reason.contains("unknown from iad"));
        // Two down and one unknown reach it whatever the third says.
        let verdict = decided(
            2,
            &[
                ("fra", seen(Color::Red, "refused", 100)),
                ("iad", seen(Color::Red, "refused", 100)),
            ],
        );
        assert_eq!(verdict.color, Color::Red);
    }

    #[test]
    fn quorum_of_one_fails_on_any_region() {
        let verdict = decided(1, &[("syd", seen(Color::Red, "refused", 100))]);
        assert_eq!(verdict.color, Color::Red);
    }
}
