//! The `email` channel: lettre over SMTP. `smtps://` is implicit TLS;
//! `smtp://` upgrades with STARTTLS when the server offers it, and requires
//! STARTTLS when `user:password@` authenticates: a network that strips the
//! offer must not get the password in clear text. Only `insecure_plaintext =
//! true` lets credentials go over an unencrypted connection.
//!
//! The transport is built once in [`Email::new`] from the URL; `send` renders
//! the subject and body with [`render`] and classifies SMTP failures: a 5xx
//! reply is permanent, everything else (4xx, connection, TLS, timeout) transient.
//! The `Message-ID` comes from the notification's id ([`message_id`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use super::{Deliver, Kind, SendError, render};
use crate::core::{Notification, SpecProblem};

/// Default port of `smtp://` (plain SMTP, upgraded with STARTTLS when offered).
pub const SMTP_PORT: u16 = 25;
/// Default port of `smtps://` (implicit TLS).
pub const SMTPS_PORT: u16 = 465;
/// Timeout of each SMTP command, connect included.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `[channels.NAME]` keys of kind `email`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `smtp://[user:password@]host[:port]` or `smtps://…`.
    pub smtp: String,
    pub from: String,
    pub to: Vec<String>,
    /// Extra trusted CA certificates (PEM) for the server's TLS, beside the
    /// bundled roots: for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
    /// With credentials over `smtp://`: send them even when the server offers
    /// no STARTTLS (in clear text). Off: such a send fails.
    #[serde(default)]
    pub insecure_plaintext: bool,
}

#[derive(Clone)]
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port`, for messages (never the credentials).
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// Credentials over `smtp://` without `insecure_plaintext`: STARTTLS is required.
    starttls_required: bool,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Email {
    pub fn new(spec: &Spec) -> Result<Email, String> {
        let from = from(spec)?;
        let to = to(spec)?;
        let Transport {
            transport,
            server,
            starttls_required,
        } = transport(spec)?;
        Ok(Email {
            transport,
            server,
            from,
            to,
            starttls_required,
        })
    }
}

impl Deliver for Email {
    async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        self.send_text(render::email_subject(n), render::email_body(n), key)
            .await
    }

    /// A grouped send: one email listing every notification.
    async fn send_group(&self, ns: &[Notification], key: &str) -> Result<(), SendError> {
        self.send_text(
            render::email_group_subject(ns),
            render::email_group_body(ns),
            key,
        )
        .await
    }
}

impl Email {
    /// Sends a report ([`super::report`]) whole: its Markdown as the text
    /// part and its HTML, one `multipart/alternative` message.
    pub async fn send_report(
        &self,
        m: &super::report::ReportMessage,
        key: &str,
    ) -> Result<(), SendError> {
        let parts = MultiPart::alternative_plain_html(m.markdown.clone(), m.html.clone());
        let message = self
            .builder(m.subject.clone(), key)
            .multipart(parts)
            .map_err(|e| SendError::permanent(format!("building the email: {e}")))?;
        self.deliver(message).await
    }

    /// A message from keeper to every recipient, its `Message-ID` from `key`.
    fn builder(&self, subject: String, key: &str) -> lettre::message::MessageBuilder {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .message_id(Some(message_id(key, &self.from)))
            .subject(subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
    }

    async fn send_text(&self, subject: String, body: String, key: &str) -> Result<(), SendError> {
        let message = self
            .builder(subject, key)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| SendError::permanent(format!("building the email: {e}")))?;
        self.deliver(message).await
    }

    /// Sends a built message, classifying the failure.
    async fn deliver(&self, message: Message) -> Result<(), SendError> {
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // lettre refuses on its side ("STARTTLS is not supported on this
            // server") before anything is sent; said here in keeper's words.
            Err(e) if self.starttls_required && e.is_client() && is_starttls_refusal(&e) => {
                Err(SendError::transient(format!(
                    "sending through {}: STARTTLS is required to send the credentials \
                 and the server did not offer it ({e}); nothing was sent \
                 (set insecure_plaintext = true to allow clear text)",
                    self.server
                )))
            }
            Err(e) => {
                let message = format!("sending through {}: {e}", self.server);
                if e.is_permanent() {
                    Err(SendError::permanent(message))
                } else {
                    Err(SendError::transient(message))
                }
            }
        }
    }
}

