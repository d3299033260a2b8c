//! The `keeper` binary: install the TLS crypto provider and logging, then hand off to the CLI.

fn main() -> std::process::ExitCode {
    // One provider for every TLS user (probes, reqwest, sqlx, lettre): ring.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("keeper: a TLS crypto provider was already installed");
    }
    keeper::telemetry::init();
    keeper::cli::main()
}
