//! authprobe: do these credentials actually work against these systems, and if not, exactly why?
//!
//! The binary is a thin shell around [`cli::run`]. The library is split by concern:
//! `config` turns `probes.toml` into checked probe definitions, `runner` runs them
//! concurrently, `probes` holds one module per probe kind, `net`/`tls`/`httpc` are the
//! connection machinery every kind shares, `report` is the result model and `output`
//! renders it in every format.

pub mod aws_creds;
pub mod aws_http;
pub mod aws_sign;
pub mod check;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod glob;
pub mod httpc;
pub mod inspect;
pub mod limits;
pub mod net;
pub mod oauth2;
pub mod output;
pub mod probes;
pub mod progress;
pub mod redact;
pub mod report;
pub mod runner;
pub mod serve;
pub mod ssh;
pub mod stage;
pub mod targets;
pub mod tls;
pub mod tunnel;

/// Installs the one rustls crypto provider for the whole process.
///
/// Must run before any TLS configuration is built: some drivers build their configuration
/// from the process default and panic when they find none (or two).
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    aws_lc_rs::init();
}
