//! Proxies: which one a connection goes through and why (a probe's `proxy` key, `[defaults]`,
//! `--proxy`, or curl's environment variables with `NO_PROXY`), and going through it: HTTP
//! CONNECT or SOCKS5 (`socks5h`: the proxy resolves) as the `proxy` stage, with the proxy's
//! own failures told apart from the target's. Plain-http requests go to an HTTP proxy in
//! absolute-form (`connect::httpc`).

pub mod no_proxy;
pub mod through;
pub mod wire;

use std::sync::Arc;

use base64::Engine;

use crate::model::redact::Secret;
use crate::model::release::Release;

/// The protocol spoken to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    Http,
    /// SOCKS5; names are resolved here and addresses sent.
    Socks5,
    /// SOCKS5; names are sent for the proxy to resolve.
    Socks5h,
}

/// A proxy URL, its password kept as a secret.
#[derive(Debug, Clone)]
pub struct ProxyUrl {
    pub scheme: ProxyScheme,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

impl ProxyUrl {
    /// `http://[user:pass@]host[:port]`, `socks5://…`, `socks5h://…`; without a scheme, HTTP
    /// (as curl reads `HTTPS_PROXY=proxy:3128`); the port defaults to 1080, as curl's. The
    /// password, and the Basic credentials made of it, are registered as secrets.
    pub fn parse(raw: &str) -> Result<ProxyUrl, String> {
        let text = raw.trim();
        let with_scheme = if text.contains("://") { text.to_string() } else { format!("http://{text}") };
        let url = url::Url::parse(&with_scheme).map_err(|e| format!("`{}` is not a proxy URL: {e}", shown(text)))?;
        let (scheme, default_port) = match url.scheme() {
            "http" => (ProxyScheme::Http, 1080),
            "socks5" | "socks" => (ProxyScheme::Socks5, 1080),
            "socks5h" => (ProxyScheme::Socks5h, 1080),
            "https" => {
                return Err(format!(
                    "`{}`: TLS to the proxy itself (https://) is not supported; use http://, socks5:// or socks5h://",
                    shown(text)
                ));
            }
            other => return Err(format!("`{other}://` is not a proxy scheme (use http://, socks5:// or socks5h://)")),
        };
        let host =
            url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("`{}` names no host", shown(text)))?;
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(|p| {
            let password = decode(p);
            crate::model::redact::register(&password);
            Secret::new(password)
        });
        let proxy = ProxyUrl {
            scheme,
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port: url.port().unwrap_or(default_port),
            user,
            password,
        };
        // The Proxy-Authorization token is user:password in base64: a form the password's
        // own registration does not cover.
        if proxy.password.is_some()
            && let Some(value) = proxy.basic_authorization()
        {
            crate::model::redact::register(value.trim_start_matches("Basic "));
        }
        Ok(proxy)
    }

    /// As shown in messages: the scheme, user, host and port, never the password.
    pub fn display(&self) -> String {
        let scheme = match self.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Socks5 => "socks5",
            ProxyScheme::Socks5h => "socks5h",
        };
        let user = self.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{user}{host}:{}", self.port)
    }

    /// The proxy's own password, for the proxy: every scheme it may have is plain, so the
    /// operator who wrote it into the URL chose to hand it over that way.
    pub(super) fn password_for_proxy(&self) -> &str {
        self.password.as_ref().map(|p| p.release(&Release::plain_proxy_url())).unwrap_or_default()
    }

    /// `Basic …` for Proxy-Authorization, when the URL carries a user.
    pub fn basic_authorization(&self) -> Option<String> {
        let user = self.user.as_ref()?;
        let password = self.password_for_proxy();
        Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
    }
}

/// A URL as it may be shown: without its password.
fn shown(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => raw.to_string(),
        Err(_) if raw.contains('@') => "(a proxy URL with credentials)".into(),
        Err(_) => raw.to_string(),
    }
}

/// Where a proxy setting came from, for `-v` and for hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySource {
    /// The probe's own `proxy` key.
    ProbeKey,
    /// `[defaults] proxy`.
    Defaults,
    /// `--proxy` / `--no-proxy` on the command line.
    Flag,
    /// An environment variable (its name as set).
    Env(String),
}

