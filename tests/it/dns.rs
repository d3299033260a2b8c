//! The `dns` probe against a loopback DNS server of the test's own
//! (`support::dns`): each record type, CNAMEs, `expect`, NXDOMAIN, empty
//! answers, SERVFAIL, silence, garbage, a closed port, truncation (TCP
//! fallback), and its config errors. Nothing but 127.0.0.1 is ever asked.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keeper::config::Config;
use keeper::core::Metric;
use keeper::core::{Outcome, Sample};
use keeper::probe::{Context, Probe, Spec, dns};

use crate::support::dns::{DnsServer, Mode};

/// Far longer than any run here should take: a hang fails instead of blocking the suite.
const HANG: Duration = Duration::from_secs(60);

fn probe(server: &DnsServer, keys: &str) -> Probe {
    let toml = format!("resolver = \"{}\"\n{keys}", server.addr);
    let spec: dns::Spec = toml::from_str(&toml).expect("dns spec");
    Spec::Dns(spec)
        .build("test", &Context::system())
        .expect("build dns probe")
}

async fn run(server: &DnsServer, keys: &str, timeout: Duration) -> Sample {
    tokio::time::timeout(HANG, probe(server, keys).run(timeout))
        .await
        .expect("the probe returned")
}

async fn ask(server: &DnsServer, keys: &str) -> Sample {
    run(server, keys, Duration::from_secs(10)).await
}

fn down_reason(sample: &Sample) -> &str {
    match &sample.outcome {
        Outcome::Down(reason) => reason,
        other => panic!("expected a down sample, got {other:?} in {sample:?}"),
    }
}

/// The message of an up sample, with the `in N ms` tail cut off.
fn answered(sample: &Sample) -> &str {
    assert_eq!(sample.outcome, Outcome::Up, "{sample:?}");
    assert!(
        sample.metric(Metric::LatencyMs).is_some(),
        "no latency in {sample:?}"
    );
    let (listed, tail) = sample
        .message
        .rsplit_once(" in ")
        .unwrap_or_else(|| panic!("no timing in {:?}", sample.message));
    assert!(tail.ends_with(" ms"), "{}", sample.message);
    listed
}

