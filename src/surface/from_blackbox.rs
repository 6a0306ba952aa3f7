//! `authprobe from-blackbox blackbox.yml`: a blackbox exporter's modules as probes.toml, so
//! that its users move over in one command. http modules become http probes (method,
//! headers, body, expected statuses, a literal body match, basic/bearer/OAuth2 credentials,
//! TLS, proxy, timeout); credentials become `${ENV}` references or `${file:…}` references to
//! the files blackbox read, never copied. Every option not converted is listed as a warning.

use std::fmt::Write;
use std::path::Path;

use toml::{Table, Value};

use crate::output;
use crate::surface::execute::{EXIT_OK, EXIT_USAGE, eprint_line};
use yaml_rust2::{Yaml, YamlLoader};

#[derive(clap::Args, Debug)]
pub struct FromBlackboxArgs {
    /// The blackbox exporter's config file.
    #[arg(value_name = "BLACKBOX_YML")]
    pub file: std::path::PathBuf,
    /// A target a module is scraped with, as MODULE=TARGET (repeatable): the module's probe
    /// gets the first as its url and all of them as allowed_targets.
    #[arg(long = "target", value_name = "MODULE=TARGET")]
    pub targets: Vec<String>,
}

/// The `from-blackbox` command: the config on stdout, warnings on stderr; exit 0, or 2 when
/// the file cannot be read or is no blackbox config.
pub fn command(args: &FromBlackboxArgs) -> u8 {
    let mut targets = Vec::new();
    for pair in &args.targets {
        match pair.split_once('=') {
            Some((module, target)) if !module.is_empty() && !target.is_empty() => {
                targets.push((module.to_string(), target.to_string()))
            }
            _ => {
                eprint_line(&format!("error: --target {pair}: write MODULE=TARGET"));
                return EXIT_USAGE;
            }
        }
    }
    let text = match crate::config::secrets::read_text_capped(&args.file, crate::config::secrets::DATA_FILE_CAP) {
        Ok(text) => text,
        Err(err) => {
            eprint_line(&format!("error: {}: {err}", args.file.display()));
            return EXIT_USAGE;
        }
    };
    match convert(&args.file, &text, &targets) {
        Ok(converted) => {
            for warning in &converted.warnings {
                eprint_line(&format!("warning: {warning}"));
            }
            eprint_line(&format!(
                "converted {} module{}; {} option{} not converted (above); check with `authprobe validate`",
                converted.modules,
                if converted.modules == 1 { "" } else { "s" },
                converted.warnings.len(),
                if converted.warnings.len() == 1 { "" } else { "s" }
            ));
            let _ = output::write_stdout(&converted.toml);
            EXIT_OK
        }
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            EXIT_USAGE
        }
    }
}

/// The most nodes a blackbox.yml may expand to, aliases included. yaml-rust2 copies an
/// alias's subtree for every use, so nine levels of ten aliases in 1 KB would take
/// gigabytes; the count is made on the parser's events first, without building anything.
const YAML_NODE_BUDGET: u64 = 100_000;

/// How many nodes `text` stands for once every alias is expanded.
fn expanded_nodes(text: &str) -> Result<u64, yaml_rust2::ScanError> {
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    use yaml_rust2::scanner::Marker;

    #[derive(Default)]
    struct Counter {
        /// Open sequences and mappings: their anchor and the nodes inside so far.
        open: Vec<(usize, u64)>,
        /// Expanded size of each anchored node.
        anchored: std::collections::HashMap<usize, u64>,
        total: u64,
    }
    impl Counter {
        fn add(&mut self, nodes: u64) {
            match self.open.last_mut() {
                Some((_, inside)) => *inside = inside.saturating_add(nodes),
                None => self.total = self.total.saturating_add(nodes),
            }
        }
    }
    impl MarkedEventReceiver for Counter {
        fn on_event(&mut self, event: Event, _mark: Marker) {
            match event {
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => self.open.push((anchor, 1)),
                Event::SequenceEnd | Event::MappingEnd => {
                    if let Some((anchor, nodes)) = self.open.pop() {
                        if anchor > 0 {
                            self.anchored.insert(anchor, nodes);
                        }
                        self.add(nodes);
                    }
                }
                Event::Scalar(_, _, anchor, _) => {
                    if anchor > 0 {
                        self.anchored.insert(anchor, 1);
                    }
                    self.add(1);
                }
                Event::Alias(anchor) => {
                    let nodes = self.anchored.get(&anchor).copied().unwrap_or(1);
                    self.add(nodes);
                }
                _ => {}
            }
        }
    }
    let mut counter = Counter::default();
    Parser::new_from_str(text).load(&mut counter, true)?;
    Ok(counter.total)
}

