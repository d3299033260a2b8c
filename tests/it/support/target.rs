//! Loopback servers for probes to talk to, all bound to `127.0.0.1:0`:
//!
//! - [`Target`]: a small HTTP (or, with [`Target::start_tls`], HTTPS) server
//!   whose status, body and delay can be changed while it runs, and which
//!   records every request. Built-in paths: `/redirect/N` answers 302 to the
//!   relative `/redirect/N-1` (`/redirect/0` answers normally), `/loop`
//!   redirects to itself. Every other path gets the current status and body,
//!   or, after [`Target::redirect_to`], a 302 to a location of the test's choosing.
//! - [`TestCa`] and [`Leaf`]: a CA made in-process with rcgen (its PEM written
//!   to a temp file for `ca_file`) and `CA:FALSE` leaf certificates for
//!   `localhost` and `127.0.0.1` with a chosen notAfter, expired if you like.
//! - [`Misbehaving`]: servers that never answer, send a huge body, reset the
//!   connection, or answer garbage.
//!
//! Every server answers one request per connection (`Connection: close`) and
//! stops when its handle is dropped: its accept loop and every connection task
//! are aborted, so nothing outlives a test.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::AbortOnDropHandle;

use super::recorded::Recorded;

/// What a [`Target`] answers; shared with its connection tasks.
struct State {
    status: AtomicU16,
    body: Mutex<String>,
    delay: Mutex<Duration>,
    /// When set, every ordinary path answers 302 to this location.
    location: Mutex<Option<String>>,
    requests: Mutex<Vec<Recorded>>,
}

/// An HTTP(S) server on loopback whose answer can be changed at runtime.
///
/// ```ignore
/// let target = Target::start().await;       // 200 "ok" on every path
/// let url = target.url("/health");           // http://127.0.0.1:PORT/health
/// target.set_status(503);
/// assert_eq!(target.requests(), 0);
/// ```
pub struct Target {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    _server: AbortOnDropHandle<()>,
}

impl Target {
    /// Plain HTTP, answering `200` with body `ok`.
    pub async fn start() -> Target {
        Target::spawn(None).await
    }

    /// HTTPS with `leaf`'s certificate (answering `200` with body `ok`).
    /// A TLS client that hangs up after the handshake (the `tls` probe) is fine.
    pub async fn start_tls(leaf: &Leaf) -> Target {
        Target::spawn(Some(TlsAcceptor::from(leaf.server_config()))).await
    }

