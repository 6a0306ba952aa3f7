//! Signed links: URLs whose query string is the credential (S3 presigned URLs, SigV4 and
//! SigV2; Google Cloud Storage signed URLs, V4 and V2; Azure SAS; CloudFront signed URLs).
//! Recognised from their parameters, with the times they carry, and with which of their
//! values are secret: such a link is a bearer credential until it expires.

use std::time::{Duration, SystemTime};

use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    S3SigV4,
    S3SigV2,
    GcsV4,
    GcsV2,
    AzureSas,
    CloudFront,
}

impl Scheme {
    pub fn describe(self) -> &'static str {
        match self {
            Scheme::S3SigV4 => "an S3 presigned URL (SigV4)",
            Scheme::S3SigV2 => "an S3 presigned URL (SigV2)",
            Scheme::GcsV4 => "a Cloud Storage signed URL (V4)",
            Scheme::GcsV2 => "a Cloud Storage signed URL (V2)",
            Scheme::AzureSas => "an Azure shared access signature (SAS)",
            Scheme::CloudFront => "a CloudFront signed URL",
        }
    }

    /// Who made the link, for hints.
    pub fn issuer(self) -> &'static str {
        match self {
            Scheme::S3SigV4 | Scheme::S3SigV2 => "whoever presigned it (aws s3 presign, an SDK's presign call)",
            Scheme::GcsV4 | Scheme::GcsV2 => {
                "whoever signed it (gcloud storage sign-url, an SDK's generate_signed_url)"
            }
            Scheme::AzureSas => "whoever issued the SAS (az storage blob generate-sas, the portal, an SDK)",
            Scheme::CloudFront => "whoever signed it with the CloudFront key pair",
        }
    }
}

/// What a signed link says about itself. Times are `None` when the link does not carry
/// them or they do not parse (then `unreadable` says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedLink {
    pub scheme: Scheme,
    /// When it was signed (SigV4, GCS V4), or the start of its validity (SAS `st`).
    pub valid_from: Option<SystemTime>,
    pub expires: Option<SystemTime>,
    pub unreadable: Option<&'static str>,
}

/// Parameters of signed links that are not secret: algorithms, dates, lifetimes, versions,
/// permissions and the response overrides. Everything else in a signed link's query is.
const PUBLIC_PARAMS: &[&str] = &[
    "x-amz-algorithm",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-goog-algorithm",
    "x-goog-date",
    "x-goog-expires",
    "x-goog-signedheaders",
    "expires",
    "x-id",
    "sv",
    "ss",
    "srt",
    "sp",
    "st",
    "se",
    "sr",
    "spr",
    "sip",
    "si",
    "sdd",
    "skoid",
    "sktid",
    "skt",
    "ske",
    "sks",
    "skv",
    "rscc",
    "rscd",
    "rsce",
    "rscl",
    "rsct",
    "versionid",
    "generation",
    "key-pair-id",
];

/// Query parameters whose names say they carry a credential, in any URL.
fn credential_named(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "sig" | "code" | "x-amz-credential" | "x-goog-credential" | "policy" | "awsaccesskeyid")
        || ["token", "key", "secret", "auth", "password", "signature", "session"].iter().any(|w| name.contains(w))
}

impl SignedLink {
    pub fn recognise(url: &Url) -> Option<SignedLink> {
        let params: Vec<(String, String)> =
            url.query_pairs().map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect();
        let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let has = |name: &str| get(name).is_some();
        let (scheme, valid_from, expires) = if has("x-amz-signature") {
            let signed = get("x-amz-date").map(amz_date);
            let expires = lifetime_end(signed, get("x-amz-expires"));
            (Scheme::S3SigV4, signed, expires)
        } else if has("x-goog-signature") {
            let signed = get("x-goog-date").map(amz_date);
            let expires = lifetime_end(signed, get("x-goog-expires"));
            (Scheme::GcsV4, signed, expires)
        } else if has("sig") && (has("sv") || has("se")) {
            (Scheme::AzureSas, get("st").map(iso_time), get("se").map(iso_time))
        } else if has("signature") && has("key-pair-id") {
            let expires = match (get("expires"), get("policy")) {
                (Some(epoch), _) => Some(epoch_time(epoch)),
                (None, Some(policy)) => Some(cloudfront_policy_expiry(policy)),
                (None, None) => None,
            };
            (Scheme::CloudFront, None, expires)
        } else if has("signature") && has("googleaccessid") {
            (Scheme::GcsV2, None, get("expires").map(epoch_time))
        } else if has("signature") && has("awsaccesskeyid") {
            (Scheme::S3SigV2, None, get("expires").map(epoch_time))
        } else {
            return None;
        };
        let mut unreadable = None;
        let mut take = |time: Option<Result<SystemTime, &'static str>>| match time {
            Some(Ok(t)) => Some(t),
            Some(Err(what)) => {
                unreadable.get_or_insert(what);
                None
            }
            None => None,
        };
        let valid_from = take(valid_from);
        let expires = take(expires);
        Some(SignedLink { scheme, valid_from, expires, unreadable })
    }

    /// How long the link was made to last, when it says both ends.
    pub fn lifetime(&self) -> Option<Duration> {
        self.expires?.duration_since(self.valid_from?).ok()
    }
}

