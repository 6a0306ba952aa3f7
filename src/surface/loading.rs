//! Reading what a command probes: a config file, or `check URL`'s probe synthesized from
//! the URL and flags. Errors are printed here (file:line:column, or the flag or URL part
//! that set the key), and the command exits 2 before any traffic.

use std::path::PathBuf;

use clap::Args;

use crate::connect::proxy::{ProxyPolicy, ProxySource};
use crate::runner::suite::{self as config, Config};
use crate::surface::execute::{EXIT_USAGE, eprint_line};

#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The probes file.
    #[arg(
        short = 'c',
        long = "config",
        env = "AUTHPROBE_CONFIG",
        hide_env_values = true,
        default_value = "probes.toml"
    )]
    pub config: PathBuf,
}

pub fn load_config(path: &std::path::Path) -> Result<Config, u8> {
    match config::load(path) {
        Ok(cfg) => {
            for warning in &cfg.warnings {
                eprint_line(&format!("warning: {warning}"));
            }
            Ok(cfg)
        }
        Err(errors) => {
            for err in &errors.0 {
                eprint_line(&format!("error: {err}"));
            }
            let n = errors.0.len();
            eprint_line(&format!(
                "{}: {n} error{} found; nothing was run",
                path.display(),
                if n == 1 { "" } else { "s" }
            ));
            let mut unset: Vec<&str> = errors.0.iter().filter_map(|e| e.unset_var.as_deref()).collect();
            unset.sort_unstable();
            unset.dedup();
            // One or two missing variables are clear from their errors; many mean a whole
            // environment was not loaded.
            if unset.len() >= 3 {
                let shown: Vec<&str> = unset.iter().take(5).copied().collect();
                let more = if unset.len() > 5 { format!(" and {} more", unset.len() - 5) } else { String::new() };
                eprint_line(&format!(
                    "hint: {} environment variables the config refers to are not set ({}{more}): export them first{}",
                    unset.len(),
                    shown.join(", "),
                    if unset.iter().any(|v| v.starts_with("AP_")) {
                        "; the example config's come from the test servers: set -a; . \"$(scripts/servers.sh env)\"; set +a"
                    } else {
                        ""
                    }
                ));
            }
            Err(EXIT_USAGE)
        }
    }
}

/// `check URL`'s probe: synthesized from the URL and the flags, read as a config would be
/// (also for `approve URL`). Errors are printed, naming the flag or URL part.
pub fn check_config(
    url: &str,
    probe_opts: &crate::surface::check::CheckOptions,
    proxy: &crate::surface::check::ProxyArgs,
    quiet: bool,
) -> Result<Config, u8> {
    let synthesized = match crate::surface::check::synthesize(url, probe_opts) {
        Ok(s) => s,
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return Err(EXIT_USAGE);
        }
    };
    if synthesized.url_password && !quiet {
        eprint_line(
            "warning: the URL contains a password, which ends up in shell history and process lists; use --password-env (or PGPASSWORD) instead",
        );
    }
    let env = |name: &str| std::env::var(name).ok();
    let input = config::ConfigInput::Built(std::sync::Arc::new(synthesized.document));
    let mut cfg = match config::load_input(std::path::Path::new("<check URL>"), input, &env) {
        Ok(cfg) => cfg,
        Err(errors) => {
            // There is no file to point at: name the flag or URL part that set the key.
            for err in &errors.0 {
                let key = err.key.as_deref().unwrap_or("");
                let origin = crate::surface::check::origin_of(key, probe_opts, err.unset_var.as_deref());
                let message = match &err.unset_var {
                    Some(var) if origin.contains(var.as_str()) => "the variable is not set".to_string(),
                    Some(var) => format!("the variable {var} is not set"),
                    None => err.message.clone(),
                };
                eprint_line(&format!("error: {origin}: {message}"));
            }
            return Err(EXIT_USAGE);
        }
    };
    if !quiet {
        for warning in &cfg.warnings {
            let origin = crate::surface::check::origin_of(warning.key.as_deref().unwrap_or(""), probe_opts, None);
            eprint_line(&format!("warning: {origin}: {}", warning.message));
        }
    }
    warn_proxy_password(proxy, quiet);
    match proxy.setting() {
        Ok(Some(setting)) => {
            for probe in &mut cfg.probes {
                let policy =
                    ProxyPolicy { probe: Some((setting.clone(), ProxySource::Flag)), ..(*probe.proxy).clone() };
                probe.proxy = std::sync::Arc::new(policy);
            }
        }
        Ok(None) => {}
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return Err(EXIT_USAGE);
        }
    }
    Ok(cfg)
}

pub fn warn_proxy_password(proxy: &crate::surface::check::ProxyArgs, quiet: bool) {
    if proxy.has_password() && !quiet {
        eprint_line(
            "warning: the --proxy URL contains a password, which ends up in shell history and process lists; put the proxy in HTTPS_PROXY or ALL_PROXY instead",
        );
    }
}
