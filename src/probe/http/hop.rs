//! Where an `http` run's hops go: the configured URL's first hop, made once
//! at build, and each redirect's next hop, with its `Host` and the host to
//! connect to.

use http::StatusCode;
use http::header::{HOST, HeaderMap, HeaderValue};
use url::Url;

use super::api;
use super::expect::status_text;

/// What every run's first hop needs of the configured URL, made at build.
#[derive(Debug)]
pub(super) struct FirstHop {
    /// The request line, headers and body, as every run sends them.
    pub request: bytes::Bytes,
    /// The configured headers alone (empty, and no memory, without any):
    /// a redirect that stays on the configured URL's origin sends them, with
    /// keeper's own (`http::own_origin_headers`).
    pub configured: HeaderMap,
    /// Name or IP literal, to resolve and connect to.
    pub host: String,
    pub port: u16,
}

/// `Host` for `url`, unless the configured headers set one.
pub(super) fn add_host(headers: &mut HeaderMap, url: &Url) -> Result<(), String> {
    if !headers.contains_key(HOST) {
        let host = url.host_str().unwrap_or_default();
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let host = HeaderValue::from_str(&host).map_err(|e| format!("Host {host:?}: {e}"))?;
        headers.insert(HOST, host);
    }
    Ok(())
}

/// The host to resolve and connect to for `url`: a name, or an IP literal
/// without brackets.
pub(super) fn connect_host(url: &Url) -> Result<String, String> {
    match url.host() {
        Some(url::Host::Domain(name)) => Ok(name.to_string()),
        Some(url::Host::Ipv4(ip)) => Ok(ip.to_string()),
        Some(url::Host::Ipv6(ip)) => Ok(ip.to_string()),
        None => Err(format!(
            "{}: no host",
            crate::core::redact::url(url.as_str())
        )),
    }
}

/// Where a redirect from `from` to `location` leads: an absolute http(s) URL,
/// and never from `https` down to `http`.
pub(super) fn next_hop(from: &Url, location: &str, status: StatusCode) -> Result<Url, String> {
    let next = from
        .join(location)
        .map_err(|e| e.to_string())
        .and_then(|u| api::check_url(&u).map(|()| u))
        .map_err(|e| {
            let shown = crate::core::redact::url(location);
            format!("{} redirect to {shown:?}: {e}", status_text(status))
        })?;
    if from.scheme() == "https" && next.scheme() == "http" {
        return Err(format!(
            "redirect from {} to insecure {} refused",
            shown(from),
            shown(&next)
        ));
    }
    Ok(next)
}

/// `https://host:port/path` of `url`: no userinfo, no query, for messages.
fn shown(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}
