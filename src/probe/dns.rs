//! The `dns` probe: one question (A, AAAA, CNAME, MX or TXT) to a resolver,
//! timed; the answers listed, and checked against `expect`.
//!
//! Speaks DNS itself (hickory-proto's messages over a UDP socket, TCP when
//! the answer is truncated) rather than through a caching stub resolver: each
//! run asks the server afresh, and what went wrong (NXDOMAIN, SERVFAIL, no
//! answer) is reported as the server said it. Names are absolute, as `dig`
//! takes them: no search domains are appended.
//!
//! Without `resolver`, the `nameserver` lines of `/etc/resolv.conf` are read
//! on every run (as the C library does) and tried in order, each given an
//! equal share of what is left of the timeout.

mod wire;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use tokio::time::Instant;

use super::tcp::ms;
use super::{BuildError, Context, Kind};
use crate::core::Metric;
use crate::core::Sample;
use crate::core::SpecProblem;

/// Where the system's resolvers are listed.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The most answers named in a message.
const SHOWN_ANSWERS: usize = 8;
/// The most characters of one TXT answer shown in a message.
const SHOWN_TXT: usize = 60;
/// The most CNAMEs followed within one answer.
const MAX_CHAIN: usize = 8;

/// `[checks.NAME]` keys of kind `dns`.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawSpec")]
pub struct Spec {
    pub name: DnsName,
    pub record: RecordKind,
    /// Answers that must all be among those returned (others may come too).
    pub expect: Vec<Expected>,
    /// `ip:port` of the server to ask; `None`: the system's.
    pub resolver: Option<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: DnsName,
    #[serde(default)]
    record: RecordKind,
    #[serde(default)]
    expect: Vec<String>,
    resolver: Option<ResolverAddr>,
}

impl TryFrom<RawSpec> for Spec {
    type Error = String;
    fn try_from(raw: RawSpec) -> Result<Spec, String> {
        let expect = raw
            .expect
            .iter()
            .map(|e| Expected::parse(raw.record, e))
            .collect::<Result<_, _>>()?;
        Ok(Spec {
            name: raw.name,
            record: raw.record,
            expect,
            resolver: raw.resolver.map(|r| r.0),
        })
    }
}

/// A domain name, absolute, checked when read.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsName(pub Name);

impl<'de> Deserialize<'de> for DnsName {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(de)?;
        parse_name(&raw)
            .map(DnsName)
            .map_err(|e| de::Error::custom(format!("name {raw:?}: {e}")))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown(&self.0))
    }
}

/// A name as written (`example.com` or `example.com.`), made absolute.
fn parse_name(raw: &str) -> Result<Name, String> {
    if raw.trim().is_empty() {
        return Err("must not be empty".into());
    }
    let mut name = Name::from_utf8(raw).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name)
}

/// A name for people: without the root's trailing dot.
fn shown(name: &Name) -> String {
    let text = name.to_string();
    match text.strip_suffix('.') {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => text,
    }
}

/// `record = "A"`: the record types a `dns` check can ask for (any case).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordKind {
    #[default]
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
}

impl RecordKind {
    fn record_type(self) -> RecordType {
        match self {
            RecordKind::A => RecordType::A,
            RecordKind::Aaaa => RecordType::AAAA,
            RecordKind::Cname => RecordType::CNAME,
            RecordKind::Mx => RecordType::MX,
            RecordKind::Txt => RecordType::TXT,
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::A => "A",
            RecordKind::Aaaa => "AAAA",
            RecordKind::Cname => "CNAME",
            RecordKind::Mx => "MX",
            RecordKind::Txt => "TXT",
        })
    }
}

impl<'de> Deserialize<'de> for RecordKind {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(de)?;
        Ok(match raw.to_ascii_uppercase().as_str() {
            "A" => RecordKind::A,
            "AAAA" => RecordKind::Aaaa,
            "CNAME" => RecordKind::Cname,
            "MX" => RecordKind::Mx,
            "TXT" => RecordKind::Txt,
            _ => {
                return Err(de::Error::custom(format!(
                    "unknown record type {raw:?} (known: A, AAAA, CNAME, MX, TXT)"
                )));
            }
        })
    }
}

/// `resolver = "ip:port"`, or `"ip"` for port 53.
struct ResolverAddr(SocketAddr);

