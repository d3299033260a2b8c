//! A real SMTP server for the email channel: aiosmtpd as a child process
//! serving a 127.0.0.1 socket the test bound and handed over (so no other
//! test can take the port between picking and binding), with a small handler that writes each message it
//! accepts as one JSON file (subject, header from/to, envelope, decoded plain
//! body and HTML part). Recipients starting with `reject` get `550` (permanent), those
//! starting with `later` get `451` (transient). [`SmtpServer::start_auth_plain`]
//! runs one that accepts `AUTH` without TLS and writes down every login.
//!
//! Uses Debian's `/usr/bin/python3` (package `python3-aiosmtpd`), else the
//! `python3` on PATH if it can import aiosmtpd; panics with the install hint
//! otherwise. The child is killed when the [`SmtpServer`] is dropped.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::target::Leaf;

const HANDLER: &str = r#"
import email, email.policy, json, os

class Sink:
    def __init__(self):
        self.out = os.environ["KEEPER_SMTP_OUT"]
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg.get("Subject", "")),
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "content_type": msg.get_content_type(),
            "message_id": str(msg.get("Message-ID", "")),
            "body": part.get_content() if part is not None else "",
            "html": html.get_content() if html is not None else "",
        }
        self.count += 1
        name = os.path.join(self.out, "%06d.json" % self.count)
        with open(name + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name)
        return "250 OK"
"#;

/// The server: aiosmtpd's `SMTP` on the listening socket inherited as fd
/// `argv[2]`, in one of four ways (`argv[1]`): `plain`; `auth`: AUTH (PLAIN,
/// LOGIN) over plain text, no STARTTLS, what a network that strips STARTTLS
/// looks like to a client, every login appended to `$KEEPER_SMTP_AUTH` as
/// `user:password` and accepted; `starttls`: STARTTLS offered and required;
/// `smtps`: TLS from the first byte. Touches `ready` once it serves.
const MAIN: &str = r#"
import asyncio, os, socket, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from keeper_sink import Sink

def authenticator(server, session, envelope, mechanism, auth_data):
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    with open(os.environ["KEEPER_SMTP_AUTH"], "a", encoding="utf-8") as f:
        f.write("%s:%s\n" % (auth_data.login.decode(), auth_data.password.decode()))
    return AuthResult(success=True)

async def main(mode, fd, cert=None, key=None):
    sock = socket.socket(fileno=fd)
    handler = Sink()
    tls = None
    if cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
    if mode == "auth":
        factory = lambda: SMTP(handler, authenticator=authenticator, auth_require_tls=False)
    elif mode == "starttls":
        factory = lambda: SMTP(handler, tls_context=tls, require_starttls=True)
    else:
        factory = lambda: SMTP(handler)
    server = await asyncio.get_running_loop().create_server(
        factory, sock=sock, ssl=tls if mode == "smtps" else None)
    open("ready", "w").close()
    async with server:
        await server.serve_forever()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:]))
"#;

/// One message the server accepted.
#[derive(Clone, Debug, Deserialize)]
pub struct Received {
    /// Envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// Envelope recipients (`RCPT TO`).
    pub rcpt_tos: Vec<String>,
    /// The decoded `Subject` header.
    pub subject: String,
    /// The `From` header.
    pub from: String,
    /// The `To` header.
    pub to: String,
    pub content_type: String,
    /// The decoded text/plain body.
    pub body: String,
    /// The `Message-ID` header.
    #[serde(default)]
    pub message_id: String,
    /// The decoded text/html part, when there is one.
    #[serde(default)]
    pub html: String,
}

