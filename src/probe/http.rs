//! The `http` probe: one request on a fresh connection, timed phase by phase
//! (dns, connect, tls, first byte, transfer), bounded redirects, at most 1 MiB
//! of body read, status / body / JSON expectations.
//!
//! Redirects are followed safely: the configured headers (Authorization,
//! cookies, anything in `headers`) are sent only until a redirect leaves the
//! configured URL's origin (scheme, host, port), and a redirect from `https`
//! to `http` is refused.
//!
//! Speaks HTTP/1.1 itself over its own connection rather than through a
//! pooled client, so every phase can be timed and every run measures a new
//! connection, as blackbox_exporter does — unless the check says
//! `keepalive = true`: then one idle connection to the configured URL is
//! kept between runs (`keepalive.rs` owns it and the rule for retrying a
//! kept connection). The request is written from bytes made once at build
//! (`request.rs`); the response head is parsed by `httparse`, hyper's own
//! parser, and the body read as the head frames it (`wire.rs`, `body.rs`).

mod body;
mod expect;
mod hop;
mod keepalive;
mod request;
mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, StatusCode};
use serde::Deserialize;
use tokio::time::{Instant, timeout_at};
use url::Url;

use super::{BuildError, Context, Kind, api, tcp, tlsconf};
use crate::core::Metric;
use crate::core::SpecProblem;
use crate::core::sample::ConnInfo;
use crate::core::value::Pattern;
use crate::core::{CertInfo, HttpInfo, Phases, Sample};
use hop::{FirstHop, add_host, connect_host, next_hop};
use wire::Conn;

/// The most body read; the rest is not downloaded.
const BODY_LIMIT: usize = 1024 * 1024;
/// The most redirects followed.
const MAX_REDIRECTS: u32 = 5;
/// The User-Agent sent when none is configured, and always to other origins.
const KEEPER_AGENT: &str = concat!("keeper/", env!("CARGO_PKG_VERSION"));

/// `[checks.NAME]` keys of kind `http`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// Accepted statuses; when absent, any 2xx.
    pub expect_status: Option<Vec<u16>>,
    pub body_contains: Option<String>,
    pub body_regex: Option<Pattern>,
    /// Dotted paths into a JSON body and the values expected there, compared as strings.
    pub json: Option<BTreeMap<String, String>>,
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Keep one idle connection to the configured URL between runs and send
    /// the next run's request on it (`false`: a new connection per run).
    #[serde(default)]
    pub keepalive: bool,
    /// The local address to connect from (a host with several; blackbox's
    /// `source_ip_address`).
    pub source_address: Option<std::net::IpAddr>,
}

fn default_method() -> String {
    "GET".into()
}

fn default_true() -> bool {
    true
}

impl Spec {
    fn method(&self) -> Result<Method, SpecProblem> {
        Method::from_bytes(self.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            let message = format!("method {:?}: not an HTTP method", self.method);
            SpecProblem::new("method", message)
        })
    }

    /// The configured headers, or the first that cannot be sent. Every
    /// check keeps this map for the hops redirects lead to: without
    /// configured headers it is empty and takes no memory.
    fn headers(&self) -> Result<HeaderMap, SpecProblem> {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let bad = |what: String| SpecProblem::new(format!("headers.{name}"), what);
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad(format!("headers: {name:?} is not a valid header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| bad(format!("headers.{name}: the value has invalid characters")))?;
            headers.append(name, value);
        }
        Ok(headers)
    }
}

impl Kind for Spec {
    const NAME: &'static str = "http";
    type Probe = Probe;

    fn target(&self) -> String {
        crate::core::redact::url(&self.url)
    }

