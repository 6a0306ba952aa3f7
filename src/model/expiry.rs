//! Credentials that carry their own end: read from the credential itself (a JWT's `exp`,
//! `nbf` and `iat`, read without verifying its signature; a client certificate's validity),
//! recorded in the report's credential list, warned about before they end, and refused
//! once they have ended (the server would refuse them; sending one says nothing new).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::report::CredentialReport;
use crate::model::signed_link::approx;
use crate::model::stages::StageLog;

/// A JWT payload is small; anything larger is not read.
const PAYLOAD_MAX: usize = 16 * 1024;

/// Servers allow a few minutes of clock skew on `nbf`; so does the refusal.
const NBF_SKEW_SECS: i64 = 5 * 60;

/// What a JWT says of its own lifetime (seconds since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JwtTimes {
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
}

/// The claims of a JWS compact token (`header.payload.signature`), read without verifying
/// the signature; `None` for anything else (an opaque token, an encrypted JWE, a payload
/// that is not a JSON object).
pub fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.trim().split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > PAYLOAD_MAX {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// The times of a JWT; `None` when it is not one or says none.
pub fn jwt_times(token: &str) -> Option<JwtTimes> {
    let claims = jwt_claims(token)?;
    let time = |name: &str| claims.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    let times = JwtTimes { exp: time("exp"), nbf: time("nbf"), iat: time("iat") };
    (times != JwtTimes::default()).then_some(times)
}

pub fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

pub fn rfc3339(unix: i64) -> String {
    let at = if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(at).to_string()
}

/// How a credential's life stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Valid,
    /// Ended this long ago.
    Expired(Duration),
    /// Begins this long from now (beyond the clock skew servers allow).
    NotYet(Duration),
}

impl StageLog {
    /// Records `what`'s end (`not_after`) in the report's credential list and as a `-v`
    /// line, and warns when it ends within the probe's warning window and within the last
    /// quarter of its life (`issued` when known), so that a token meant to live an hour does
    /// not warn all hour. Says whether it is usable now; the caller refuses if not.
    pub fn note_expiry(&self, what: &str, not_after: i64, issued: Option<i64>, not_before: Option<i64>) -> Standing {
        let now = now_unix();
        self.add_credential(CredentialReport {
            what: what.to_string(),
            not_after: Some(rfc3339(not_after)),
            seconds_left: Some(not_after - now),
            age_seconds: issued.filter(|i| *i <= now).map(|i| now - i),
            not_after_unix: Some(not_after),
        });
        if not_after <= now {
            return Standing::Expired(Duration::from_secs((now - not_after) as u64));
        }
        if let Some(from) = not_before
            && from > now + NBF_SKEW_SECS
        {
            return Standing::NotYet(Duration::from_secs((from - now) as u64));
        }
        let left = (not_after - now) as u64;
        self.detail(format!(
            "credential: {what} expires {} (in {})",
            rfc3339(not_after),
            approx(Duration::from_secs(left))
        ));
        let window = u64::from(self.warn_expiry_days) * 86_400;
        let last_quarter = issued.filter(|i| *i < not_after).map_or(u64::MAX, |i| ((not_after - i) / 4) as u64);
        if left < window.min(last_quarter) {
            self.warn(format!(
                "{what} expires in {} ({}): renew it before then",
                approx(Duration::from_secs(left)),
                rfc3339(not_after)
            ));
        }
        Standing::Valid
    }
}

/// A token's own times, when it is a JWT: recorded, warned about, and an expired or
/// not-yet-valid token refused before it is sent (its server would refuse it; the message
/// says when it ended instead of a bare 401). An opaque token says nothing.
pub fn check_jwt(log: &StageLog, what: &str, token: &str) -> Result<(), Failure> {
    let Some(JwtTimes { exp: Some(exp), nbf, iat }) = jwt_times(token) else { return Ok(()) };
    let what = format!("{what} (a JWT)");
    match log.note_expiry(&what, exp, iat.or(nbf), nbf) {
        Standing::Valid => Ok(()),
        Standing::Expired(ago) => Err(Failure::new(
            ErrorClass::AuthRejected,
            format!("{what} expired {} ago, at {}; authprobe did not send it", approx(ago), rfc3339(exp)),
        )
        .with_hint("get a new token from whoever issues it (its `exp` has passed; check this machine's clock too)")
        .at(Stage::Auth)),
        Standing::NotYet(ahead) => Err(Failure::new(
            ErrorClass::AuthRejected,
            format!(
                "{what} is not valid until {} ({} from now); authprobe did not send it",
                rfc3339(nbf.unwrap_or(exp)),
                approx(ahead)
            ),
        )
        .with_hint("check this machine's clock, or use a token whose validity has begun")
        .at(Stage::Auth)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", enc("{\"alg\":\"RS256\"}"), enc(claims), enc("signature"))
    }

    #[test]
    fn jwt_times_are_read_without_the_signature() {
        let times = jwt_times(&jwt("{\"exp\":1900000000,\"iat\":1800000000,\"sub\":\"x\"}")).unwrap();
        assert_eq!(times, JwtTimes { exp: Some(1_900_000_000), nbf: None, iat: Some(1_800_000_000) });
        assert_eq!(jwt_times(&jwt("{\"exp\":1.9e9}")).unwrap().exp, Some(1_900_000_000));
        assert_eq!(jwt_times("opaque-token-without-dots"), None);
        assert_eq!(jwt_times(&jwt("{\"sub\":\"no times\"}")), None);
        assert_eq!(jwt_times("a.!!!.c"), None);
        assert_eq!(jwt_times("a.b.c.d.e"), None, "an encrypted JWE says nothing readable");
        assert_eq!(jwt_times(&format!("a.{}.c", "A".repeat(PAYLOAD_MAX + 1))), None);
    }

    #[test]
    fn a_short_lived_credential_warns_only_in_its_last_quarter() {
        let log = StageLog::new(14, Duration::from_secs(5));
        let now = now_unix();
        // A one-hour token with 50 minutes left: within 14 days, not in its last quarter.
        assert_eq!(log.note_expiry("a token", now + 3000, Some(now - 600), None), Standing::Valid);
        // A year-long certificate with 3 days left: warns.
        assert_eq!(log.note_expiry("a certificate", now + 3 * 86_400, Some(now - 362 * 86_400), None), Standing::Valid);
        assert!(matches!(log.note_expiry("an old one", now - 60, None, None), Standing::Expired(_)));
        assert!(matches!(log.note_expiry("a future one", now + 86_400, None, Some(now + 3600)), Standing::NotYet(_)));
        let recorded = log.finish(&[]);
        assert_eq!(recorded.warnings.len(), 1, "{:?}", recorded.warnings);
        assert!(recorded.warnings[0].to_string().contains("a certificate expires in 3 days"));
        assert_eq!(recorded.credentials.len(), 4);
    }
}
