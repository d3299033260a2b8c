//! Transport security against real servers on loopback: the email channel
//! never sends SMTP credentials in clear text unless the config says so, and
//! PostgreSQL with `sslmode=verify-full` (the `postgres` probe and keeper's
//! storage) verifies the server's certificate against a CA the test makes.

use std::path::Path;
use std::time::Duration;

use keeper::core::EventKind;
use keeper::core::Outcome;
use keeper::core::Severity;
use keeper::notify::{Deliver, email};
use keeper::probe::{Context, Probe, Spec, postgres};
use keeper::store::Store;

use crate::notify::notification;
use crate::support::init;
use crate::support::pgcluster::{self, Cluster};
use crate::support::smtp::SmtpServer;
use crate::support::target::TestCa;

const WAIT: Duration = Duration::from_secs(10);
const PG_TIMEOUT: Duration = Duration::from_secs(10);
const CREDENTIALS: &str = "keeper:mail-password";

/// An email channel through `smtp` (extra keys as TOML lines in `extra`).
fn channel(smtp: &str, extra: &str) -> email::Email {
    let toml = format!(
        "smtp = {smtp:?}\nfrom = \"keeper@example.com\"\nto = [\"oncall@example.com\"]\n{extra}"
    );
    let spec: email::Spec = toml::from_str(&toml).expect("email spec");
    email::Email::new(&spec).expect("email channel")
}

/// `smtp://keeper:mail-password@127.0.0.1:PORT`.
fn url_with_credentials(smtp: &SmtpServer) -> String {
    format!("smtp://{CREDENTIALS}@127.0.0.1:{}", smtp.port())
}

// ---- SMTP ---------------------------------------------------------------

#[tokio::test]
async fn smtp_credentials_are_not_sent_when_the_server_offers_no_starttls() {
    init();
    let smtp = SmtpServer::start_auth_plain().await;
    let mail = channel(&url_with_credentials(&smtp), "");

    let result = mail
        .send(&notification(EventKind::Opened, Severity::Critical), "1")
        .await;

    let e = result.expect_err("no STARTTLS: nothing may be sent with the password");
    assert!(e.message.contains("STARTTLS"), "{e}");
    assert!(e.message.contains("required"), "{e}");
    assert!(e.message.contains("insecure_plaintext"), "{e}");
    assert!(!e.message.contains("mail-password"), "{e}");
    assert!(smtp.logins().is_empty(), "{:?}", smtp.logins());
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn smtp_credentials_go_in_clear_text_only_with_insecure_plaintext() {
    init();
    let smtp = SmtpServer::start_auth_plain().await;
    let mail = channel(&url_with_credentials(&smtp), "insecure_plaintext = true\n");

    mail.send(&notification(EventKind::Opened, Severity::Critical), "1")
        .await
        .expect("delivered in clear text, as configured");

    let messages = smtp.wait_for_messages(1, WAIT).await;
    assert_eq!(messages[0].rcpt_tos, ["oncall@example.com"]);
    assert_eq!(smtp.logins(), [CREDENTIALS]);
}

#[tokio::test]
async fn smtp_without_credentials_stays_opportunistic() {
    init();
    let smtp = SmtpServer::start().await;
    let mail = channel(&smtp.url(), "");

    mail.send(&notification(EventKind::Opened, Severity::Critical), "1")
        .await
        .expect("delivered without TLS: no secret to protect");

    smtp.wait_for_messages(1, WAIT).await;
}

#[test]
fn insecure_plaintext_is_a_bool_and_not_for_smtps() {
    let toml = "smtp = \"smtps://u:p@127.0.0.1:465\"\nfrom = \"keeper@example.com\"\nto = [\"oncall@example.com\"]\ninsecure_plaintext = true\n";
    let spec: email::Spec = toml::from_str(toml).expect("email spec");
    let e = email::Email::new(&spec).expect_err("smtps is always TLS");
    assert!(e.contains("insecure_plaintext"), "{e}");
    assert!(e.contains("smtps://"), "{e}");
    assert!(!e.contains("u:p"), "{e}");

    let err = crate::support::config_error(
        "[channels.mail]\nkind = \"email\"\nsmtp = \"smtp://127.0.0.1\"\nfrom = \"k@example.com\"\nto = [\"o@example.com\"]\ninsecure_plaintext = \"yes\"\n",
    );
    assert!(err.starts_with("keeper.toml:6:"), "{err}");
}

// ---- PostgreSQL sslmode=verify-full --------------------------------------

/// The cluster's URL verifying its certificate against `ca` (PEM file).
fn verify_full(cluster: &Cluster, ca: &Path) -> String {
    format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        cluster.url(pgcluster::PASSWORD),
        ca.display()
    )
}

fn postgres_probe(url: &str) -> Probe {
    let spec: postgres::Spec = toml::from_str(&format!("url = {url:?}")).expect("postgres spec");
    Spec::Postgres(spec)
        .build("test", &Context::system())
        .expect("build postgres probe")
}

#[tokio::test]
async fn the_postgres_probe_verifies_the_server_certificate_with_verify_full() {
    init();
    let ca = TestCa::new();
    let cluster = Cluster::start_tls(&ca.leaf_expiring_in(chrono::Duration::days(30)));
    let stranger = TestCa::new();

    let trusted = postgres_probe(&verify_full(&cluster, ca.ca_file()))
        .run(PG_TIMEOUT)
        .await;
    let untrusted = postgres_probe(&verify_full(&cluster, stranger.ca_file()))
        .run(PG_TIMEOUT)
        .await;

    assert_eq!(trusted.outcome, Outcome::Up, "{trusted:?}");
    let Outcome::Down(reason) = &untrusted.outcome else {
        panic!("a certificate from an unknown CA must be red: {untrusted:?}");
    };
    assert!(reason.contains("certificate"), "{reason}");
    assert!(!reason.contains(pgcluster::PASSWORD), "{reason}");
}

#[tokio::test]
async fn storage_connects_with_verify_full_and_refuses_an_unknown_certificate() {
    init();
    let ca = TestCa::new();
    let cluster = Cluster::start_tls(&ca.leaf_expiring_in(chrono::Duration::days(30)));
    let stranger = TestCa::new();

    let store = Store::connect(&verify_full(&cluster, ca.ca_file()))
        .await
        .expect("storage connects over verified TLS");
    store.migrate().await.expect("migrates over TLS");
    store.ping().await.expect("answers over TLS");

    let refused = tokio::time::timeout(
        Duration::from_secs(60),
        Store::connect(&verify_full(&cluster, stranger.ca_file())),
    )
    .await
    .expect("a refused certificate ends the connect");
    let Err(e) = refused else {
        panic!("a certificate from an unknown CA must be refused");
    };
    assert!(e.to_string().contains("certificate"), "{e}");
}