impl ProxySource {
    pub fn describe(&self) -> String {
        match self {
            ProxySource::ProbeKey => "the probe's proxy key".into(),
            ProxySource::Defaults => "[defaults] proxy".into(),
            ProxySource::Flag => "--proxy".into(),
            ProxySource::Env(name) => name.clone(),
        }
    }
}

/// A configured choice: a proxy, or `"none"` (direct).
#[derive(Debug, Clone)]
pub enum Setting {
    Direct,
    Through(ProxyUrl),
}

impl Setting {
    pub fn parse(raw: &str) -> Result<Setting, String> {
        match raw.trim() {
            "none" | "" => Ok(Setting::Direct),
            other => ProxyUrl::parse(other).map(Setting::Through),
        }
    }
}

/// What a connection is for: which environment variable names its proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Plain http:// (`http_proxy`; an HTTP proxy gets the request in absolute-form).
    Http,
    /// https:// (`https_proxy`).
    Https,
    /// Any other protocol: databases, SSH (`all_proxy` only, as curl).
    Other,
}

/// The proxy environment, read once per run (lower-case names first, as curl does).
#[derive(Debug, Clone, Default)]
pub struct EnvProxies {
    pub http: Option<(Result<ProxyUrl, String>, String)>,
    pub https: Option<(Result<ProxyUrl, String>, String)>,
    pub all: Option<(Result<ProxyUrl, String>, String)>,
    pub no_proxy: Option<(no_proxy::NoProxy, String)>,
}

impl EnvProxies {
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> EnvProxies {
        let first = |names: [&str; 2]| {
            names.iter().find_map(|n| get(n).filter(|v| !v.trim().is_empty()).map(|v| (v, n.to_string())))
        };
        let proxy = |names: [&str; 2]| first(names).map(|(value, name)| (ProxyUrl::parse(&value), name));
        EnvProxies {
            http: proxy(["http_proxy", "HTTP_PROXY"]),
            https: proxy(["https_proxy", "HTTPS_PROXY"]),
            all: proxy(["all_proxy", "ALL_PROXY"]),
            no_proxy: first(["no_proxy", "NO_PROXY"]).map(|(value, name)| (no_proxy::NoProxy::parse(&value), name)),
        }
    }

    /// The process environment's proxies.
    pub fn process() -> EnvProxies {
        EnvProxies::from_env(&|name| std::env::var(name).ok())
    }
}

/// Every way a probe may be told about proxies, in order of precedence: its `proxy` key
/// (or `--proxy`), `[defaults] proxy`, then the environment. `NO_PROXY` applies to the
/// defaults and the environment; a probe's own key is taken as meant.
#[derive(Debug, Clone, Default)]
pub struct ProxyPolicy {
    pub probe: Option<(Setting, ProxySource)>,
    pub defaults: Option<Setting>,
    pub env: Arc<EnvProxies>,
}

/// The proxy a connection goes through, and why (for `-v`).
#[derive(Debug, Clone)]
pub struct Choice {
    pub proxy: Option<(ProxyUrl, ProxySource)>,
    pub why: String,
}

impl ProxyPolicy {
    pub fn choose(&self, traffic: Traffic, host: &str, port: u16) -> Result<Choice, String> {
        let target = format!("{host}:{port}");
        if let Some((setting, source)) = &self.probe {
            return Ok(match setting {
                Setting::Direct => {
                    Choice { proxy: None, why: format!("none: direct ({} is \"none\")", source.describe()) }
                }
                Setting::Through(url) => Choice {
                    why: format!("{} (from {})", url.display(), source.describe()),
                    proxy: Some((url.clone(), source.clone())),
                },
            });
        }
        if let Some((no_proxy, name)) = &self.env.no_proxy
            && let Some(entry) = no_proxy.matches(host, port)
        {
            let configured = self.defaults.is_some() || self.env_proxy(traffic).is_some();
            if configured {
                return Ok(Choice { proxy: None, why: format!("none: {name} matches {target} (`{entry}`)") });
            }
        }
        if let Some(setting) = &self.defaults {
            return Ok(match setting {
                Setting::Direct => Choice { proxy: None, why: "none: direct ([defaults] proxy is \"none\")".into() },
                Setting::Through(url) => Choice {
                    why: format!("{} (from [defaults] proxy)", url.display()),
                    proxy: Some((url.clone(), ProxySource::Defaults)),
                },
            });
        }
        match self.env_proxy(traffic) {
            Some((Ok(url), name)) => Ok(Choice {
                why: format!("{} (from {name})", url.display()),
                proxy: Some((url.clone(), ProxySource::Env(name.clone()))),
            }),
            Some((Err(why), name)) => Err(format!("{name}: {why}")),
            None => Ok(Choice { proxy: None, why: "none: direct (no proxy configured)".into() }),
        }
    }

