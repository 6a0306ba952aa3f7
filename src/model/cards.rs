//! Check cards' links and form tokens: a link is an opaque token, HMAC-SHA256-signed with
//! the operator's card key, naming the card, the label, the link's id and its expiry; a
//! form carries a token signed the same way for its link, so that a POST made by another
//! site (without the page) is refused. Verification is constant-time (aws-lc's HMAC verify).

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// What a link says, once its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// The link's id: random, names its files in the outbox.
    pub id: String,
    /// The `[[card]]` it is for.
    pub card: String,
    /// Whom it was made for (`--label`), shown to the operator.
    pub label: String,
    /// Unix seconds after which the link is no longer valid.
    pub expires: i64,
}

const LINK_CONTEXT: &[u8] = b"authprobe card link v1\0";
const FORM_CONTEXT: &[u8] = b"authprobe card form v1\0";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new().fill(&mut bytes).map_err(|_| "the system's random source failed".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A new link id: 96 random bits.
pub fn new_id() -> Result<String, String> {
    random_hex(12)
}

/// The token of a link: `PAYLOAD.TAG`, both URL-safe base64.
pub fn sign_link(secret: &[u8], claims: &LinkClaims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let tag = hmac::sign(&key(secret), &[LINK_CONTEXT, &payload].concat());
    format!("{}.{}", b64(&payload), b64(tag.as_ref()))
}

/// The claims of a token signed with `secret`, or `None` for anything else (tampered,
/// another key, malformed); expiry is the caller's to check against its clock.
pub fn verify_link(secret: &[u8], token: &str) -> Option<LinkClaims> {
    if token.len() > 2048 {
        return None;
    }
    let (payload, tag) = token.split_once('.')?;
    let (payload, tag) = (unb64(payload)?, unb64(tag)?);
    hmac::verify(&key(secret), &[LINK_CONTEXT, &payload].concat(), &tag).ok()?;
    serde_json::from_slice(&payload).ok()
}

/// The form token for a link's page: `NONCE.TAG`; the nonce also goes into a cookie, so a
/// POST must carry both and they must agree (double submit, signed).
pub fn form_token(secret: &[u8], link_id: &str, nonce: &str) -> String {
    let tag = hmac::sign(&key(secret), &[FORM_CONTEXT, link_id.as_bytes(), b"\0", nonce.as_bytes()].concat());
    format!("{nonce}.{}", b64(tag.as_ref()))
}

/// True when `token` was made by [`form_token`] for this link and carries `cookie_nonce`.
pub fn form_token_valid(secret: &[u8], link_id: &str, token: &str, cookie_nonce: &str) -> bool {
    let Some((nonce, tag)) = token.split_once('.') else {
        return false;
    };
    let Some(tag) = unb64(tag) else {
        return false;
    };
    let signed =
        hmac::verify(&key(secret), &[FORM_CONTEXT, link_id.as_bytes(), b"\0", nonce.as_bytes()].concat(), &tag);
    // The nonce comparison needs no constant time: the cookie is the client's own value.
    signed.is_ok() && !nonce.is_empty() && nonce == cookie_nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> LinkClaims {
        LinkClaims { id: "0a1b".into(), card: "acme-db".into(), label: "Acme <ops>".into(), expires: 1_900_000_000 }
    }

    #[test]
    fn links_verify_with_their_key_only_and_any_change_is_refused() {
        let token = sign_link(b"key-one", &claims());
        assert_eq!(verify_link(b"key-one", &token), Some(claims()));
        assert_eq!(verify_link(b"key-two", &token), None);
        let (payload, tag) = token.split_once('.').unwrap();
        let mut other = claims();
        other.card = "another-db".into();
        let forged = format!("{}.{tag}", b64(&serde_json::to_vec(&other).unwrap()));
        assert_eq!(verify_link(b"key-one", &forged), None);
        assert_eq!(verify_link(b"key-one", &format!("{payload}.{}", &tag[1..])), None);
        assert_eq!(verify_link(b"key-one", "garbage"), None);
        assert_eq!(verify_link(b"key-one", &"a.".repeat(3000)), None);
    }

    #[test]
    fn form_tokens_belong_to_one_link_and_one_cookie() {
        let token = form_token(b"k", "link-1", "n0nce");
        assert!(form_token_valid(b"k", "link-1", &token, "n0nce"));
        assert!(!form_token_valid(b"k", "link-2", &token, "n0nce"));
        assert!(!form_token_valid(b"k", "link-1", &token, "other"));
        assert!(!form_token_valid(b"k", "link-1", "", ""));
        assert!(!form_token_valid(b"other-key", "link-1", &token, "n0nce"));
        assert_eq!(new_id().unwrap().len(), 24);
    }
}
