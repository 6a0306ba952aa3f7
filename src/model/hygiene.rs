//! Credential hygiene the kinds share: what a probe says its credential should be (read
//! only, these scopes, at most this old), and the findings that compare the credential with
//! it. How each kind learns what its credential can do lives with the kind.

use std::future::Future;
use std::time::Duration;

use crate::model::advice::Advice;
use crate::model::expiry::{now_unix, rfc3339};
use crate::model::report::Finding;
use crate::model::signed_link::approx;
use crate::model::stages::StageLog;

/// A probe's hygiene keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HygieneSettings {
    /// `hygiene` (default true): the probe may ask what its credential can do (at most
    /// one more question where a kind knows how).
    pub enabled: bool,
    /// `expect_read_only`: the credential is meant to read only; what lets it write WARNs.
    pub expect_read_only: bool,
    /// `expect_scopes`: the OAuth2 scopes the credential needs; a token granted more WARNs.
    pub expect_scopes: Option<Vec<String>>,
    /// `max_age` (per probe or in `[defaults]`): a credential older than this WARNs, where
    /// its service says when it was made.
    pub max_age: Option<Duration>,
    /// The environment the probe's tags put it in (`[defaults] environments`), if any.
    pub environment: Option<String>,
}

impl Default for HygieneSettings {
    fn default() -> Self {
        HygieneSettings {
            enabled: true,
            expect_read_only: false,
            expect_scopes: None,
            max_age: None,
            environment: None,
        }
    }
}

/// How long hygiene's questions may still take once what they ride beside has answered.
pub const GRACE: Duration = Duration::from_secs(2);

/// Runs `check` and `questions` at once; the check decides. Questions not answered
/// [`GRACE`] after the check are given up (`None`): an endpoint a firewall drops must not
/// fail or slow a working check.
pub async fn beside<C: Future, Q: Future>(check: C, questions: Q) -> (C::Output, Option<Q::Output>) {
    let mut questions = std::pin::pin!(questions);
    let mut check = std::pin::pin!(check);
    let mut answered = None;
    let checked = loop {
        tokio::select! {
            checked = &mut check => break checked,
            done = &mut questions, if answered.is_none() => answered = Some(done),
        }
    };
    match answered {
        Some(done) => (checked, Some(done)),
        None => (checked, tokio::time::timeout(GRACE, questions).await.ok()),
    }
}

/// `max_age` as people write it: whole days when it is some.
fn whole_days(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        _ => approx(d),
    }
}

/// The scopes a token grants, from a token response's `scope` or a JWT's `scope` (a
/// space-separated string) or `scp` (a string or, as Entra ID and Okta write it, a list).
pub fn granted_scopes(response_scope: Option<&str>, token: &str) -> Option<Vec<String>> {
    if let Some(scope) = response_scope {
        return Some(split_scopes(scope));
    }
    let claims = crate::model::expiry::jwt_claims(token)?;
    let claim = claims.get("scope").or_else(|| claims.get("scp"))?;
    match claim {
        serde_json::Value::String(s) => Some(split_scopes(s)),
        serde_json::Value::Array(items) => Some(items.iter().filter_map(|v| v.as_str()).map(str::to_string).collect()),
        _ => None,
    }
}

fn split_scopes(scope: &str) -> Vec<String> {
    scope.split_whitespace().map(str::to_string).collect()
}

impl StageLog {
    /// Compares the scopes a token was granted with the probe's `expect_scopes`: scopes
    /// beyond them WARN (`oauth2_extra_scopes`), naming them (scope names are not secret).
    /// Without `expect_scopes`, the granted scopes are a `-v` line only.
    pub fn note_scopes(&self, what: &str, granted: Option<Vec<String>>) {
        let Some(granted) = granted else { return };
        self.detail(format!("hygiene: {what} grants the scopes `{}`", granted.join(" ")));
        let Some(expected) = &self.hygiene.expect_scopes else { return };
        if !self.hygiene.enabled {
            return;
        }
        let extra: Vec<&str> =
            granted.iter().filter(|s| !expected.iter().any(|e| e == *s)).map(String::as_str).collect();
        if extra.is_empty() {
            return;
        }
        let hint = format!(
            "{what} also grants `{}` beyond expect_scopes (`{}`): request only the scopes the probe needs (`scope = \"{}\"`), or narrow the client's allowed scopes at the authorization server",
            extra.join(" "),
            expected.join(" "),
            expected.join(" ")
        );
        self.add_finding(
            Finding { what: "oauth2_extra_scopes".into(), severity: "warning", hint: hint.clone() },
            Some(Advice::from(hint)),
        );
    }

