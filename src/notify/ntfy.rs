//! The `ntfy` channel: publishes to a topic URL, the message as plain-text
//! body and `Title`, `Priority`, `Tags`, `Click` as headers
//! ([`render::ntfy_message`]).
//!
//! ntfy answers 200 with the message JSON; 429 waits (the shared rule of
//! [`super::webhook::post`]). The token is a secret: never shown.

use std::fmt;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::webhook::{parse_url, post, url_problem};
use super::{Deliver, Kind, SendError, render};
use crate::core::{Notification, SpecProblem};

/// `[channels.NAME]` keys of kind `ntfy`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The topic URL, e.g. `https://ntfy.sh/mytopic`.
    pub url: String,
    /// An access token for a protected topic, sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Clone)]
pub struct Ntfy {
    http: reqwest::Client,
    url: reqwest::Url,
    auth: Option<HeaderValue>,
}

impl fmt::Debug for Ntfy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ntfy")
            .field("host", &self.url.host_str())
            .field("token", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

/// `Authorization: Bearer <token>`, marked sensitive, or why not.
fn auth(token: &str) -> Result<HeaderValue, String> {
    if token.trim().is_empty() {
        return Err("token is empty".to_string());
    }
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "invalid token: not a valid header value".to_string())?;
    v.set_sensitive(true);
    Ok(v)
}

impl Kind for Spec {
    const NAME: &'static str = "ntfy";
    type Channel = Ntfy;

    fn problems(&self) -> Vec<SpecProblem> {
        let mut out: Vec<SpecProblem> = url_problem(&self.url).into_iter().collect();
        if let Some(t) = &self.token
            && let Err(e) = auth(t)
        {
            out.push(SpecProblem::new("token", e));
        }
        out
    }

    fn build(&self, http: &reqwest::Client) -> Result<Ntfy, String> {
        Ntfy::new(self, http.clone())
    }
}

impl Ntfy {
    pub fn new(spec: &Spec, http: reqwest::Client) -> Result<Ntfy, String> {
        Ok(Ntfy {
            http,
            url: parse_url(&spec.url)?,
            auth: spec.token.as_deref().map(auth).transpose()?,
        })
    }
}

impl Ntfy {
    /// Publishes a report's summary ([`super::report`]): `title`, the text
    /// as the body, the link as `Click`.
    pub(super) async fn post_report(
        &self,
        title: &str,
        click: Option<&str>,
        text: &str,
        key: &str,
    ) -> Result<(), SendError> {
        let mut headers = HeaderMap::new();
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        set("title", title);
        set("tags", "clipboard");
        if let Some(click) = click {
            set("click", click);
        }
        let body = text.as_bytes().to_vec();
        post(
            &self.http,
            &self.url,
            &headers,
            "text/plain; charset=utf-8",
            key,
            body,
        )
        .await
    }
}

impl Deliver for Ntfy {
    async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        let m = render::ntfy_message(n);
        let mut headers = HeaderMap::new();
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        // Raw bytes: ntfy reads UTF-8 header values; render removed control characters.
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        set("title", &m.title);
        set("priority", &m.priority.to_string());
        set("tags", m.tags);
        if let Some(click) = &m.click {
            set("click", click);
        }
        post(
            &self.http,
            &self.url,
            &headers,
            "text/plain; charset=utf-8",
            key,
            m.body.into_bytes(),
        )
        .await
    }
}
