//! Hostile servers: impostors and broken peers for PostgreSQL, MySQL, TDS, HTTP/OAuth2, S3,
//! SSH and FTP that downgrade authentication, offer their own keys, lie about lengths, stream
//! without end, flood notices, echo secrets cut at odd places and issue hostile tokens.
//!
//! Every case runs in one `authprobe run` (and again at -vv), and each asserts what a
//! credential checker owes its user: no panic, the end within the timeout plus 10%, the
//! right stage and class, memory and output bounded, no part of any secret in any output,
//! and nothing the fake heard from which it could recover a password.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::util::certs::{self, Leaf};
use crate::util::servers::{self, Server};
use crate::util::*;

const TIMEOUT_MS: u64 = 3_000;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Everything a fake received, TLS decrypted.
type Heard = Arc<Mutex<Vec<u8>>>;

/// One connection of a fake: reads are recorded.
struct Conn {
    io: Box<dyn Io>,
    heard: Heard,
}

impl Conn {
    async fn read_some(&mut self) -> Vec<u8> {
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut buf)).await {
            Ok(Ok(n)) => {
                self.heard.lock().unwrap().extend_from_slice(&buf[..n]);
                buf[..n].to_vec()
            }
            _ => Vec::new(),
        }
    }

    async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        if tokio::time::timeout(Duration::from_secs(5), self.io.read_exact(&mut buf)).await.is_err() {
            return Vec::new();
        }
        self.heard.lock().unwrap().extend_from_slice(&buf);
        buf
    }

    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.io.write_all(bytes).await.is_ok() && self.io.flush().await.is_ok()
    }

    /// Sends `chunk` until the client goes away (bounded, in case it never does).
    async fn flood(&mut self, chunk: &[u8]) {
        for _ in 0..200_000 {
            if !self.send(chunk).await {
                return;
            }
        }
    }

    async fn tls(self, leaf: &Leaf) -> Conn {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(leaf.chain.clone(), leaf.key())
            .unwrap();
        let stream = tokio_rustls::TlsAcceptor::from(Arc::new(config)).accept(self.io).await.expect("fake TLS");
        Conn { io: Box::new(stream), heard: self.heard }
    }
}

struct Fake {
    server: Server,
    heard: Heard,
}

/// A MySQL server that answers the first query with a result set of endless rows.
async fn mysql_endless_rows(mut c: Conn) {
    my_logged_in(&mut c).await;
    c.send(&my_packet(1, &[0x01])).await;
    c.send(&my_packet(2, b"\x03def\0\0\0\x011\0\x0c\x3f\0\x01\0\0\0\x08\x81\0\0\0\0")).await;
    c.send(&my_packet(3, &[0xfe, 0, 0, 2, 0])).await;
    let mut seq = 4u8;
    for _ in 0..200_000 {
        if !c.send(&my_packet(seq, b"\x011")).await {
            return;
        }
        seq = seq.wrapping_add(1);
    }
}

async fn fake<F, Fut>(script: F) -> Fake
where
    F: Fn(Conn) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let heard: Heard = Arc::default();
    let sink = heard.clone();
    let script = Arc::new(script);
    let server = servers::raw(move |tcp| {
        let conn = Conn { io: Box::new(tcp), heard: sink.clone() };
        let script = script.clone();
        async move { script(conn).await }
    })
    .await;
    Fake { server, heard }
}

// ------------------------------------------------------------------ PostgreSQL

fn pg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn pg_auth(code: i32, extra: &[u8]) -> Vec<u8> {
    pg(b'R', &[&code.to_be_bytes()[..], extra].concat())
}

fn pg_error(code: &str, message: &str) -> Vec<u8> {
    pg(b'E', format!("SFATAL\0C{code}\0M{message}\0\0").as_bytes())
}

fn pg_ready() -> Vec<u8> {
    [pg_auth(0, &[]), pg(b'Z', b"I")].concat()
}