    /// A credential's age where its service says when it was made (`created` in seconds
    /// since the epoch): a `-v` line, and a warning
    /// (`credential_too_old`) when it is older than the probe's `max_age`. `rotate` says how.
    pub fn note_age(&self, what: &str, created: i64, rotate: &str) {
        let age = (now_unix() - created).max(0) as u64;
        self.detail(format!(
            "credential: {what} was created {} ({} ago)",
            rfc3339(created),
            approx(Duration::from_secs(age))
        ));
        self.add_credential(crate::model::report::CredentialReport {
            what: what.to_string(),
            not_after: None,
            seconds_left: None,
            age_seconds: Some(age as i64),
            not_after_unix: None,
        });
        let Some(max_age) = self.hygiene.max_age else { return };
        if !self.hygiene.enabled || age <= max_age.as_secs() {
            return;
        }
        let hint = format!(
            "{what} is {} old ({}), beyond max_age {}: {rotate}",
            approx(Duration::from_secs(age)),
            rfc3339(created),
            whole_days(max_age)
        );
        self.add_finding(
            Finding { what: "credential_too_old".into(), severity: "warning", hint: hint.clone() },
            Some(Advice::from(hint)),
        );
    }

    /// Information about a credential that is worth knowing and not a fault (an identity
    /// that looks personal, the account root's own key is a warning instead).
    pub fn note_info(&self, what: &str, hint: String) {
        if self.hygiene.enabled {
            self.add_finding(Finding { what: what.into(), severity: "info", hint }, None);
        }
    }

    /// A warning finding with its hint as the warning line.
    pub fn note_warning(&self, what: &str, hint: String) {
        if self.hygiene.enabled {
            self.add_finding(
                Finding { what: what.into(), severity: "warning", hint: hint.clone() },
                Some(Advice::from(hint)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(claims: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", enc("{\"alg\":\"RS256\"}"), enc(claims), enc("sig"))
    }

    #[tokio::test]
    async fn questions_beside_a_check_are_kept_when_they_answer_and_given_up_when_not() {
        let (checked, asked) = beside(async { 1 }, async { 2 }).await;
        assert_eq!((checked, asked), (1, Some(2)));
        let started = std::time::Instant::now();
        let (checked, asked) = beside(async { 1 }, std::future::pending::<u8>()).await;
        assert_eq!((checked, asked), (1, None));
        assert!(started.elapsed() >= GRACE, "given up after the grace, not before");
    }

    #[test]
    fn scopes_come_from_the_response_else_the_token() {
        assert_eq!(granted_scopes(Some("a  b"), "opaque"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(granted_scopes(None, &jwt("{\"scope\":\"read write\"}")), Some(vec!["read".into(), "write".into()]));
        assert_eq!(granted_scopes(None, &jwt("{\"scp\":[\"Files.Read\"]}")), Some(vec!["Files.Read".into()]));
        assert_eq!(granted_scopes(None, &jwt("{\"sub\":\"x\"}")), None);
        assert_eq!(granted_scopes(None, "opaque"), None);
    }

    fn log_with(settings: HygieneSettings) -> StageLog {
        let mut log = StageLog::new(14, Duration::from_secs(5));
        log.hygiene = std::sync::Arc::new(settings);
        log
    }

    #[test]
    fn scopes_beyond_the_expected_warn_and_name_them() {
        let log = log_with(HygieneSettings { expect_scopes: Some(vec!["read".into()]), ..Default::default() });
        log.note_scopes("the OAuth2 access token", Some(vec!["read".into(), "admin".into()]));
        let report = log.finish(&[]);
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].what, "oauth2_extra_scopes");
        assert!(report.warnings[0].to_string().contains("also grants `admin`"), "{:?}", report.warnings);

        let within = log_with(HygieneSettings { expect_scopes: Some(vec!["read".into()]), ..Default::default() });
        within.note_scopes("t", Some(vec!["read".into()]));
        let unset = log_with(HygieneSettings::default());
        unset.note_scopes("t", Some(vec!["admin".into()]));
        assert!(within.finish(&[]).findings.is_empty());
        assert!(unset.finish(&[]).findings.is_empty());
    }

    #[test]
    fn age_beyond_max_age_warns_and_unknown_age_says_nothing() {
        let day = 86_400;
        let log = log_with(HygieneSettings { max_age: Some(Duration::from_secs(90 * day)), ..Default::default() });
        log.note_age("the access key …WXYZ", now_unix() - 100 * day as i64, "rotate it");
        let report = log.finish(&[]);
        assert_eq!(report.findings[0].what, "credential_too_old");
        assert!(report.warnings[0].to_string().contains("beyond max_age 90 days"), "{:?}", report.warnings);

        let young = log_with(HygieneSettings { max_age: Some(Duration::from_secs(90 * day)), ..Default::default() });
        young.note_age("k", now_unix() - 10 * day as i64, "rotate it");
        let off =
            log_with(HygieneSettings { enabled: false, max_age: Some(Duration::from_secs(day)), ..Default::default() });
        off.note_age("k", now_unix() - 10 * day as i64, "rotate it");
        assert!(young.finish(&[]).findings.is_empty());
        assert!(off.finish(&[]).findings.is_empty());
    }
}