    async fn spawn(tls: Option<TlsAcceptor>) -> Target {
        let listener = bind().await;
        let addr = listener
            .local_addr()
            .expect("local address of a bound listener");
        let state = Arc::new(State {
            status: AtomicU16::new(200),
            body: Mutex::new("ok".into()),
            delay: Mutex::new(Duration::ZERO),
            location: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = state.clone();
        let server = serve(listener, move |tcp| {
            let state = shared.clone();
            let tls = tls.clone();
            async move {
                match tls {
                    None => answer(tcp, &state).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            answer(stream, &state).await;
                        }
                    }
                }
            }
        });
        Target {
            addr,
            scheme,
            state,
            _server: server,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, as the `tcp` and `tls` probes' `host` key wants it.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT{path}` (or `https://`).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// `https://localhost:PORT{path}`: for name checks against the leaf's DNS SAN.
    pub fn url_localhost(&self, path: &str) -> String {
        format!("{}://localhost:{}{path}", self.scheme, self.addr.port())
    }

    /// The status every ordinary path answers from now on.
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// The body every ordinary path answers from now on.
    pub fn set_body(&self, body: impl Into<String>) {
        *lock(&self.state.body) = body.into();
    }

    /// How long to wait before answering, from now on.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.state.delay) = delay;
    }

    /// Every ordinary path (not `/redirect/N`) answers `302 Found` with
    /// `Location: {location}` from now on (an absolute URL sends the client to
    /// another server).
    pub fn redirect_to(&self, location: impl Into<String>) {
        *lock(&self.state.location) = Some(location.into());
    }

    /// How many requests arrived so far.
    pub fn requests(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// Every request so far, oldest first.
    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// Stops the server now (dropping it does the same).
    pub fn shutdown(self) {}
}

/// Reads one request from `io`, records it, answers it and closes.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, state: &State) {
    let Some(request) = read_request(&mut io).await else {
        return;
    };
    let path = request.path.clone();
    let index = {
        let mut requests = lock(&state.requests);
        requests.push(request);
        requests.len() - 1
    };
    let delay = *lock(&state.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, location, body) = if path == "/loop" {
        (302, Some("/loop".to_string()), String::new())
    } else if let Some(n) = path
        .strip_prefix("/redirect/")
        .and_then(|n| n.parse::<u32>().ok())
        && n > 0
    {
        (302, Some(format!("/redirect/{}", n - 1)), String::new())
    } else if let Some(location) = lock(&state.location).clone()
        && !path.starts_with("/redirect/")
    {
        (302, Some(location), String::new())
    } else {
        let body = lock(&state.body).clone();
        (state.status.load(Ordering::SeqCst), None, body)
    };
    if let Some(r) = lock(&state.requests).get_mut(index) {
        r.replied = status;
    }
    let location = location
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} {}\r\n{location}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let _ = io.write_all(head.as_bytes()).await;
    let _ = io.write_all(body.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// Reads a request head (and discards a `Content-Length` body); `None` when
/// the peer hung up first or sent no HTTP.
async fn read_request<S: AsyncRead + Unpin>(io: &mut S) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = io.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = http::Method::from_bytes(first.next()?.as_bytes()).ok()?;
    let path = first.next()?.to_string();
    let mut headers = http::HeaderMap::new();
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let length: usize = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < length {
        let n = io.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(Recorded {
        method,
        path,
        headers,
        body: body.into(),
        // Set once the answer is chosen.
        replied: 0,
    })
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// How a [`Misbehaving`] server treats each connection, after reading the
/// request head (or a non-HTTP client's first bytes).
#[derive(Clone, Copy, Debug)]
pub enum Misbehaviour {
    /// Accepts, reads, never answers; holds the connection until the client leaves.
    NeverAnswers,
    /// Answers `200` with a body of `bytes` bytes (`x`…, ending in `END`), as fast as it can.
    HugeBody { bytes: usize },
    /// Resets the connection (`SO_LINGER` 0, then close).
    Reset,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// Answers these bytes, then closes the connection.
    Answers(&'static [u8]),
    /// Answers a status line, then header fields for as long as the client reads.
    EndlessHead,
}

/// A server that misbehaves in one chosen way.
pub struct Misbehaving {
    addr: SocketAddr,
    written: Arc<AtomicU64>,
    connections: Arc<AtomicUsize>,
    _server: AbortOnDropHandle<()>,
}

impl Misbehaving {
    pub async fn start(how: Misbehaviour) -> Misbehaving {
        let listener = bind().await;
        let addr = listener
            .local_addr()
            .expect("local address of a bound listener");
        let written = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (count, accepted) = (written.clone(), connections.clone());
        let server = serve(listener, move |tcp| {
            accepted.fetch_add(1, Ordering::SeqCst);
            misbehave(tcp, how, count.clone())
        });
        Misbehaving {
            addr,
            written,
            connections,
            _server: server,
        }
    }

    pub async fn never_answers() -> Misbehaving {
        Misbehaving::start(Misbehaviour::NeverAnswers).await
    }

    pub async fn huge_body(bytes: usize) -> Misbehaving {
        Misbehaving::start(Misbehaviour::HugeBody { bytes }).await
    }

    pub async fn reset() -> Misbehaving {
        Misbehaving::start(Misbehaviour::Reset).await
    }

    pub async fn garbage() -> Misbehaving {
        Misbehaving::start(Misbehaviour::Garbage).await
    }

    pub async fn answers(bytes: &'static [u8]) -> Misbehaving {
        Misbehaving::start(Misbehaviour::Answers(bytes)).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Body bytes the kernel accepted from a `HugeBody` server so far.
    pub fn body_bytes_written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn misbehave(mut tcp: TcpStream, how: Misbehaviour, written: Arc<AtomicU64>) {
    if let Misbehaviour::NeverAnswers = how {
        let mut sink = [0u8; 1024];
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    }
    if !read_head_or_first_bytes(&mut tcp).await {
        return;
    }
    match how {
        Misbehaviour::NeverAnswers => {}
        Misbehaviour::HugeBody { bytes } => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {bytes}\r\n\r\n");
            if tcp.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len());
                let mut piece = chunk[..n].to_vec();
                if left == n {
                    let tail = n.min(3);
                    piece[n - tail..].copy_from_slice(&b"END"[3 - tail..]);
                }
                if tcp.write_all(&piece).await.is_err() {
                    return;
                }
                written.fetch_add(n as u64, Ordering::SeqCst);
                left -= n;
            }
            let _ = tcp.shutdown().await;
        }
        Misbehaviour::Reset => {
            let _ = tcp.set_zero_linger();
            drop(tcp);
        }
        Misbehaviour::Garbage => {
            let _ = tcp
                .write_all(b"\x16\x03 SSH-2.0-garbage, certainly not HTTP\r\n\r\n")
                .await;
            let _ = tcp.shutdown().await;
        }
        Misbehaviour::Answers(bytes) => {
            let _ = tcp.write_all(bytes).await;
            let _ = tcp.shutdown().await;
        }
        Misbehaviour::EndlessHead => {
            // Fields of a kilobyte: the head grows past any size limit
            // before it has many fields.
            let mut line = b"HTTP/1.1 200 OK\r\n".to_vec();
            while tcp.write_all(&line).await.is_ok() {
                line = format!("x-filler: {}\r\n", "x".repeat(1024)).into_bytes();
            }
        }
    }
}

/// Reads an HTTP request head, or, from a client that does not speak HTTP
/// (a TLS ClientHello, a `tcp` probe's `send`), whatever its first bytes are.
/// `false` when the client left first.
async fn read_head_or_first_bytes(tcp: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let http_like = buf[0].is_ascii_uppercase();
        if !http_like || buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > 64 * 1024 {
            return true;
        }
    }
}

/// A throwaway certificate authority, its PEM in a temp file for `ca_file`.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    file: tempfile::NamedTempFile,
}

impl TestCa {
    /// A new CA, `CN=keeper test CA`, valid from yesterday for a year.
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("generating the CA key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "keeper test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = Utc::now();
        set_validity(
            &mut params,
            now - chrono::Duration::days(1),
            now + chrono::Duration::days(365),
        );
        let cert = params.self_signed(&key).expect("self-signing the CA");
        let pem = cert.pem();
        let file = tempfile::NamedTempFile::new().expect("creating the CA temp file");
        std::fs::write(file.path(), &pem).expect("writing the CA temp file");
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
            file,
        }
    }

