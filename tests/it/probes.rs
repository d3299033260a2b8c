//! The `http`, `tcp` and `tls` probes against real servers on loopback
//! (`support::target`): what each reports when the target is well, failing,
//! slow, misbehaving, or presents a bad certificate.

use std::time::Duration;

use chrono::Utc;
use keeper::core::Metric;

use keeper::core::{Outcome, Sample};
use keeper::probe::{Context, Probe, Spec, http, tcp, tls};

use crate::support::{
    self,
    target::{Misbehaving, Misbehaviour, Target, TestCa},
};

const TIMEOUT: Duration = Duration::from_secs(5);

fn http_probe(toml: &str) -> Probe {
    let spec: http::Spec = toml::from_str(toml).expect("http spec");
    Spec::Http(spec)
        .build("test", &Context::system())
        .expect("build http probe")
}

fn tls_probe(toml: &str) -> Probe {
    let spec: tls::Spec = toml::from_str(toml).expect("tls spec");
    Spec::Tls(spec)
        .build("test", &Context::system())
        .expect("build tls probe")
}

fn tcp_probe(toml: &str) -> Probe {
    let spec: tcp::Spec = toml::from_str(toml).expect("tcp spec");
    Spec::Tcp(spec)
        .build("test", &Context::system())
        .expect("build tcp probe")
}

/// The reason of a down sample; panics (showing the sample) when it is up.
fn reason(sample: &Sample) -> &str {
    match &sample.outcome {
        Outcome::Down(reason) => reason,
        Outcome::Up | Outcome::Warn(_) => panic!("expected a down sample, got {sample:?}"),
    }
}

fn assert_up(sample: &Sample) {
    assert!(sample.is_up(), "expected up, got {sample:?}");
}

fn days_left(sample: &Sample) -> f64 {
    sample
        .metric(Metric::CertDaysLeft)
        .unwrap_or_else(|| panic!("no cert_days_left in {sample:?}"))
}

// ---- http -------------------------------------------------------------

#[tokio::test]
async fn http_200_is_up_with_phases_and_no_dns_for_an_ip_literal() {
    support::init();
    let target = Target::start().await;
    let probe = http_probe(&format!("url = {:?}", target.url("/health")));

    let sample = probe.run(TIMEOUT).await;

    assert_up(&sample);
    assert!(
        sample.message.starts_with("200 OK in "),
        "{}",
        sample.message
    );
    let info = sample.http.as_ref().expect("http info");
    assert_eq!(info.status, 200);
    assert_eq!(info.redirects, 0);
    assert_eq!(info.phases.dns, None);
    assert_eq!(info.phases.tls, None);
    assert!(info.phases.connect.is_some());
    assert!(info.phases.first_byte.is_some());
    assert!(info.phases.transfer.is_some());
    assert!(sample.metric(Metric::LatencyMs).is_some());
    assert_eq!(sample.metric(Metric::CertDaysLeft), None);
    assert_eq!(target.requests(), 1);
}

#[tokio::test]
async fn http_sends_user_agent_host_and_connection_close_and_configured_headers() {
    support::init();
    let target = Target::start().await;
    let probe = http_probe(&format!(
        "url = {:?}\nmethod = \"post\"\nbody = \"ping\"\nheaders = {{ X-Token = \"abc\" }}",
        target.url("/hook?x=1")
    ));

    assert_up(&probe.run(TIMEOUT).await);

    let seen = &target.recorded()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/hook?x=1");
    assert_eq!(seen.header("host"), Some(target.host_port().as_str()));
    assert!(
        seen.header("user-agent")
            .unwrap_or_default()
            .starts_with("keeper/")
    );
    assert_eq!(seen.header("connection"), Some("close"));
    assert_eq!(seen.header("x-token"), Some("abc"));
    assert_eq!(seen.header("content-length"), Some("4"));
    assert_eq!(seen.header("accept-encoding"), None);
}

