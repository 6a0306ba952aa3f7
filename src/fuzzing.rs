//! Entry points for fuzzing every parser of server bytes: the PostgreSQL, MySQL and TDS
//! clients driven to the end against arbitrary server bytes, the SSH pre-banner sniffer,
//! known_hosts files, the storage services' XML and JSON error readers, serve's target
//! parser, the HTTP CONNECT and SOCKS5 negotiations with a proxy, the FTP control connection,
//! and a big config's cut into parts. Used by the cargo-fuzz targets in `fuzz/` and, over seed transcripts and
//! deterministic mutations of them, by this module's tests (so CI runs them every time).
//! Each function must return for any input: no panic, no hang, no unbounded allocation.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A peer that answers with `data` (then end of stream) and swallows what it is sent.
struct Scripted<'a> {
    data: &'a [u8],
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = self.data.len().min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn block_on<F: std::future::Future>(future: F) -> Option<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    Some(runtime.block_on(future))
}

/// The PostgreSQL client (startup, authentication of every kind, the check query) against
/// `data` as everything the server says, and each message body parsed alone.
pub fn postgres(data: &[u8]) {
    use pg_wire::{AuthPolicy, ChannelBindingMode, Client, parse_backend};
    if let Some((&tag, body)) = data.split_first() {
        let _ = parse_backend(tag, body);
        let _ = pg_wire::parse_data_row(body);
    }
    let policy = AuthPolicy { allowed: Vec::new(), forbidden: Vec::new(), channel_binding: ChannelBindingMode::Prefer };
    block_on(async {
        let mut client = Client::new(Scripted { data });
        if client
            .login("user", "db", Some(pg_wire::Password::Releasable("password")), &policy, Some(vec![7; 32]), None)
            .await
            .is_ok()
            && client.query_row("SELECT rolsuper FROM pg_roles").await.is_ok()
        {
            let _ = client.ask_then_query("SELECT 2", "SELECT 1").await;
        }
    });
    postgres_release_rule(data);
}

/// pg-wire's login exchange fed `data` directly (sans I/O), message by message, for a
/// server nobody verified: whatever it asks, the password never leaves in clear. A panic
/// here is a finding against the credential release rule.
fn postgres_release_rule(data: &[u8]) {
    use pg_wire::{AuthPolicy, ChannelBindingMode, LoginExchange, LoginStep, parse_backend};
    const PASSWORD: &str = "fuzz-pg-password-never-in-clear";
    let policy = AuthPolicy { allowed: Vec::new(), forbidden: Vec::new(), channel_binding: ChannelBindingMode::Prefer };
    let leaks = |bytes: &[u8]| bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes());
    let Ok((mut exchange, startup)) =
        LoginExchange::start("user", "db", Some(pg_wire::Password::ChallengeOnly(PASSWORD)), &policy, None)
    else {
        return;
    };
    assert!(!leaks(&startup));
    let mut rest = data;
    while rest.len() >= 5 {
        let tag = rest[0];
        let len = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let body_len = usize::try_from(len).unwrap_or(0).saturating_sub(4).min(rest.len() - 5);
        let body = &rest[5..5 + body_len];
        rest = &rest[5 + body_len..];
        let Ok(message) = parse_backend(tag, body) else { return };
        match exchange.on_message(message) {
            Ok(LoginStep::Send(bytes)) => assert!(!leaks(&bytes), "the password left in clear to an unverified server"),
            Ok(LoginStep::Read) => {}
            Ok(LoginStep::Done(_)) | Err(_) => return,
        }
    }
}