/// What the conversion made: the config text, the warnings, and the variables it needs.
pub struct Converted {
    pub toml: String,
    pub warnings: Vec<String>,
    pub modules: usize,
}

/// `targets`: `MODULE=TARGET` pairs; a module's first target becomes its probe's URL, all of
/// them its `allowed_targets` (for serve's `?module=…&target=…`).
pub fn convert(path: &Path, text: &str, targets: &[(String, String)]) -> Result<Converted, String> {
    let expanded = expanded_nodes(text).map_err(|e| format!("{}: not valid YAML: {e}", path.display()))?;
    if expanded > YAML_NODE_BUDGET {
        return Err(format!(
            "{}: its aliases expand to more than {YAML_NODE_BUDGET} nodes (a \"billion laughs\" file?); a blackbox.yml has a few hundred: refusing it",
            path.display()
        ));
    }
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("{}: not valid YAML: {e}", path.display()))?;
    let Some(root) = docs.first() else {
        return Err(format!("{}: empty", path.display()));
    };
    let Some(modules) = root["modules"].as_hash() else {
        return Err(format!("{}: no `modules:` map (is this a blackbox exporter config?)", path.display()));
    };
    let mut out = Converted { toml: String::new(), warnings: Vec::new(), modules: 0 };
    let _ = writeln!(
        out.toml,
        "# Converted by `authprobe from-blackbox {}`: one probe per module. With serve, scrape\n# /probe?module=NAME&target=TARGET as with blackbox; `allowed_targets` lists the targets a\n# module may be aimed at (the ones given with --target).\n",
        path.display()
    );
    for (name, module) in modules {
        let Some(name) = name.as_str() else { continue };
        let mut warn = |what: String| out.warnings.push(format!("module {name}: {what}"));
        let prober = module["prober"].as_str().unwrap_or("");
        if prober != "http" {
            warn(format!(
                "prober `{prober}` not converted: authprobe probes protocols, not bare TCP/TLS, ICMP, DNS or gRPC; probe the service behind the port with its own kind (http for HTTPS, postgres, mysql, mssql, sftp…)"
            ));
            continue;
        }
        let mine: Vec<&String> = targets.iter().filter(|(m, _)| m == name).map(|(_, t)| t).collect();
        let mut needs = Vec::new();
        let probe = http_module(name, module, &mine, &mut warn, &mut needs);
        let mut doc = Table::new();
        doc.insert("probe".into(), Value::Array(vec![Value::Table(probe)]));
        let rendered = toml::to_string(&doc).map_err(|e| format!("module {name}: {e}"))?;
        for (variable, was) in &needs {
            let _ = writeln!(out.toml, "# needs {variable}: {was} of module {name} (set it in the environment)");
        }
        out.toml.push_str(&rendered);
        out.toml.push('\n');
        out.modules += 1;
    }
    Ok(out)
}