    fn problems(&self) -> Vec<SpecProblem> {
        let mut out: Vec<SpecProblem> = [
            api::parse_url("url", &self.url).err(),
            self.method().err(),
            self.headers().err(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let statuses = self.expect_status.iter().flatten();
        if let Some(bad) = statuses.into_iter().find(|s| !(100..=599).contains(*s)) {
            let message = format!("expect_status: {bad} is not an HTTP status");
            out.push(SpecProblem::new("expect_status", message));
        }
        out.extend(tlsconf::ca_file_problem(self.ca_file.as_deref()));
        out
    }

    fn build(&self, _check: &str, ctx: &Context) -> Result<Probe, BuildError> {
        let url = api::parse_url("url", &self.url)?;
        let method = self.method()?;
        let configured = self.headers()?;
        let json = self.json.clone().unwrap_or_default().into_iter().collect();
        // Built even for http:// URLs: a redirect may lead to https.
        let tls = tlsconf::Tls::new(
            &ctx.roots,
            self.ca_file.as_deref(),
            self.insecure_skip_verify,
            &[b"http/1.1"],
        )?;
        let headers = own_origin_headers(&configured, self.keepalive, &url).map_err(BuildError)?;
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        if let Err(e) = target.parse::<http::Uri>() {
            return Err(BuildError(format!(
                "url: the path and query {target:?}: {e}"
            )));
        }
        let body = Bytes::from(self.body.clone().unwrap_or_default());
        let first = Box::new(FirstHop {
            request: request::encode(&method, target, &headers, &body),
            configured,
            host: connect_host(&url).map_err(BuildError)?,
            port: url.port_or_known_default().unwrap_or(80),
        });
        Ok(Probe {
            first,
            url,
            method,
            body,
            expect: Expect {
                status: self.expect_status.clone(),
                body_contains: self.body_contains.clone(),
                body_regex: self.body_regex.as_ref().map(|p| p.0.clone()),
                json,
            }
            .unless_any_2xx(),
            follow_redirects: self.follow_redirects,
            tls,
            kept: self.keepalive.then(Box::default),
            source: self.source_address,
        })
    }
}

/// A built `http` probe: the request and expectations, parsed once.
#[derive(Debug)]
pub struct Probe {
    url: Url,
    method: Method,
    body: Bytes,
    /// `None`: any 2xx, whatever the body (most checks: no memory).
    expect: Option<Box<Expect>>,
    follow_redirects: bool,
    tls: tlsconf::Tls,
    /// With `keepalive`: the idle connection to the configured URL, between runs.
    kept: Option<Box<keepalive::Slot>>,
    /// The configured URL's request target, headers and address, made once.
    first: Box<FirstHop>,
    /// `source_address`: the local address every connection is made from.
    source: Option<std::net::IpAddr>,
}

#[derive(Debug)]
struct Expect {
    status: Option<Vec<u16>>,
    body_contains: Option<String>,
    body_regex: Option<regex::Regex>,
    /// (dotted path, expected value)
    json: Vec<(String, String)>,
}

/// What a check that sets no expectation accepts.
static ANY_2XX: Expect = Expect {
    status: None,
    body_contains: None,
    body_regex: None,
    json: Vec::new(),
};

impl Expect {
    /// Boxed, unless it is [`ANY_2XX`].
    fn unless_any_2xx(self) -> Option<Box<Expect>> {
        let any_2xx = self.status.is_none()
            && self.body_contains.is_none()
            && self.body_regex.is_none()
            && self.json.is_empty();
        (!any_2xx).then(|| Box::new(self))
    }
}

/// What one run has seen so far, over all its hops.
struct Run {
    started: Instant,
    deadline: Instant,
    phases: Phases,
    redirects: u32,
    /// A redirect has left the configured origin: from then on no configured header is sent.
    left_origin: bool,
    cert: Option<CertInfo>,
    /// The first hop's lookup and peer; the last hop's TLS.
    conn: ConnInfo,
    /// The last hop went over TLS.
    ssl: bool,
    failed_due_to_regex: bool,
    /// With `keepalive`: how the first hop got its connection.
    connection: Option<keepalive::Got>,
}

/// A response as far as the probe read it.
struct Response {
    status: StatusCode,
    location: Option<String>,
    body: Bytes,
    /// The body went on past [`BODY_LIMIT`].
    truncated: bool,
    version: (u8, u8),
    /// `Content-Length`, -1 when undeclared.
    content_length: i64,
    /// The body was read to its end (not a redirect's, not cut at the limit):
    /// the connection may carry another request.
    read_whole: bool,
}

/// What opening a connection learned of its peer — its address family and,
/// over TLS, what the handshake showed — kept with a `keepalive` connection
/// so the runs that reuse it report it too.
#[derive(Clone, Debug, Default)]
struct Peer {
    ip_protocol: Option<u8>,
    cert: Option<CertInfo>,
    tls_version: Option<&'static str>,
    verified_chain_expiry: Option<chrono::DateTime<chrono::Utc>>,
}

impl Probe {
    pub async fn run(&self, deadline: Instant) -> Sample {
        let mut run = Run {
            started: Instant::now(),
            deadline,
            phases: Phases::default(),
            redirects: 0,
            left_origin: false,
            cert: None,
            conn: ConnInfo::default(),
            ssl: false,
            failed_due_to_regex: false,
            connection: None,
        };
        // The hop after a redirect; the first goes to the configured URL.
        let mut hop: Option<Url> = None;
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        loop {
            let url = hop.as_ref().unwrap_or(&self.url);
            let response = match self.exchange(url, &method, &body, &mut run).await {
                Ok(response) => response,
                Err(reason) => return run.sample(Err(reason), None),
            };
            let status = response.status;
            let location = match (&response.location, self.follow_redirects) {
                (Some(location), true) if status.is_redirection() => location,
                _ => {
                    let verdict = self.judge(&response, &mut run);
                    return run.sample(verdict, Some(&response));
                }
            };
            if run.redirects == MAX_REDIRECTS {
                let reason = format!(
                    "too many redirects (more than {MAX_REDIRECTS}), last to {}",
                    crate::core::redact::url(location)
                );
                return run.sample(Err(reason), Some(&response));
            }
            let next = match next_hop(url, location, status) {
                Ok(next) => next,
                Err(reason) => return run.sample(Err(reason), Some(&response)),
            };
            run.left_origin |= next.origin() != self.url.origin();
            hop = Some(next);
            run.redirects += 1;
            // Browsers' and curl's rule: 303, and 301/302 after a POST, become a GET without body.
            if status == StatusCode::SEE_OTHER
                || (method == Method::POST && matches!(status.as_u16(), 301 | 302))
            {
                method = Method::GET;
                body = Bytes::new();
            }
        }
    }

    /// One request to `url`: on the kept connection for the first hop of a
    /// `keepalive` check, else on a new connection.
    async fn exchange(
        &self,
        url: &Url,
        method: &Method,
        body: &Bytes,
        run: &mut Run,
    ) -> Result<Response, String> {
        if run.redirects == 0
            && let Some(slot) = &self.kept
        {
            return slot.exchange(self, method, body, run).await;
        }
        let request = self.request(url, method, body, run)?;
        let (mut conn, _) = self.open(url, run).await?;
        let exchanged = conn.exchange(&request, method, run).await;
        exchanged.map_err(|f| f.reason)
    }

    /// A new connection to `url`'s host and port (and the TLS handshake for
    /// https), timed into `run`; with what it learned of the peer.
    async fn open(&self, url: &Url, run: &mut Run) -> Result<(Conn, Peer), String> {
        let later;
        let (host, port) = if run.redirects == 0 {
            (&self.first.host, self.first.port)
        } else {
            later = connect_host(url)?;
            (&later, url.port_or_known_default().unwrap_or(80))
        };
        let conn = tcp::connect(host, port, self.source, run.deadline).await?;
        add(&mut run.phases.dns, conn.dns);
        add(&mut run.phases.connect, Some(conn.connect));
        let addr = conn.addr;
        let ip_protocol = Some(ConnInfo::ip_protocol(addr.ip()));
        // Lookup and peer as blackbox_exporter reports them: the first hop's.
        if run.conn.ip_protocol.is_none() {
            run.conn.dns_lookup = Some(conn.dns.unwrap_or_default());
            run.conn.ip_protocol = ip_protocol;
        }
        run.ssl = url.scheme() == "https";
        (run.conn.tls_version, run.conn.verified_chain_expiry) = (None, None);
        if !run.ssl {
            let http = Conn::new(conn.stream, addr);
            let peer = Peer {
                ip_protocol,
                ..Peer::default()
            };
            return Ok((http, peer));
        }
        let name = tlsconf::server_name(host).map_err(|e| e.0)?;
        let started = Instant::now();
        let handshake = self.tls.connector().connect(name.clone(), conn.stream);
        let stream = match timeout_at(run.deadline, handshake).await {
            Err(_) => return Err(run.timed_out("in the TLS handshake")),
            Ok(Err(e)) => {
                let reason = match tlsconf::rustls_error(&e) {
                    Some(err) => tlsconf::describe(err, None),
                    None => tcp::io_reason(&e),
                };
                return Err(format!("TLS handshake with {addr}: {reason}"));
            }
            Ok(Ok(stream)) => stream,
        };
        add(&mut run.phases.tls, Some(started.elapsed()));
        run.conn.tls_version = tlsconf::version_name(stream.get_ref().1);
        let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
        let cert = tlsconf::earliest_expiring(chain);
        let verdict = self.tls.verify(chain, &name);
        if let Some(cert) = &cert {
            run.see_cert(cert.clone());
        }
        if let Err(err) = verdict {
            let reason = tlsconf::describe(&err, cert.as_ref());
            return Err(format!("TLS handshake with {addr}: {reason}"));
        }
        run.conn.verified_chain_expiry = cert
            .as_ref()
            .filter(|_| self.tls.verifies())
            .map(|c| c.not_after);
        let peer = Peer {
            ip_protocol,
            cert,
            tls_version: run.conn.tls_version,
            verified_chain_expiry: run.conn.verified_chain_expiry,
        };
        Ok((Conn::new(stream, addr), peer))
    }

    /// The request for one hop, as it goes on the wire: with the configured
    /// headers until a redirect has left the configured origin, with
    /// keeper's User-Agent alone after.
    fn request(
        &self,
        url: &Url,
        method: &Method,
        body: &Bytes,
        run: &Run,
    ) -> Result<Bytes, String> {
        if run.redirects == 0 {
            // The configured URL's request, made once at build.
            return Ok(self.first.request.clone());
        }
        // On the configured origin, its headers (its `Host` too: the origin
        // is the same); elsewhere keeper's User-Agent and `Connection:
        // close` only, so no credential leaves for another host.
        let headers = if run.left_origin {
            let mut headers = foreign_headers();
            add_host(&mut headers, url)?;
            headers
        } else {
            own_origin_headers(&self.first.configured, self.kept.is_some(), url)?
        };
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        Ok(request::encode(method, target, &headers, body))
    }
}

/// The headers of a hop to the configured URL's origin: the configured
/// ones, with keeper's User-Agent unless they name one, `Connection: close`
/// without `keepalive`, and `Host` for `url` unless they set it.
fn own_origin_headers(
    configured: &HeaderMap,
    keepalive: bool,
    url: &Url,
) -> Result<HeaderMap, String> {
    let mut headers = configured.clone();
    headers.reserve(3);
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(KEEPER_AGENT));
    }
    if !keepalive {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    add_host(&mut headers, url)?;
    Ok(headers)
}

/// The headers of a hop that a redirect took to another origin.
fn foreign_headers() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(USER_AGENT, HeaderValue::from_static(KEEPER_AGENT));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    headers
}