    fn env_proxy(&self, traffic: Traffic) -> Option<&(Result<ProxyUrl, String>, String)> {
        let specific = match traffic {
            Traffic::Http => self.env.http.as_ref(),
            Traffic::Https => self.env.https.as_ref(),
            Traffic::Other => None,
        };
        specific.or(self.env.all.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Arc<EnvProxies> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Arc::new(EnvProxies::from_env(&|name| map.get(name).cloned()))
    }

    #[test]
    fn proxy_urls_keep_their_password_secret() {
        let url = ProxyUrl::parse("http://ap_proxy:pa%40ss@proxy.corp:3128").unwrap();
        assert_eq!(url.display(), "http://ap_proxy@proxy.corp:3128");
        assert_eq!(url.password.as_ref().map(Secret::read_here), Some("pa@ss"));
        assert_eq!(url.basic_authorization().unwrap(), "Basic YXBfcHJveHk6cGFAc3M=");
        assert_eq!(ProxyUrl::parse("proxy.corp:8080").unwrap().scheme, ProxyScheme::Http);
        assert_eq!(ProxyUrl::parse("socks5h://10.0.0.1").unwrap().port, 1080);
        let err = ProxyUrl::parse("https://u:hunter2@proxy:443").unwrap_err();
        assert!(!err.contains("hunter2") && err.contains("not supported"), "{err}");
        assert!(ProxyUrl::parse("ftp://proxy").is_err());
    }

    #[test]
    fn the_environment_is_read_as_curl_reads_it() {
        let policy = ProxyPolicy {
            env: env(&[
                ("HTTPS_PROXY", "http://s:3128"),
                ("http_proxy", "http://h:3128"),
                ("ALL_PROXY", "socks5h://a:1080"),
                ("NO_PROXY", "localhost,.internal,10.0.0.0/8"),
            ]),
            ..ProxyPolicy::default()
        };
        let proxy = |traffic, host: &str| policy.choose(traffic, host, 443).unwrap().proxy.map(|(p, _)| p.host);
        assert_eq!(proxy(Traffic::Https, "api.example.com").as_deref(), Some("s"));
        assert_eq!(proxy(Traffic::Http, "api.example.com").as_deref(), Some("h"));
        assert_eq!(proxy(Traffic::Other, "db.example.com").as_deref(), Some("a"));
        assert_eq!(proxy(Traffic::Https, "localhost"), None);
        assert_eq!(proxy(Traffic::Other, "db.internal"), None);
        assert_eq!(proxy(Traffic::Other, "10.1.2.3"), None);
        let why = policy.choose(Traffic::Https, "db.internal", 443).unwrap().why;
        assert_eq!(why, "none: NO_PROXY matches db.internal:443 (`.internal`)");
        let why = policy.choose(Traffic::Https, "api.example.com", 443).unwrap().why;
        assert_eq!(why, "http://s:3128 (from HTTPS_PROXY)");
    }

    #[test]
    fn a_probe_key_wins_and_none_goes_direct() {
        let mut policy = ProxyPolicy { env: env(&[("ALL_PROXY", "socks5://a:1080")]), ..ProxyPolicy::default() };
        policy.defaults = Some(Setting::parse("http://d:3128").unwrap());
        assert_eq!(policy.choose(Traffic::Other, "x", 1).unwrap().proxy.unwrap().0.host, "d");
        policy.probe = Some((Setting::parse("none").unwrap(), ProxySource::ProbeKey));
        let choice = policy.choose(Traffic::Other, "x", 1).unwrap();
        assert!(choice.proxy.is_none() && choice.why.contains("\"none\""), "{}", choice.why);
        let broken = ProxyPolicy { env: env(&[("HTTPS_PROXY", "ftp://x")]), ..ProxyPolicy::default() };
        assert!(broken.choose(Traffic::Https, "x", 1).unwrap_err().starts_with("HTTPS_PROXY: "));
    }
}
