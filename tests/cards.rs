//! Check cards end to end: `authprobe card key|create|list|revoke`, and serve's `/card/TOKEN`
//! driven with curl (a client not written here, with its own cookie jar) against the
//! harness's real PostgreSQL: a wrong password fails at auth with the hint, the right one
//! passes and is sealed to an age recipient (opened with Debian's `age`), the link is then
//! spent — on a second serve sharing the outbox too; tampered, expired and revoked links,
//! a POST without the form token, a 1 MiB body and an 11th attempt are refused; an
//! untrusted certificate is approved from the page; no value shows anywhere but the sealed
//! file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::serve::Serve;
use crate::util::*;

struct Cards {
    ws: Workspace,
    cfg: PathBuf,
    outbox: PathBuf,
    identity: PathBuf,
    env: Vec<(String, String)>,
}

fn setup(redirect: bool) -> Cards {
    let env = harness_env();
    let ws = Workspace::new();
    let key = ws.path("card.key");
    let made = Command::new(BIN).args(["card", "key"]).arg(&key).output().unwrap();
    assert!(made.status.success(), "{made:?}");
    let again = Command::new(BIN).args(["card", "key"]).arg(&key).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "an existing key is never overwritten");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let identity = ws.path("operator.agekey");
    let keygen = Command::new(require_tool("age-keygen")).arg("-o").arg(&identity).output().unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let recipient = std::fs::read_to_string(&identity)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .expect("age-keygen writes the public key");
    let outbox = ws.path("outbox");
    let redirect = if redirect { "redirect_uri = \"http://127.0.0.1:9/onboarding/done\"\n" } else { "" };
    let cfg = ws.config(&format!(
        "[cards]\nkey = \"${{file:{}}}\"\npublic_url = \"https://cards.example.test\"\n\
         deliver = {{ age_recipients = [\"{recipient}\"], outbox = \"{}\" }}\n\n\
         [[probe]]\nname = \"orders-db-template\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = \"${{AP_PG_PORT}}\"\n\
         database = \"appdb\"\ntls = {{ ca = \"${{AP_CA}}\", server_name = \"localhost\" }}\n\n\
         [[probe]]\nname = \"untrusted-template\"\nkind = \"postgres\"\nhost = \"localhost\"\nport = \"${{AP_PG_PORT}}\"\n\
         database = \"appdb\"\ntls = {{ mode = \"verify-full\" }}\n\n\
         [[probe]]\nname = \"web\"\nkind = \"http\"\nurl = \"https://localhost:${{AP_HTTPS_PORT}}/health\"\ntls = {{ ca = \"${{AP_CA}}\" }}\n\n\
         [[card]]\nname = \"acme-orders-db\"\ntitle = \"Acme & Co: orders database <read-only>\"\nprobe = \"orders-db-template\"\n\
         fields = [\"user\", \"password\"]\n{redirect}\n\
         [[card]]\nname = \"partner-db\"\ntitle = \"Partner database\"\nprobe = \"untrusted-template\"\nfields = [\"user\", \"password\"]\n",
        key.display(),
        outbox.display()
    ));
    Cards { ws, cfg, outbox, identity, env }
}