impl Run {
    /// The sample for `result` (the up message or the down reason) and the
    /// final `response`, if one arrived.
    fn sample(self, result: Result<String, String>, response: Option<&Response>) -> Sample {
        let mut sample = match result {
            Ok(mut message) => {
                if let Some(got) = self.connection {
                    message.push_str(got.words());
                }
                Sample::up(message)
            }
            Err(reason) => Sample::down(reason),
        };
        sample
            .metrics
            .push((Metric::LatencyMs, tcp::ms(self.started.elapsed())));
        if let Some(cert) = &self.cert {
            sample
                .metrics
                .push((Metric::CertDaysLeft, cert.days_left(chrono::Utc::now())));
        }
        sample.http = Some(HttpInfo {
            status: response.map_or(0, |r| r.status.as_u16()),
            redirects: self.redirects,
            phases: self.phases,
            version: response.map(|r| r.version),
            content_length: response.map_or(0, |r| r.content_length),
            ssl: self.ssl && response.is_some(),
            failed_due_to_regex: self.failed_due_to_regex,
            connection_reused: self.connection.map(keepalive::Got::reused),
        });
        sample.cert = self.cert;
        sample.conn = self.conn;
        sample
    }

    /// Keeps the earliest-expiring certificate over all hops.
    fn see_cert(&mut self, cert: CertInfo) {
        if self
            .cert
            .as_ref()
            .is_none_or(|seen| cert.not_after < seen.not_after)
        {
            self.cert = Some(cert);
        }
    }

