//! TLS client configuration shared by the `http` and `tls` probes: the system
//! roots (loaded once per process), an optional extra `ca_file`, and
//! `insecure_skip_verify`; plus reading the peer's certificates (earliest
//! notAfter, subject, issuer) and turning certificate errors into short reasons.
//!
//! The handshake itself never fails for certificate reasons: a lenient verifier
//! accepts any chain (while still checking the handshake signatures), and the
//! chain is then judged by the real webpki verifier right after the handshake,
//! before a single byte of application data is sent. That way a probe can report
//! the days left of an expired or untrusted certificate, and the judgement is
//! per connection (a verifier inside a shared `ClientConfig` cannot record
//! anything per connection without races).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Utc};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::BuildError;
use crate::core::CertInfo;
use crate::core::SpecProblem;

/// (`insecure_skip_verify`, ALPN protocols): what tells shared configs apart.
type SharedKey = (bool, Vec<Vec<u8>>);

/// Trust anchors loaded once at start-up and shared by every probe.
#[derive(Clone, Debug)]
pub struct Roots {
    store: Arc<RootCertStore>,
    /// Configs without a `ca_file`, shared by every check that asks for the same
    /// (`insecure_skip_verify`, ALPN): ten thousand checks, a handful of configs.
    shared: Arc<Mutex<HashMap<SharedKey, Tls>>>,
}

impl Roots {
    /// The system's roots (rustls-native-certs), falling back to the bundled
    /// webpki roots when the system has none. Loaded once per process.
    pub fn system() -> Roots {
        static SYSTEM: OnceLock<Roots> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let mut store = RootCertStore::empty();
                let native = rustls_native_certs::load_native_certs();
                let (added, _ignored) = store.add_parsable_certificates(native.certs);
                if added == 0 {
                    tracing::warn!(
                        errors = native.errors.len(),
                        "no system CA certificates loaded; using the bundled webpki roots"
                    );
                    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                }
                Roots {
                    store: Arc::new(store),
                    shared: Arc::default(),
                }
            })
            .clone()
    }

    /// How many trust anchors there are.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// A plainly verifying client config over these roots (ring, safe
    /// protocol versions, offering `alpn`), for clients that do their own
    /// connecting, such as the reqwest client of the API probes. Cheap: the
    /// roots are shared, nothing is read or parsed again.
    pub fn verifying_config(&self, alpn: &[&[u8]]) -> Result<ClientConfig, BuildError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError(format!("building the TLS client config: {e}")))?
            .with_root_certificates(self.store.clone())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// These roots plus every certificate of the PEM file `ca_file` (read
    /// again: it was checked at load, and fails here only if it changed since).
    fn with_ca_file(&self, ca_file: &Path) -> Result<Arc<RootCertStore>, BuildError> {
        let extra = ca_file_roots(ca_file).map_err(BuildError)?;
        let mut store = (*self.store).clone();
        store.roots.extend(extra.roots);
        Ok(Arc::new(store))
    }
}

/// Every certificate of the PEM file `ca_file`, or why it cannot be used.
pub fn ca_file_roots(ca_file: &Path) -> Result<RootCertStore, String> {
    let what = |e: &dyn std::fmt::Display| format!("reading ca_file {}: {e}", ca_file.display());
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| what(&e))? {
        let cert = cert.map_err(|e| what(&e))?;
        store.add(cert).map_err(|e| what(&e))?;
    }
    if store.is_empty() {
        return Err(what(&"no PEM certificate in the file"));
    }
    Ok(store)
}

/// The problem with a spec's `ca_file`, read at load so a missing or empty
/// file is a config error with its line.
pub fn ca_file_problem(ca_file: Option<&Path>) -> Option<SpecProblem> {
    let message = ca_file_roots(ca_file?).err()?;
    Some(SpecProblem::new("ca_file", message))
}

/// The TLS side of one check, built once: the client config to connect with
/// and the verifier that judges the peer's chain after the handshake.
#[derive(Clone, Debug)]
pub struct Tls {
    config: Arc<ClientConfig>,
    /// `None` with `insecure_skip_verify`: any chain is accepted.
    judge: Option<Arc<WebPkiServerVerifier>>,
}