impl<'de> Deserialize<'de> for ResolverAddr {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(de)?;
        if let Ok(addr) = raw.parse::<SocketAddr>() {
            return Ok(ResolverAddr(addr));
        }
        match raw.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
            Ok(ip) => Ok(ResolverAddr(SocketAddr::new(ip, 53))),
            Err(_) => Err(de::Error::custom(format!(
                "resolver {raw:?}: expected an IP address and port, e.g. \"9.9.9.9:53\" or \"[2620:fe::fe]:53\""
            ))),
        }
    }
}

/// One `expect` entry, read for the check's record type.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    Ip(IpAddr),
    Name(Name),
    /// `"10 mail.example.com"`, or the exchange alone for any preference.
    Mx(Option<u16>, Name),
    Txt(String),
}

impl Expected {
    fn parse(record: RecordKind, raw: &str) -> Result<Expected, String> {
        let bad = |what: &str| format!("expect: {raw:?} is not {what} (record = \"{record}\")");
        Ok(match record {
            RecordKind::A => Expected::Ip(IpAddr::V4(
                Ipv4Addr::from_str(raw.trim()).map_err(|_| bad("an IPv4 address"))?,
            )),
            RecordKind::Aaaa => Expected::Ip(IpAddr::V6(
                Ipv6Addr::from_str(raw.trim()).map_err(|_| bad("an IPv6 address"))?,
            )),
            RecordKind::Cname => Expected::Name(parse_name(raw).map_err(|_| bad("a name"))?),
            RecordKind::Mx => {
                let mut words = raw.split_whitespace();
                let (pref, exchange) = match (words.next(), words.next(), words.next()) {
                    (Some(pref), Some(exchange), None) => (
                        Some(pref.parse().map_err(|_| bad("\"preference name\""))?),
                        exchange,
                    ),
                    (Some(exchange), None, None) => (None, exchange),
                    _ => return Err(bad("a mail exchange (\"10 mail.example.com\")")),
                };
                Expected::Mx(pref, parse_name(exchange).map_err(|_| bad("a name"))?)
            }
            RecordKind::Txt => Expected::Txt(raw.to_string()),
        })
    }

    fn matches(&self, answer: &Answer) -> bool {
        match (self, answer) {
            (Expected::Ip(want), Answer::Ip(got)) => want == got,
            (Expected::Name(want), Answer::Name(got)) => want == got,
            (Expected::Mx(pref, want), Answer::Mx(got_pref, got)) => {
                want == got && pref.is_none_or(|p| p == *got_pref)
            }
            (Expected::Txt(want), Answer::Txt(got)) => want == got,
            _ => false,
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Ip(ip) => write!(f, "{ip}"),
            Expected::Name(name) => f.write_str(&shown(name)),
            Expected::Mx(Some(pref), name) => write!(f, "{pref} {}", shown(name)),
            Expected::Mx(None, name) => f.write_str(&shown(name)),
            Expected::Txt(text) => write!(f, "{text:?}"),
        }
    }
}

/// One answer of the asked type.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Ip(IpAddr),
    Name(Name),
    Mx(u16, Name),
    /// The record's strings joined, as SPF and DKIM read them.
    Txt(String),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Ip(ip) => write!(f, "{ip}"),
            Answer::Name(name) => f.write_str(&shown(name)),
            Answer::Mx(pref, name) => write!(f, "{pref} {}", shown(name)),
            Answer::Txt(text) => {
                let mut chars = text.char_indices();
                match chars.nth(SHOWN_TXT) {
                    Some((at, _)) => write!(f, "{:?}…", &text[..at]),
                    None => write!(f, "{text:?}"),
                }
            }
        }
    }
}

impl Kind for Spec {
    const NAME: &'static str = "dns";
    type Probe = Probe;

    fn target(&self) -> String {
        let via = match self.resolver {
            Some(addr) => addr.to_string(),
            None => "the system resolver".into(),
        };
        format!("{} {} via {via}", self.record, self.name)
    }

    /// Every key is checked as it is read.
    fn problems(&self) -> Vec<SpecProblem> {
        Vec::new()
    }

    fn build(&self, _check: &str, _ctx: &Context) -> Result<Probe, BuildError> {
        Ok(Probe {
            name: self.name.0.clone(),
            record: self.record,
            expect: self.expect.clone(),
            resolver: self.resolver,
        })
    }
}

/// A built `dns` probe.
#[derive(Debug)]
pub struct Probe {
    name: Name,
    record: RecordKind,
    expect: Vec<Expected>,
    resolver: Option<SocketAddr>,
}