/// The MySQL client (greeting, login with every plugin, the check query) against `data`,
/// and the greeting parser alone.
pub fn mysql(data: &[u8]) {
    use mysql_wire as wire;
    let _ = wire::parse_greeting(data);
    block_on(async {
        let mut packets = wire::Packets::new(Scripted { data });
        let Ok(greeting) = wire::read_greeting(&mut packets).await else { return };
        let login = wire::Login {
            user: "user",
            password: wire::Password::ToVerifiedServer("password"),
            database: Some("db"),
            encrypted: true,
            server_public_key: None,
        };
        let caps = wire::client_capabilities(greeting.capabilities, true, true);
        if wire::login(&mut packets, &greeting, caps, &login, None).await.is_ok() {
            let _ = wire::query(&mut packets, "SELECT 1").await;
        }
    });
    mysql_release_rule(data);
}

/// The login exchange fed `data` directly (sans I/O), as packets of one length byte each,
/// for a session nobody verified: whatever the server asks, the password never leaves in
/// clear text. A panic here is a finding against the credential release rule.
fn mysql_release_rule(data: &[u8]) {
    use mysql_wire as wire;
    const PASSWORD: &str = "fuzz-password-never-in-clear";
    let plugins = ["caching_sha2_password", "sha256_password", "mysql_clear_password", "mysql_native_password"];
    let greeting = wire::Greeting {
        version: "8.4.0".into(),
        connection_id: 1,
        capabilities: u32::MAX,
        scramble: vec![0x2a; 20],
        plugin: plugins[usize::from(data.first().copied().unwrap_or(0)) % plugins.len()].into(),
    };
    let login = wire::Login {
        user: "user",
        password: wire::Password::ChallengeOnly(PASSWORD),
        database: None,
        encrypted: false,
        server_public_key: None,
    };
    let leaks = |payload: &[u8]| payload.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes());
    let caps = wire::client_capabilities(greeting.capabilities, false, false);
    let Ok((mut exchange, response)) = wire::LoginExchange::start(&greeting, caps, &login) else { return };
    assert!(!leaks(&response), "the handshake response carries the password in clear");
    let mut rest = data.get(1..).unwrap_or_default();
    while let Some((&len, after)) = rest.split_first() {
        let (packet, next) = after.split_at(usize::from(len).min(after.len()));
        rest = next;
        match exchange.on_packet(packet) {
            Ok(wire::LoginStep::Send(payload)) => {
                assert!(!leaks(&payload), "the password left in clear for {}", exchange.plugin());
            }
            // No Kerberos credentials here: a login that asks for them goes no further.
            Ok(wire::LoginStep::Read) => {}
            Ok(wire::LoginStep::Done(_) | wire::LoginStep::GssStart { .. }) | Err(_) => return,
        }
    }
}

/// The TDS client (PRELOGIN, the login answer's token stream, a batch's results) against
/// `data`, and the PRELOGIN parser alone.
pub fn tds(data: &[u8]) {
    use tds_wire as tds;
    let _ = tds::parse_prelogin(data);
    block_on(async {
        let mut stream = Scripted { data };
        if tds::prelogin(&mut stream, tds::Encryption::On).await.is_err() {
            return;
        }
        let mut session = tds::Tds::new(stream);
        if session.login_answer().await.is_ok() {
            let _ = session.batch_after_flags("SELECT 1; SELECT 1").await;
            let _ = session.batch("SELECT 1").await;
        }
    });
}

/// A KDC's reply, read for a KRB-ERROR's code and clock (the Kerberos token stage).
pub fn kdc_error(data: &[u8]) {
    let _ = crate::identity::kerberos::kdc_error::parse(data);
}

/// What an SSH client reads before the server's banner.
pub fn ssh_banner(data: &[u8]) {
    let _ = crate::connect::ssh::sniff_first_bytes(data);
}

/// The first bytes of a port that speaks another protocol than the probe's.
pub fn service_sniff(data: &[u8]) {
    let _ = crate::model::sniff::identify(data);
    let _ = crate::model::sniff::wrong_service(data, "PostgreSQL");
}

