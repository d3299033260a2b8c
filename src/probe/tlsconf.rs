//! TLS client configuration shared by the `http` and `tls` probes: the system
//! roots (loaded once per process), an optional extra `ca_file`, and
//! `insecure_skip_verify`.

/// Trust anchors loaded once at start-up and shared by every probe.
#[derive(Clone, Debug)]
pub struct Roots {}

impl Roots {
    /// The system's roots (rustls-native-certs), falling back to the bundled
    /// webpki roots when the system has none.
    pub fn system() -> Roots {
        todo!("helper")
    }
}