impl Probe {
    pub async fn run(&self, deadline: Instant) -> Sample {
        let servers = match self.resolver {
            Some(addr) => vec![addr],
            None => match tokio::fs::read_to_string(RESOLV_CONF).await {
                Ok(text) => nameservers(&text),
                Err(e) => return Sample::down(format!("reading {RESOLV_CONF}: {e}")),
            },
        };
        self.ask_in_turn(&servers, deadline).await
    }

    /// Asks `servers` in order, each given an equal share of the time left,
    /// until one answers without trouble (NXDOMAIN is an answer).
    async fn ask_in_turn(&self, servers: &[SocketAddr], deadline: Instant) -> Sample {
        let question = format!("{} {}", self.record, shown(&self.name));
        let started = Instant::now();
        let mut failures = Vec::new();
        let mut reply = None;
        for (i, server) in servers.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            let share = deadline.min(Instant::now() + left / (servers.len() - i) as u32);
            match wire::exchange(*server, &self.name, self.record.record_type(), share).await {
                // Another server may know better when one fails.
                Ok(msg) if is_server_trouble(msg.response_code) => {
                    failures.push(format!("{} from {server}", rcode_words(msg.response_code)));
                    reply = Some((msg, *server));
                }
                Ok(msg) => {
                    reply = Some((msg, *server));
                    break;
                }
                Err(reason) => failures.push(format!("{server}: {reason}")),
            }
        }
        let took = started.elapsed();
        let latency = ms(took);
        // Every server in trouble: say what each said.
        let reply =
            reply.filter(|(msg, _)| !is_server_trouble(msg.response_code) || failures.len() == 1);
        let Some((msg, server)) = reply else {
            return Sample::down(format!("{question}: {}", failures.join("; ")));
        };
        let mut sample = self.judge(&question, &msg, server, latency);
        sample.metrics.push((Metric::LatencyMs, latency));
        sample.conn.dns_lookup = Some(took);
        sample.conn.ip_protocol = Some(crate::core::sample::ConnInfo::ip_protocol(server.ip()));
        sample
    }

    /// A server's reply `bytes` to this probe's question asked with `id`,
    /// read and judged as `run` does. Public for the fuzz target `dns_answer`.
    #[doc(hidden)]
    pub fn read_reply(&self, id: u16, bytes: &[u8]) -> Sample {
        let mut query = wire::question(&self.name, self.record.record_type());
        query.metadata.id = id;
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 53));
        let question = format!("{} {}", self.record, shown(&self.name));
        match wire::reply_to(&query, bytes) {
            Ok(msg) => self.judge(&question, &msg, server, 1.0),
            Err(why) => Sample::down(format!("{question}: {why}")),
        }
    }

    /// The sample for `server`'s reply: its answers, checked against `expect`.
    fn judge(&self, question: &str, msg: &Message, server: SocketAddr, latency: f64) -> Sample {
        match answers(self.record, &self.name, msg) {
            Err(reason) => Sample::down(format!("{question}: {reason} (from {server})")),
            Ok(got) => {
                let listed = list(&got);
                let missing: Vec<String> = self
                    .expect
                    .iter()
                    .filter(|e| !got.iter().any(|a| e.matches(a)))
                    .map(|e| e.to_string())
                    .collect();
                if missing.is_empty() {
                    Sample::up(format!("{question} → {listed} in {latency:.0} ms"))
                } else {
                    Sample::down(format!(
                        "{question} → {listed}; expected {} not among the answers",
                        missing.join(", ")
                    ))
                }
            }
        }
    }
}

/// SERVFAIL, REFUSED and the like: the server's trouble, not the name's.
fn is_server_trouble(code: ResponseCode) -> bool {
    !matches!(code, ResponseCode::NoError | ResponseCode::NXDomain)
}

fn rcode_words(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        other => format!("response code {} ({other})", u16::from(other)),
    }
}

/// The answers to `name`'s `record` question in `msg`, following CNAMEs
/// within the answer; `Err` when the server said no or had nothing.
pub fn answers(record: RecordKind, name: &Name, msg: &Message) -> Result<Vec<Answer>, String> {
    match msg.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Err("NXDOMAIN (no such name)".into()),
        other => return Err(rcode_words(other)),
    }
    // The names that stand for `name`: itself and what it is an alias of.
    let mut owners = vec![name.clone()];
    if record != RecordKind::Cname {
        for _ in 0..MAX_CHAIN {
            let next = msg.answers.iter().find_map(|r| match &r.data {
                RData::CNAME(target) if owners.last() == Some(&r.name) => Some(target.0.clone()),
                _ => None,
            });
            match next {
                Some(target) if !owners.contains(&target) => owners.push(target),
                _ => break,
            }
        }
    }
    let found: Vec<Answer> = msg
        .answers
        .iter()
        .filter(|r| owners.contains(&r.name))
        .filter_map(|r| answer(record, r))
        .collect();
    if found.is_empty() {
        let alias = match owners.last() {
            Some(last) if owners.len() > 1 => format!(" (an alias of {})", shown(last)),
            _ => String::new(),
        };
        return Err(format!("no {record} records{alias}"));
    }
    Ok(found)
}

