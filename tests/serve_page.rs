//! serve's status page in a real browser (Debian's chromium-headless-shell, through
//! scripts/harness/browser.py): at a laptop's width (1366 px) and a phone's (390 px), no
//! horizontal scrolling, the failing probes first, and no secret anywhere in the DOM; the
//! screenshots are written to target/status-page/ (the README's comes from there).

use std::process::Stdio;

use crate::serve::Serve;
use crate::util::servers::{self, ClientCerts, GOOD_TOKEN};
use crate::util::*;

struct Seen {
    report: serde_json::Value,
}

async fn open(url: &str, width: u32, height: u32, mobile: bool, shot: &std::path::Path) -> Seen {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/harness/browser.py");
    require_tool("chromium-headless-shell");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("/usr/bin/python3")
            .arg(&script)
            .args([url, &width.to_string(), &height.to_string(), if mobile { "1" } else { "0" }])
            .arg(shot)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the browser answered within 60 s")
    .expect("run browser.py");
    assert!(out.status.success(), "browser.py: {}", String::from_utf8_lossy(&out.stderr));
    Seen { report: serde_json::from_slice(&out.stdout).expect("browser.py prints JSON") }
}

#[tokio::test]
async fn the_status_page_fits_a_laptop_and_a_phone_shows_failures_first_and_no_secret() {
    let pki = certs::pki();
    let good = servers::https(&pki.server, ClientCerts::None).await;
    let expired = servers::https(&pki.expired, ClientCerts::None).await;
    let soon = servers::https(&pki.expiring_soon, ClientCerts::None).await;
    let ws = Workspace::new();
    let tls = tls_ca(&pki);
    let stale = "CANARY-page-stale-token-5e2a91";
    let mut cfg = http_probe(
        "orders-api",
        &good.url("https", "/bearer"),
        &format!("auth = {{ type = \"bearer\", token = \"{GOOD_TOKEN}\" }}\n{tls}"),
    );
    cfg += &http_probe("billing-api-with-a-rather-long-name-for-the-layout", &soon.url("https", "/health"), &tls);
    cfg += &http_probe(
        "partner-feed-stale-token",
        &good.url("https", "/bearer?with=a&very=long&query=string-that-goes-on-and-on-and-on-and-on-to-test-wrapping"),
        &format!("auth = {{ type = \"bearer\", token = \"{stale}\" }}\n{tls}"),
    );
    cfg += &http_probe("legacy-portal", &expired.url("https", "/health"), &tls);
    let config = ws.config(&cfg);
    let serve = Serve::start(&config, &["--min-interval", "0s"], &[]).await;
    for _ in 0..4 {
        for probe in [
            "orders-api",
            "billing-api-with-a-rather-long-name-for-the-layout",
            "partner-feed-stale-token",
            "legacy-portal",
        ] {
            let (code, _) = serve.get(&format!("/probe?target={probe}")).await;
            assert_eq!(code, 200);
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page");
    std::fs::create_dir_all(&dir).unwrap();
    let base = format!("http://{}", serve.addr);
    for (name, path, width, height, mobile) in [
        ("desktop", "/".to_string(), 1366, 700, false),
        ("phone", "/".to_string(), 390, 844, true),
        ("probe-phone", "/status/partner-feed-stale-token".to_string(), 390, 844, true),
    ] {
        let shot = dir.join(format!("{name}.png"));
        let seen = open(&format!("{base}{path}"), width, height, mobile, &shot).await;
        let r = &seen.report;
        let (scroll, client) = (r["scrollWidth"].as_u64().unwrap(), r["clientWidth"].as_u64().unwrap());
        assert!(
            scroll <= client,
            "{name}: the page is {scroll} px wide in a {client} px window; sticking out: {}",
            r["sticking_out"]
        );
        assert_eq!(client, u64::from(width), "{name}: the page is laid out for the device width");
        let html = r["html"].as_str().unwrap();
        for secret in [stale, GOOD_TOKEN] {
            assert!(!html.contains(secret), "{name}: a token is in the DOM");
        }
        let shot_size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(shot_size > 5_000, "{name}: screenshot {} is {shot_size} bytes", shot.display());
        if path == "/" {
            let cards: Vec<(String, String)> = r["cards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["probe"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
                .collect();
            assert_eq!(cards.len(), 4, "{cards:?}");
            assert_eq!(cards[0].1, "fail", "failing first: {cards:?}");
            assert_eq!(cards[1].1, "fail", "failing first: {cards:?}");
            assert_eq!(
                cards[2],
                ("billing-api-with-a-rather-long-name-for-the-layout".to_string(), "warn".to_string()),
                "{cards:?}"
            );
            assert_eq!(cards[3], ("orders-api".to_string(), "pass".to_string()), "{cards:?}");
            let text = r["text"].as_str().unwrap();
            assert!(text.contains("2 failing"), "{text}");
            assert!(text.contains("failing since"), "{text}");
            assert!(text.contains("tls: tls_expired") || text.contains("tls: tls_"), "{text}");
            assert!(html.contains("aria-label=\"last 4 results\""), "the history strip holds the four runs");
        } else {
            let text = r["text"].as_str().unwrap();
            for part in ["Last report", "Stages", "TLS", "History", "auth_rejected"] {
                assert!(text.contains(part), "{name}: no `{part}` in:\n{text}");
            }
        }
    }
}
