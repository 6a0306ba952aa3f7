//! The mssql probe against the harness's SQL Server: the official image where Docker runs,
//! the pysqlbridge stand-in here (TDS PRELOGIN, TLS inside TDS, SQL logins, Msg 18456),
//! extended with an Azure-style routing gateway, a TDS 8 strict listener, packet-size
//! negotiation and Msgs 4060 and 229 (scripts/harness/mssql_standin.py; each behaviour
//! checked first with Microsoft's ODBC driver, tedious, python-tds and tsql in
//! harness_servers.rs).

use crate::util::servers;
use crate::util::*;

fn ms_probe(name: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"mssql\"\nhost = \"localhost\"\nport = \"${{AP_MSSQL_PORT}}\"\nuser = \"${{AP_MSSQL_USER}}\"\n{extra}\n\n"
    )
}

#[tokio::test]
async fn mssql_login_and_tls_paths() {
    let env = harness_env();
    let ws = Workspace::new();
    let pw = "password = \"${AP_MSSQL_PASSWORD}\"";
    let mut cfg = String::new();
    cfg += &ms_probe(
        "ok",
        &format!("{pw}\nquery = \"SELECT item FROM orders\"\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\" }}"),
    );
    // LOGIN7 carries the password reversibly obfuscated: refused to an unverified server
    // unless the probe allows it.
    cfg += &ms_probe("default-prefer-unverified", pw);
    cfg += &ms_probe("prefer-allowed", &format!("{pw}\nallow_unverified_password = true"));
    cfg += &ms_probe("ok-pinned", &format!("{pw}\ntls = {{ pin_sha256 = [\"${{AP_SERVER_SHA256}}\"] }}"));
    cfg += &ms_probe(
        "wrong-password",
        "password = \"not-the-password\"\ntls = { mode = \"verify-full\", ca = \"${AP_CA}\" }",
    );
    cfg += &ms_probe(
        "untrusted-ca",
        &format!("{pw}\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CERTS}}/rogue-ca.crt\" }}"),
    );
    cfg += &ms_probe(
        "wrong-name",
        &format!("{pw}\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\", server_name = \"db.example.com\" }}"),
    );
    // Encrypt=no: the login packet is still encrypted; the session after it is not.
    // With a CA the login-only session is verified; without one, it is refused.
    cfg += &ms_probe(
        "ok-disabled",
        &format!("{pw}\nquery = \"SELECT item FROM orders\"\ntls = {{ mode = \"disable\", ca = \"${{AP_CA}}\" }}"),
    );
    cfg += &ms_probe("disabled-unverified", &format!("{pw}\ntls = {{ mode = \"disable\" }}"));
    cfg += &ms_probe(
        "wrong-password-disabled",
        "password = \"not-the-password\"\ntls = { mode = \"disable\", ca = \"${AP_CA}\" }",
    );
    cfg += &ms_probe(
        "no-such-table",
        &format!(
            "{pw}\nquery = \"SELECT * FROM no_such_table\"\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\" }}"
        ),
    );
    cfg += &ms_probe(
        "verify-ca-ignores-name",
        &format!("{pw}\ntls = {{ mode = \"verify-ca\", ca = \"${{AP_CA}}\", server_name = \"db.example.com\" }}"),
    );
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let secret = harness_var(&env, "AP_MSSQL_PASSWORD");
    assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret) && !out.stdout.contains("not-the-password"));
    let report = out.json();
    let ok = assert_passed(&report, "ok");
    assert_eq!(ok["tls"]["verified"], true, "{ok:#}");
    assert_eq!(ok["tls"]["sha256"], harness_var(&env, "AP_SERVER_SHA256"));
    let refused = assert_failed(&report, "default-prefer-unverified", "auth", "tls_untrusted");
    let hint = refused["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("pin_sha256 = [\"") && hint.contains("allow_unverified_password = true"), "{refused:#}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("did not send the password"), "{refused:#}");
    let allowed = assert_warned(&report, "prefer-allowed", "tls.mode = prefer");
    assert_eq!(allowed["tls"]["verified"], false);
    assert_failed(&report, "disabled-unverified", "auth", "tls_untrusted");
    assert_eq!(assert_passed(&report, "ok-pinned")["tls"]["pinned"], true);
    let wrong = assert_failed(&report, "wrong-password", "auth", "auth_rejected");
    assert!(wrong["error"]["message"].as_str().unwrap().contains("Msg 18456"), "{wrong:#}");
    let untrusted = assert_failed(&report, "untrusted-ca", "tls", "tls_untrusted");
    assert!(untrusted["error"]["hint"].as_str().unwrap().contains("pin_sha256 = [\""), "{untrusted:#}");
    assert_failed(&report, "wrong-name", "tls", "tls_hostname");
    assert_passed(&report, "verify-ca-ignores-name");
    assert!(assert_passed(&report, "ok-disabled")["tls"].is_null());
    assert_failed(&report, "wrong-password-disabled", "auth", "auth_rejected");
    let table = assert_failed(&report, "no-such-table", "check", "not_found");
    assert!(table["error"]["message"].as_str().unwrap().contains("Msg 208"), "{table:#}");
    // One connection: the login and the query ride on the TLS session the tls stage verified.
    let only = ws.config(&ms_probe(
        "ok",
        &format!("{pw}\nquery = \"SELECT item FROM orders\"\ntls = {{ mode = \"verify-full\", ca = \"${{AP_CA}}\" }}"),
    ));
    let out = authprobe_harness(&["run", "-c", only.to_str().unwrap(), "-vv"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("TDS 7.4") && out.stdout.contains("session encrypted"), "{}", out.stdout);
    assert!(out.stdout.contains("the check query returned 1 row(s)"), "{}", out.stdout);
}

fn ms_at(name: &str, port_var: &str, password: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"mssql\"\nhost = \"localhost\"\nport = \"${{{port_var}}}\"\nuser = \"${{AP_MSSQL_USER}}\"\npassword = \"{password}\"\n{extra}\n\n"
    )
}

/// What SQL Server and Azure SQL do beyond a plain login, against the stand-in's listeners.
#[tokio::test]
async fn mssql_routing_strict_packet_size_and_server_errors() {
    let env = harness_env();
    let ws = Workspace::new();
    let pw = "${AP_MSSQL_PASSWORD}";
    let tls = "tls = { mode = \"verify-full\", ca = \"${AP_CA}\" }";
    let strict = "tls = { mode = \"strict\", ca = \"${AP_CA}\" }";
    let big = format!("query = \"SELECT 1 /* {} */\"", "x".repeat(3000));
    let mut cfg = String::new();
    // The gateway routes to a server that agrees 512-byte packets: a 3 kB batch must be split.
    cfg += &ms_at("routed", "AP_MSSQL_GATEWAY_PORT", pw, &format!("{tls}\n{big}"));
    cfg += &ms_at("routed-wrong-password", "AP_MSSQL_GATEWAY_PORT", "nope", tls);
    cfg += &ms_at("misrouted", "AP_MSSQL_MISROUTE_PORT", pw, tls);
    cfg += &ms_at("strict", "AP_MSSQL_STRICT_PORT", pw, &format!("{strict}\n{big}"));
    cfg += &ms_at("strict-required", "AP_MSSQL_STRICT_PORT", pw, tls);
    cfg += &ms_at("strict-unsupported", "AP_MSSQL_PORT", pw, strict);
    cfg += &ms_at(
        "strict-untrusted",
        "AP_MSSQL_STRICT_PORT",
        pw,
        "tls = { mode = \"strict\", ca = \"${AP_CERTS}/rogue-ca.crt\" }",
    );
    cfg += &ms_at("no-such-database", "AP_MSSQL_PORT", pw, &format!("{tls}\ndatabase = \"no_such_db\""));
    cfg += &ms_at("denied-table", "AP_MSSQL_PORT", pw, &format!("{tls}\nquery = \"SELECT * FROM payroll\""));
    let path = ws.config(&cfg);
    let out = authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--format", "json", "-v"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let secret = harness_var(&env, "AP_MSSQL_PASSWORD");
    assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret));
    let report = out.json();
    let routed = assert_passed(&report, "routed");
    assert_eq!(routed["tls"]["verified"], true, "{routed:#}");
    let wrong = assert_failed(&report, "routed-wrong-password", "auth", "auth_rejected");
    assert!(wrong["error"]["message"].as_str().unwrap().contains("Msg 18456"), "{wrong:#}");
    // The routed server's certificate is verified against the routed name, not the gateway's.
    let misrouted = assert_failed(&report, "misrouted", "auth", "tls_hostname");
    let message = misrouted["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("where the gateway routed the login") && message.contains("wrong.example.com"),
        "{misrouted:#}"
    );
    assert_eq!(assert_passed(&report, "strict")["tls"]["verified"], true);
    let required = assert_failed(&report, "strict-required", "tls", "network");
    assert!(required["error"]["hint"].as_str().unwrap().contains("tls.mode = \"strict\""), "{required:#}");
    // The stand-in speaks TDS 7 only on its main port; SQL Server 2022 (compose) speaks both
    // there, which tests/docker_real.rs checks.
    if harness_var(&env, "AP_SERVERS") != "compose" {
        let unsupported = assert_failed(&report, "strict-unsupported", "tls", "network");
        assert!(unsupported["error"]["hint"].as_str().unwrap().contains("verify-full"), "{unsupported:#}");
    }
    assert_failed(&report, "strict-untrusted", "tls", "tls_untrusted");
    let db = assert_failed(&report, "no-such-database", "auth", "not_found");
    assert!(db["error"]["message"].as_str().unwrap().contains("Msg 4060"), "{db:#}");
    let denied = assert_failed(&report, "denied-table", "check", "permission_denied");
    assert!(denied["error"]["message"].as_str().unwrap().contains("Msg 229"), "{denied:#}");
    // -v says where the login was routed, and that TDS 8 agreed its ALPN protocol.
    let out =
        authprobe_harness(&["run", "-c", path.to_str().unwrap(), "--only", "routed", "--only", "strict", "-v"], &env)
            .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let gateway = harness_var(&env, "AP_MSSQL_GATEWAY_PORT");
    let routed_port = harness_var(&env, "AP_MSSQL_ROUTED_PORT");
    assert!(
        out.stdout.contains(&format!("localhost:{gateway} routed the login to localhost:{routed_port}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("TDS 8 strict: TLS first, ALPN tds/8.0"), "{}", out.stdout);
}

/// A server with Force Encryption answers a client that asks for none with REQUIRED; with
/// tls.mode = "disable" that is a tls_handshake failure saying so. (The stand-in cannot
/// force encryption, so a peer plays that PRELOGIN answer.)
#[tokio::test]
async fn mssql_disable_against_forced_encryption() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = servers::raw(|mut tcp| async move {
        let mut request = [0u8; 512];
        let _ = tcp.read(&mut request).await;
        let payload = [0x00, 0x00, 0x0b, 0x00, 0x06, 0x01, 0x00, 0x11, 0x00, 0x01, 0xff, 16, 0, 0, 0, 0, 0, 0x03];
        let mut answer = vec![0x04, 0x01, 0x00, (8 + payload.len()) as u8, 0, 0, 1, 0];
        answer.extend_from_slice(&payload);
        let _ = tcp.write_all(&answer).await;
        let _ = tcp.read(&mut request).await;
    })
    .await;
    let ws = Workspace::new();
    let cfg = format!(
        "[[probe]]\nname = \"forced\"\nkind = \"mssql\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"u\"\npassword = \"p\"\ntls = {{ mode = \"disable\" }}\n",
        server.port()
    );
    let path = ws.config(&cfg);
    let out = authprobe(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &[]).await;
    let report = out.json();
    let p = assert_failed(&report, "forced", "auth", "tls_handshake");
    assert!(p["error"]["message"].as_str().unwrap().contains("requires encryption"), "{p:#}");
}

#[tokio::test]
async fn mssql_check_and_inspect() {
    let env = harness_env();
    let port = harness_var(&env, "AP_MSSQL_PORT");
    let url = format!("mssql://app_user@localhost:{port}/?encrypt=verify-full&ssl-ca={}", harness_var(&env, "AP_CA"));
    let mut with_pw = env.clone();
    with_pw.push(("MSSQL_PASSWORD".into(), harness_var(&env, "AP_MSSQL_PASSWORD")));
    let out = authprobe_harness(&["check", &url, "--format", "json"], &with_pw).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Without a CA the login is held back, and the hint names the flags that verify or allow.
    let bare = format!("mssql://app_user@localhost:{port}/");
    let out = authprobe_harness(&["check", &bare], &with_pw).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("--pin-sha256") && out.stdout.contains("--allow-unverified-password"),
        "{}",
        out.stdout
    );
    let out = authprobe_harness(&["check", &bare, "--allow-unverified-password"], &with_pw).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("WARN") && out.stdout.contains("not verified"), "{}", out.stdout);
    let out = authprobe_harness(&["inspect", &format!("mssql://localhost:{port}")], &env).await;
    assert_eq!(out.code, 1, "not verified by the system store: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("sha256   {}", harness_var(&env, "AP_SERVER_SHA256"))), "{}", out.stdout);
}