impl Tls {
    /// Builds the client config from `roots` plus an optional `ca_file` (PEM,
    /// read now, at config time), offering the `alpn` protocols.
    pub fn new(
        roots: &Roots,
        ca_file: Option<&Path>,
        insecure_skip_verify: bool,
        alpn: &[&[u8]],
    ) -> Result<Tls, BuildError> {
        if ca_file.is_some() {
            return Tls::build(roots, ca_file, insecure_skip_verify, alpn);
        }
        let key = (
            insecure_skip_verify,
            alpn.iter().map(|p| p.to_vec()).collect(),
        );
        let mut shared = roots.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tls) = shared.get(&key) {
            return Ok(tls.clone());
        }
        let tls = Tls::build(roots, None, insecure_skip_verify, alpn)?;
        shared.insert(key, tls.clone());
        Ok(tls)
    }

    fn build(
        roots: &Roots,
        ca_file: Option<&Path>,
        insecure_skip_verify: bool,
        alpn: &[&[u8]],
    ) -> Result<Tls, BuildError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let store = match ca_file {
            Some(path) => roots.with_ca_file(path)?,
            None => roots.store.clone(),
        };
        let judge = if insecure_skip_verify {
            None
        } else {
            let verifier = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                .build()
                .map_err(|e| BuildError(format!("building the certificate verifier: {e}")))?;
            Some(verifier)
        };
        let lenient = Arc::new(LenientVerifier {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError(format!("building the TLS client config: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(lenient)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Every run is a fresh connection and must see the certificate the
        // server presents now, not one remembered from a resumed session.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Tls {
            config: Arc::new(config),
            judge,
        })
    }

    /// A connector for one handshake.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config.clone())
    }

    /// Whether [`Tls::verify`] judges chains (it does unless `insecure_skip_verify`).
    pub fn verifies(&self) -> bool {
        self.judge.is_some()
    }

    /// Judges the peer's chain (end entity first) for `name` now: `Err` with
    /// rustls's reason when the chain is untrusted, expired or for another name.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
    ) -> Result<(), rustls::Error> {
        let Some(judge) = &self.judge else {
            return Ok(());
        };
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        judge
            .verify_server_cert(end_entity, intermediates, name, &[], UnixTime::now())
            .map(|_| ())
    }
}

/// Accepts any certificate chain, so the handshake completes and the chain can
/// be read; still checks the handshake signatures against the presented key,
/// so the peer must hold the certificate's private key.
#[derive(Debug)]
struct LenientVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LenientVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Parses a host as rustls wants it for SNI and name checks: an IP literal
/// (no SNI is sent) or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, BuildError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_string())
        .map_err(|_| BuildError(format!("{host:?} is not a valid DNS name or IP address")))
}

/// The negotiated TLS version as blackbox_exporter names it (`TLS 1.3`).
pub fn version_name(conn: &rustls::ClientConnection) -> Option<&'static str> {
    use rustls::ProtocolVersion::*;
    Some(match conn.protocol_version()? {
        TLSv1_0 => "TLS 1.0",
        TLSv1_1 => "TLS 1.1",
        TLSv1_2 => "TLS 1.2",
        TLSv1_3 => "TLS 1.3",
        _ => "unknown",
    })
}

/// The earliest-expiring certificate of `chain`; `None` when no certificate
/// could be parsed.
pub fn earliest_expiring(chain: &[CertificateDer<'_>]) -> Option<CertInfo> {
    chain
        .iter()
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            let not_after =
                DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0)?;
            Some(CertInfo {
                not_after,
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
            })
        })
        .min_by_key(|c| c.not_after)
}

/// A short reason for a failed handshake or chain judgement:
/// `certificate expired on 2026-11-20`, `unknown issuer …`, `certificate not
/// valid for name …`. `cert` (when known) dates an expiry.
pub fn describe(err: &rustls::Error, cert: Option<&CertInfo>) -> String {
    let rustls::Error::InvalidCertificate(problem) = err else {
        return err.to_string();
    };
    match problem {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => match cert {
            Some(c) => format!(
                "certificate expired on {}",
                c.not_after.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            None => "certificate expired".into(),
        },
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not valid yet".into()
        }
        CertificateError::UnknownIssuer => {
            "unknown issuer: the certificate chain does not lead to a trusted CA".into()
        }
        CertificateError::NotValidForName => "certificate not valid for this name".into(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<&str> = presented.iter().map(|n| bare_name(n)).collect();
            format!(
                "certificate not valid for name {:?} (it names {})",
                expected.to_str(),
                names.join(", ")
            )
        }
        CertificateError::BadSignature => "bad certificate signature".into(),
        CertificateError::Revoked => "certificate revoked".into(),
        other => format!("invalid certificate: {other}"),
    }
}

/// `localhost` from rustls's `DnsName("localhost")`, `127.0.0.1` from `IpAddress(127.0.0.1)`.
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .strip_prefix("DnsName(")
        .or_else(|| presented.strip_prefix("IpAddress("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

/// The rustls error inside an I/O error from tokio-rustls, if that is what it is.
pub fn rustls_error(err: &std::io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_names_lose_their_rustls_wrapping() {
        assert_eq!(bare_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("something else"), "something else");
    }

    #[test]
    fn server_names_accept_ip_literals_with_or_without_brackets() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("example.com"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("not a name!").is_err());
    }

    #[test]
    fn a_missing_ca_file_is_a_build_error_naming_it() {
        let err = Tls::new(
            &Roots::system(),
            Some(Path::new("/nonexistent/ca.pem")),
            false,
            &[],
        )
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