#[tokio::test]
async fn http_503_is_down_naming_expected_and_actual_status() {
    support::init();
    let target = Target::start().await;
    target.set_status(503);
    let default = http_probe(&format!("url = {:?}", target.url("/")));
    let explicit = http_probe(&format!(
        "url = {:?}\nexpect_status = [200]",
        target.url("/")
    ));

    let sample = default.run(TIMEOUT).await;
    assert_eq!(
        reason(&sample),
        "expected a 2xx status, got 503 Service Unavailable"
    );
    assert_eq!(sample.http.as_ref().map(|h| h.status), Some(503));

    let sample = explicit.run(TIMEOUT).await;
    assert_eq!(
        reason(&sample),
        "expected status 200, got 503 Service Unavailable"
    );
}

#[tokio::test]
async fn http_status_flipped_at_runtime_is_seen_by_the_next_run() {
    support::init();
    let target = Target::start().await;
    let probe = http_probe(&format!("url = {:?}", target.url("/")));
    assert_up(&probe.run(TIMEOUT).await);
    target.set_status(500);
    assert!(reason(&probe.run(TIMEOUT).await).contains("500 Internal Server Error"));
    target.set_status(204);
    assert_up(&probe.run(TIMEOUT).await);
}

#[tokio::test]
async fn http_body_contains_and_regex_mismatches_are_down() {
    support::init();
    let target = Target::start().await;
    target.set_body("status: degraded");
    let contains = http_probe(&format!(
        "url = {:?}\nbody_contains = \"ok\"",
        target.url("/")
    ));
    let regex = http_probe(&format!(
        "url = {:?}\nbody_regex = \"^status: (ok|fine)$\"",
        target.url("/")
    ));
    let matching = http_probe(&format!(
        "url = {:?}\nbody_contains = \"degraded\"\nbody_regex = \"status: \\\\w+\"",
        target.url("/")
    ));

    assert_eq!(
        reason(&contains.run(TIMEOUT).await),
        "body does not contain \"ok\""
    );
    assert_eq!(
        reason(&regex.run(TIMEOUT).await),
        "body does not match /^status: (ok|fine)$/"
    );
    assert_up(&matching.run(TIMEOUT).await);
}

#[tokio::test]
async fn http_json_values_are_compared_as_strings_and_mismatches_name_the_path() {
    support::init();
    let target = Target::start().await;
    target.set_body(r#"{"status": "ok", "checks": {"db": "down", "workers": 3}}"#);
    let url = target.url("/health");
    let good = http_probe(&format!(
        "url = {url:?}\njson = {{ status = \"ok\", \"checks.workers\" = \"3\" }}"
    ));
    let mismatch = http_probe(&format!(
        "url = {url:?}\njson = {{ \"checks.db\" = \"up\" }}"
    ));
    let missing = http_probe(&format!(
        "url = {url:?}\njson = {{ \"checks.cache\" = \"up\" }}"
    ));

    assert_up(&good.run(TIMEOUT).await);
    assert_eq!(
        reason(&mismatch.run(TIMEOUT).await),
        "json checks.db: expected \"up\", found \"down\""
    );
    assert!(reason(&missing.run(TIMEOUT).await).contains("checks.cache: not found"));

    target.set_body("<html>not json</html>");
    assert!(reason(&good.run(TIMEOUT).await).starts_with("body is not JSON"));
}

#[tokio::test]
async fn http_redirects_are_followed_and_counted() {
    support::init();
    let target = Target::start().await;
    let probe = http_probe(&format!("url = {:?}", target.url("/redirect/3")));

    let sample = probe.run(TIMEOUT).await;

    assert_up(&sample);
    let info = sample.http.as_ref().expect("http info");
    assert_eq!(info.status, 200);
    assert_eq!(info.redirects, 3);
    assert!(
        sample.message.ends_with("after 3 redirects"),
        "{}",
        sample.message
    );
    let paths: Vec<String> = target.recorded().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0"]
    );
}

#[tokio::test]
async fn http_redirects_on_the_origin_ask_to_close_unless_keepalive() {
    support::init();
    let target = Target::start().await;
    let url = target.url("/redirect/1");
    for (keepalive, connection) in [(false, Some("close")), (true, None)] {
        let probe = http_probe(&format!("url = {url:?}\nkeepalive = {keepalive}"));
        assert_up(&probe.run(TIMEOUT).await);
        let seen = target.recorded();
        let hops = &seen[seen.len() - 2..];
        assert_eq!(hops[1].path, "/redirect/0", "{seen:?}");
        for hop in hops {
            assert_eq!(hop.header("connection"), connection, "{seen:?}");
            assert_eq!(hop.header("host"), Some(&*target.addr().to_string()));
        }
    }
}

