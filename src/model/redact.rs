//! The last line of defence against leaking secrets: every secret the config resolves
//! (and every token a probe obtains at run time) is registered here, and every string that
//! leaves the process — report fields, stderr lines, panic messages — is scrubbed.
//!
//! Messages are written not to contain secrets in the first place; this catches what a
//! driver or a server echoes back (connection strings, URLs with userinfo, error bodies).
//! The registry is process-global on purpose: a panic hook or a log line deep inside a
//! driver callback must be able to scrub without threading a handle through every call.
//! It holds only what the config (and authprobe's own derivations of it) put there: what a
//! server issues at run time (access tokens, STS keys) is registered with that probe's
//! context instead ([`Scrubber`]), so that no server can choose what the others mask.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::model::release::Release;

/// What replaces a secret in output.
pub const MASK: &str = "********";

/// Secrets shorter than this are not scrubbed from free text: masking every "ab" would
/// mangle output without protecting anything worth the name. Messages never include
/// credential values by construction, so this only limits the safety net.
pub const MIN_SCRUB_LEN: usize = 4;

/// The registered secrets and a matcher over them, rebuilt lazily after registrations:
/// configs with thousands of credentials must neither register nor scrub in quadratic time.
/// A registration only queues the value (`pending`); its encoded forms are worked out when
/// a matcher is next needed, so reading a config (`validate`) does not pay for forms that
/// nothing scrubs with.
struct Registry {
    secrets: Option<HashSet<String>>,
    pending: Vec<String>,
    matcher: Option<Arc<AhoCorasick>>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry { secrets: None, pending: Vec::new(), matcher: None });

fn write_registry() -> std::sync::RwLockWriteGuard<'static, Registry> {
    match REGISTRY.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A secret value: its Debug form never shows the value, and it has no Display.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value and registers it (and its encoded forms) for scrubbing.
    pub fn new(value: String) -> Self {
        register(&value);
        Secret(value)
    }

    /// Wraps a value a server issued at run time, without registering it process-wide:
    /// the caller registers it with its probe (`ProbeContext::register_secret`).
    pub fn issued(value: String) -> Self {
        Secret(value)
    }

    /// The value, to send in recoverable form (as it is, or reversibly encoded) to the
    /// peer the proof is for: the credential release rule ([`Release`]).
    pub fn release(&self, _proof: &Release) -> &str {
        &self.0
    }

    /// The value, to compute from it something that proves it is held without revealing
    /// it: a signature (SigV4, a shared key, HMAC), a challenge's answer (SCRAM, MD5, the
    /// MySQL scrambles), a Kerberos key, a seal to a key the probe pins. Never sent as it is.
    pub fn for_proof(&self) -> &str {
        &self.0
    }

    /// The value, read by authprobe itself and never sent: a token's own claims, a
    /// comparison, the passphrase of a local key file, serve's own keys.
    pub fn read_here(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// Registers a secret and the forms it commonly takes on the wire: percent-encoded (URLs,
/// form bodies) and base64 (basic auth and friends).
pub fn register(value: &str) {
    if value.len() < MIN_SCRUB_LEN {
        return;
    }
    let mut registry = write_registry();
    if registry.secrets.as_ref().is_some_and(|s| s.contains(value)) {
        return;
    }
    registry.pending.push(value.to_string());
    registry.matcher = None;
}

impl Registry {
    /// Adds the queued values' forms to the set of secrets.
    fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let secrets = self.secrets.get_or_insert_with(HashSet::new);
        secrets.reserve(pending.len() * 3);
        for value in pending {
            secrets.extend(forms(&value));
        }
    }
}

/// The matcher over all registered secrets, built on first use after a change.
fn matcher() -> Option<Arc<AhoCorasick>> {
    {
        let registry = match REGISTRY.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if registry.secrets.as_ref().is_none_or(|s| s.is_empty()) && registry.pending.is_empty() {
            return None;
        }
        if let Some(m) = &registry.matcher {
            return Some(m.clone());
        }
    }
    let mut registry = write_registry();
    if let Some(m) = &registry.matcher {
        return Some(m.clone());
    }
    registry.settle();
    let patterns: Vec<&String> = registry.secrets.iter().flatten().collect();
    let built = build_matcher(patterns).map(Arc::new);
    registry.matcher = built.clone();
    built
}

