//! Sealing a result to the operator's `age` recipients (age-encryption.org/v1, X25519
//! recipients): what a check card delivers can be opened with the `age` CLI and the
//! operator's identity, and by nothing that ever ran inside authprobe. Built on aws-lc (the
//! one crypto provider): X25519, HKDF-SHA256, HMAC-SHA256 and ChaCha20-Poly1305, as the
//! format specifies them.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine;

const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
/// The payload is encrypted in chunks of this many bytes (the format's STREAM).
const CHUNK: usize = 64 * 1024;

/// An `age1…` recipient: an X25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient([u8; 32]);

impl Recipient {
    /// Parses `age1…` (Bech32, as `age-keygen` prints it); the error says what is wrong
    /// without repeating more of the input than its beginning.
    pub fn parse(text: &str) -> Result<Recipient, String> {
        let lower = text.trim().to_ascii_lowercase();
        let Some(data) = lower.strip_prefix("age1") else {
            return Err("an age recipient starts with `age1` (the public key `age-keygen` prints)".into());
        };
        let mut values = Vec::with_capacity(data.len());
        for byte in data.bytes() {
            match BECH32_CHARSET.iter().position(|&c| c == byte) {
                Some(v) => values.push(v as u8),
                None => return Err(format!("`{}…` has a character Bech32 does not use", &lower[..lower.len().min(8)])),
            }
        }
        if values.len() < 6 || bech32_polymod("age", &values) != 1 {
            return Err(format!("`{}…` is not a valid age recipient (its checksum does not match)", &lower[..8]));
        }
        let bytes = regroup(&values[..values.len() - 6]).ok_or("an age recipient has padding bits set")?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "an age recipient holds a 32-byte key".to_string())?;
        Ok(Recipient(key))
    }
}

fn bech32_polymod(hrp: &str, data: &[u8]) -> u32 {
    const GEN: [u32; 5] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3];
    let mut chk: u32 = 1;
    let expanded = hrp
        .bytes()
        .map(|b| b >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.bytes().map(|b| b & 31))
        .chain(data.iter().copied());
    for value in expanded {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(value);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// 5-bit groups to bytes; `None` when the leftover bits are not zero padding.
fn regroup(values: &[u8]) -> Option<Vec<u8>> {
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::with_capacity(values.len() * 5 / 8));
    for &v in values {
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (bits < 5 && acc & ((1 << bits) - 1) == 0).then_some(out)
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), String> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let infos = [info];
    let okm = prk.expand(&infos, Len(out.len())).map_err(|_| "HKDF failed".to_string())?;
    okm.fill(out).map_err(|_| "HKDF failed".to_string())
}

fn chacha_seal(key: &[u8; 32], nonce: [u8; 12], data: &mut Vec<u8>) -> Result<(), String> {
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| "bad key length".to_string())?);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), data)
        .map_err(|_| "encryption failed".to_string())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// Encrypts `plaintext` to every recipient: the bytes of an age file (binary, not armored).
pub fn seal(recipients: &[Recipient], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    if recipients.is_empty() {
        return Err("no age recipient to seal to".into());
    }
    let rng = SystemRandom::new();
    let random = |buf: &mut [u8]| rng.fill(buf).map_err(|_| "the system's random source failed".to_string());
    let mut file_key = [0u8; 16];
    random(&mut file_key)?;
    let mut header = String::from("age-encryption.org/v1\n");
    for recipient in recipients {
        let ephemeral = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| "X25519 key generation failed")?;
        let share = ephemeral.compute_public_key().map_err(|_| "X25519 failed")?;
        let share = share.as_ref().to_vec();
        let peer = UnparsedPublicKey::new(&X25519, recipient.0);
        let shared = agreement::agree_ephemeral(ephemeral, peer, "X25519 agreement failed", |s| Ok(s.to_vec()))?;
        if shared.iter().all(|&b| b == 0) {
            return Err("an age recipient is a low-order point".into());
        }
        let salt = [share.as_slice(), recipient.0.as_slice()].concat();
        let mut wrap_key = [0u8; 32];
        hkdf_sha256(&shared, &salt, b"age-encryption.org/v1/X25519", &mut wrap_key)?;
        let mut body = file_key.to_vec();
        chacha_seal(&wrap_key, [0; 12], &mut body)?;
        header += &format!("-> X25519 {}\n", b64(&share));
        // Lines of 64 columns, the last one shorter (an empty one when the body fills them).
        let encoded = b64(&body);
        for line in encoded.as_bytes().chunks(64) {
            header += std::str::from_utf8(line).unwrap_or_default();
            header.push('\n');
        }
        if encoded.len().is_multiple_of(64) {
            header.push('\n');
        }
    }
    header += "---";
    let mut mac_key = [0u8; 32];
    hkdf_sha256(&file_key, &[], b"header", &mut mac_key)?;
    let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), header.as_bytes());
    header += &format!(" {}\n", b64(mac.as_ref()));

    let mut nonce = [0u8; 16];
    random(&mut nonce)?;
    let mut payload_key = [0u8; 32];
    hkdf_sha256(&file_key, &nonce, b"payload", &mut payload_key)?;
    let mut out = header.into_bytes();
    out.extend_from_slice(&nonce);
    let chunks: Vec<&[u8]> = if plaintext.is_empty() { vec![&[]] } else { plaintext.chunks(CHUNK).collect() };
    let last = chunks.len() - 1;
    for (counter, chunk) in chunks.into_iter().enumerate() {
        let mut chunk_nonce = [0u8; 12];
        chunk_nonce[3..11].copy_from_slice(&(counter as u64).to_be_bytes());
        chunk_nonce[11] = u8::from(counter == last);
        let mut data = chunk.to_vec();
        chacha_seal(&payload_key, chunk_nonce, &mut data)?;
        out.extend_from_slice(&data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A recipient age-keygen printed (its identity is not kept anywhere).
    const RECIPIENT: &str = "age1rm60hqlajd9aadgemmux4dhyzjrk6syqzuwz9x02jk3unc3dr3nqx0tfhg";

    #[test]
    fn recipients_parse_and_typos_are_refused() {
        assert!(Recipient::parse(RECIPIENT).is_ok());
        assert!(Recipient::parse(&RECIPIENT.to_uppercase()).is_ok(), "Bech32 may be upper case");
        let typo = RECIPIENT.replace("rm60", "rm6q");
        assert!(Recipient::parse(&typo).unwrap_err().contains("checksum"));
        assert!(Recipient::parse("AGE-SECRET-KEY-1…").is_err());
        assert!(Recipient::parse("age1b").is_err());
    }

    #[test]
    fn the_header_names_one_stanza_per_recipient_and_the_payload_is_chunked() {
        let r = Recipient::parse(RECIPIENT).unwrap();
        let sealed = seal(&[r.clone(), r], &vec![7u8; CHUNK + 10]).unwrap();
        let text = String::from_utf8_lossy(&sealed);
        assert!(text.starts_with("age-encryption.org/v1\n-> X25519 "));
        assert_eq!(text.matches("-> X25519 ").count(), 2);
        let header_end = sealed.windows(4).position(|w| w == b"--- ").unwrap();
        let body_start = header_end + sealed[header_end..].iter().position(|&b| b == b'\n').unwrap() + 1;
        // nonce, one full chunk with its tag, the last chunk with its tag
        assert_eq!(sealed.len() - body_start, 16 + (CHUNK + 16) + (10 + 16));
        assert!(seal(&[], b"x").is_err());
    }
}
