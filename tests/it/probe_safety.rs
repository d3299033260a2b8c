//! What probes must not give away: the `http` probe's configured headers
//! (Authorization, cookies) stay with the configured origin when a redirect
//! leads elsewhere, and an `https` → `http` redirect is refused; a `command`
//! check runs with a clean environment, not keeper's.

use std::time::Duration;

use keeper::probe::{Context, Outcome, Probe, Sample, Spec, http};

use crate::support::{
    self,
    target::{Target, TestCa},
};

const TIMEOUT: Duration = Duration::from_secs(5);
const SECRET: &str = "Bearer s3cret-token";

/// An `http` probe of `url` sending `Authorization` and a cookie.
fn probe_with_secrets(url: &str, ca: Option<&TestCa>) -> Probe {
    let mut toml = format!(
        "url = {url:?}\nheaders = {{ Authorization = {SECRET:?}, Cookie = \"session=abc\" }}\n"
    );
    if let Some(ca) = ca {
        toml.push_str(&format!("ca_file = {:?}\n", ca.ca_file()));
    }
    let spec: http::Spec = toml::from_str(&toml).expect("http spec");
    Spec::Http(spec)
        .build("test", &Context::system())
        .expect("build http probe")
}

fn reason(sample: &Sample) -> &str {
    match &sample.outcome {
        Outcome::Down(reason) => reason,
        Outcome::Up | Outcome::Warn(_) => panic!("expected a down sample, got {sample:?}"),
    }
}

#[tokio::test]
async fn a_redirect_to_another_port_does_not_carry_the_configured_headers() {
    support::init();
    let other = Target::start().await;
    let first = Target::start().await;
    first.redirect_to(other.url("/landing"));
    let probe = probe_with_secrets(&first.url("/login"), None);

    let sample = probe.run(TIMEOUT).await;

    assert!(sample.is_up(), "{sample:?}");
    assert_eq!(first.recorded()[0].header("authorization"), Some(SECRET));
    let landed = other.recorded();
    assert_eq!(landed.len(), 1, "{landed:?}");
    assert_eq!(landed[0].path, "/landing");
    assert_eq!(landed[0].header("authorization"), None, "{landed:?}");
    assert_eq!(landed[0].header("cookie"), None, "{landed:?}");
    assert!(landed[0].header("user-agent").is_some(), "{landed:?}");
}

#[tokio::test]
async fn a_redirect_to_another_host_name_on_the_same_port_is_another_origin() {
    support::init();
    let target = Target::start().await;
    // 127.0.0.1 → localhost: same server, but not the origin the headers were configured for.
    target.redirect_to(target.url_localhost("/redirect/0"));
    let probe = probe_with_secrets(&target.url("/start"), None);

    let sample = probe.run(TIMEOUT).await;

    assert!(sample.is_up(), "{sample:?}");
    let seen = target.recorded();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].header("authorization"), Some(SECRET));
    assert_eq!(seen[1].header("authorization"), None, "{seen:?}");
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_the_configured_headers() {
    support::init();
    let target = Target::start().await;
    let probe = probe_with_secrets(&target.url("/redirect/2"), None);

    let sample = probe.run(TIMEOUT).await;

    assert!(sample.is_up(), "{sample:?}");
    let seen = target.recorded();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for request in &seen {
        assert_eq!(request.header("authorization"), Some(SECRET), "{seen:?}");
        assert_eq!(request.header("cookie"), Some("session=abc"), "{seen:?}");
    }
}

#[tokio::test]
async fn an_https_to_http_redirect_is_red_and_not_followed() {
    support::init();
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(30));
    let plain = Target::start().await;
    let secure = Target::start_tls(&leaf).await;
    secure.redirect_to(plain.url("/after?token=hidden"));
    let probe = probe_with_secrets(&secure.url("/login"), Some(&ca));

    let sample = probe.run(TIMEOUT).await;

    let reason = reason(&sample);
    let from = secure.url("/login");
    let to = plain.url("/after");
    assert_eq!(
        reason,
        format!("redirect from {from} to insecure {to} refused"),
        "{sample:?}"
    );
    assert_eq!(plain.requests(), 0, "the insecure hop must not be made");
    assert_eq!(sample.http.as_ref().map(|h| h.status), Some(302));
}