impl Cards {
    fn authprobe(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_remove("AUTHPROBE_CONFIG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `card create` → the link's path (`/card/TOKEN`) and id.
    fn create(&self, card: &str, label: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["card", "create", "-c", self.cfg.to_str().unwrap(), card, "--label", label];
        args.extend(extra);
        let out = self.authprobe(&args);
        assert!(out.status.success(), "{out:?}");
        let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let path =
            link.strip_prefix("https://cards.example.test").expect("the link starts with public_url").to_string();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let id = stderr.split("link ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
        (path, id)
    }
}

/// A curl session with its own cookie jar.
struct Browser {
    jar: PathBuf,
    addr: String,
}

struct Page {
    status: u16,
    headers: String,
    body: String,
}

impl Browser {
    fn new(ws: &Workspace, name: &str, serve: &Serve) -> Browser {
        Browser { jar: ws.path(&format!("{name}.cookies")), addr: serve.addr.clone() }
    }

    fn curl(&self, path: &str, form: &[(&str, &str)], raw_body: Option<&Path>) -> Page {
        let mut cmd = Command::new(require_tool("curl"));
        cmd.args(["-sS", "-D", "-", "-o", "-", "--max-time", "60"]).arg("-c").arg(&self.jar).arg("-b").arg(&self.jar);
        // Values go in a file curl reads, never in its arguments.
        if !form.is_empty() {
            let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
            let file = self.jar.with_extension(format!("body{}", fastrand::u32(..)));
            std::fs::write(&file, body).unwrap();
            cmd.arg("--data-binary").arg(format!("@{}", file.display()));
        }
        if let Some(file) = raw_body {
            cmd.args(["-H", "Content-Type: application/x-www-form-urlencoded"]);
            cmd.arg("--data-binary").arg(format!("@{}", file.display()));
        }
        cmd.arg(format!("http://{}{path}", self.addr));
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Page { status, headers: headers.to_string(), body: body.to_string() }
    }

    fn get(&self, path: &str) -> Page {
        self.curl(path, &[], None)
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.curl(path, form, None)
    }
}

fn csrf_of(page: &Page) -> String {
    page.body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("a form token in:\n{}", page.body))
        .to_string()
}

fn open_sealed(cards: &Cards, id: &str) -> serde_json::Value {
    let sealed = cards.outbox.join(format!("{id}.age"));
    let out = Command::new(require_tool("age")).arg("-d").arg("-i").arg(&cards.identity).arg(&sealed).output().unwrap();
    assert!(out.status.success(), "age -d: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the sealed result is JSON")
}

#[tokio::test]
async fn an_owner_tests_a_credential_from_a_link_and_it_is_delivered_sealed() {
    let cards = setup(true);
    let wrong = "wrong-card-pw-5d1e";
    let user = harness_var(&cards.env, "AP_PG_USER");
    let password = harness_var(&cards.env, "AP_PG_PASSWORD");
    let validate = cards.authprobe(&["validate", "-c", cards.cfg.to_str().unwrap()]);
    assert!(validate.status.success(), "{validate:?}");
    // Templates are not probes of `run`: only `web` runs.
    let run = cards.authprobe(&["run", "-c", cards.cfg.to_str().unwrap(), "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["probes"].as_array().unwrap().len(), 1, "{report:#}");

    let serve = Serve::start(&cards.cfg, &[], &cards.env).await;
    let (path, id) = cards.create("acme-orders-db", "Acme <ops>", &[]);
    let owner = Browser::new(&cards.ws, "owner", &serve);
    let page = owner.get(&path);
    assert_eq!(page.status, 200, "{}", page.body);
    for header in [
        "content-security-policy: default-src 'none'; style-src 'sha256-",
        "x-frame-options: DENY",
        "referrer-policy: no-referrer",
        "cache-control: no-store",
        "set-cookie: authprobe_card=",
        "HttpOnly; SameSite=Strict",
    ] {
        assert!(page.headers.to_lowercase().contains(&header.to_lowercase()), "{header}:\n{}", page.headers);
    }
    assert!(
        page.body.contains("Acme &amp; Co: orders database &lt;read-only&gt;"),
        "the title escaped:\n{}",
        page.body
    );
    assert!(page.body.contains("for Acme &lt;ops&gt;"), "the label escaped");
    assert!(
        page.body
            .contains(&format!("<code>postgres://127.0.0.1:{}/appdb</code>", harness_var(&cards.env, "AP_PG_PORT"))),
        "the fixed target:\n{}",
        page.body
    );
    assert!(page.body.contains("type=\"password\" name=\"password\""), "{}", page.body);
    assert!(page.body.contains("type=\"text\" name=\"user\""), "{}", page.body);
    let csrf = csrf_of(&page);

    // Without the form token (another site's POST): refused, not counted.
    let forged = Browser::new(&cards.ws, "forger", &serve).post(&path, &[("user", &user), ("password", &password)]);
    assert_eq!(forged.status, 403, "{}", forged.body);

    // What the server says comes back escaped: its message names the user given.
    let html_user = "<img src=x onerror=alert(1)>";
    let echoed = owner.post(&path, &[("csrf", &csrf), ("user", html_user), ("password", wrong)]);
    assert!(echoed.body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{}", echoed.body);
    assert!(!echoed.body.contains(html_user), "{}", echoed.body);
    let csrf = csrf_of(&echoed);
    let failed = owner.post(&path, &[("csrf", &csrf), ("user", &user), ("password", wrong)]);
    assert_eq!(failed.status, 200);
    assert!(failed.body.contains("auth: auth_rejected"), "{}", failed.body);
    assert!(failed.body.contains("FAIL"), "{}", failed.body);
    let csrf = csrf_of(&failed);

    let passed = owner.post(&path, &[("csrf", &csrf), ("user", &user), ("password", &password)]);
    assert_eq!(passed.status, 303, "{}", passed.body);
    assert!(
        passed.headers.contains(&format!("location: http://127.0.0.1:9/onboarding/done?card={id}&status=passed")),
        "{}",
        passed.headers
    );
    let sealed = open_sealed(&cards, &id);
    assert_eq!(sealed["fields"], serde_json::json!({"user": user, "password": password}), "{sealed:#}");
    assert_eq!(sealed["card"], "acme-orders-db");
    assert_eq!(sealed["label"], "Acme <ops>");

    // Spent: the same link again, and a tampered one, get the same page.
    let again = owner.get(&path);
    assert_eq!(again.status, 404);
    assert!(again.body.contains("This link is no longer valid"));
    let (fresh, _) = cards.create("acme-orders-db", "tamper", &[]);
    let mut tampered = fresh.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = owner.get(std::str::from_utf8(&tampered).unwrap());
    assert_eq!(
        (tampered.status, tampered.body.clone()),
        (again.status, again.body.clone()),
        "no detail that helps guessing"
    );
    let (short, _) = cards.create("acme-orders-db", "short", &["--expires", "1s"]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(owner.get(&short).status, 404, "expired");
    let (revoked, revoked_id) = cards.create("acme-orders-db", "revoked", &[]);
    let out = cards.authprobe(&["card", "revoke", "-c", cards.cfg.to_str().unwrap(), &revoked_id]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(owner.get(&revoked).status, 404, "revoked");
    let unknown = cards.authprobe(&["card", "revoke", "-c", cards.cfg.to_str().unwrap(), "abcdef"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains(&revoked_id), "the known links are listed");

    // The operator's view: states and last results, never a value.
    let list = cards.authprobe(&["card", "list", "-c", cards.cfg.to_str().unwrap()]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(listed.contains(&format!("{id}  acme-orders-db  Acme <ops>  spent")), "{listed}");
    assert!(listed.contains("revoked") && listed.contains("expired") && listed.contains("open"), "{listed}");
    let (_, metrics) = serve.get("/metrics").await;
    assert!(metrics.contains("authprobe_card_attempts_total{card=\"acme-orders-db\",result=\"fail\"} 2"), "{metrics}");
    assert!(metrics.contains("authprobe_card_attempts_total{card=\"acme-orders-db\",result=\"pass\"} 1"), "{metrics}");
    assert!(metrics.contains("authprobe_cards_open 1"), "the tamper link: {metrics}");
    crate::serve::promtool_accepts(&metrics);
    let (_, status) = serve.get("/").await;
    assert!(status.contains("Check cards (4 links)"), "the status page lists the links: {status}");
    assert!(status.contains("<td>Acme &lt;ops&gt;</td><td>spent</td>"), "{status}");
    assert!(status.contains("<td>3</td><td>pass</td>"), "three attempts, the last passed: {status}");

    // The values are nowhere but the sealed file.
    let mut texts = vec![serve.log(), metrics, status, listed, passed.body, failed.body];
    for entry in std::fs::read_dir(&cards.outbox).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e != "age") {
            texts.push(std::fs::read_to_string(&path).unwrap());
        }
    }
    for text in &texts {
        assert!(!text.contains(&password) && !text.contains(wrong), "a value leaked:\n{text}");
    }
}

#[tokio::test]
async fn card_pages_are_bounded_and_a_link_is_spent_on_every_replica() {
    let cards = setup(false);
    let user = harness_var(&cards.env, "AP_PG_USER");
    let password = harness_var(&cards.env, "AP_PG_PASSWORD");
    let one = Serve::start(&cards.cfg, &[], &cards.env).await;
    let two = Serve::start(&cards.cfg, &[], &cards.env).await;

    // A body of 1 MiB: 413, before it is read.
    let (path, _) = cards.create("acme-orders-db", "bounds", &[]);
    let owner = Browser::new(&cards.ws, "owner", &one);
    let csrf = csrf_of(&owner.get(&path));
    let big = cards.ws.write("big.form", &format!("csrf={csrf}&password={}", "x".repeat(1 << 20)));
    assert_eq!(owner.curl(&path, &[], Some(&big)).status, 413);
    let long = "y".repeat(9 * 1024);
    let field = owner.post(&path, &[("csrf", &csrf), ("user", &user), ("password", &long)]);
    assert_eq!(field.status, 400, "a field over 8 KiB");
    assert!(field.body.contains("longer than 8 KiB"), "{}", field.body);

    // Ten attempts an hour per link; the eleventh gets 429.
    for i in 0..10 {
        let page = owner.post(&path, &[("csrf", &csrf), ("user", &user), ("password", &format!("wrong-{i}"))]);
        assert_eq!(page.status, 200, "attempt {i}: {}", page.body);
    }
    let limited = owner.post(&path, &[("csrf", &csrf), ("user", &user), ("password", &password)]);
    assert_eq!(limited.status, 429, "{}", limited.body);

    // Spent through one replica, refused by the other (they share the outbox).
    let (path, id) = cards.create("acme-orders-db", "replicas", &[]);
    let at_two = Browser::new(&cards.ws, "at-two", &two);
    let csrf_two = csrf_of(&at_two.get(&path));
    let at_one = Browser::new(&cards.ws, "at-one", &one);
    let csrf_one = csrf_of(&at_one.get(&path));
    let passed = at_one.post(&path, &[("csrf", &csrf_one), ("user", &user), ("password", &password)]);
    assert_eq!(passed.status, 200, "{}", passed.body);
    assert!(passed.body.contains("now used up"), "{}", passed.body);
    assert!(cards.outbox.join(format!("{id}.age")).exists());
    let late = at_two.post(&path, &[("csrf", &csrf_two), ("user", &user), ("password", &password)]);
    assert_eq!(late.status, 404, "{}", late.body);
    assert_eq!(at_two.get(&path).status, 404);

    // Not on loopback and without TLS: card pages are refused (they take passwords).
    let exposed = Serve::start(&cards.cfg, &["--listen", "0.0.0.0:0"], &cards.env).await;
    let port = exposed.addr.rsplit(':').next().unwrap();
    let (fresh, _) = cards.create("acme-orders-db", "exposed", &[]);
    let refused = Browser { jar: cards.ws.path("exposed.cookies"), addr: format!("127.0.0.1:{port}") }.get(&fresh);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("HTTPS"), "{}", refused.body);
}

#[tokio::test]
async fn an_owner_approves_an_untrusted_certificate_from_the_card() {
    let cards = setup(false);
    let user = harness_var(&cards.env, "AP_PG_USER");
    let password = harness_var(&cards.env, "AP_PG_PASSWORD");
    let serve = Serve::start(&cards.cfg, &[], &cards.env).await;
    let (path, id) = cards.create("partner-db", "Partner", &[]);
    let owner = Browser::new(&cards.ws, "owner", &serve);
    let csrf = csrf_of(&owner.get(&path));
    let refused = owner.post(&path, &[("csrf", &csrf), ("user", &user), ("password", &password)]);
    assert!(refused.body.contains("tls: tls_untrusted"), "{}", refused.body);
    for shown in ["SHA-256", "SHA-1", "subject", "issuer", "Approve this certificate for localhost:"] {
        assert!(refused.body.contains(shown), "{shown}:\n{}", refused.body);
    }
    let fingerprint =
        refused.body.split("name=\"approve\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    let csrf = csrf_of(&refused);
    let passed =
        owner.post(&path, &[("csrf", &csrf), ("user", &user), ("password", &password), ("approve", &fingerprint)]);
    assert_eq!(passed.status, 200, "{}", passed.body);
    assert!(passed.body.contains("now used up"), "{}", passed.body);
    let approvals = std::fs::read_to_string(cards.ws.path("approvals.toml")).unwrap();
    assert!(approvals.contains("validated_by = \"card:Partner\""), "{approvals}");
    assert!(approvals.contains(&fingerprint), "{approvals}");
    let sealed = open_sealed(&cards, &id);
    assert_eq!(sealed["approved"]["sha256"], serde_json::json!(fingerprint), "{sealed:#}");
    let (_, status) = serve.get("/").await;
    assert!(status.contains(&format!("<code>{fingerprint}</code>")), "the approved fingerprint: {status}");
    // The record is the one `approvals list` shows, and the operator's probes trust it too.
    let list = cards.authprobe(&["approvals", "list", "-c", cards.cfg.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("card:Partner"), "{list:?}");
}

/// Opens `url` in headless Chromium at `(width, height, mobile)` and submits `forms` one
/// after another (scripts/harness/browser.py; the values travel in its environment).
async fn browse(url: &str, window: (u32, u32, bool), shot: &Path, forms: &serde_json::Value) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/harness/browser.py");
    require_tool("chromium-headless-shell");
    let (width, height, mobile) = window;
    let out = tokio::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(url)
        .args([width.to_string(), height.to_string(), (if mobile { "1" } else { "0" }).to_string()])
        .arg(shot)
        .env("AUTHPROBE_BROWSER_FORMS", forms.to_string())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), out).await.unwrap().unwrap();
    assert!(out.status.success(), "browser.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The owner's page in headless Chromium at a phone's and a laptop's width: fits, fill in a
/// wrong then the right password, follow the redirect. The screenshot is the README's.
#[tokio::test]
async fn the_owners_page_works_in_a_real_browser() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cards = setup(false);
    // The owner is sent back to serve's own /healthz, so the browser can follow it here.
    let text = std::fs::read_to_string(&cards.cfg).unwrap().replace(
        "probe = \"orders-db-template\"\n",
        &format!("probe = \"orders-db-template\"\nredirect_uri = \"http://127.0.0.1:{port}/healthz\"\n"),
    );
    std::fs::write(&cards.cfg, text).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let serve = Serve::start(&cards.cfg, &["--listen", &listen], &cards.env).await;
    let user = harness_var(&cards.env, "AP_PG_USER");
    let password = harness_var(&cards.env, "AP_PG_PASSWORD");
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page");
    std::fs::create_dir_all(&shots).unwrap();
    for (width, height, mobile) in [(390, 844, true), (1366, 768, false)] {
        let (path, id) = cards.create("acme-orders-db", "Acme ops", &[]);
        let forms = serde_json::json!([
            {"fill": {"user": user, "password": "wrong-browser-pw-77"}},
            {"fill": {"user": user, "password": password}},
        ]);
        let seen = browse(
            &format!("http://{}{path}", serve.addr),
            (width, height, mobile),
            &shots.join(format!("card-{width}.png")),
            &forms,
        )
        .await;
        let pages = seen["pages"].as_array().unwrap();
        let (form, failed, done) = (&pages[0], &pages[1], &pages[2]);
        assert!(form["scrollWidth"].as_f64() <= form["clientWidth"].as_f64(), "no horizontal scroll at {width}");
        assert_eq!(form["sticking_out"], serde_json::json!([]), "{width}");
        assert!(
            form["text"].as_str().unwrap().contains("Acme & Co: orders database <read-only>"),
            "shown as text: {form:#}"
        );
        assert!(failed["text"].as_str().unwrap().contains("auth: auth_rejected"), "{failed:#}");
        let url = done["url"].as_str().unwrap();
        assert_eq!(url, format!("http://127.0.0.1:{port}/healthz?card={id}&status=passed"), "{done:#}");
        for page in pages {
            let html = page["html"].as_str().unwrap();
            assert!(!html.contains(&password) && !html.contains("wrong-browser-pw-77"), "a value in the DOM");
        }
        assert_eq!(open_sealed(&cards, &id)["fields"]["password"], serde_json::json!(password));
    }

    // The second card's server is not trusted: the owner sees its certificate, ticks
    // Approve, and passes.
    let (path, id) = cards.create("partner-db", "Partner", &[]);
    let forms = serde_json::json!([
        {"fill": {"user": user, "password": password}},
        {"fill": {"user": user, "password": password}, "check": ["approve"]},
    ]);
    let seen =
        browse(&format!("http://{}{path}", serve.addr), (1366, 768, false), &shots.join("card-approve.png"), &forms)
            .await;
    let pages = seen["pages"].as_array().unwrap();
    let refused = pages[1]["text"].as_str().unwrap();
    assert!(refused.contains("tls: tls_untrusted") && refused.contains("Approve this certificate"), "{refused}");
    assert!(pages[2]["text"].as_str().unwrap().contains("now used up"), "{:#}", pages[2]);
    assert!(open_sealed(&cards, &id)["approved"]["by"].as_str().is_some_and(|b| b == "card:Partner"));
}
