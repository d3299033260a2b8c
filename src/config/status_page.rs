//! `[status_page]` (DESIGN.md §7, §9): what `GET /` and the badges show.

use std::collections::BTreeSet;

use serde::Deserialize;
use toml::Spanned;

use super::error::Collector;

/// The status page as configured, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusPage {
    /// Off: `GET /` and the badges answer 404.
    pub enabled: bool,
    pub title: String,
    /// Checks are grouped by the values of these labels (default `app`).
    pub labels: Vec<String>,
    /// The checks shown; `None`: every check but keeper's own.
    pub checks: Option<BTreeSet<String>>,
    /// Whether each check's target (URL, host:port) is shown.
    pub show_targets: bool,
}

impl Default for StatusPage {
    fn default() -> StatusPage {
        StatusPage {
            enabled: true,
            title: "Status".into(),
            labels: vec!["app".into()],
            checks: None,
            show_targets: false,
        }
    }
}

impl StatusPage {
    /// Whether the page (and its badges) show check `name`.
    pub fn shows(&self, name: &str) -> bool {
        match &self.checks {
            Some(listed) => listed.contains(name),
            None => !name.starts_with(crate::watchdog::PREFIX),
        }
    }
}

/// `[status_page]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    enabled: Option<bool>,
    title: Option<Spanned<String>>,
    labels: Option<Spanned<Vec<String>>>,
    checks: Option<Vec<Spanned<String>>>,
    show_targets: Option<bool>,
}

impl Raw {
    /// The page with defaults; every listed check must exist (keeper's own
    /// `keeper:*` checks included).
    pub fn resolve(self, checks: &BTreeSet<String>, errors: &mut Collector) -> StatusPage {
        let mut page = StatusPage::default();
        page.enabled = self.enabled.unwrap_or(page.enabled);
        page.show_targets = self.show_targets.unwrap_or(page.show_targets);
        if let Some(title) = self.title {
            if title.get_ref().trim().is_empty() {
                errors.at(
                    title.span(),
                    "status_page.title",
                    "must not be empty".into(),
                );
            } else {
                page.title = title.into_inner();
            }
        }
        if let Some(labels) = self.labels {
            if labels.get_ref().iter().any(|l| l.trim().is_empty()) {
                let message = "label names must not be empty".into();
                errors.at(labels.span(), "status_page.labels", message);
            }
            page.labels = labels.into_inner();
        }
        if let Some(listed) = self.checks {
            for name in &listed {
                if !checks.contains(name.get_ref()) {
                    let message = format!("no check named {:?}", name.get_ref());
                    errors.at(name.span(), "status_page.checks", message);
                }
            }
            page.checks = Some(listed.into_iter().map(Spanned::into_inner).collect());
        }
        page
    }
}
