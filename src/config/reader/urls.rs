//! URL values: what in a URL is a secret, and what is its address.

use super::TableReader;

impl<'r, 's> TableReader<'r, 's> {
    /// A URL. What is secret in it is masked, not the whole: its userinfo password and its
    /// credential-bearing query values (API keys, signed links' signatures) wherever they
    /// came from; a reference that lies wholly in the path or query (`…/hooks/${HOOK_ID}`)
    /// is a secret too. A reference that gives the scheme and host (`${API_BASE}/health`,
    /// a whole URL in a variable) is an address: the rest of it stays readable, and it does
    /// not mask other probes' targets. `url_is_secret` on the probe masks the whole.
    pub fn url(&self, key: &'static str) -> Option<url::Url> {
        self.url_masked(key, false)
    }

    /// [`TableReader::url`], with the whole URL registered as a secret when `whole_is_secret`
    /// (a webhook whose path is its key).
    pub fn url_masked(&self, key: &'static str, whole_is_secret: bool) -> Option<url::Url> {
        let (value, raw) = self.raw_str(key)?;
        let mut expanded = self.expand(key, value, raw)?;
        // A URL that begins with a store's value (`url = "${vault:secret/hooks#url}"`) is
        // checked when the value is fetched; until then it stands for an https address.
        if let Some(rest) = expanded.value.strip_prefix(crate::config::secrets::STORE_PLACEHOLDER) {
            expanded.value = format!("https://{}.invalid{rest}", crate::config::secrets::STORE_PLACEHOLDER);
        }
        let parsed = match url::Url::parse(&expanded.value) {
            Ok(u) => u,
            Err(err) => {
                self.ctx.error(value.span(), Some(self.key_path(key)), format!("not a valid URL: {err}"));
                return None;
            }
        };
        if whole_is_secret {
            // And its path alone, as request lines and logs show it.
            crate::model::redact::register(&expanded.value);
            crate::model::redact::register(&parsed[url::Position::BeforePath..]);
        }
        let authority_end = parsed.as_str().len() - parsed[url::Position::BeforePath..].len();
        for reference in &expanded.referenced {
            // Where the reference landed in the URL: at the start it carries the address.
            let addressing = expanded.value.starts_with(reference.as_str())
                || parsed.host_str().is_some_and(|h| h.contains(reference.as_str()))
                || parsed.port().is_some_and(|p| p.to_string() == *reference)
                || expanded.value.find(reference.as_str()).is_some_and(|at| at < authority_end);
            if !addressing {
                crate::model::redact::register(reference);
            }
        }
        crate::model::signed_link::register_query_secrets(&parsed);
        if let Some(password) = parsed.password() {
            crate::model::redact::register(password);
            self.ctx.note_secret(&super::secret_identity(raw.raw(), password), value.span(), self.key_path(key));
            if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
                crate::model::redact::register(&decoded);
            }
        }
        Some(parsed)
    }

    pub fn required_url(&self, key: &'static str, what: &str) -> Option<url::Url> {
        self.required_url_masked(key, what, false)
    }

    /// [`TableReader::required_url`] that may be a secret whole (see [`TableReader::url_masked`]).
    pub fn required_url_masked(&self, key: &'static str, what: &str, whole_is_secret: bool) -> Option<url::Url> {
        if self.table.get(key).is_none() {
            self.asked.borrow_mut().push(key);
            self.missing(key, what);
            return None;
        }
        self.url_masked(key, whole_is_secret)
    }
}