/// The query values of `url` that are credentials: every value of a signed link except its
/// public parameters; in any other URL, the values of credential-named parameters.
pub fn secret_query_values(url: &Url) -> Vec<String> {
    let signed = SignedLink::recognise(url).is_some();
    let secret = |name: &str| {
        let name = name.to_ascii_lowercase();
        credential_named(&name) || (signed && !PUBLIC_PARAMS.contains(&name.as_str()))
    };
    let mut values: Vec<String> =
        url.query_pairs().filter(|(name, _)| secret(name)).map(|(_, value)| value.into_owned()).collect();
    // Also as written: an encoding that escapes `=` but not `/` (as SAS signatures come) is
    // none of the forms the scrubber derives from the decoded value.
    for pair in url.query().unwrap_or_default().split('&') {
        if let Some((name, raw)) = pair.split_once('=')
            && secret(name)
            && !values.iter().any(|v| v == raw)
        {
            values.push(raw.to_string());
        }
    }
    values
}

/// Registers [`secret_query_values`] for scrubbing.
pub fn register_query_secrets(url: &Url) {
    for value in secret_query_values(url) {
        crate::model::redact::register(&value);
    }
}

/// `20261124T223300Z` (X-Amz-Date, X-Goog-Date).
fn amz_date(raw: &str) -> Result<SystemTime, &'static str> {
    let bad = "its signing date";
    let b = raw.as_bytes();
    if b.len() != 16
        || b[8] != b'T'
        || b[15] != b'Z'
        || !raw[..8].bytes().chain(raw[9..15].bytes()).all(|c| c.is_ascii_digit())
    {
        return Err(bad);
    }
    let text =
        format!("{}-{}-{}T{}:{}:{}Z", &raw[..4], &raw[4..6], &raw[6..8], &raw[9..11], &raw[11..13], &raw[13..15]);
    humantime::parse_rfc3339(&text).map_err(|_| bad)
}

fn lifetime_end(
    signed: Option<Result<SystemTime, &'static str>>,
    seconds: Option<&str>,
) -> Option<Result<SystemTime, &'static str>> {
    let signed = match signed? {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    let seconds: u64 = match seconds?.parse() {
        Ok(s) => s,
        Err(_) => return Some(Err("its lifetime (Expires)")),
    };
    Some(signed.checked_add(Duration::from_secs(seconds)).ok_or("its lifetime (Expires)"))
}

fn epoch_time(raw: &str) -> Result<SystemTime, &'static str> {
    let seconds: u64 = raw.trim().parse().map_err(|_| "its expiry (Expires)")?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds)).ok_or("its expiry (Expires)")
}

/// SAS times: `2026-11-25T00:00:00Z`, with optional fractions, or a date alone.
fn iso_time(raw: &str) -> Result<SystemTime, &'static str> {
    let text = if raw.len() == 10 { format!("{raw}T00:00:00Z") } else { raw.to_string() };
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).map_err(|_| "its validity times (st/se)")
}

/// A CloudFront custom policy: base64 with `-_~` for `+=/`, JSON whose
/// `Statement[0].Condition.DateLessThan."AWS:EpochTime"` is the expiry.
fn cloudfront_policy_expiry(policy: &str) -> Result<SystemTime, &'static str> {
    use base64::Engine;
    let bad = "its policy's DateLessThan";
    let standard: String = policy
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            c => c,
        })
        .collect();
    let json = base64::engine::general_purpose::STANDARD
        .decode(standard.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(&standard));
    let json: serde_json::Value = json.ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(bad)?;
    let epoch = json["Statement"][0]["Condition"]["DateLessThan"]["AWS:EpochTime"].as_u64().ok_or(bad)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(epoch)).ok_or(bad)
}