/// A secret and the forms it takes on the wire, each long enough to be scrubbed. Percent
/// encoding is matched whatever the case of its hex digits (the matchers ignore ASCII case).
pub fn forms(value: &str) -> Vec<String> {
    if value.len() < MIN_SCRUB_LEN {
        return Vec::new();
    }
    let mut forms = vec![value.to_string()];
    forms.push(utf8_percent_encode(value, NON_ALPHANUMERIC).to_string());
    forms.push(form_urlencoded_byte_serialize(value));
    forms.push(base64::engine::general_purpose::STANDARD.encode(value));
    forms.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value));
    forms.retain(|f| f.len() >= MIN_SCRUB_LEN);
    forms
}

fn build_matcher<I, P>(patterns: I) -> Option<AhoCorasick>
where
    I: IntoIterator<Item = P>,
    P: AsRef<[u8]>,
{
    // Leftmost-longest: a secret that contains another is masked whole. ASCII case is
    // ignored so that `%2d` is caught like `%2D`; masking a case variant of a secret
    // costs nothing. A contiguous NFA: a DFA over long secrets (PEM keys, JWT assertions)
    // takes megabytes and tenths of a second to build.
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .ascii_case_insensitive(true)
        .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
        .build(patterns)
        .ok()
}

fn replace_matches(matcher: &AhoCorasick, text: &str) -> Option<String> {
    if !matcher.is_match(text) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    matcher.replace_all_with(text, &mut out, |_, _, dst| {
        dst.push_str(MASK);
        true
    });
    Some(out)
}

/// The registry plus one probe's own run-time secrets (tokens its servers issued).
pub struct Scrubber {
    local: Option<AhoCorasick>,
}

impl Scrubber {
    pub fn new(local: &[String]) -> Scrubber {
        Scrubber { local: if local.is_empty() { None } else { build_matcher(local) } }
    }

    pub fn scrub(&self, text: &str) -> String {
        let global = scrub(text);
        match &self.local {
            Some(m) => replace_matches(m, &global).unwrap_or(global),
            None => global,
        }
    }

    pub fn scrub_in_place(&self, text: &mut String) {
        let clean = self.scrub(text);
        if clean != *text {
            *text = clean;
        }
    }

    /// A server's text for a message: on one line, scrubbed, then capped at `max`
    /// characters (in that order, so that a secret cut in two cannot survive in part).
    pub fn excerpt(&self, text: &str, max: usize) -> String {
        cap(&self.scrub(&one_line(text)), max)
    }
}

/// At most `max` characters of `text`; a cut is marked. Scrub before capping, or a
/// secret cut in two would survive in part.
pub fn cap(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} more bytes not shown)", &text[..at], text.len() - at),
    }
}

/// How much of one server text (an error message) goes into a failure message: enough
/// for any real server's words, with room left for what authprobe says around it.
pub const SERVER_TEXT_MAX: usize = 500;

/// [`Scrubber::excerpt`] with the registry alone. Probes with run-time secrets use
/// `ProbeContext::server_text`, which also scrubs those.
pub fn excerpt(text: &str, max: usize) -> String {
    Scrubber::new(&[]).excerpt(text, max)
}

/// Control characters (newlines, escapes a terminal would obey) as spaces.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Caps a string in place (see [`cap`]).
pub fn cap_in_place(text: &mut String, max: usize) {
    if text.len() > max {
        let capped = cap(text, max);
        if capped.len() < text.len() {
            *text = capped;
        }
    }
}