#[tokio::test]
async fn http_redirect_loop_is_down_with_too_many_redirects() {
    support::init();
    let target = Target::start().await;
    let probe = http_probe(&format!("url = {:?}", target.url("/loop")));

    let sample = probe.run(TIMEOUT).await;

    assert!(reason(&sample).contains("too many redirects"), "{sample:?}");
    assert_eq!(sample.http.as_ref().map(|h| h.redirects), Some(5));
    assert_eq!(target.requests(), 6);
}

#[tokio::test]
async fn http_redirect_is_not_followed_when_disabled() {
    support::init();
    let target = Target::start().await;
    let probe = http_probe(&format!(
        "url = {:?}\nfollow_redirects = false",
        target.url("/redirect/1")
    ));
    let accepting = http_probe(&format!(
        "url = {:?}\nfollow_redirects = false\nexpect_status = [302]",
        target.url("/redirect/1")
    ));

    assert_eq!(
        reason(&probe.run(TIMEOUT).await),
        "expected a 2xx status, got 302 Found"
    );
    assert_up(&accepting.run(TIMEOUT).await);
    assert_eq!(target.requests(), 2);
}

#[tokio::test]
async fn http_server_that_never_answers_times_out_within_the_deadline() {
    support::init();
    let server = Misbehaving::never_answers().await;
    let probe = http_probe(&format!("url = {:?}", server.url("/")));
    let timeout = Duration::from_millis(500);

    let sample = probe.run(timeout).await;

    // `run` itself bounds the time; that the HTTP client timed out (not the
    // outer deadline) shows in the phases it reports.
    assert!(reason(&sample).contains("timed out"), "{sample:?}");
    let info = sample.http.as_ref().expect("http info on a red sample");
    assert_eq!(info.status, 0);
    assert!(info.phases.connect.is_some());
}

#[tokio::test]
async fn http_huge_body_is_read_only_up_to_1_mib() {
    support::init();
    let server = Misbehaving::huge_body(10 * 1024 * 1024).await;
    let plain = http_probe(&format!("url = {:?}", server.url("/")));
    // The body ends in "END": only a probe that read past 1 MiB would see it.
    let tail = http_probe(&format!(
        "url = {:?}\nbody_contains = \"END\"",
        server.url("/")
    ));

    let sample = plain.run(TIMEOUT).await;
    assert_up(&sample);
    assert_eq!(sample.http.as_ref().map(|h| h.status), Some(200));

    let sample = tail.run(TIMEOUT).await;
    assert_eq!(
        reason(&sample),
        "body does not contain \"END\" (only the first 1 MiB was read)"
    );
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn http_connection_reset_is_down_with_reason() {
    support::init();
    let server = Misbehaving::reset().await;
    let probe = http_probe(&format!("url = {:?}", server.url("/")));

    let sample = probe.run(TIMEOUT).await;

    let reason = reason(&sample);
    assert!(
        reason.starts_with(&format!("request to {}: ", server.addr())),
        "{reason}"
    );
    assert!(
        reason.contains("reset") || reason.contains("closed"),
        "{reason}"
    );
    assert_eq!(sample.http.as_ref().map(|h| h.status), Some(0));
}

#[tokio::test]
async fn http_garbage_instead_of_http_is_down_as_invalid_response() {
    support::init();
    let server = Misbehaving::garbage().await;
    let probe = http_probe(&format!("url = {:?}", server.url("/")));

    let sample = probe.run(TIMEOUT).await;

    let expected = format!("invalid HTTP response from {}: ", server.addr());
    assert!(reason(&sample).starts_with(&expected), "{sample:?}");
}

#[tokio::test]
async fn http_a_head_that_never_ends_is_down_as_invalid_without_waiting_for_the_timeout() {
    support::init();
    let server = Misbehaving::start(Misbehaviour::EndlessHead).await;
    let probe = http_probe(&format!("url = {:?}", server.url("/")));

    let sample = probe.run(TIMEOUT).await;

    let expected = format!(
        "invalid HTTP response from {}: a response head over 64 KiB",
        server.addr()
    );
    assert_eq!(reason(&sample), expected, "{sample:?}");
}

#[tokio::test]
async fn http_bodies_framed_by_chunks_or_by_the_close_are_read_whole() {
    support::init();
    let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nx-trailer: 1\r\n\r\n";
    let until_close: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nWikipedia";
    let interim: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\
        Content-Length: 9\r\n\r\nWikipedia";
    for answer in [chunked, until_close, interim] {
        let server = Misbehaving::answers(answer).await;
        let probe = http_probe(&format!(
            "url = {:?}\nbody_contains = \"Wikipedia\"",
            server.url("/")
        ));

        let sample = probe.run(TIMEOUT).await;

        assert_up(&sample);
        assert_eq!(sample.http.as_ref().map(|h| h.status), Some(200));
    }
}

#[tokio::test]
async fn http_a_body_cut_short_or_badly_chunked_is_down_saying_so() {
    support::init();
    let cases: [(&[u8], &str); 3] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
            "connection closed before a complete response",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nWiki",
            "connection closed before a complete response",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnine\r\nWikipedia\r\n",
            "invalid chunked body",
        ),
    ];
    for (answer, words) in cases {
        let server = Misbehaving::answers(answer).await;
        let probe = http_probe(&format!("url = {:?}", server.url("/")));

        let sample = probe.run(TIMEOUT).await;

        let reason = reason(&sample);
        let expected = format!("reading the body from {}: {words}", server.addr());
        assert!(reason.starts_with(&expected), "{reason}");
    }
}