/// How the server protects the connection.
enum Security<'a> {
    Plain,
    /// No TLS, AUTH accepted in plain text.
    PlainAuth,
    StartTls(&'a Leaf),
    Implicit(&'a Leaf),
}

/// The running aiosmtpd; killed on drop.
#[derive(Debug)]
pub struct SmtpServer {
    port: u16,
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// Starts aiosmtpd and waits until it accepts connections.
    pub async fn start() -> SmtpServer {
        SmtpServer::spawn(Security::Plain).await
    }

    /// Starts aiosmtpd without STARTTLS that accepts `AUTH` in plain text and
    /// writes down each login ([`Self::logins`]).
    pub async fn start_auth_plain() -> SmtpServer {
        SmtpServer::spawn(Security::PlainAuth).await
    }

    /// Every `user:password` that logged in so far (only with [`Self::start_auth_plain`]).
    pub fn logins(&self) -> Vec<String> {
        std::fs::read_to_string(self._dir.path().join("auth.log"))
            .map(|text| text.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Starts aiosmtpd offering and requiring STARTTLS with this certificate
    /// (it answers `530 Must issue a STARTTLS command first` to plain senders).
    pub async fn start_tls(leaf: &Leaf) -> SmtpServer {
        SmtpServer::spawn(Security::StartTls(leaf)).await
    }

    /// Starts aiosmtpd speaking TLS from the first byte (SMTPS); use [`Self::smtps_url`].
    pub async fn start_smtps(leaf: &Leaf) -> SmtpServer {
        SmtpServer::spawn(Security::Implicit(leaf)).await
    }

    /// `smtps://127.0.0.1:PORT`.
    pub fn smtps_url(&self) -> String {
        format!("smtps://127.0.0.1:{}", self.port)
    }

    async fn spawn(security: Security<'_>) -> SmtpServer {
        let python = python_with_aiosmtpd().await;
        let dir = tempfile::tempdir().expect("creating a temp dir for the SMTP server");
        let out = dir.path().join("messages");
        std::fs::create_dir(&out).expect("creating the SMTP message dir");
        std::fs::write(dir.path().join("keeper_sink.py"), HANDLER)
            .expect("writing the SMTP handler");
        std::fs::write(dir.path().join("keeper_smtp.py"), MAIN).expect("writing the SMTP server");
        let log =
            std::fs::File::create(dir.path().join("aiosmtpd.log")).expect("creating the SMTP log");
        // Bound here and held until the child has it: the port is ours throughout.
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port for the SMTP server");
        let port = listener.local_addr().expect("the SMTP port").port();
        let fd = listener.as_raw_fd();
        let mode = match security {
            Security::Plain => "plain",
            Security::PlainAuth => "auth",
            Security::StartTls(_) => "starttls",
            Security::Implicit(_) => "smtps",
        };
        let mut command = Command::new(&python);
        command.arg("keeper_smtp.py").arg(mode).arg(fd.to_string());
        if let Security::StartTls(leaf) | Security::Implicit(leaf) = security {
            let (cert, key) = leaf.write_pem(dir.path());
            command.arg(cert).arg(key);
        }
        // SAFETY: between fork and exec only the async-signal-safe fcntl
        // runs, on the child's own copy of the descriptor: it survives exec
        // there while staying close-on-exec in this process.
        unsafe {
            command.pre_exec(move || {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
                Ok(())
            });
        }
        let child = command
            .current_dir(dir.path())
            .env("PYTHONPATH", dir.path())
            .env("KEEPER_SMTP_OUT", &out)
            .env("KEEPER_SMTP_AUTH", dir.path().join("auth.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {python} keeper_smtp.py: {e}"));
        drop(listener);
        let mut server = SmtpServer {
            port,
            child,
            out,
            _dir: dir,
        };
        server.wait_ready().await;
        server
    }

    /// `smtp://127.0.0.1:PORT` (plain; no STARTTLS offered).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        files.iter().map(|p| read_message(p)).collect()
    }

    /// Waits until at least `n` messages arrived; returns all of them.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let what = format!("aiosmtpd on port {} receives {n} message(s)", self.port);
        super::wait_until(&what, timeout, || async { self.messages().len() >= n }).await;
        self.messages()
    }

    /// Waits until aiosmtpd serves the socket (it writes `ready`); panics
    /// with its log when it exits first or takes over 15 s.
    async fn wait_ready(&mut self) {
        let start = Instant::now();
        let ready = self._dir.path().join("ready");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("aiosmtpd exited at start ({status}): {}", self.log());
            }
            if ready.exists() {
                return;
            }
            if start.elapsed() > Duration::from_secs(15) {
                panic!(
                    "aiosmtpd did not serve 127.0.0.1:{} within 15s: {}",
                    self.port,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("aiosmtpd.log")).unwrap_or_default()
    }
}

fn read_message(path: &Path) -> Received {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Debian's python3 first (python3-aiosmtpd), then the one on PATH.
async fn python_with_aiosmtpd() -> String {
    for python in ["/usr/bin/python3", "python3"] {
        let ok = tokio::process::Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if ok {
            return python.to_string();
        }
    }
    panic!(
        "no python3 can import aiosmtpd: install it with `apt-get install python3-aiosmtpd` \
         (for /usr/bin/python3) or `pip install aiosmtpd` (for the python3 on PATH)"
    );
}
