//! `--log-lines N`: log lines through a `log` check's default rules, on one thread.

use std::time::{Duration, Instant};

use keeper::probe::log::{Feed, Rules};

/// Lines per `Feed::lines` call, as a file read or an ingest body brings them.
const BATCH: usize = 1000;
/// Distinct lines generated; the run cycles through them.
const DISTINCT: usize = 100_000;

/// A small deterministic generator (xorshift64*), so every run pushes the same lines.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const PATHS: [&str; 6] = [
    "/api/orders",
    "/api/orders/{id}",
    "/api/users/{id}/cart",
    "/static/app.{id}.js",
    "/login",
    "/healthz",
];
const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "curl/8.4.0",
];

/// A JSON app log line (a Go or Node service): about 2% at level error.
fn json_line(g: &mut Gen) -> String {
    let id = g.below(1_000_000);
    let path = g.pick(&PATHS).replace("{id}", &id.to_string());
    let roll = g.below(1000);
    let (level, msg, status) = match roll {
        0..20 => ("error", "payment provider timeout after 3 retries", 502),
        20..60 => ("warn", "slow query on orders_by_customer", 200),
        60..80 => ("debug", "cache miss", 200),
        _ => ("info", "request completed", 200),
    };
    format!(
        r#"{{"time":"2026-11-27T08:{:02}:{:02}.{:03}Z","level":"{level}","msg":"{msg}","method":"GET","path":"{path}","status":{status},"duration_ms":{}.{},"request_id":"01HF{id:08X}","user_id":{}}}"#,
        g.below(60),
        g.below(60),
        g.below(1000),
        g.below(900),
        g.below(10),
        g.below(100_000),
    )
}

/// An nginx combined access log line: about 1% 5xx, 0.5% 401, some 404s and 301s.
fn nginx_line(g: &mut Gen) -> String {
    let id = g.below(1_000_000);
    let path = g.pick(&PATHS).replace("{id}", &id.to_string());
    let status = match g.below(1000) {
        0..10 => 503,
        10..15 => 401,
        15..40 => 404,
        40..60 => 301,
        _ => 200,
    };
    format!(
        r#"203.0.{}.{} - - [27/Nov/2026:08:{:02}:{:02} +0000] "GET {path}?page={} HTTP/1.1" {status} {} "https://example.com/orders" "{}""#,
        g.below(256),
        g.below(256),
        g.below(60),
        g.below(60),
        g.below(20),
        g.below(50_000),
        g.pick(&AGENTS),
    )
}

fn push(lines: &[String], n: usize) -> (Duration, keeper::probe::log::Reading) {
    let feed = Feed::new(Rules::default(), Duration::from_secs(300));
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let start = done % lines.len();
        let take = BATCH.min(n - done).min(lines.len() - start);
        feed.lines(&lines[start..start + take]);
        done += take;
    }
    (started.elapsed(), feed.read())
}

pub fn run(n: usize) {
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let json: Vec<String> = (0..DISTINCT).map(|_| json_line(&mut g)).collect();
    let nginx: Vec<String> = (0..DISTINCT).map(|_| nginx_line(&mut g)).collect();
    // The mix: the two kinds interleaved, half each.
    let mix: Vec<String> = json
        .iter()
        .zip(&nginx)
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    println!(
        "# keeper bench: {n} log lines through the default rules and a 5m window, one thread, batches of {BATCH}"
    );
    println!("mix     lines     seconds  lines/s    MB/s    errors%  auth/min*  avg_bytes");
    for (name, lines) in [("mixed", &mix), ("json", &json), ("nginx", &nginx)] {
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        let avg = bytes as f64 / lines.len() as f64;
        let (took, reading) = push(lines, n);
        let secs = took.as_secs_f64();
        let c = &reading.counts;
        println!(
            "{name:6}  {n:>8}  {secs:>7.3}  {:>9.0}  {:>6.1}  {:>7.2}  {:>9.0}  {avg:>9.0}",
            n as f64 / secs,
            n as f64 * avg / secs / 1e6,
            c.errors as f64 * 100.0 / c.lines.max(1) as f64,
            c.auth_failures as f64 / (c.covered.as_secs_f64() / 60.0),
        );
    }
    println!(
        "* auth failures counted over the bench's few seconds, as a rate over the 1-minute minimum"
    );
}