#[tokio::test]
async fn http_conflicting_lengths_are_an_invalid_response() {
    support::init();
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!";
    let server = Misbehaving::answers(answer).await;
    let probe = http_probe(&format!("url = {:?}", server.url("/")));

    let sample = probe.run(TIMEOUT).await;

    let expected = format!(
        "invalid HTTP response from {}: two different Content-Length values",
        server.addr()
    );
    assert_eq!(reason(&sample), expected);
}

#[tokio::test]
async fn http_connection_refused_is_down_naming_the_address() {
    support::init();
    let addr = closed_port().await;
    let probe = http_probe(&format!("url = \"http://{addr}/\""));

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(
        reason(&sample),
        format!("connect {addr}: connection refused")
    );
}

#[tokio::test]
async fn http_build_rejects_bad_url_and_unreadable_ca_file() {
    support::init();
    let build = |toml: &str| {
        let spec: http::Spec = toml::from_str(toml).expect("http spec");
        Spec::Http(spec)
            .build("test", &Context::system())
            .err()
            .map(|e| e.0)
    };
    let err = build("url = \"gopher://example.com/\"").unwrap_or_default();
    assert!(err.contains("not http or https"), "{err}");
    let err = build("url = \"https://localhost/\"\nca_file = \"/nonexistent/ca.pem\"")
        .unwrap_or_default();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

// ---- https ------------------------------------------------------------

#[tokio::test]
async fn https_with_ca_file_is_up_with_cert_days_left_and_not_after() {
    support::init();
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(5));
    let target = Target::start_tls(&leaf).await;
    for url in [target.url("/"), target.url_localhost("/")] {
        let probe = http_probe(&format!("url = {url:?}\nca_file = {:?}", ca.ca_file()));

        let sample = probe.run(TIMEOUT).await;

        assert_up(&sample);
        let days = days_left(&sample);
        assert!((4.9..=5.0).contains(&days), "{days}");
        let cert = sample.cert.as_ref().expect("cert info");
        assert_eq!(cert.not_after, leaf.not_after);
        assert_eq!(cert.subject, "CN=localhost");
        assert_eq!(cert.issuer, "CN=keeper test CA");
        assert!(sample.http.as_ref().and_then(|h| h.phases.tls).is_some());
    }
}