/// A known_hosts file, and a lookup in it.
pub fn known_hosts(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(file) = crate::connect::ssh::known_hosts::KnownHosts::parse(std::path::Path::new("known_hosts"), &text) {
        let _ = file.verdict("db.internal", 22, "ssh-ed25519", &[0; 51]);
        let _ = file.algorithms_for("db.internal", 2222);
    }
}

/// The storage services' error bodies: S3/GCS XML (`<Code>`, `<Message>`), GCS JSON and
/// Azure's XML, as the probes read them.
pub fn storage_errors(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for name in ["Code", "Message", "BucketName", "AuthenticationErrorDetail"] {
        let _ = crate::connect::httpc::xml_element(&text, name);
    }
    crate::probes::gcs::read_refusal(data);
    let _ = crate::identity::aws::account::key_created(&text, "AKIAEXAMPLE");
    let _ = crate::identity::cloud::key_certificate_validity(data, "key-1");
    let _ = crate::probes::http::classify_signed_link_answer(data);
    if let Ok(url) = url::Url::parse(&text) {
        let _ = crate::model::signed_link::SignedLink::recognise(&url);
        let _ = crate::model::signed_link::secret_query_values(&url);
    }
}

/// serve's `target` parameter and `allowed_targets` patterns.
pub fn targets(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (left, right) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i));
    if let (Ok(pattern), Ok(target)) =
        (crate::model::targets::Pattern::parse(left), crate::model::targets::Target::parse(right))
    {
        let _ = pattern.matches(&target);
        let _ = crate::model::targets::Target::parse(&target.render());
    }
}

/// What a check card's page receives from anyone on the internet: `data` as a link token,
/// as a form token with a cookie, and as a form body; a token made from `data`'s claims
/// must verify with its key and no other.
pub fn card_request(data: &[u8]) {
    use crate::model::cards::{LinkClaims, form_token, form_token_valid, sign_link, verify_link};
    let text = String::from_utf8_lossy(data);
    let key = b"fuzzing-card-key-0123456789abcdef";
    let _ = verify_link(key, &text);
    let (token, cookie) = text.split_once(';').unwrap_or((&text, ""));
    let _ = form_token_valid(key, "0a1b2c", token, cookie);
    let _: Vec<(String, String)> = url::form_urlencoded::parse(data).into_owned().take(1_000).collect();
    let claims =
        LinkClaims { id: "0a1b2c".into(), card: text.chars().take(64).collect(), label: text.to_string(), expires: 1 };
    let signed = sign_link(key, &claims);
    assert_eq!(verify_link(key, &signed), Some(claims), "a signed link verifies");
    assert_eq!(verify_link(b"another-key", &signed), None, "only with its key");
    assert!(form_token_valid(key, "0a1b2c", &form_token(key, "0a1b2c", "nonce"), "nonce"));
}

/// A proxy's answers: the HTTP CONNECT negotiation and the SOCKS5 one (with and without
/// credentials) against `data` as everything the proxy says, and the answer-head parser on
/// every prefix.
pub fn proxy(data: &[u8]) {
    use crate::connect::proxy::through::{Via, negotiate};
    use crate::connect::proxy::{ProxySource, ProxyUrl, wire};
    for end in (0..data.len().min(wire::HEAD_MAX + 8)).step_by(61).chain([data.len()]) {
        let _ = wire::parse_connect_answer(&data[..end]);
    }
    let source = ProxySource::Flag;
    block_on(async {
        for url in ["http://u:p@proxy:3128", "http://proxy:3128", "socks5h://u:p@proxy:1080", "socks5h://proxy:1080"] {
            let Ok(proxy) = ProxyUrl::parse(url) else { continue };
            let via = Via { proxy: &proxy, source: &source };
            let mut stream = Scripted { data };
            let _ = negotiate(&mut stream, &via, "db.example", 5432).await;
        }
    });
}

