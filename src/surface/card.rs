//! `authprobe card`: the operator's side of check cards — a new signing key, a link for a
//! credential's owner, the links and their attempts, and revoking one. The owner's side is
//! serve's `/card/TOKEN` (`surface::serve::cards`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::card_state::{self as state, LinkRecord};
use crate::model::cards::{LinkClaims, new_id, random_hex, sign_link};
use crate::model::expiry::{now_unix, rfc3339};
use crate::runner::cards::Cards;
use crate::surface::execute::{EXIT_OK, EXIT_USAGE, eprint_line};

#[derive(Args, Debug)]
pub struct CardArgs {
    #[command(subcommand)]
    pub command: CardCommand,
}

#[derive(Subcommand, Debug)]
pub enum CardCommand {
    /// Write a new random card key (32 bytes, hex) to FILE, readable by its owner only;
    /// `[cards] key = "${file:FILE}"` then uses it. Refuses to overwrite a file.
    Key { file: PathBuf },
    /// Make a link for CARD's owner and print it on stdout (signed; spent by a pass; a new
    /// one for the same card and label revokes the old).
    Create {
        #[arg(short = 'c', long = "config", env = "AUTHPROBE_CONFIG", default_value = "probes.toml")]
        config: PathBuf,
        card: String,
        /// Whom the link is for, shown to the operator (not to the owner's secrets).
        #[arg(long, default_value = "")]
        label: String,
        /// How long the link stays valid [default: the card's `expires`, else 24h].
        #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// List the links: card, label, state (open, spent, expired, revoked), attempts, the
    /// last result, and whether a sealed result is in the outbox.
    List {
        #[arg(short = 'c', long = "config", env = "AUTHPROBE_CONFIG", default_value = "probes.toml")]
        config: PathBuf,
    },
    /// Revoke a link by id (as `card list` shows it): its page then says it is no longer valid.
    Revoke {
        #[arg(short = 'c', long = "config", env = "AUTHPROBE_CONFIG", default_value = "probes.toml")]
        config: PathBuf,
        id: String,
    },
}

pub fn command(args: CardArgs) -> u8 {
    match args.command {
        CardCommand::Key { file } => write_key(&file),
        CardCommand::Create { config, card, label, expires } => create(&config, &card, &label, expires),
        CardCommand::List { config } => list(&config),
        CardCommand::Revoke { config, id } => revoke(&config, &id),
    }
}

fn write_key(path: &Path) -> u8 {
    let key = match random_hex(32) {
        Ok(key) => key,
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return EXIT_USAGE;
        }
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(key.as_bytes()).and_then(|_| f.sync_all()));
    match written {
        Ok(()) => {
            eprint_line(&format!(
                "authprobe: wrote a new card key to {} (0600); use it with [cards] key = \"${{file:{}}}\"",
                path.display(),
                path.display()
            ));
            EXIT_OK
        }
        Err(err) => {
            eprint_line(&format!("error: cannot write {}: {}", path.display(), crate::model::error::describe_io(&err)));
            EXIT_USAGE
        }
    }
}

fn cards_of(config: &Path) -> Result<std::sync::Arc<Cards>, u8> {
    let cfg = crate::surface::loading::load_config(config)?;
    cfg.cards.clone().ok_or_else(|| {
        eprint_line(&format!("error: {} has no [cards] table and no [[card]]", config.display()));
        EXIT_USAGE
    })
}

fn create(config: &Path, name: &str, label: &str, expires: Option<Duration>) -> u8 {
    let cards = match cards_of(config) {
        Ok(cards) => cards,
        Err(code) => return code,
    };
    let Some(card) = cards.card(name) else {
        let known: Vec<&str> = cards.cards.iter().map(|c| c.name.as_str()).collect();
        eprint_line(&format!("error: no [[card]] is named `{name}`; cards: {}", known.join(", ")));
        return EXIT_USAGE;
    };
    if label.chars().any(char::is_control) || label.len() > 200 {
        eprint_line("error: --label: at most 200 characters, no control characters");
        return EXIT_USAGE;
    }
    let now = now_unix();
    let lifetime = expires.unwrap_or(card.expires);
    let id = match new_id() {
        Ok(id) => id,
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return EXIT_USAGE;
        }
    };
    let record = LinkRecord {
        id: id.clone(),
        card: card.name.clone(),
        label: label.to_string(),
        created: now,
        expires: now + lifetime.as_secs().max(1) as i64,
    };
    let replaced = match state::create(&cards.outbox, &record, now) {
        Ok(replaced) => replaced,
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return EXIT_USAGE;
        }
    };
    for old in replaced {
        eprint_line(&format!("authprobe: link {old} of the same card and label revoked"));
    }
    let claims = LinkClaims { id: id.clone(), card: record.card, label: record.label, expires: record.expires };
    let token = sign_link(cards.key.read_here().as_bytes(), &claims);
    let base = cards.public_url.clone().unwrap_or_default();
    eprint_line(&format!("authprobe: link {id} for card `{name}`, valid until {}", rfc3339(record.expires)));
    match crate::output::write_stdout(&format!("{base}/card/{token}\n")) {
        Ok(()) => EXIT_OK,
        Err(_) => EXIT_USAGE,
    }
}

fn list(config: &Path) -> u8 {
    let cards = match cards_of(config) {
        Ok(cards) => cards,
        Err(code) => return code,
    };
    let links = match state::list(&cards.outbox) {
        Ok(links) => links,
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            return EXIT_USAGE;
        }
    };
    let now = now_unix();
    let mut out = String::from("ID                        CARD  LABEL  STATE  EXPIRES  ATTEMPTS  LAST  SEALED\n");
    for link in &links {
        let view = state::view(&cards.outbox, link, now);
        out += &format!(
            "{}  {}  {}  {}  {}  {}  {}  {}\n",
            link.id,
            link.card,
            if link.label.is_empty() { "-" } else { &link.label },
            view.state.as_str(),
            rfc3339(link.expires),
            view.attempts,
            view.last.as_deref().unwrap_or("-"),
            if view.sealed { "yes" } else { "no" }
        );
    }
    if links.is_empty() {
        out = format!("no links in {}\n", cards.outbox.display());
    }
    match crate::output::write_stdout(&out) {
        Ok(()) => EXIT_OK,
        Err(_) => EXIT_USAGE,
    }
}

fn revoke(config: &Path, id: &str) -> u8 {
    let cards = match cards_of(config) {
        Ok(cards) => cards,
        Err(code) => return code,
    };
    if state::find(&cards.outbox, id).is_none() {
        let known: Vec<String> = state::list(&cards.outbox).unwrap_or_default().into_iter().map(|l| l.id).collect();
        eprint_line(&format!("error: no link {id} in {}; links: {}", cards.outbox.display(), known.join(", ")));
        return EXIT_USAGE;
    }
    match state::revoke(&cards.outbox, id) {
        Ok(()) => {
            eprint_line(&format!("authprobe: link {id} revoked"));
            EXIT_OK
        }
        Err(why) => {
            eprint_line(&format!("error: {why}"));
            EXIT_USAGE
        }
    }
}