#[tokio::test]
async fn https_expired_certificate_is_down_mentioning_expired() {
    support::init();
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(-3));
    let target = Target::start_tls(&leaf).await;
    let probe = http_probe(&format!(
        "url = {:?}\nca_file = {:?}",
        target.url("/"),
        ca.ca_file()
    ));

    let sample = probe.run(TIMEOUT).await;

    let reason = reason(&sample);
    assert!(reason.starts_with("TLS handshake with "), "{reason}");
    assert!(reason.contains(": certificate expired on "), "{reason}");
    assert!(days_left(&sample) < -2.9);
    assert_eq!(
        sample.cert.as_ref().map(|c| c.not_after),
        Some(leaf.not_after)
    );
    assert_eq!(
        target.requests(),
        0,
        "no request is sent over an untrusted connection"
    );
}

#[tokio::test]
async fn https_unknown_issuer_is_down_and_insecure_skip_verify_is_up() {
    support::init();
    let ca = TestCa::new();
    let target = Target::start_tls(&ca.leaf_expiring_in(chrono::Duration::days(40))).await;
    let strict = http_probe(&format!("url = {:?}", target.url("/")));
    let insecure = http_probe(&format!(
        "url = {:?}\ninsecure_skip_verify = true",
        target.url("/")
    ));

    let sample = strict.run(TIMEOUT).await;
    assert!(reason(&sample).contains("unknown issuer"), "{sample:?}");

    let sample = insecure.run(TIMEOUT).await;
    assert_up(&sample);
    assert!(days_left(&sample) > 39.0);
    assert_eq!(target.requests(), 1);
}

// ---- tls --------------------------------------------------------------

#[tokio::test]
async fn tls_valid_chain_is_up_with_days_left_of_the_leaf() {
    support::init();
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(5));
    let target = Target::start_tls(&leaf).await;
    let by_ip = tls_probe(&format!(
        "host = {:?}\nca_file = {:?}",
        target.host_port(),
        ca.ca_file()
    ));
    let by_name = tls_probe(&format!(
        "host = {:?}\nserver_name = \"localhost\"\nca_file = {:?}",
        target.host_port(),
        ca.ca_file()
    ));

    for probe in [by_ip, by_name] {
        let sample = probe.run(TIMEOUT).await;

        assert_up(&sample);
        let days = days_left(&sample);
        assert!((4.9..=5.0).contains(&days), "{days}");
        assert_eq!(
            sample.cert.as_ref().map(|c| c.not_after),
            Some(leaf.not_after)
        );
        assert!(
            sample.message.contains("(5 days left)"),
            "{}",
            sample.message
        );
        assert!(
            sample.message.contains("keeper test CA"),
            "{}",
            sample.message
        );
    }
}

#[tokio::test]
async fn tls_expired_certificate_is_down_with_negative_days_left() {
    support::init();
    let ca = TestCa::new();
    let leaf = ca.leaf(Utc::now() - chrono::Duration::days(2));
    let target = Target::start_tls(&leaf).await;
    let probe = tls_probe(&format!(
        "host = {:?}\nca_file = {:?}",
        target.host_port(),
        ca.ca_file()
    ));

    let sample = probe.run(TIMEOUT).await;

    let expected = format!(
        "certificate expired on {}",
        leaf.not_after.format("%Y-%m-%d")
    );
    assert!(reason(&sample).starts_with(&expected), "{sample:?}");
    let days = days_left(&sample);
    assert!((-2.1..=-2.0).contains(&days), "{days}");
    assert_eq!(
        sample.cert.as_ref().map(|c| c.not_after),
        Some(leaf.not_after)
    );
}

#[tokio::test]
async fn tls_unknown_issuer_is_down_with_days_left_still_reported() {
    support::init();
    let ca = TestCa::new();
    let target = Target::start_tls(&ca.leaf_expiring_in(chrono::Duration::days(20))).await;
    let probe = tls_probe(&format!("host = {:?}", target.host_port()));

    let sample = probe.run(TIMEOUT).await;

    assert!(reason(&sample).contains("unknown issuer"), "{sample:?}");
    assert!((19.9..=20.0).contains(&days_left(&sample)));
    assert!(sample.cert.is_some());
}

#[tokio::test]
async fn tls_hostname_mismatch_is_down_naming_the_name() {
    support::init();
    let ca = TestCa::new();
    let target = Target::start_tls(&ca.leaf_expiring_in(chrono::Duration::days(20))).await;
    let probe = tls_probe(&format!(
        "host = {:?}\nserver_name = \"other.example\"\nca_file = {:?}",
        target.host_port(),
        ca.ca_file()
    ));

    let sample = probe.run(TIMEOUT).await;

    let reason = reason(&sample);
    assert!(reason.contains("not valid for name"), "{reason}");
    assert!(reason.contains("other.example"), "{reason}");
    assert!(days_left(&sample) > 19.0);
}