/// SSLRequest answered ('S' and TLS with `leaf`, or 'N'), then the startup message read.
async fn pg_start(mut c: Conn, leaf: Option<Arc<Leaf>>) -> Conn {
    let first = c.read_exact(8).await;
    if first.get(4..8) != Some(&[0x04, 0xd2, 0x16, 0x2f][..]) {
        // No SSLRequest (tls.mode = "disable"): that was the start of the startup message.
        let len = first.get(..4).map_or(8, |l| i32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize);
        c.read_exact(len.saturating_sub(8)).await;
        return c;
    }
    let mut c = match leaf {
        Some(leaf) => {
            c.send(b"S").await;
            c.tls(&leaf).await
        }
        None => {
            c.send(b"N").await;
            c
        }
    };
    c.read_some().await;
    c
}

// ------------------------------------------------------------------ MySQL

fn my_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

/// A MySQL 8 greeting without TLS, whose default plugin is `plugin`.
fn my_greeting(plugin: &str) -> Vec<u8> {
    let caps: u32 = 0x0200 | 0x8000 | 0x0008_0000 | 0x0020_0000 | 0x0000_0001 | 0x0002_0000 | 0x0000_2000;
    let mut p = vec![0x0a];
    p.extend_from_slice(b"8.0.36\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(b"abcdefgh\0");
    p.extend_from_slice(&(caps as u16).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&2u16.to_le_bytes());
    p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0");
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    my_packet(0, &p)
}

fn my_err(seq: u8, code: u16, message: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.extend_from_slice(b"#28000");
    p.extend_from_slice(message.as_bytes());
    my_packet(seq, &p)
}

fn my_ok(seq: u8) -> Vec<u8> {
    my_packet(seq, &[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00])
}

/// Greeting sent, the login read; returns the login's sequence number plus one.
async fn my_start(c: &mut Conn, plugin: &str) -> u8 {
    c.send(&my_greeting(plugin)).await;
    c.read_some().await;
    2
}

/// Logged in with mysql_native_password; the query read.
async fn my_logged_in(c: &mut Conn) {
    my_start(c, "mysql_native_password").await;
    c.send(&my_ok(2)).await;
    c.read_some().await;
}

// ------------------------------------------------------------------ TDS

fn tds_prelogin_answer(encryption: u8) -> Vec<u8> {
    let payload = [0x00, 0x00, 0x0b, 0x00, 0x06, 0x01, 0x00, 0x11, 0x00, 0x01, 0xff, 16, 0, 0, 0, 0, 0, encryption];
    let mut answer = vec![0x04, 0x01, 0x00, (8 + payload.len()) as u8, 0, 0, 1, 0];
    answer.extend_from_slice(&payload);
    answer
}

/// LOGIN7's password obfuscation (nibble swap, XOR 0xA5), to look for it in what was heard.
fn tds_obfuscated(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(|u| u.to_le_bytes()).map(|b| b.rotate_right(4) ^ 0xa5).collect()
}

// ------------------------------------------------------------------ checks

/// Whether `text` holds any piece of `secret` of `window` characters or more, or one of
/// its encodings whole.
fn leaks(text: &str, secret: &str, window: usize) -> Option<String> {
    use base64::Engine;
    let chars: Vec<char> = secret.chars().collect();
    for start in 0..chars.len().saturating_sub(window - 1) {
        let piece: String = chars[start..start + window].iter().collect();
        if text.contains(&piece) {
            return Some(piece);
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let pct: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    [b64, pct].into_iter().find(|form| text.contains(form.as_str()))
}

fn heard_the_password(heard: &[u8], password: &str) -> bool {
    let plain = password.as_bytes();
    let obfuscated = tds_obfuscated(password);
    heard.windows(plain.len()).any(|w| w == plain) || heard.windows(obfuscated.len()).any(|w| w == obfuscated)
}

/// One case: a probe against a fake and what it must end with.
struct Case {
    name: &'static str,
    fake: Fake,
    probe: String,
    /// (stage, class), or None for a pass (or warn).
    fails: Option<(&'static str, &'static str)>,
    /// A text the message or hint must contain.
    says: &'static str,
    /// The fake may hear the password (the probe allowed it explicitly).
    may_hear: bool,
}

/// A case's password: nothing of the case's name (which the report shows) is in it.
fn secret(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("CANARY-{hash:016x}")
}

fn db(kind: &str, name: &str, port: u16, extra: &str) -> String {
    format!(
        "kind = \"{kind}\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"app\"\npassword = \"{}\"\n{extra}",
        secret(name)
    )
}

/// An RSA key pair for an impostor MySQL server, and a flag set if it ever decrypts anything.
struct Impostor {
    pem: String,
    key: aws_lc_rs::rsa::OaepPrivateDecryptingKey,
}

fn impostor_key() -> Arc<Impostor> {
    use aws_lc_rs::encoding::AsDer;
    use base64::Engine;
    let key = aws_lc_rs::rsa::PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = key.public_key().as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    Arc::new(Impostor { pem, key: aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(key).unwrap() })
}

#[allow(clippy::too_many_lines)]
async fn cases(pki: &certs::Pki, decrypted: Arc<AtomicBool>) -> Vec<Case> {
    let untrusted = Arc::new(pki.untrusted.clone());
    let mut cases = Vec::new();
    let mut add = |name: &'static str, fake: Fake, body: String, fails, says, may_hear| {
        let probe = format!("[[probe]]\nname = \"{name}\"\ntimeout = \"{TIMEOUT_MS}ms\"\n{body}\n\n");
        cases.push(Case { name, fake, probe, fails, says, may_hear });
    };

    // --- PostgreSQL: downgrades to a cleartext password
    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        c.send(&pg_auth(3, &[])).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "pg-cleartext-no-tls",
        f,
        db("postgres", "pg-cleartext-no-tls", port, ""),
        Some(("auth", "tls_handshake")),
        "allow_unverified_password",
        false,
    );

    let leaf = untrusted.clone();
    let f = fake(move |c| {
        let leaf = leaf.clone();
        async move {
            let mut c = pg_start(c, Some(leaf)).await;
            c.send(&pg_auth(3, &[])).await;
            c.read_some().await;
        }
    })
    .await;
    let port = f.server.port();
    add(
        "pg-cleartext-unverified-tls",
        f,
        db("postgres", "pg-cleartext-unverified-tls", port, "tls = { mode = \"require\" }"),
        Some(("auth", "tls_untrusted")),
        "pin_sha256 = [",
        false,
    );

    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        c.send(&pg_auth(5, b"salt")).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "pg-md5-not-required",
        f,
        db("postgres", "pg-md5-not-required", port, "require_auth = \"scram-sha-256\"\ntls = { mode = \"disable\" }"),
        Some(("auth", "unexpected_response")),
        "require_auth",
        false,
    );

    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        c.send(&pg_ready()).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "pg-trust-not-required",
        f,
        db(
            "postgres",
            "pg-trust-not-required",
            port,
            "require_auth = [\"scram-sha-256\"]\ntls = { mode = \"disable\" }",
        ),
        Some(("auth", "unexpected_response")),
        "trust",
        false,
    );

    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        c.send(&pg_auth(10, b"SCRAM-SHA-256\0\0")).await;
        c.read_some().await;
        c.send(&pg_auth(11, b"r=forged-nonce,s=c2FsdA==,i=4096")).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "pg-scram-forged-nonce",
        f,
        db("postgres", "pg-scram-forged-nonce", port, "tls = { mode = \"disable\" }"),
        Some(("auth", "protocol")),
        "SCRAM",
        false,
    );

    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        c.send(&pg_auth(99, &[])).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "pg-unknown-auth-code",
        f,
        db("postgres", "pg-unknown-auth-code", port, "tls = { mode = \"disable\" }"),
        Some(("auth", "protocol")),
        "unknown authentication request",
        false,
    );

    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        c.send(&[b'R', 0x7f, 0xff, 0xff, 0xff]).await;
        c.flood(&[0u8; 64 * 1024]).await;
    })
    .await;
    let port = f.server.port();
    add(
        "pg-2gb-length",
        f,
        db("postgres", "pg-2gb-length", port, "tls = { mode = \"disable\" }"),
        Some(("auth", "protocol")),
        "reads at most",
        false,
    );

    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        c.send(&[b'E', 0, 0, 0, 2]).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "pg-impossible-length",
        f,
        db("postgres", "pg-impossible-length", port, "tls = { mode = \"disable\" }"),
        Some(("auth", "protocol")),
        "impossible length",
        false,
    );

    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        c.send(&pg_auth(0, &[])).await;
        c.flood(&pg(b'N', b"SWARNING\0Mnotice\0\0").repeat(512)).await;
    })
    .await;
    let port = f.server.port();
    add(
        "pg-notice-flood",
        f,
        db("postgres", "pg-notice-flood", port, "tls = { mode = \"disable\" }"),
        Some(("auth", "protocol")),
        "notices",
        false,
    );

    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        let huge = "9".repeat(200 * 1024);
        c.send(&pg(b'S', format!("server_version\0{huge}\0").as_bytes())).await;
        c.send(&pg_ready()).await;
        c.read_some().await;
        c.send(&pg(b'T', &[0, 0])).await;
        c.flood(&pg(b'D', &[0, 1, 0, 0, 0, 1, b'1']).repeat(1024)).await;
    })
    .await;
    let port = f.server.port();
    // The check query stops at its first row (hygiene's one-row question is off here).
    let endless = "tls = { mode = \"disable\" }\nhygiene = false";
    add("pg-endless-rows", f, db("postgres", "pg-endless-rows", port, endless), None, "", false);
    // Hygiene's question reads its answer to the end: endless rows are a bounded protocol error.
    let f = fake(|c| async move {
        let mut c = pg_start(c, None).await;
        c.send(&pg_ready()).await;
        c.read_some().await;
        c.send(&pg(b'T', &[0, 0])).await;
        c.flood(&pg(b'D', &[0, 1, 0, 0, 0, 1, b't']).repeat(1024)).await;
    })
    .await;
    let port = f.server.port();
    add(
        "pg-endless-rows-hygiene",
        f,
        db("postgres", "pg-endless-rows-hygiene", port, "tls = { mode = \"disable\" }"),
        Some(("check", "protocol")),
        "one-row query",
        false,
    );

    let echo = secret("pg-error-echo");
    let f = fake(move |c| {
        let echo = echo.clone();
        async move {
            let mut c = pg_start(c, None).await;
            let message = format!("{}{echo}{}", "x".repeat(490), "y".repeat(200 * 1024));
            c.send(&pg_error("28P01", &message)).await;
        }
    })
    .await;
    let port = f.server.port();
    add(
        "pg-error-echo",
        f,
        db("postgres", "pg-error-echo", port, "tls = { mode = \"disable\" }"),
        Some(("auth", "auth_rejected")),
        "28P01",
        false,
    );

    // --- MySQL: clear text and RSA keys from an impostor
    let f = fake(|mut c| async move {
        my_start(&mut c, "mysql_clear_password").await;
        c.send(&my_packet(2, b"\xfemysql_clear_password\0abcdefghijklmnopqrst\0")).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "mysql-clear-password-no-tls",
        f,
        db("mysql", "mysql-clear-password-no-tls", port, ""),
        Some(("auth", "tls_handshake")),
        "in clear text",
        false,
    );

    let f = fake(|mut c| async move {
        my_start(&mut c, "caching_sha2_password").await;
        c.send(&my_packet(2, &[0x01, 0x04])).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "mysql-full-auth-no-tls",
        f,
        db("mysql", "mysql-full-auth-no-tls", port, ""),
        Some(("auth", "tls_handshake")),
        "server_public_key",
        false,
    );

    let key = impostor_key();
    let seen = decrypted.clone();
    let f = fake(move |mut c| {
        let key = key.clone();
        let seen = seen.clone();
        async move {
            my_start(&mut c, "caching_sha2_password").await;
            let mut more = vec![0x01];
            more.extend_from_slice(key.pem.as_bytes());
            c.send(&my_packet(2, &more)).await;
            let answer = c.read_some().await;
            // The impostor tries its private key on whatever comes back.
            if answer.len() > 4 {
                let mut out = vec![0u8; key.key.min_output_size()];
                if key.key.decrypt(&aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1, &answer[4..], &mut out, None).is_ok() {
                    seen.store(true, Ordering::SeqCst);
                }
            }
        }
    })
    .await;
    let port = f.server.port();
    add(
        "mysql-unsolicited-rsa-key",
        f,
        db("mysql", "mysql-unsolicited-rsa-key", port, ""),
        Some(("auth", "tls_handshake")),
        "without being asked",
        false,
    );

    let f = fake(|mut c| async move {
        my_logged_in(&mut c).await;
        c.send(&my_packet(1, &[0x00])).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "mysql-one-byte-ok",
        f,
        // The check query's answer is the point (hygiene's question would take it).
        db("mysql", "mysql-one-byte-ok", port, "tls = { mode = \"disable\" }\nhygiene = false"),
        None,
        "",
        false,
    );

    let f = fake(mysql_endless_rows).await;
    let port = f.server.port();
    add(
        "mysql-endless-rows",
        f,
        // The check query stops at its first row (hygiene's question is off here).
        db("mysql", "mysql-endless-rows", port, "tls = { mode = \"disable\" }\nhygiene = false"),
        None,
        "",
        false,
    );
    // Hygiene's question reads its answer to the end: endless rows are a bounded protocol error.
    let f = fake(mysql_endless_rows).await;
    let port = f.server.port();
    add(
        "mysql-endless-rows-hygiene",
        f,
        db("mysql", "mysql-endless-rows-hygiene", port, "tls = { mode = \"disable\" }"),
        Some(("check", "protocol")),
        "rows for a question about grants",
        false,
    );

    let f = fake(|mut c| async move {
        my_logged_in(&mut c).await;
        c.send(&my_packet(1, &[0xfe, 0, 0, 0, 0, 0, 1, 0, 0])).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "mysql-column-flood",
        f,
        db("mysql", "mysql-column-flood", port, "tls = { mode = \"disable\" }"),
        Some(("check", "protocol")),
        "columns",
        false,
    );

    let f = fake(|mut c| async move {
        my_logged_in(&mut c).await;
        c.send(&[0xff, 0xff, 0xff, 1]).await;
        c.flood(&[0u8; 64 * 1024]).await;
    })
    .await;
    let port = f.server.port();
    add(
        "mysql-huge-packet",
        f,
        db("mysql", "mysql-huge-packet", port, "tls = { mode = \"disable\" }"),
        Some(("check", "protocol")),
        "larger than",
        false,
    );

    let echo = secret("mysql-error-echo");
    let f = fake(move |mut c| {
        let echo = echo.clone();
        async move {
            my_start(&mut c, "mysql_native_password").await;
            let message = format!("Access denied {}{echo}{}", "x".repeat(480), "y".repeat(50 * 1024));
            c.send(&my_err(2, 1045, &message)).await;
        }
    })
    .await;
    let port = f.server.port();
    add(
        "mysql-error-echo",
        f,
        db("mysql", "mysql-error-echo", port, "tls = { mode = \"disable\" }"),
        Some(("auth", "auth_rejected")),
        "1045",
        false,
    );

    // --- SQL Server: no encryption, so LOGIN7 would cross obfuscated only
    let f = fake(|mut c| async move {
        c.read_some().await;
        c.send(&tds_prelogin_answer(0x02)).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add(
        "mssql-encryption-not-supported",
        f,
        db("mssql", "mssql-encryption-not-supported", port, ""),
        Some(("auth", "tls_handshake")),
        "reversibly obfuscated",
        false,
    );

    let f = fake(|mut c| async move {
        c.read_some().await;
        c.send(&tds_prelogin_answer(0x02)).await;
        c.read_some().await;
        c.flood(&[0x04, 0x00, 0xff, 0xff, 0, 0, 1, 0].repeat(8192)).await;
    })
    .await;
    let port = f.server.port();
    add(
        "mssql-allowed-then-flood",
        f,
        db("mssql", "mssql-allowed-then-flood", port, "allow_unverified_password = true"),
        Some(("auth", "protocol")),
        "",
        true,
    );

    // --- HTTP and OAuth2: echoes cut at odd places, a token that names another probe
    let echo = secret("http-401-echo");
    let f = fake(move |mut c| {
        let echo = echo.clone();
        async move {
            c.read_some().await;
            let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{}{echo}\"", "z".repeat(150));
            let answer = format!("HTTP/1.1 401 Unauthorized\r\nwww-authenticate: {challenge}\r\nx-echo: {}{echo}\r\ncontent-length: 0\r\n\r\n", "h".repeat(140));
            c.send(answer.as_bytes()).await;
            c.read_some().await;
        }
    })
    .await;
    let url = f.server.url("http", "/api");
    let body = format!(
        "kind = \"http\"\nurl = \"{url}\"\nauth = {{ type = \"bearer\", token = \"{}\" }}\nallow_unverified_password = true",
        secret("http-401-echo")
    );
    add("http-401-echo", f, body, Some(("auth", "auth_rejected")), "401", true);

    let f = fake(|mut c| async move {
        loop {
            let request = c.read_some().await;
            if request.is_empty() {
                return;
            }
            let text = String::from_utf8_lossy(&request);
            let answer = if text.starts_with("POST /token") {
                let body = r#"{"access_token":"victim-api","token_type":"Bearer","expires_in":60}"#;
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
            } else {
                "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer error=\"invalid_token\", token=\"victim-api\"\r\ncontent-length: 0\r\n\r\n".to_string()
            };
            if !c.send(answer.as_bytes()).await {
                return;
            }
        }
    })
    .await;
    let (api, token_url) = (f.server.url("http", "/api"), f.server.url("http", "/token"));
    let body = format!(
        "kind = \"http\"\nurl = \"{api}\"\nallow_unverified_password = true\nauth = {{ type = \"oauth2_client_credentials\", token_url = \"{token_url}\", client_id = \"c\", client_secret = \"{}\" }}",
        secret("oauth-hostile-token")
    );
    add("oauth-hostile-token", f, body, Some(("auth", "auth_rejected")), "401", true);

    // --- S3: a 3 MB message that echoes the secret key
    let echo = secret("s3-huge-message");
    let f = fake(move |mut c| {
        let echo = echo.clone();
        async move {
            c.read_some().await;
            let body = format!(
                "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>{}{echo}{}</Message></Error>",
                "m".repeat(180),
                "n".repeat(3 << 20)
            );
            let head = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            c.send(head.as_bytes()).await;
            c.send(body.as_bytes()).await;
            c.read_some().await;
        }
    })
    .await;
    let port = f.server.port();
    let body = format!(
        "kind = \"s3\"\nbucket = \"b\"\nregion = \"us-east-1\"\npath_style = true\nendpoint = \"http://127.0.0.1:{port}\"\nauth = {{ type = \"static\", access_key_id = \"AKIAHOSTILE\", secret_access_key = \"{}\" }}",
        secret("s3-huge-message")
    );
    add("s3-huge-message", f, body, Some(("check", "permission_denied")), "AccessDenied", false);

    // --- SSH: talks without end before any banner
    let f = fake(|mut c| async move {
        c.flood(&b"welcome to the jungle\r\n".repeat(4096)).await;
    })
    .await;
    let port = f.server.port();
    let body = format!(
        "kind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"u\"\nauth = {{ type = \"password\", password = \"{}\" }}",
        secret("ssh-banner-flood")
    );
    add("ssh-banner-flood", f, body, Some(("connect", "protocol")), "", false);

    ftp_cases(&mut add).await;
    cases
}

// ------------------------------------------------------------------ FTP

/// A plain FTP probe (anonymous unless `extra` says otherwise) against a fake.
fn ftp(port: u16, extra: &str) -> String {
    format!("kind = \"ftp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = {{ mode = \"disable\" }}\n{extra}")
}

/// Greeted, and an anonymous USER answered with 230.
async fn ftp_logged_in(c: &mut Conn) {
    c.send(b"220 hostile FTP\r\n").await;
    c.read_some().await;
    c.send(b"230 come in\r\n").await;
}

/// Answers each command with the next reply of `replies`, reading one command before each.
async fn ftp_answer(c: &mut Conn, replies: &[&[u8]]) {
    for reply in replies {
        c.read_some().await;
        c.send(reply).await;
    }
}

/// A data listener on loopback; its port, and the listener.
async fn data_listener() -> (u16, tokio::net::TcpListener) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (listener.local_addr().unwrap().port(), listener)
}

async fn ftp_cases(
    add: &mut impl FnMut(&'static str, Fake, String, Option<(&'static str, &'static str)>, &'static str, bool),
) {
    // A multi-line greeting that never ends.
    let f = fake(|mut c| async move {
        c.send(b"220-welcome\r\n").await;
        c.flood(&b" and more\r\n".repeat(1024)).await;
    })
    .await;
    let port = f.server.port();
    add("ftp-endless-multiline", f, ftp(port, ""), Some(("connect", "protocol")), "512 lines", false);

    // A 10 MB line.
    let f = fake(|mut c| async move {
        c.send(b"220 ").await;
        c.flood(&[b'x'; 64 * 1024]).await;
    })
    .await;
    let port = f.server.port();
    add("ftp-endless-line", f, ftp(port, ""), Some(("connect", "protocol")), "longer than 4096 bytes", false);

    // PASV names the cloud metadata address: the data connection goes to the control
    // connection's peer instead, where this fake listens, and the listing is read.
    let f = fake(|mut c| async move {
        let (port, listener) = data_listener().await;
        ftp_logged_in(&mut c).await;
        let pasv = format!("227 Entering Passive Mode (169,254,169,254,{},{})\r\n", port / 256, port % 256);
        ftp_answer(&mut c, &[b"500 no EPSV here\r\n", pasv.as_bytes()]).await;
        let Ok(Ok((mut data, _))) = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await else {
            return;
        };
        ftp_answer(&mut c, &[b"150 here it comes\r\n"]).await;
        let _ = data.write_all(b"-rw-r--r-- 1 0 0 3 Dec 06 12:00 a.csv\r\n").await;
        drop(data);
        c.send(b"226 done\r\n").await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add("ftp-pasv-to-metadata", f, ftp(port, ""), None, "", false);

    // EPSV names a port where nothing listens.
    let f = fake(|mut c| async move {
        let closed = data_listener().await.0;
        ftp_logged_in(&mut c).await;
        let epsv = format!("229 Entering Extended Passive Mode (|||{closed}|)\r\n");
        ftp_answer(&mut c, &[epsv.as_bytes()]).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    add("ftp-data-port-closed", f, ftp(port, ""), Some(("check", "network")), "passive ports", false);

    // A data channel that streams forever: the first 64 KiB are read, the rest never.
    let f = fake(|mut c| async move {
        let (port, listener) = data_listener().await;
        ftp_logged_in(&mut c).await;
        let epsv = format!("229 Entering Extended Passive Mode (|||{port}|)\r\n");
        ftp_answer(&mut c, &[epsv.as_bytes()]).await;
        let Ok(Ok((mut data, _))) = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await else {
            return;
        };
        ftp_answer(&mut c, &[b"150 here it comes\r\n"]).await;
        let line = b"-rw-r--r-- 1 0 0 3 Dec 06 12:00 again-and-again.csv\r\n".repeat(1024);
        for _ in 0..100_000 {
            if data.write_all(&line).await.is_err() {
                break;
            }
        }
    })
    .await;
    let port = f.server.port();
    add("ftp-data-floods", f, ftp(port, ""), None, "", false);

    // A 530 that echoes the password where the message is cut (allowed over plain FTP).
    let echo = secret("ftp-530-echo");
    let f = fake(move |mut c| {
        let echo = echo.clone();
        async move {
            c.send(b"220 hostile FTP\r\n").await;
            ftp_answer(&mut c, &[b"331 password please\r\n"]).await;
            c.read_some().await;
            let reply = format!("530-Login incorrect\r\n530 {}{echo}{}\r\n", "x".repeat(490), "y".repeat(3000));
            c.send(reply.as_bytes()).await;
            c.read_some().await;
        }
    })
    .await;
    let port = f.server.port();
    let body = ftp(
        port,
        &format!("user = \"app\"\npassword = \"{}\"\nallow_unverified_password = true", secret("ftp-530-echo")),
    );
    add("ftp-530-echo", f, body, Some(("auth", "auth_rejected")), "530", true);

    // Plain FTP without consent: the fake asks for the password and must not hear it.
    let f = fake(|mut c| async move {
        c.send(b"220 hostile FTP\r\n").await;
        ftp_answer(&mut c, &[b"331 password please\r\n"]).await;
        c.read_some().await;
    })
    .await;
    let port = f.server.port();
    let body = ftp(port, &format!("user = \"app\"\npassword = \"{}\"", secret("ftp-plain-no-consent")));
    add("ftp-plain-no-consent", f, body, Some(("auth", "tls_handshake")), "allow_unverified_password", false);
}

#[tokio::test]
async fn hostile_servers_get_no_secret_and_cannot_hang_flood_or_crash_a_run() {
    let pki = certs::pki();
    let decrypted = Arc::new(AtomicBool::new(false));
    let cases = cases(&pki, decrypted.clone()).await;
    let healthy = servers::http().await;
    // A probe whose name a hostile token endpoint issues as its token.
    let mut cfg =
        format!("[defaults]\nconcurrency = 64\n\n{}", http_probe("victim-api", &healthy.url("http", "/health"), ""));
    for case in &cases {
        cfg += &case.probe;
    }
    let ws = Workspace::new();
    let path = ws.config(&cfg);
    let path = path.to_str().unwrap();
    let json_out = authprobe(&["run", "-c", path, "--format", "json", "-vv"], &[]).await;
    let table_out = authprobe(&["run", "-c", path, "-vv"], &[]).await;
    let markdown_out = authprobe(&["run", "-c", path, "--format", "markdown"], &[]).await;
    let peak = children_peak_rss_mib();
    assert!(peak <= 200, "authprobe used {peak} MiB against hostile servers");
    let report = json_out.json();
    let mut wrong = Vec::new();
    for out in [&json_out, &table_out, &markdown_out] {
        assert_eq!(out.code, 1, "{}", out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        if all.len() > 1 << 20 {
            wrong.push(format!("output of {} bytes", all.len()));
        }
        if all.contains("panicked") {
            wrong.push("a panic".into());
        }
        for case in &cases {
            if let Some(piece) = leaks(&all, &secret(case.name), 10) {
                wrong.push(format!("{}: `{piece}` of its secret is in the output", case.name));
            }
        }
    }
    // The token the server chose masks nothing of the other probe.
    let victim = assert_passed(&report, "victim-api");
    assert_eq!(victim["name"], "victim-api");
    assert!(table_out.stdout.lines().any(|l| l.trim_start().starts_with("victim-api ")), "{}", table_out.stdout);
    let hostile = probe(&report, "oauth-hostile-token");
    assert!(!hostile["error"]["message"].as_str().unwrap_or_default().contains("victim-api"), "{hostile:#}");
    for case in &cases {
        let p = probe(&report, case.name);
        let ms = p["duration_ms"].as_u64().unwrap_or(u64::MAX);
        if ms > TIMEOUT_MS + TIMEOUT_MS / 10 {
            wrong.push(format!("{}: took {ms} ms", case.name));
        }
        match case.fails {
            Some((stage, class)) => {
                let (got_stage, got_class) = (p["error"]["stage"].as_str(), p["error"]["class"].as_str());
                if got_stage != Some(stage) || got_class != Some(class) {
                    wrong.push(format!(
                        "{}: expected {stage}/{class}, got {got_stage:?}/{got_class:?}: {}",
                        case.name, p["error"]
                    ));
                }
                let said = format!("{} {}", p["error"]["message"], p["error"]["hint"]);
                if !said.contains(case.says) {
                    wrong.push(format!("{}: the failure does not say `{}`: {said}", case.name, case.says));
                }
                if p["error"]["message"].as_str().unwrap_or_default().len() > 2_200 {
                    wrong.push(format!(
                        "{}: a message of {} bytes",
                        case.name,
                        p["error"]["message"].as_str().unwrap().len()
                    ));
                }
            }
            None => {
                if !matches!(p["status"].as_str(), Some("pass" | "warn")) {
                    wrong.push(format!("{}: expected a pass, got {p:#}", case.name));
                }
            }
        }
        if !case.may_hear && heard_the_password(&case.fake.heard.lock().unwrap(), &secret(case.name)) {
            wrong.push(format!("{}: the fake heard the password in recoverable form", case.name));
        }
    }
    assert!(!decrypted.load(Ordering::SeqCst), "the impostor decrypted what authprobe sent with its own key");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The most memory any child of this test process has used, in MiB.
fn children_peak_rss_mib() -> u64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    (usage.ru_maxrss as u64) / 1024
}