/// A gateway whose routed server routes again: followed once, then refused, naming both hops.
#[tokio::test]
async fn mssql_routing_is_followed_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    fn routing_answer(port: u16) -> Vec<u8> {
        // LOGINACK: interface, TDS 7.4, an empty program name, version 16.0.0
        let mut tokens = vec![0xAD, 10, 0, 0x01, 0x74, 0x00, 0x00, 0x04, 0x00, 16, 0, 0, 0];
        let host: Vec<u8> = "127.0.0.1".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut value = vec![0u8];
        value.extend_from_slice(&port.to_le_bytes());
        value.extend_from_slice(&9u16.to_le_bytes());
        value.extend(host);
        let mut body = vec![20u8];
        body.extend_from_slice(&(value.len() as u16).to_le_bytes());
        body.extend(value);
        body.extend_from_slice(&[0, 0]);
        tokens.push(0xE3);
        tokens.extend_from_slice(&(body.len() as u16).to_le_bytes());
        tokens.extend(body);
        tokens.extend_from_slice(&[0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut packet = vec![0x04, 0x01, 0x00, (8 + tokens.len()) as u8, 0, 0, 1, 0];
        packet.extend(tokens);
        packet
    }
    let route = |to: Arc<AtomicU16>| {
        move |mut tcp: tokio::net::TcpStream| {
            let to = to.clone();
            async move {
                let mut request = [0u8; 1024];
                let _ = tcp.read(&mut request).await;
                // PRELOGIN answer: version 16.0, encryption not supported.
                let payload =
                    [0x00, 0x00, 0x0b, 0x00, 0x06, 0x01, 0x00, 0x11, 0x00, 0x01, 0xff, 16, 0, 0, 0, 0, 0, 0x02];
                let mut answer = vec![0x04, 0x01, 0x00, (8 + payload.len()) as u8, 0, 0, 1, 0];
                answer.extend_from_slice(&payload);
                let _ = tcp.write_all(&answer).await;
                let _ = tcp.read(&mut request).await; // LOGIN7
                let _ = tcp.write_all(&routing_answer(to.load(Ordering::SeqCst))).await;
                let _ = tcp.read(&mut request).await;
            }
        }
    };
    let (to_b, to_a) = (Arc::new(AtomicU16::new(0)), Arc::new(AtomicU16::new(0)));
    let a = servers::raw(route(to_b.clone())).await;
    let b = servers::raw(route(to_a.clone())).await;
    to_b.store(b.port(), Ordering::SeqCst);
    to_a.store(a.port(), Ordering::SeqCst);
    let ws = Workspace::new();
    let cfg = format!(
        "[[probe]]\nname = \"loop\"\nkind = \"mssql\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"u\"\npassword = \"p\"\nallow_unverified_password = true\n",
        a.port()
    );
    let path = ws.config(&cfg);
    let out = authprobe(&["run", "-c", path.to_str().unwrap(), "--format", "json"], &[]).await;
    let report = out.json();
    let p = assert_failed(&report, "loop", "auth", "unexpected_response");
    let message = p["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("at 127.0.0.1:{}", b.port())) && message.contains("routed the login again"),
        "{p:#}"
    );
    assert_eq!((a.requests(), b.requests()), (1, 1), "one hop, then stop");
}