/// A `Message-ID` derived from the notification's id alone, so every attempt
/// (and a resend after a crash) carries the same one and mail systems can drop
/// the duplicate: `<keeper.KEY@DOMAIN-OF-FROM>`.
fn message_id(key: &str, from: &Mailbox) -> String {
    let key: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("<keeper.{key}@{}>", from.email.domain())
}

/// Whether lettre's client-side error is its refusal to go on without STARTTLS.
fn is_starttls_refusal(e: &lettre::transport::smtp::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains("STARTTLS") {
            return true;
        }
        source = err.source();
    }
    false
}

impl Kind for Spec {
    const NAME: &'static str = "email";
    type Channel = Email;

    fn problems(&self) -> Vec<SpecProblem> {
        let mut out: Vec<SpecProblem> = [
            from(self).err().map(|e| SpecProblem::new("from", e)),
            to(self).err().map(|e| SpecProblem::new("to", e)),
            server(self).err(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(path) = &self.ca_file
            && let Err(e) = ca_certificate(path)
        {
            out.push(SpecProblem::new("ca_file", e));
        }
        out
    }

    fn build(&self, _http: &reqwest::Client) -> Result<Email, String> {
        Email::new(self)
    }
}

fn from(spec: &Spec) -> Result<Mailbox, String> {
    spec.from
        .parse()
        .map_err(|e| format!("invalid from address {:?}: {e}", spec.from))
}

fn to(spec: &Spec) -> Result<Vec<Mailbox>, String> {
    if spec.to.is_empty() {
        return Err("to: at least one address is needed".into());
    }
    spec.to
        .iter()
        .map(|a| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("invalid to address {a:?}: {e}"))
        })
        .collect()
}

/// What `smtp` names, checked.
struct Server {
    host: String,
    port: u16,
    implicit_tls: bool,
    credentials: Option<Credentials>,
}

/// Reads `smtp://` or `smtps://`; the problem names its key (`smtp`, or
/// `insecure_plaintext` when it contradicts the URL).
fn server(spec: &Spec) -> Result<Server, SpecProblem> {
    let bad = |message: String| SpecProblem::new("smtp", message);
    // The error never repeats the URL: its password may be in it.
    let url = url::Url::parse(&spec.smtp).map_err(|e| bad(format!("invalid smtp url: {e}")))?;
    let (implicit_tls, default_port) = match url.scheme() {
        "smtp" => (false, SMTP_PORT),
        "smtps" => (true, SMTPS_PORT),
        other => {
            return Err(bad(format!(
                "invalid smtp url: scheme {other:?}, expected smtp or smtps"
            )));
        }
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(bad("invalid smtp url: no host".into())),
    };
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "invalid smtp url: expected smtp[s]://[user:password@]host[:port] only".into(),
        ));
    }
    if implicit_tls && spec.insecure_plaintext {
        return Err(SpecProblem::new(
            "insecure_plaintext",
            "insecure_plaintext is for smtp:// only: smtps:// is always encrypted",
        ));
    }
    Ok(Server {
        host,
        port: url.port().unwrap_or(default_port),
        implicit_tls,
        credentials: credentials(&url).map_err(bad)?,
    })
}