/// The environment variable a module's secret moves to: BLACKBOX_MODULE_WHAT.
fn variable(module: &str, what: &str) -> String {
    format!("BLACKBOX_{module}_{what}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect()
}

/// A secret as a reference: the file blackbox read (`file_key`), else a variable for the
/// value it had inline (never copied).
fn secret(
    module: &str,
    table: &Yaml,
    key: &str,
    file_key: &str,
    what: &str,
    needs: &mut Vec<(String, String)>,
) -> Option<String> {
    if let Some(file) = table[file_key].as_str() {
        return Some(format!("${{file:{file}}}"));
    }
    table[key].as_str()?;
    Some(reference(module, what, key.to_string(), needs))
}

/// `${BLACKBOX_MODULE_WHAT}`, recorded with what it replaces (`was`) for the `# needs` lines.
fn reference(module: &str, what: &str, was: String, needs: &mut Vec<(String, String)>) -> String {
    let name = variable(module, what);
    let text = format!("${{{name}}}");
    needs.push((name, was));
    text
}

/// As [`secret`], for a secret authprobe cannot do without: absent from blackbox.yml, it is
/// still named, as a variable to set.
fn required_secret(
    module: &str,
    table: &Yaml,
    key: &str,
    file_key: &str,
    what: &str,
    needs: &mut Vec<(String, String)>,
) -> String {
    secret(module, table, key, file_key, what, needs)
        .unwrap_or_else(|| reference(module, what, format!("{key} (absent in the file)"), needs))
}

/// A regular expression that only matches itself, as text.
fn literal(pattern: &str) -> Option<&str> {
    (!pattern.is_empty() && !pattern.contains(['\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '^', '$']))
        .then_some(pattern)
}

const CONVERTED: &[&str] = &[
    "valid_status_codes",
    "method",
    "headers",
    "body",
    "basic_auth",
    "bearer_token",
    "bearer_token_file",
    "authorization",
    "oauth2",
    "proxy_url",
    "tls_config",
    "fail_if_body_not_matches_regexp",
    "no_follow_redirects",
    "follow_redirects",
];

fn http_module(
    name: &str,
    module: &Yaml,
    targets: &[&String],
    warn: &mut dyn FnMut(String),
    needs: &mut Vec<(String, String)>,
) -> Table {
    let http = &module["http"];
    let mut probe = Table::new();
    probe.insert("name".into(), name.into());
    probe.insert("kind".into(), "http".into());
    match targets.first() {
        Some(target) => {
            probe.insert("url".into(), target.as_str().into());
            let allowed = targets.iter().map(|t| Value::String(t.to_string())).collect();
            probe.insert("allowed_targets".into(), Value::Array(allowed));
        }
        None => {
            probe.insert("url".into(), "https://replace-me.invalid/".into());
            warn("no --target given: set `url` (and `allowed_targets` for serve's module=… scrapes)".into());
        }
    }
    if let Some(timeout) = module["timeout"].as_str() {
        probe.insert("timeout".into(), timeout.into());
    }
    if let Some(method) = http["method"].as_str() {
        probe.insert("method".into(), method.into());
    }
    if let Some(headers) = http["headers"].as_hash() {
        let mut table = Table::new();
        for (key, value) in headers {
            let (Some(key), Some(_)) = (key.as_str(), value.as_str()) else { continue };
            // Header values can be credentials (API keys, cookies): all move to variables.
            table.insert(key.into(), reference(name, &format!("header_{key}"), format!("headers.{key}"), needs).into());
        }
        probe.insert("headers".into(), Value::Table(table));
    }
    if http["body"].as_str().is_some() {
        probe.insert("body".into(), reference(name, "body", "body".into(), needs).into());
    }
    let mut expect = Table::new();
    if let Some(codes) = http["valid_status_codes"].as_vec() {
        let codes: Vec<Value> = codes.iter().filter_map(|c| c.as_i64()).map(Value::Integer).collect();
        if !codes.is_empty() {
            expect.insert("status".into(), Value::Array(codes));
        }
    }
    if let Some(patterns) = http["fail_if_body_not_matches_regexp"].as_vec() {
        let texts: Vec<&str> = patterns.iter().filter_map(|p| p.as_str()).collect();
        match texts.as_slice() {
            [one] if literal(one).is_some() => {
                expect.insert("body_contains".into(), (*one).into());
            }
            _ => warn("fail_if_body_not_matches_regexp: only one literal pattern converts (expect.body_contains); check the others by hand".into()),
        }
    }
    if !expect.is_empty() {
        probe.insert("expect".into(), Value::Table(expect));
    }
    if let Some(auth) = http_auth(name, http, warn, needs) {
        probe.insert("auth".into(), Value::Table(auth));
    }
    if let Some(proxy) = http["proxy_url"].as_str() {
        probe.insert("proxy".into(), proxy.into());
    }
    if let Some(tls) = tls_config(&http["tls_config"], warn) {
        probe.insert("tls".into(), Value::Table(tls));
    }
    let follows = http["follow_redirects"].as_bool().unwrap_or(!http["no_follow_redirects"].as_bool().unwrap_or(false));
    if follows {
        warn("redirects: blackbox follows them, authprobe does not (a 3xx fails naming the location): set the target to the final URL".into());
    }
    if let Some(options) = http.as_hash() {
        for key in options.keys().filter_map(|k| k.as_str()) {
            if !CONVERTED.contains(&key) {
                warn(format!("http.{key} is not converted (authprobe has no equivalent; see docs/serve.md)"));
            }
        }
    }
    if let Some(options) = module.as_hash() {
        for key in options.keys().filter_map(|k| k.as_str()) {
            if !["prober", "timeout", "http"].contains(&key) {
                warn(format!("{key} is not converted"));
            }
        }
    }
    probe
}

fn http_auth(
    name: &str,
    http: &Yaml,
    warn: &mut dyn FnMut(String),
    needs: &mut Vec<(String, String)>,
) -> Option<Table> {
    let mut auth = Table::new();
    let basic = &http["basic_auth"];
    if !basic.is_badvalue() {
        auth.insert("type".into(), "basic".into());
        auth.insert("username".into(), basic["username"].as_str().unwrap_or_default().into());
        let password = required_secret(name, basic, "password", "password_file", "password", needs);
        auth.insert("password".into(), password.into());
        return Some(auth);
    }
    let authorization = &http["authorization"];
    let token = if !authorization.is_badvalue() {
        if authorization["type"].as_str().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            warn("authorization.type other than Bearer is not converted".into());
            return None;
        }
        secret(name, authorization, "credentials", "credentials_file", "token", needs)
    } else {
        secret(name, http, "bearer_token", "bearer_token_file", "token", needs)
    };
    if let Some(token) = token {
        auth.insert("type".into(), "bearer".into());
        auth.insert("token".into(), token.into());
        return Some(auth);
    }
    let oauth2 = &http["oauth2"];
    if oauth2.is_badvalue() {
        return None;
    }
    auth.insert("type".into(), "oauth2_client_credentials".into());
    auth.insert("token_url".into(), oauth2["token_url"].as_str().unwrap_or_default().into());
    auth.insert("client_id".into(), oauth2["client_id"].as_str().unwrap_or_default().into());
    let client_secret = required_secret(name, oauth2, "client_secret", "client_secret_file", "client_secret", needs);
    auth.insert("client_secret".into(), client_secret.into());
    if let Some(scopes) = oauth2["scopes"].as_vec() {
        let scopes: Vec<&str> = scopes.iter().filter_map(|s| s.as_str()).collect();
        auth.insert("scope".into(), scopes.join(" ").into());
    }
    if !oauth2["endpoint_params"].is_badvalue() {
        warn("oauth2.endpoint_params is not converted".into());
    }
    Some(auth)
}

fn tls_config(tls: &Yaml, warn: &mut dyn FnMut(String)) -> Option<Table> {
    let options = tls.as_hash()?;
    let mut out = Table::new();
    for (key, value) in options {
        let Some(key) = key.as_str() else { continue };
        let mine = match key {
            "ca_file" => "ca",
            "cert_file" => "client_cert",
            "key_file" => "client_key",
            "server_name" => "server_name",
            "insecure_skip_verify" => {
                if value.as_bool() == Some(true) {
                    out.insert("insecure".into(), true.into());
                    warn("tls_config.insecure_skip_verify: converted, but prefer tls.ca or a pin (tls.pin_sha256) of the certificate; the probe's credentials go to an unverified server only with allow_unverified_password = true".into());
                }
                continue;
            }
            other => {
                warn(format!("tls_config.{other} is not converted"));
                continue;
            }
        };
        if let Some(text) = value.as_str() {
            out.insert(mine.into(), text.into());
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn alias_expansion_is_counted_without_building_it() {
        assert_eq!(super::expanded_nodes("a: &x [1, 2]\nb: *x").unwrap(), 9);
        let mut bomb = String::from("a: &a [1,1,1,1,1,1,1,1,1]\n");
        for level in 1..9u8 {
            let (name, prev) = ((b'a' + level) as char, (b'a' + level - 1) as char);
            bomb.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 9].join(",")));
        }
        assert!(super::expanded_nodes(&bomb).unwrap() > 100_000_000);
    }
}
