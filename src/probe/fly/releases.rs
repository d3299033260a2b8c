//! Deployments the `fly` check sees by itself: a listed machine running a
//! release or image not seen on the previous run means the app was
//! deployed (`fly deploy`, a `fly machine update --image`). A rolling deploy
//! changes one machine after another; only the first sight of a release
//! counts. Nothing is reported on the first run: there is nothing to compare.

use std::collections::BTreeSet;

use super::Machine;

/// What a machine runs: its release version (`config.metadata.fly_release_version`)
/// and image (`config.image`, else `image_ref`'s repository:tag@digest).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Release {
    pub version: Option<String>,
    pub image: Option<String>,
}

impl Release {
    fn of(m: &Machine) -> Option<Release> {
        let config = m.config.as_ref();
        let version = config
            .and_then(|c| c.metadata.as_ref())
            .and_then(|m| m.fly_release_version.as_ref())
            .and_then(text);
        let image = config
            .and_then(|c| c.image.as_ref())
            .and_then(|i| i.as_str())
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_string)
            .or_else(|| m.image_ref.as_ref().and_then(image_ref));
        (version.is_some() || image.is_some()).then_some(Release { version, image })
    }

    /// The version people quote: `v42`, else the image.
    pub fn label(&self) -> String {
        match (&self.version, &self.image) {
            (Some(v), _) if v.starts_with('v') => v.clone(),
            (Some(v), _) => format!("v{v}"),
            (None, Some(image)) => image.clone(),
            (None, None) => "?".into(),
        }
    }

    /// What the deployment record says beside the version.
    pub fn describe(&self, machines: &[&str]) -> String {
        let on = format!("on {}", machines.join(", "));
        match (&self.version, &self.image) {
            (Some(_), Some(image)) => format!("seen by the fly check: image {image} {on}"),
            _ => format!("seen by the fly check {on}"),
        }
    }
}

/// A JSON string or number as text; anything else is not a version.
fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `registry/repository:tag@digest` from `image_ref`'s parts.
fn image_ref(v: &serde_json::Value) -> Option<String> {
    let part = |key: &str| {
        v.get(key)
            .and_then(|p| p.as_str())
            .filter(|p| !p.is_empty())
    };
    let mut image = part("repository")?.to_string();
    if let Some(registry) = part("registry") {
        image = format!("{registry}/{image}");
    }
    if let Some(tag) = part("tag") {
        image.push(':');
        image.push_str(tag);
    }
    if let Some(digest) = part("digest") {
        image.push('@');
        image.push_str(digest);
    }
    Some(image)
}

/// The releases the listed machines run, each with the short ids of the
/// machines running it.
pub(super) fn releases(listed: &[&Machine]) -> Vec<(Release, Vec<String>)> {
    let mut out: Vec<(Release, Vec<String>)> = Vec::new();
    for m in listed {
        let Some(release) = Release::of(m) else {
            continue;
        };
        let id = m.short_id().to_string();
        match out.iter_mut().find(|(r, _)| *r == release) {
            Some((_, ids)) => ids.push(id),
            None => out.push((release, vec![id])),
        }
    }
    out.sort();
    out
}

/// The releases in `now` that `before` did not have: the deployments made
/// since (none when there was no run before).
pub(super) fn new_since<'a>(
    before: Option<&BTreeSet<Release>>,
    now: &'a [(Release, Vec<String>)],
) -> Vec<&'a (Release, Vec<String>)> {
    let Some(before) = before else {
        return Vec::new();
    };
    now.iter().filter(|(r, _)| !before.contains(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(id: &str, version: &str, image: &str) -> Machine {
        let json = format!(
            r#"{{"id": "{id}", "state": "started", "config": {{"image": {image},
                 "metadata": {{"fly_release_version": {version}}}}}}}"#
        );
        serde_json::from_str(&json).expect("a machine")
    }

    fn seen(machines: &[Machine]) -> Vec<(Release, Vec<String>)> {
        releases(&machines.iter().collect::<Vec<_>>())
    }

    fn set(r: &[(Release, Vec<String>)]) -> BTreeSet<Release> {
        r.iter().map(|(r, _)| r.clone()).collect()
    }

    #[test]
    fn a_new_release_is_a_deployment_once_and_never_on_the_first_run() {
        let img = |tag: &str| format!("\"registry.fly.io/web:{tag}\"");
        let v42 = seen(&[
            machine("aaaaaaaa11", "\"42\"", &img("d-1")),
            machine("bbbbbbbb22", "\"42\"", &img("d-1")),
        ]);
        assert!(
            new_since(None, &v42).is_empty(),
            "the first run only remembers"
        );
        assert!(
            new_since(Some(&set(&v42)), &v42).is_empty(),
            "nothing changed"
        );

        // A rolling deploy: one machine on 43 first, then both.
        let rolling = seen(&[
            machine("aaaaaaaa11", "\"43\"", &img("d-2")),
            machine("bbbbbbbb22", "\"42\"", &img("d-1")),
        ]);
        let new = new_since(Some(&set(&v42)), &rolling);
        assert_eq!(new.len(), 1);
        let (release, machines) = new[0];
        assert_eq!(release.label(), "v43");
        assert_eq!(machines, &["aaaaaaaa"]);
        assert_eq!(
            release.describe(&["aaaaaaaa"]),
            "seen by the fly check: image registry.fly.io/web:d-2 on aaaaaaaa"
        );
        let done = seen(&[
            machine("aaaaaaaa11", "\"43\"", &img("d-2")),
            machine("bbbbbbbb22", "\"43\"", &img("d-2")),
        ]);
        assert!(
            new_since(Some(&set(&rolling)), &done).is_empty(),
            "43 was seen already"
        );
    }

    #[test]
    fn an_image_change_without_a_release_counts_and_numbers_read_as_versions() {
        let before = seen(&[machine("aaaaaaaa11", "7", "\"web:one\"")]);
        let after = seen(&[machine("aaaaaaaa11", "7", "\"web:two\"")]);
        let new = new_since(Some(&set(&before)), &after);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].0.label(), "v7");
        let imaged = seen(&[machine("aaaaaaaa11", "null", "\"web:three\"")]);
        assert_eq!(imaged[0].0.label(), "web:three");
    }

    #[test]
    fn image_ref_stands_in_for_a_missing_image() {
        let m: Machine = serde_json::from_str(
            r#"{"id": "m1", "image_ref": {"registry": "registry.fly.io", "repository": "web",
                "tag": "deployment-01H", "digest": "sha256:9daa"}}"#,
        )
        .unwrap();
        let r = Release::of(&m).expect("a release");
        assert_eq!(
            r.image.as_deref(),
            Some("registry.fly.io/web:deployment-01H@sha256:9daa")
        );
        let bare: Machine =
            serde_json::from_str(r#"{"id": "m2", "config": {"image": 5}}"#).unwrap();
        assert_eq!(Release::of(&bare), None, "nothing to compare");
    }
}