/// The transport built from a spec, with what messages say about it.
struct Transport {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port`.
    server: String,
    starttls_required: bool,
}

/// Builds the transport from `smtp://` or `smtps://`.
fn transport(spec: &Spec) -> Result<Transport, String> {
    let Server {
        host,
        port,
        implicit_tls,
        credentials,
    } = server(spec).map_err(|p| p.message)?;
    let tls_parameters = tls_parameters(&host, spec.ca_file.as_deref())?;
    let starttls_required = !implicit_tls && credentials.is_some() && !spec.insecure_plaintext;
    let tls = if implicit_tls {
        Tls::Wrapper(tls_parameters)
    } else if starttls_required {
        Tls::Required(tls_parameters)
    } else {
        Tls::Opportunistic(tls_parameters)
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    Ok(Transport {
        transport: builder.build(),
        server: format!("{host}:{port}"),
        starttls_required,
    })
}

/// `user:password@` of the URL, decoded; `None` without a user.
fn credentials(url: &url::Url) -> Result<Option<Credentials>, String> {
    if url.username().is_empty() {
        return Ok(None);
    }
    let user = percent_decode(url.username())
        .ok_or("invalid smtp url: the user is not UTF-8 once percent-decoded")?;
    let password = percent_decode(url.password().unwrap_or(""))
        .ok_or("invalid smtp url: the password is not UTF-8 once percent-decoded")?;
    Ok(Some(Credentials::new(user, password)))
}

/// TLS for `host`: the bundled roots, plus `ca_file`'s certificate when given.
fn tls_parameters(host: &str, ca_file: Option<&Path>) -> Result<TlsParameters, String> {
    let mut tls_parameters = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        tls_parameters = tls_parameters.add_root_certificate(ca_certificate(path)?);
    }
    tls_parameters
        .build_rustls()
        .map_err(|e| format!("smtp tls setup for {host}: {e}"))
}

/// The certificate of the PEM file `path`, or why it cannot be used.
fn ca_certificate(path: &Path) -> Result<Certificate, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("reading ca_file {}: {e}", path.display()))?;
    Certificate::from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", path.display()))
}

/// Decodes `%XX` escapes (URL userinfo); `None` when the result is not
/// UTF-8. A `%` not followed by two hex digits stays as written, as the URL
/// standard decodes it.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(smtp: &str, from: &str, to: &[&str]) -> Spec {
        Spec {
            smtp: smtp.into(),
            from: from.into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            ca_file: None,
            insecure_plaintext: false,
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%3Ac").as_deref(), Some("a@b:c"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%e2%9c%85").as_deref(), Some("✅"));
        assert_eq!(percent_decode("%4").as_deref(), Some("%4"));
        assert_eq!(percent_decode("%zz").as_deref(), Some("%zz"));
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn urls() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ok = |url: &str| {
            Email::new(&spec(url, "keeper@example.com", &["ops@example.com"]))
                .map(|e| e.server)
                .unwrap_or_else(|e| panic!("{url}: {e}"))
        };
        assert_eq!(ok("smtp://mail.example.com"), "mail.example.com:25");
        assert_eq!(
            ok("smtp://u:p%40ss@mail.example.com:587"),
            "mail.example.com:587"
        );
        assert_eq!(ok("smtps://mail.example.com"), "mail.example.com:465");
        assert_eq!(ok("smtp://127.0.0.1:2525/"), "127.0.0.1:2525");
        assert_eq!(ok("smtp://[::1]:2525"), "::1:2525");

        for bad in [
            "http://mail.example.com",
            "smtp://",
            "smtp://user:hunter2@host/path",
            "smtp://host?tls=no",
            "nonsense",
        ] {
            let e =
                Email::new(&spec(bad, "keeper@example.com", &["ops@example.com"])).expect_err(bad);
            assert!(e.starts_with("invalid smtp url"), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn credentials_over_smtp_require_starttls_unless_told_otherwise() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let required = |url: &str, insecure_plaintext: bool| {
            let spec = Spec {
                insecure_plaintext,
                ..spec(url, "keeper@example.com", &["ops@example.com"])
            };
            Email::new(&spec)
                .map(|e| e.starttls_required)
                .unwrap_or_else(|e| panic!("{url}: {e}"))
        };
        assert!(required("smtp://u:p@mail.example.com", false));
        assert!(!required("smtp://u:p@mail.example.com", true));
        assert!(!required("smtp://mail.example.com", false));
        assert!(!required("smtps://u:p@mail.example.com", false));
    }

    #[test]
    fn addresses_are_checked() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let e = Email::new(&spec(
            "smtp://h",
            "keeper@example.com",
            &["ops@example.com", "not an address"],
        ))
        .unwrap_err();
        assert!(e.contains("invalid to address \"not an address\""), "{e}");
        let e = Email::new(&spec("smtp://h", "keeper", &["ops@example.com"])).unwrap_err();
        assert!(e.contains("invalid from address \"keeper\""), "{e}");
        let e = Email::new(&spec("smtp://h", "keeper@example.com", &[])).unwrap_err();
        assert!(e.contains("at least one"), "{e}");
        let ok = Email::new(&spec(
            "smtp://h",
            "Keeper <keeper@example.com>",
            &["ops@example.com"],
        ));
        assert!(ok.is_ok());
    }
}