    /// The CA certificate's PEM file, for `ca_file`.
    pub fn ca_file(&self) -> &Path {
        self.file.path()
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A leaf for `localhost` and `127.0.0.1` expiring `valid_for` from now
    /// (negative: already expired).
    pub fn leaf_expiring_in(&self, valid_for: chrono::Duration) -> Leaf {
        self.leaf(Utc::now() + valid_for)
    }

    /// A `CA:FALSE` leaf for `localhost` and `127.0.0.1` with this notAfter
    /// (truncated to the second), valid from a day before `not_after` or
    /// yesterday, whichever is earlier.
    pub fn leaf(&self, not_after: DateTime<Utc>) -> Leaf {
        let not_after = DateTime::from_timestamp(not_after.timestamp(), 0).expect("a valid time");
        let not_before =
            (Utc::now() - chrono::Duration::days(1)).min(not_after - chrono::Duration::days(1));
        let key = KeyPair::generate().expect("generating the leaf key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf names");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, not_before, not_after);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signing the leaf");
        Leaf {
            chain: vec![cert.der().clone()],
            key: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// A server certificate (and key) signed by a [`TestCa`].
pub struct Leaf {
    /// The chain the server presents: the leaf alone.
    pub chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    /// The leaf's notAfter, to the second.
    pub not_after: DateTime<Utc>,
}

impl Leaf {
    /// Writes `cert.pem` and `key.pem` into `dir`, for servers that read files
    /// (aiosmtpd); returns their paths.
    pub fn write_pem(&self, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &self.cert_pem).expect("writing cert.pem");
        std::fs::write(&key, &self.key_pem).expect("writing key.pem");
        (cert, key)
    }

    /// A rustls server config presenting this certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), key)
        .expect("the leaf and its key");
        Arc::new(config)
    }
}

/// Sets a certificate's validity (to the second; after 1970) through rcgen's
/// own time type, so the tests need not depend on the `time` crate.
fn set_validity(
    params: &mut CertificateParams,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let since_epoch = |at: DateTime<Utc>| Duration::from_secs(at.timestamp().max(0) as u64);
    params.not_before = epoch + since_epoch(not_before);
    params.not_after = epoch + since_epoch(not_after);
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port")
}

/// Accepts connections until the returned handle drops, running `handle` on
/// each in a task of a set owned by the accept loop (so they stop with it).
fn serve<H, F>(listener: TcpListener, handle: H) -> AbortOnDropHandle<()>
where
    H: Fn(TcpStream) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    AbortOnDropHandle::new(tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                // Out of file descriptors or similar: let it pass rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            while connections.try_join_next().is_some() {}
            connections.spawn(handle(tcp));
        }
    }))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