fn answer(record: RecordKind, r: &Record) -> Option<Answer> {
    Some(match (record, &r.data) {
        (RecordKind::A, RData::A(a)) => Answer::Ip(IpAddr::V4(a.0)),
        (RecordKind::Aaaa, RData::AAAA(a)) => Answer::Ip(IpAddr::V6(a.0)),
        (RecordKind::Cname, RData::CNAME(c)) => Answer::Name(c.0.clone()),
        (RecordKind::Mx, RData::MX(mx)) => Answer::Mx(mx.preference, mx.exchange.clone()),
        (RecordKind::Txt, RData::TXT(txt)) => Answer::Txt(txt.to_string()),
        _ => return None,
    })
}

/// `1.2.3.4, 5.6.7.8`, at most [`SHOWN_ANSWERS`] of them.
fn list(answers: &[Answer]) -> String {
    let mut shown: Vec<String> = answers
        .iter()
        .take(SHOWN_ANSWERS)
        .map(|a| a.to_string())
        .collect();
    if answers.len() > SHOWN_ANSWERS {
        shown.push(format!("… ({} more)", answers.len() - SHOWN_ANSWERS));
    }
    shown.join(", ")
}

/// The `nameserver` lines of a resolv.conf, as socket addresses on port 53;
/// none listed means the local server, as the C library assumes.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    let servers: Vec<SocketAddr> = resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            // A scope (`fe80::1%eth0`) is dropped.
            let addr = words.next()?.split('%').next()?;
            addr.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if servers.is_empty() {
        vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 53))]
    } else {
        servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::OpCode;
    use hickory_proto::rr::rdata::{A, CNAME, MX, TXT};
    use std::time::Duration;
    use tokio::net::UdpSocket;

    fn name(s: &str) -> Name {
        parse_name(s).unwrap()
    }

    fn response(code: ResponseCode, records: Vec<Record>) -> Message {
        let mut msg = Message::response(7, OpCode::Query);
        msg.metadata.response_code = code;
        msg.add_answers(records);
        msg
    }

    fn rec(owner: &str, data: RData) -> Record {
        Record::from_rdata(name(owner), 60, data)
    }

    /// A UDP server on loopback answering every query with `code` and, when
    /// given, one A record.
    async fn responder(code: ResponseCode, a: Option<Ipv4Addr>) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut resp = Message::response(req.id, req.op_code);
                resp.metadata.response_code = code;
                resp.add_queries(req.queries.clone());
                if let (Some(ip), Some(q)) = (a, req.queries.first()) {
                    resp.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(ip))));
                }
                let _ = socket.send_to(&resp.to_vec().unwrap(), peer).await;
            }
        });
        addr
    }

    fn probe() -> Probe {
        Probe {
            name: name("www.test"),
            record: RecordKind::A,
            expect: vec![],
            resolver: None,
        }
    }

    #[tokio::test]
    async fn the_next_server_is_asked_when_one_is_silent_or_in_trouble() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent = silent.local_addr().map(|a| (a, silent)).unwrap();
        let servfail = responder(ResponseCode::ServFail, None).await;
        let good = responder(ResponseCode::NoError, Some(Ipv4Addr::new(192, 0, 2, 1))).await;
        let deadline = Instant::now() + Duration::from_secs(3);
        let s = probe()
            .ask_in_turn(&[silent.0, servfail, good], deadline)
            .await;
        assert_eq!(s.outcome, crate::core::Outcome::Up, "{s:?}");
        assert!(s.message.starts_with("A www.test → 192.0.2.1 in "), "{s:?}");
    }

    #[tokio::test]
    async fn when_every_server_fails_each_is_named_with_its_share_of_the_time() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let servfail = responder(ResponseCode::ServFail, None).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        let s = probe()
            .ask_in_turn(&[silent_addr, servfail], deadline)
            .await;
        assert_eq!(
            s.message,
            format!("A www.test: {silent_addr}: no answer within 1s; SERVFAIL from {servfail}")
        );
        // One server in trouble: its answer is the reason.
        let deadline = Instant::now() + Duration::from_secs(2);
        let s = probe().ask_in_turn(&[servfail], deadline).await;
        assert_eq!(s.message, format!("A www.test: SERVFAIL (from {servfail})"));
    }

    #[test]
    fn resolv_conf_nameservers_in_order() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n; nameserver 9.9.9.9\noptions ndots:2\nnameserver bogus\n";
        assert_eq!(
            nameservers(text),
            vec![
                "10.0.0.2:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(nameservers(""), vec!["127.0.0.1:53".parse().unwrap()]);
    }

    #[test]
    fn answers_follow_cnames_and_skip_other_owners() {
        let msg = response(
            ResponseCode::NoError,
            vec![
                rec(
                    "www.example.com",
                    RData::CNAME(CNAME(name("web.example.net"))),
                ),
                rec("web.example.net", RData::A(A::new(192, 0, 2, 1))),
                rec("other.example.org", RData::A(A::new(192, 0, 2, 9))),
            ],
        );
        let got = answers(RecordKind::A, &name("WWW.example.com"), &msg).unwrap();
        assert_eq!(got, vec![Answer::Ip("192.0.2.1".parse().unwrap())]);
        let got = answers(RecordKind::Cname, &name("www.example.com"), &msg).unwrap();
        assert_eq!(list(&got), "web.example.net");
    }

    #[test]
    fn empty_and_failed_answers_say_why() {
        let msg = response(ResponseCode::NoError, vec![]);
        assert_eq!(
            answers(RecordKind::Mx, &name("example.com"), &msg),
            Err("no MX records".into())
        );
        let msg = response(
            ResponseCode::NoError,
            vec![rec("a.example", RData::CNAME(CNAME(name("b.example"))))],
        );
        assert_eq!(
            answers(RecordKind::Txt, &name("a.example"), &msg),
            Err("no TXT records (an alias of b.example)".into())
        );
        let msg = response(ResponseCode::NXDomain, vec![]);
        assert_eq!(
            answers(RecordKind::A, &name("x.example"), &msg),
            Err("NXDOMAIN (no such name)".into())
        );
        let msg = response(ResponseCode::ServFail, vec![]);
        assert_eq!(
            answers(RecordKind::A, &name("x.example"), &msg),
            Err("SERVFAIL".into())
        );
    }

    #[test]
    fn expectations_read_per_record_type() {
        let mx = Expected::parse(RecordKind::Mx, "10 mail.example.com").unwrap();
        assert!(mx.matches(&Answer::Mx(10, name("MAIL.example.com."))));
        assert!(!mx.matches(&Answer::Mx(20, name("mail.example.com"))));
        let any = Expected::parse(RecordKind::Mx, "mail.example.com").unwrap();
        assert!(any.matches(&Answer::Mx(20, name("mail.example.com"))));
        let v6 = Expected::parse(RecordKind::Aaaa, "2001:db8:0::1").unwrap();
        assert!(v6.matches(&Answer::Ip("2001:db8::1".parse().unwrap())));
        assert!(Expected::parse(RecordKind::A, "2001:db8::1").is_err());
        assert!(Expected::parse(RecordKind::Aaaa, "192.0.2.1").is_err());
        assert!(Expected::parse(RecordKind::Mx, "ten mail.example.com").is_err());
        let txt = Expected::parse(RecordKind::Txt, "v=spf1 -all").unwrap();
        let got = TXT::new(vec!["v=spf1 ".into(), "-all".into()]);
        let msg = response(
            ResponseCode::NoError,
            vec![
                rec("example.com", RData::TXT(got)),
                rec("example.com", RData::MX(MX::new(5, name("mx.example.com")))),
            ],
        );
        let got = answers(RecordKind::Txt, &name("example.com"), &msg).unwrap();
        assert!(txt.matches(&got[0]), "{got:?}");
        assert_eq!(list(&got), "\"v=spf1 -all\"");
    }

    #[test]
    fn long_lists_and_long_texts_are_shortened() {
        let ips: Vec<Answer> = (0..20)
            .map(|i| Answer::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))))
            .collect();
        assert!(
            list(&ips).ends_with("10.0.0.7, … (12 more)"),
            "{}",
            list(&ips)
        );
        let long = Answer::Txt("x".repeat(500)).to_string();
        assert_eq!(long.chars().count(), SHOWN_TXT + 3);
    }
}
