//! A `command` store: the secret is what a program prints (1Password's `op read`, `pass`,
//! `sops -d`, `gcloud secrets versions access`, `az keyvault secret show`…). The program
//! runs without a shell, the reference appended as its last argument, with a timeout; its
//! stdout (trailing newline trimmed) is the value, bounded; its stderr is scrubbed and capped
//! into the error.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::config::reader::TableReader;
use crate::connect::context::ProbeContext;
use crate::model::error::{ErrorClass, Failure, Stage};

use super::StoreRead;

/// The most a secret may be: a password, a key, a certificate bundle.
const OUTPUT_CAP: usize = 1024 * 1024;
/// How much of the program's stderr goes into an error.
const STDERR_SHOWN: usize = 300;

pub struct CommandStore {
    argv: Vec<String>,
    timeout: Duration,
}

impl CommandStore {
    pub fn from_table(t: &TableReader<'_, '_>) -> Option<CommandStore> {
        let argv = t.string_list("command");
        if argv.as_ref().is_some_and(|a| a.is_empty()) || (argv.is_none() && !t.has("command")) {
            t.error_at("command", "a command store needs command = [\"program\", \"arg\", …] (no shell)");
            return None;
        }
        let timeout = t.duration("timeout").unwrap_or(Duration::from_secs(10));
        Some(CommandStore { argv: argv?, timeout })
    }

    pub async fn read(&self, ctx: &ProbeContext, name: &str, reference: &str) -> Result<StoreRead, Failure> {
        let program = &self.argv[0];
        let shown = self.argv.join(" ");
        let fail = |class, message: String, hint: &str| {
            Failure::new(class, format!("secret store `{name}` (`{shown} …`): {message}"))
                .with_hint(hint.to_string())
                .at(Stage::Secret)
        };
        let mut child = tokio::process::Command::new(program)
            .args(&self.argv[1..])
            .arg(reference)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                fail(
                    ErrorClass::Config,
                    format!("cannot run `{program}`: {}", crate::model::error::describe_io(&e)),
                    "check that the program is installed and on PATH",
                )
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(fail(ErrorClass::Internal, "no pipes to the program".into(), ""));
        };
        // stderr on the side (bounded), so that a program flooding stdout is stopped as soon
        // as it crosses the cap; the task ends when the program does.
        let errors = tokio::spawn(async move {
            let mut err = Vec::new();
            let _ = stderr.take(64 * 1024).read_to_end(&mut err).await;
            err
        });
        let run = async {
            let mut out = Vec::new();
            // One byte past the cap says it was crossed.
            let _ = stdout.take(OUTPUT_CAP as u64 + 1).read_to_end(&mut out).await;
            if out.len() > OUTPUT_CAP {
                return Err(());
            }
            let status = child.wait().await.ok();
            let err = errors.await.unwrap_or_default();
            Ok((status, out, err))
        };
        let outcome = tokio::time::timeout(self.timeout, run).await;
        if !matches!(outcome, Ok(Ok(_))) {
            // Stopped and reaped now, not left to a background reaper.
            let _ = child.kill().await;
        }
        let (status, out, err) = match outcome {
            Err(_) => {
                return Err(fail(
                    ErrorClass::Timeout,
                    format!("no answer within {}; the program was stopped", humantime::format_duration(self.timeout)),
                    "the program may be waiting for a login or a prompt: sign in first, or raise the store's timeout",
                ));
            }
            Ok(Err(())) => {
                return Err(fail(
                    ErrorClass::Protocol,
                    format!("the program printed more than {} KiB: not a secret", OUTPUT_CAP / 1024),
                    "check the reference: it should name one secret",
                ));
            }
            Ok(Ok(result)) => result,
        };
        let said = ctx.server_text(String::from_utf8_lossy(&err).trim(), STDERR_SHOWN);
        match status {
            Some(status) if status.success() => {}
            Some(status) => {
                let code = status.code().map_or("a signal".to_string(), |c| format!("status {c}"));
                let said = if said.is_empty() { String::new() } else { format!(": {said}") };
                return Err(fail(
                    ErrorClass::UnexpectedResponse,
                    format!("the program ended with {code}{said}"),
                    "run the same command by hand to see why (not signed in, no such item, no access)",
                ));
            }
            None => return Err(fail(ErrorClass::Internal, "the program's end was not seen".into(), "")),
        }
        let text = String::from_utf8(out)
            .map_err(|_| fail(ErrorClass::Protocol, "the program printed bytes that are not UTF-8 text".into(), ""))?;
        let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string();
        if value.is_empty() {
            return Err(fail(ErrorClass::NotFound, "the program printed nothing".into(), "check the reference"));
        }
        ctx.register_secret(&value);
        ctx.detail(format!("secret store `{name}`: `{program}` printed the secret"));
        Ok(StoreRead { fields: serde_json::Map::new(), whole: Some(value), lease: None })
    }
}