/// An FTP control connection: `data` as everything the server says, read by the reply
/// reader split at several points, each reply's text through the passive-mode parsers, and
/// a whole conversation (greeting, AUTH TLS, USER, PASS, PBSZ, PROT, CWD, STAT, EPSV,
/// PASV, LIST) driven over it.
pub fn ftp(data: &[u8]) {
    use ftp_wire::{Control, Limits, ReplyReader, parse_epsv, parse_pasv};
    for step in [1usize, 7, 512, data.len().max(1)] {
        let mut reader = ReplyReader::new(Limits::default());
        for chunk in data.chunks(step) {
            if reader.feed(chunk).is_err() {
                break;
            }
            while let Ok(Some(reply)) = reader.next_reply() {
                let text = reply.text();
                let _ = parse_pasv(&text);
                let _ = parse_epsv(&text);
            }
        }
    }
    block_on(async {
        let mut control = Control::new(Scripted { data }, Limits::default());
        if control.reply().await.is_err() {
            return;
        }
        let script: [(&'static str, Option<&str>); 11] = [
            ("AUTH", Some("TLS")),
            ("USER", Some("u")),
            ("PASS", Some("p")),
            ("PBSZ", Some("0")),
            ("PROT", Some("P")),
            ("CWD", Some("dir")),
            ("STAT", Some("dir")),
            ("EPSV", None),
            ("PASV", None),
            ("LIST", None),
            ("QUIT", None),
        ];
        for (verb, arg) in script {
            if control.ask(verb, arg).await.is_err() {
                return;
            }
        }
    });
}

/// A big config's cut into parts (`config::document::read_in_parts`) around arbitrary
/// text: `data` stands among probes on both sides of several cuts, and the file read in
/// parts must be the file read whole (or both invalid).
pub fn config_parts(data: &[u8]) {
    let Ok(middle) = std::str::from_utf8(data) else { return };
    let fleet: String = (0..900)
        .map(|i| format!("[[probe]]\nname = \"p{i}\"\nkind = \"http\"\nurl = \"https://h{i}.example/\"\n[probe.tls]\nca = 'x'\n\n"))
        .collect();
    crate::config::document::check_parts_agree_with_whole(&format!("{middle}\n{fleet}{middle}\n{fleet}{middle}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds: transcripts of real servers (fuzz/seeds) and of the hostile suite's shapes.
    fn seeds(kind: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(kind);
        let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| std::fs::read(e.ok()?.path()).ok()).collect())
            .unwrap_or_default();
        assert!(!out.is_empty(), "no seeds in {}", dir.display());
        out.push(Vec::new());
        out
    }

    fn seed(kind: &str, name: &str) -> Vec<u8> {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(kind).join(format!("{name}.bin"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Deterministic mutations: flips, truncations, insertions of length-like bytes and
    /// splices, the shapes that break length-prefixed protocols.
    fn mutate(seed: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
        let mut out = seed.to_vec();
        for _ in 0..rng.usize(1..4) {
            let at = if out.is_empty() { 0 } else { rng.usize(..out.len()) };
            match rng.u8(..5) {
                0 if !out.is_empty() => out[at] ^= 1 << rng.u8(..8),
                1 => out.truncate(at),
                2 => {
                    let junk: [&[u8]; 5] =
                        [&[0xff; 4], &[0x7f, 0xff, 0xff, 0xff], &[0; 4], &[0xfe], &[0xfc, 0xff, 0xff]];
                    let piece = junk[rng.usize(..junk.len())];
                    out.splice(at..at, piece.iter().copied());
                }
                3 if !out.is_empty() => out[at] = rng.u8(..),
                _ => {
                    let start = rng.usize(..=out.len());
                    let copy: Vec<u8> = out[start..].iter().take(64).copied().collect();
                    out.splice(at..at, copy);
                }
            }
        }
        out
    }

    fn run(kind: &str, target: fn(&[u8]), rounds: usize) {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for seed in seeds(kind) {
            target(&seed);
            for _ in 0..rounds {
                target(&mutate(&seed, &mut rng));
            }
        }
    }

    #[test]
    fn a_config_cut_into_parts_reads_as_the_whole_around_mutated_configs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir.join("invalid"))
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .take(30)
            .collect();
        assert!(seeds.len() > 10, "no configs in {}", dir.display());
        // The shapes that decide a cut: headers in strings and arrays, a table among the
        // probes, a root `probe`, sub-tables before any [[probe]], headers written otherwise.
        for shape in [
            "x = '''\n[[probe]]\n'''",
            "[defaults]\ntimeout = \"1s\"",
            "probe = []",
            "[probe]",
            "[probe.tls]",
            "a = [\n[[probe]]",
            "[[ probe ]]",
            "[[\"probe\"]]",
            "[[probe]]\nname = \"p3\"",
        ] {
            seeds.push(shape.as_bytes().to_vec());
        }
        for seed in &seeds {
            config_parts(seed);
            for _ in 0..3 {
                config_parts(&mutate(seed, &mut rng));
            }
        }
    }

    #[test]
    fn postgres_client_survives_mutated_transcripts() {
        run("postgres", postgres, 3_000);
    }

    #[test]
    fn postgres_release_rule_holds_when_an_impostor_asks_for_cleartext() {
        // AuthenticationCleartextPassword (R, code 3), then AuthenticationOk and
        // ReadyForQuery: the exchange must refuse at the first.
        let message = |tag: u8, body: &[u8]| [&[tag][..], &((body.len() + 4) as i32).to_be_bytes(), body].concat();
        let data =
            [message(b'R', &3i32.to_be_bytes()), message(b'R', &0i32.to_be_bytes()), message(b'Z', b"I")].concat();
        postgres_release_rule(&data);
    }

    #[test]
    fn mysql_release_rule_holds_when_a_server_asks_for_the_password_every_way() {
        let packet = |bytes: &[u8]| [&[bytes.len() as u8][..], bytes].concat();
        let switch = |plugin: &str| packet(&[&[0xfe][..], plugin.as_bytes(), b"\0", &[0x2a; 20], b"\0"].concat());
        let key = packet(&[&[0x01][..], b"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"].concat());
        for (first, steps) in [
            (0u8, vec![packet(&[0x01, 4]), key.clone()]),
            (0, vec![switch("mysql_clear_password")]),
            (3, vec![switch("sha256_password"), key.clone()]),
            (2, vec![packet(&[0x01, 4])]),
            (1, vec![key]),
        ] {
            let data: Vec<u8> = std::iter::once(first).chain(steps.concat()).collect();
            mysql_release_rule(&data);
        }
    }

    #[test]
    fn mysql_client_survives_mutated_transcripts() {
        run("mysql", mysql, 3_000);
    }

    #[test]
    fn tds_client_survives_mutated_transcripts() {
        run("tds", tds, 3_000);
    }

    #[test]
    fn ssh_banner_known_hosts_storage_errors_and_targets_survive_mutations() {
        run("ssh_banner", ssh_banner, 2_000);
        run("known_hosts", known_hosts, 2_000);
        run("storage_errors", storage_errors, 2_000);
        run("targets", targets, 2_000);
        run("proxy", proxy, 2_000);
        run("card_request", card_request, 2_000);
    }

    #[test]
    fn ftp_control_connection_survives_mutated_transcripts() {
        run("ftp", ftp, 2_000);
        run("kdc_error", kdc_error, 3_000);
        run("service_sniff", service_sniff, 2_000);
    }

    #[test]
    fn recorded_kdc_errors_read_as_the_kdc_meant_them() {
        let skew = crate::identity::kerberos::kdc_error::parse(&seed("kdc_error", "clock-skew")).unwrap();
        assert_eq!(skew.code, 37);
        let failed = crate::identity::kerberos::kdc_error::parse(&seed("kdc_error", "preauth-failed")).unwrap();
        assert_eq!(failed.code, 24);
    }
}
