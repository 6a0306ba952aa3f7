//! authprobe: do these credentials actually work against these systems, and if not, exactly why?
//!
//! The binary is a thin shell around [`cli::run`]. The library is split by concern:
//! `config` turns `probes.toml` into checked probe definitions, `runner` runs them
//! concurrently, `probes` holds one module per probe kind, `net`/`tls`/`httpc` are the
//! connection machinery every kind shares, `report` is the result model and `output`
//! renders it in every format.

pub mod config;
pub mod connect;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod model;
pub mod output;
pub mod probes;
pub mod runner;
pub mod surface;

/// Installs the one rustls crypto provider for the whole process.
///
/// Must run before any TLS configuration is built: some drivers build their configuration
/// from the process default and panic when they find none (or two).
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    aws_lc_rs::init();
}