#[tokio::test]
async fn each_record_type_is_answered_and_listed() {
    let server = DnsServer::start(Mode::Zone).await;
    let s = ask(&server, "name = \"www.test\"").await;
    assert_eq!(answered(&s), "A www.test → 192.0.2.10, 192.0.2.11");
    let s = ask(&server, "name = \"www.test.\"\nrecord = \"AAAA\"").await;
    assert_eq!(answered(&s), "AAAA www.test → 2001:db8::10");
    let s = ask(&server, "name = \"alias.test\"\nrecord = \"cname\"").await;
    assert_eq!(answered(&s), "CNAME alias.test → www.test");
    let s = ask(&server, "name = \"test\"\nrecord = \"MX\"").await;
    assert_eq!(answered(&s), "MX test → 10 mail.test, 20 backup.test");
    let s = ask(&server, "name = \"test\"\nrecord = \"TXT\"").await;
    assert_eq!(answered(&s), "TXT test → \"v=spf1 -all\"");
    assert_eq!(server.tcp_queries.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_alias_is_followed_to_its_addresses() {
    let server = DnsServer::start(Mode::Zone).await;
    let s = ask(&server, "name = \"alias.test\"\nexpect = [\"192.0.2.11\"]").await;
    assert_eq!(answered(&s), "A alias.test → 192.0.2.10, 192.0.2.11");
}

#[tokio::test]
async fn expect_must_be_among_the_answers() {
    let server = DnsServer::start(Mode::Zone).await;
    // A subset is enough; order and spelling don't matter.
    let s = ask(&server, "name = \"www.test\"\nexpect = [\"192.0.2.11\"]").await;
    answered(&s);
    let s = ask(
        &server,
        "name = \"www.test\"\nrecord = \"AAAA\"\nexpect = [\"2001:db8:0:0::10\"]",
    )
    .await;
    answered(&s);
    let s = ask(
        &server,
        "name = \"test\"\nrecord = \"MX\"\nexpect = [\"20 backup.test\", \"MAIL.test.\"]",
    )
    .await;
    answered(&s);

    let s = ask(
        &server,
        "name = \"www.test\"\nexpect = [\"192.0.2.10\", \"198.51.100.7\"]",
    )
    .await;
    assert_eq!(
        down_reason(&s),
        "A www.test → 192.0.2.10, 192.0.2.11; expected 198.51.100.7 not among the answers"
    );
    let s = ask(
        &server,
        "name = \"test\"\nrecord = \"TXT\"\nexpect = [\"v=spf1 +all\"]",
    )
    .await;
    assert_eq!(
        down_reason(&s),
        "TXT test → \"v=spf1 -all\"; expected \"v=spf1 +all\" not among the answers"
    );
}

#[tokio::test]
async fn nxdomain_and_empty_answers_are_red_with_the_reason() {
    let server = DnsServer::start(Mode::Zone).await;
    let s = ask(&server, "name = \"nope.test\"").await;
    assert_eq!(
        down_reason(&s),
        format!(
            "A nope.test: NXDOMAIN (no such name) (from {})",
            server.addr
        )
    );
    let s = ask(&server, "name = \"empty.test\"").await;
    assert_eq!(
        down_reason(&s),
        format!("A empty.test: no A records (from {})", server.addr)
    );
    let s = ask(&server, "name = \"www.test\"\nrecord = \"MX\"").await;
    assert!(down_reason(&s).contains("no MX records"), "{s:?}");
}

#[tokio::test]
async fn servfail_is_red_naming_the_server() {
    let server = DnsServer::start(Mode::ServFail).await;
    let s = ask(&server, "name = \"www.test\"").await;
    assert_eq!(
        down_reason(&s),
        format!("A www.test: SERVFAIL (from {})", server.addr)
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_red_within_the_timeout() {
    let server = DnsServer::start(Mode::Silent).await;
    let s = run(&server, "name = \"www.test\"", Duration::from_millis(2500)).await;
    assert_eq!(
        down_reason(&s),
        format!("A www.test: {}: no answer within 2s 500ms", server.addr)
    );
    // The question was asked, and asked again while waiting.
    assert!(server.udp_queries.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn garbage_replies_are_not_answers() {
    let server = DnsServer::start(Mode::Garbage).await;
    let s = run(&server, "name = \"www.test\"", Duration::from_secs(1)).await;
    assert_eq!(
        down_reason(&s),
        format!(
            "A www.test: {}: no usable answer within 1s (garbage reply)",
            server.addr
        )
    );
}

#[tokio::test]
async fn a_closed_port_is_red_at_once() {
    // A port nobody listens on: the ICMP "port unreachable" comes back as a refusal.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let spec: dns::Spec =
        toml::from_str(&format!("name = \"www.test\"\nresolver = \"{addr}\"")).expect("dns spec");
    let probe = Spec::Dns(spec).build("test", &Context::system()).unwrap();
    let s = tokio::time::timeout(HANG, probe.run(Duration::from_secs(30)))
        .await
        .expect("the probe returned");
    assert_eq!(
        down_reason(&s),
        format!("A www.test: {addr}: connection refused")
    );
}

#[tokio::test]
async fn a_truncated_answer_is_asked_again_over_tcp() {
    let server = DnsServer::start(Mode::Zone).await;
    let s = ask(&server, "name = \"big.test\"\nrecord = \"TXT\"").await;
    let listed = answered(&s);
    assert!(
        listed.starts_with("TXT big.test → \"record 00 xxx"),
        "{listed}"
    );
    assert!(listed.ends_with(", … (32 more)"), "{listed}");
    assert_eq!(server.tcp_queries.load(Ordering::SeqCst), 1);
}

// ---- config -----------------------------------------------------------

fn config_error(keys: &str) -> String {
    crate::support::config_error(&format!("[checks.ns]\nkind = \"dns\"\n{keys}"))
}

#[test]
fn bad_dns_keys_are_refused_with_line_and_column() {
    let err = config_error("name = \"example.com\"\nrecord = \"SRV\"\n");
    assert!(
        err.starts_with("keeper.toml:4:10: checks.ns.record: unknown record type"),
        "{err}"
    );
    assert!(err.contains("unknown record type \"SRV\""), "{err}");

    let err = config_error("name = \"example.com\"\nresolver = \"dns.google\"\n");
    assert!(
        err.starts_with("keeper.toml:4:12: checks.ns.resolver: resolver \"dns.google\""),
        "{err}"
    );

    let err = config_error("name = \"\"\n");
    assert!(
        err.starts_with("keeper.toml:3:8: checks.ns.name: name \"\": must not be empty"),
        "{err}"
    );

    let err = config_error("name = \"example.com\"\nexpect = [\"not-an-ip\"]\n");
    assert!(err.starts_with("keeper.toml:1:"), "{err}");
    assert!(
        err.contains("\"not-an-ip\" is not an IPv4 address"),
        "{err}"
    );

    let err = config_error("name = \"example.com\"\nresolvers = \"9.9.9.9\"\n");
    assert!(err.contains("unknown field `resolvers`"), "{err}");
}

#[test]
fn a_good_dns_check_loads_with_defaults() {
    let text = "[checks.ns]\nkind = \"dns\"\nname = \"example.com\"\nresolver = \"127.0.0.1\"\n";
    let config = Config::parse(Path::new("keeper.toml"), text, &|_| None).expect("loads");
    let check = config.check("ns").unwrap();
    assert_eq!(check.probe.kind(), "dns");
    assert_eq!(check.probe.target(), "A example.com via 127.0.0.1:53");
}