/// A duration as people say it: the two largest units ("2h 5m", "3 days 4h", "40s").
pub fn approx(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m {seconds}s"),
        (0, h, m) => format!("{h}h {m}m"),
        (1, h, _) => format!("1 day {h}h"),
        (d, h, _) => format!("{d} days {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn s3_sigv4_times_come_from_date_and_expires() {
        let url = Url::parse("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261124%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261124T220000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=abcdef0123456789").unwrap();
        let link = SignedLink::recognise(&url).unwrap();
        assert_eq!(link.scheme, Scheme::S3SigV4);
        assert_eq!(link.valid_from, Some(at("2026-11-24T22:00:00Z")));
        assert_eq!(link.expires, Some(at("2026-11-24T23:00:00Z")));
        assert_eq!(link.lifetime(), Some(Duration::from_secs(3600)));
        let secret = secret_query_values(&url);
        assert_eq!(
            secret,
            [
                "AKIAEXAMPLE/20261124/us-east-1/s3/aws4_request",
                "abcdef0123456789",
                "AKIAEXAMPLE%2F20261124%2Fus-east-1%2Fs3%2Faws4_request"
            ]
        );
    }

    #[test]
    fn sigv2_gcs_v2_azure_and_cloudfront_expiries() {
        let s3v2 = Url::parse(
            "https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIAEXAMPLE&Expires=1795996800&Signature=abc%2Bdef",
        )
        .unwrap();
        let link = SignedLink::recognise(&s3v2).unwrap();
        assert_eq!((link.scheme, link.expires), (Scheme::S3SigV2, Some(at("2026-11-30T00:00:00Z"))));
        let gcs = Url::parse("https://storage.googleapis.com/b/k?GoogleAccessId=sa%40p.iam.gserviceaccount.com&Expires=1795996800&Signature=xyz").unwrap();
        assert_eq!(SignedLink::recognise(&gcs).unwrap().scheme, Scheme::GcsV2);
        let sas = Url::parse("https://a.blob.core.windows.net/c/b?sv=2022-11-02&st=2026-11-24T00:00:00Z&se=2026-11-25&sr=b&sp=r&sig=c2lnbmF0dXJl").unwrap();
        let link = SignedLink::recognise(&sas).unwrap();
        assert_eq!(link.scheme, Scheme::AzureSas);
        assert_eq!(
            (link.valid_from, link.expires),
            (Some(at("2026-11-24T00:00:00Z")), Some(at("2026-11-25T00:00:00Z")))
        );
        assert_eq!(secret_query_values(&sas), ["c2lnbmF0dXJl"]);
        let slashed =
            Url::parse("https://a.blob.core.windows.net/c/b?se=2026-11-25&sv=2022-11-02&sig=ab/cd%2Bef%3D").unwrap();
        assert_eq!(secret_query_values(&slashed), ["ab/cd+ef=", "ab/cd%2Bef%3D"]);
        let canned =
            Url::parse("https://d111.cloudfront.net/k?Expires=1795996800&Signature=sig~abc&Key-Pair-Id=K2JCJMDEHXQW5F")
                .unwrap();
        assert_eq!(SignedLink::recognise(&canned).unwrap().expires, Some(at("2026-11-30T00:00:00Z")));
        // {"Statement":[{"Resource":"x","Condition":{"DateLessThan":{"AWS:EpochTime":1795996800}}}]}
        let policy = "eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoieCIsIkNvbmRpdGlvbiI6eyJEYXRlTGVzc1RoYW4iOnsiQVdTOkVwb2NoVGltZSI6MTc5NTk5NjgwMH19fV19";
        let custom =
            Url::parse(&format!("https://d111.cloudfront.net/k?Policy={policy}&Signature=s&Key-Pair-Id=K2")).unwrap();
        assert_eq!(SignedLink::recognise(&custom).unwrap().expires, Some(at("2026-11-30T00:00:00Z")));
    }

    #[test]
    fn unreadable_times_are_said_and_ordinary_urls_are_not_links() {
        let url = Url::parse("https://b/k?X-Amz-Date=yesterday&X-Amz-Expires=60&X-Amz-Signature=abc").unwrap();
        let link = SignedLink::recognise(&url).unwrap();
        assert_eq!((link.expires, link.unreadable), (None, Some("its signing date")));
        let plain = Url::parse("https://api.example.com/v1?page=2&api_key=k-123456789").unwrap();
        assert!(SignedLink::recognise(&plain).is_none());
        assert_eq!(secret_query_values(&plain), ["k-123456789"]);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(approx(Duration::from_secs(40)), "40s");
        assert_eq!(approx(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(approx(Duration::from_secs(3 * 86400 + 4 * 3600 + 7)), "3 days 4h");
    }
}