fn form_urlencoded_byte_serialize(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Registers `user:password` in base64, the way HTTP basic auth carries it.
pub fn register_basic_auth(user: &str, password: &str) {
    let pair = format!("{user}:{password}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
    register(&encoded);
}

/// Replaces every registered secret (in any registered form) in `text`.
pub fn scrub(text: &str) -> String {
    matcher().and_then(|m| replace_matches(&m, text)).unwrap_or_else(|| text.to_string())
}

/// A secret at least this long is masked anywhere, even in authprobe's own wording: no
/// ordinary word is that long by chance.
pub const ANYWHERE_LEN: usize = 8;

/// The last pass over a whole page or body ([`scrub`] was applied to every report field
/// where a secret can land): masks registered secrets of at least [`ANYWHERE_LEN`] bytes
/// wherever they appear, and leaves shorter ones, which would mask ordinary words of hints
/// ("wrong") or a user name equal to its password.
pub fn scrub_defensively(text: &str) -> String {
    let Some(matcher) = matcher() else { return text.to_string() };
    if !matcher.is_match(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    matcher.replace_all_with(text, &mut out, |found, matched, dst| {
        dst.push_str(if found.len() >= ANYWHERE_LEN { MASK } else { matched });
        true
    });
    out
}

/// Scrubs a string in place.
pub fn scrub_in_place(text: &mut String) {
    let clean = scrub(text);
    if clean != *text {
        *text = clean;
    }
}

/// An endpoint kept as text (s3, gcs, azure_blob), for a target: as [`url_for_display`]
/// (no userinfo, secret query values masked); targets are not scrubbed as a whole.
pub fn endpoint_for_display(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(url) => url_for_display(&url).trim_end_matches('/').to_string(),
        Err(_) => scrub(endpoint),
    }
}

/// Removes the password (and user) from a URL's userinfo, for display.
pub fn url_for_display(url: &url::Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() || shown.password().is_some() {
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
    }
    scrub(shown.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_plain_encoded_and_base64_forms() {
        register("canary-Zq9/+x&y");
        let text = "a canary-Zq9/+x&y b canary%2DZq9%2F%2Bx%26y c Y2FuYXJ5LVpxOS8reCZ5";
        let clean = scrub(text);
        assert!(!clean.contains("canary"), "{clean}");
        assert!(!clean.contains("Y2FuYXJ5"), "{clean}");
    }

    #[test]
    fn lowercase_percent_encoding_is_scrubbed() {
        register("canary-lower/case");
        let clean = scrub("x canary%2dlower%2fcase y canary%2Dlower%2fcase");
        assert!(!clean.contains("canary"), "{clean}");
    }

    #[test]
    fn a_probe_scrubber_masks_its_own_tokens_only_where_asked() {
        let own = Scrubber::new(&forms("issued-token-7f3a"));
        assert_eq!(own.scrub("said issued-token-7f3a"), format!("said {MASK}"));
        assert_eq!(scrub("said issued-token-7f3a"), "said issued-token-7f3a", "not process-wide");
    }

    #[test]
    fn caps_cut_on_character_boundaries() {
        assert_eq!(cap("héllo", 10), "héllo");
        let capped = cap("héllo wörld", 3);
        assert!(capped.starts_with("hél…"), "{capped}");
        assert!(capped.contains("more bytes"), "{capped}");
    }

    #[test]
    fn the_defensive_pass_masks_long_secrets_only() {
        register("longer-secret-9f2");
        register("wrong");
        assert_eq!(scrub_defensively("a longer-secret-9f2 is wrong"), format!("a {MASK} is wrong"));
    }

    #[test]
    fn short_values_are_not_scrubbed_from_free_text() {
        register("ab");
        assert_eq!(scrub("tab cab"), "tab cab");
    }

    #[test]
    fn secret_debug_hides_the_value() {
        let secret = Secret::new("hunter2-debug".into());
        assert_eq!(format!("{secret:?}"), "Secret(********)");
    }

    #[test]
    fn endpoints_show_without_userinfo_or_secret_query_values() {
        register("endpoint-sig-77c1");
        assert_eq!(endpoint_for_display("https://u:pw@blob.local:1000"), "https://blob.local:1000");
        let shown = endpoint_for_display("https://blob.local/?sig=endpoint-sig-77c1");
        assert!(!shown.contains("endpoint-sig-77c1"), "{shown}");
    }

    #[test]
    fn userinfo_is_removed_from_displayed_urls() {
        let url = url::Url::parse("https://bob:pw@example.com/x").unwrap();
        assert_eq!(url_for_display(&url), "https://example.com/x");
    }
}