#[tokio::test]
async fn tls_insecure_skip_verify_reports_an_expired_cert_as_up_with_negative_days() {
    support::init();
    let ca = TestCa::new();
    let target = Target::start_tls(&ca.leaf_expiring_in(chrono::Duration::days(-1))).await;
    let probe = tls_probe(&format!(
        "host = {:?}\ninsecure_skip_verify = true",
        target.host_port()
    ));

    let sample = probe.run(TIMEOUT).await;

    assert_up(&sample);
    assert!(days_left(&sample) < 0.0);
}

#[tokio::test]
async fn tls_against_a_server_answering_garbage_is_down_with_handshake_reason() {
    support::init();
    let server = Misbehaving::garbage().await;
    let probe = tls_probe(&format!("host = {:?}", server.host_port()));

    let sample = probe.run(TIMEOUT).await;

    assert!(
        reason(&sample).starts_with("TLS handshake with"),
        "{sample:?}"
    );
    assert!(sample.cert.is_none());
}

#[tokio::test]
async fn tls_handshake_that_never_completes_times_out_naming_the_phase() {
    support::init();
    // A plain HTTP server waits for a request head that a ClientHello never completes.
    let target = Target::start().await;
    let probe = tls_probe(&format!("host = {:?}", target.host_port()));

    let sample = probe.run(Duration::from_millis(300)).await;

    assert!(
        reason(&sample).starts_with("timed out in the TLS handshake"),
        "{sample:?}"
    );
}

// ---- tcp --------------------------------------------------------------

#[tokio::test]
async fn tcp_open_port_is_up_with_connect_latency() {
    support::init();
    let target = Target::start().await;
    let probe = tcp_probe(&format!("host = {:?}", target.host_port()));

    let sample = probe.run(TIMEOUT).await;

    assert_up(&sample);
    assert!(
        sample
            .message
            .starts_with(&format!("connected to {} in ", target.host_port())),
        "{}",
        sample.message
    );
    assert!(sample.metric(Metric::LatencyMs).is_some());
}

#[tokio::test]
async fn tcp_closed_port_is_down_with_connection_refused() {
    support::init();
    let addr = closed_port().await;
    let probe = tcp_probe(&format!("host = \"{addr}\""));

    let sample = probe.run(TIMEOUT).await;

    assert_eq!(
        reason(&sample),
        format!("connect {addr}: connection refused")
    );
}

#[tokio::test]
async fn tcp_send_then_expect_is_up_when_the_answer_contains_it() {
    support::init();
    let target = Target::start().await;
    let send = "send = \"GET / HTTP/1.0\\r\\n\\r\\n\"";
    let found = tcp_probe(&format!(
        "host = {:?}\n{send}\nexpect = \"200 OK\"",
        target.host_port()
    ));
    let missing = tcp_probe(&format!(
        "host = {:?}\n{send}\nexpect = \"+PONG\"",
        target.host_port()
    ));

    let sample = found.run(TIMEOUT).await;
    assert_up(&sample);
    assert!(
        sample.message.ends_with("got \"200 OK\""),
        "{}",
        sample.message
    );

    let reason = reason(&missing.run(TIMEOUT).await).to_string();
    assert!(reason.contains("expected \"+PONG\""), "{reason}");
    assert_eq!(target.requests(), 2);
}

#[tokio::test]
async fn tcp_expect_from_a_silent_server_times_out() {
    support::init();
    let server = Misbehaving::never_answers().await;
    let probe = tcp_probe(&format!(
        "host = {:?}\nsend = \"hello\\r\\n\\r\\n\"\nexpect = \"welcome\"",
        server.host_port()
    ));

    let sample = probe.run(Duration::from_millis(300)).await;

    assert!(reason(&sample).contains("timed out"), "{sample:?}");
}

/// A loopback address nothing listens on (a port just released).
async fn closed_port() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    addr
}