    fn timed_out(&self, doing: &str) -> String {
        let ms = tcp::ms(self.started.elapsed());
        format!("timed out after {ms:.0} ms {doing}")
    }
}

/// Adds a phase's time to what earlier hops spent in it.
fn add(slot: &mut Option<Duration>, d: Option<Duration>) {
    if let Some(d) = d {
        *slot = Some(slot.unwrap_or_default() + d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_rejects_bad_urls_methods_and_headers() {
        let ctx = Context::system();
        let spec = |url: &str, method: &str, header: (&str, &str)| Spec {
            url: url.into(),
            method: method.into(),
            headers: [(header.0.to_string(), header.1.to_string())].into(),
            body: None,
            expect_status: None,
            body_contains: None,
            body_regex: None,
            json: None,
            follow_redirects: true,
            ca_file: None,
            insecure_skip_verify: false,
            keepalive: false,
            source_address: None,
        };
        let err = |s: Spec| s.build("t", &ctx).err().map(|e| e.0).unwrap_or_default();
        assert!(err(spec("ftp://x/", "GET", ("a", "b"))).contains("not http or https"));
        assert!(err(spec("not a url", "GET", ("a", "b"))).contains("url"));
        assert!(err(spec("http://x/", "GE T", ("a", "b"))).contains("method"));
        assert!(err(spec("http://x/", "GET", ("bad name", "b"))).contains("header"));
        assert!(err(spec("http://x/", "GET", ("a", "b\nc"))).contains("headers.a"));
        assert!(
            spec("http://x/", "get", ("a", "b"))
                .build("t", &ctx)
                .is_ok()
        );
        // The same rules, found at load with the key.
        let problems = spec("ftp://x/", "GE T", ("a", "b\nc")).problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["url", "method", "headers.a"]);
    }
}
