//! What the FTP server's replies and the control connection's failures mean, as failures
//! with a class and a hint. Classified from reply codes and the wire crate's typed errors;
//! a reply's text is consulted only where servers share a code for different causes (550
//! for a missing and a forbidden directory), and only to pick between those two.

use ftp_wire::{ControlError, Reply, ReplyError};

use crate::connect::tls::{Recorder, TlsOptions};
use crate::model::advice::Fix;
use crate::model::error::{ErrorClass, Failure, classify_io, describe_io};
use crate::probes::db::session_io_failure;

/// A reply as the user should read it: `550 Failed to change directory.`
pub fn said(reply: &Reply) -> String {
    format!("{} {}", reply.code, reply.text())
}

/// A failure of the control connection itself while `doing`.
pub fn control_failure(err: ControlError, tls: Option<&Recorder>, opts: &TlsOptions, doing: &str) -> Failure {
    match err {
        ControlError::Reply(ReplyError::NotAReply(start)) => {
            let message = match crate::model::sniff::wrong_service(start.as_bytes(), "FTP") {
                Some(wrong) => format!("{doing}: {wrong}"),
                None => format!("{doing}: the server did not answer like an FTP server (it sent {start:?})"),
            };
            Failure::new(ErrorClass::Protocol, message).with_hint(
                "check the port: FTP listens on 21, implicit FTPS on 990, and SFTP (an SSH service) is another kind",
            )
        }
        ControlError::Reply(budget) => {
            Failure::new(ErrorClass::Protocol, format!("{doing}: {budget}; authprobe stopped reading"))
                .with_hint("the server talks far more than FTP needs: it is misbehaving or not an FTP server")
        }
        ControlError::Command(smuggled) => Failure::new(ErrorClass::Config, smuggled.to_string()),
        ControlError::Closed { mid_reply } => Failure::new(
            ErrorClass::Network,
            format!(
                "the server closed the control connection {doing}{}",
                if mid_reply { ", in the middle of a reply" } else { "" }
            ),
        )
        .with_hint(
            "the server's log says why; servers close when they allow too few connections or refuse this address",
        ),
        ControlError::Io(io) => match tls {
            Some(recorder) => session_io_failure(&io, Some(recorder), opts, doing),
            None => Failure::new(classify_io(&io), format!("{doing}: {}", describe_io(&io))),
        },
    }
}

/// A reply that is not one the command may get.
pub fn unexpected(reply: &Reply, doing: &str) -> Failure {
    let failure = Failure::new(ErrorClass::UnexpectedResponse, format!("{doing}: the server answered {}", said(reply)));
    match reply.code {
        421 => failure.with_hint("the server is shutting the session (too many connections, an idle limit, or it is going down): try again, or ask its owner about its connection limits"),
        _ => failure,
    }
}

/// The greeting turned the connection away (421: too many connections, or this address).
pub fn turned_away(reply: &Reply) -> Failure {
    Failure::new(ErrorClass::UnexpectedResponse, format!("the server turned the connection away: {}", said(reply))).with_hint(
        "it allows no more connections (in all, or from this address): try again later, or ask its owner to raise the limit (vsftpd: max_clients, max_per_ip)",
    )
}

/// Servers that require TLS for a login say so in a 530 or 534 (vsftpd: "Non-anonymous
/// sessions must use encryption."); the fix is TLS, not another password.
fn demands_tls(reply: &Reply) -> bool {
    let text = reply.text().to_ascii_lowercase();
    reply.code == 534
        || ["encryption", "must use tls", "ssl", "auth tls", "policy requires"].iter().any(|w| text.contains(w))
}

fn tls_required(reply: &Reply) -> Failure {
    Failure::new(ErrorClass::TlsHandshake, format!("the server requires TLS for this login: {}", said(reply)))
        .with_hint(crate::advice![
            "use FTPS: ",
            Fix::FtpTls("explicit"),
            " (or ",
            Fix::FtpTls("implicit"),
            " if the server listens for it)"
        ])
}

/// The answer to USER when it is not 331 or 230.
pub fn user_refused(reply: &Reply, user: &str, anonymous: bool) -> Failure {
    if reply.kind() != 5 {
        return unexpected(reply, &format!("logging in as `{user}`"));
    }
    if demands_tls(reply) {
        return tls_required(reply);
    }
    let failure = Failure::new(
        ErrorClass::AuthRejected,
        format!("the server refused `{user}` before asking for a password: {}", said(reply)),
    );
    if anonymous {
        failure.with_hint("the server does not allow anonymous logins: give the probe a user and a password")
    } else {
        failure.with_hint("the server denies this account by name (vsftpd's user_list and /etc/ftpusers, a disabled account): ask its owner to allow it")
    }
}

/// The answer to PASS when it is not 230 or 202.
pub fn password_refused(reply: &Reply, user: &str, anonymous: bool) -> Failure {
    if reply.kind() != 5 {
        return unexpected(reply, &format!("logging in as `{user}`"));
    }
    if demands_tls(reply) {
        return tls_required(reply);
    }
    if anonymous {
        return Failure::new(
            ErrorClass::AuthRejected,
            format!("the server refused the anonymous login: {}", said(reply)),
        )
        .with_hint("the server does not allow anonymous logins: give the probe a user and a password");
    }
    Failure::new(ErrorClass::AuthRejected, format!("the server refused the login of `{user}`: {}", said(reply)))
        .with_hint("the user or password is wrong (FTP servers do not say which), or the account may not use FTP")
}

/// The server asks for an account (332), which no probe key supplies.
pub fn account_asked(reply: &Reply) -> Failure {
    Failure::new(
        ErrorClass::UnexpectedResponse,
        format!("the server asks for an account (ACCT) to log in: {}", said(reply)),
    )
    .with_hint("authprobe does not send ACCT: this server's logins need an account name besides user and password")
}

/// AUTH TLS refused: the server does not do explicit FTPS here.
pub fn auth_tls_refused(reply: &Reply) -> Failure {
    Failure::new(ErrorClass::TlsHandshake, format!("the server refused AUTH TLS: {}", said(reply))).with_hint(
        crate::advice![
            "this server does not offer explicit FTPS on this port: ask its owner to enable it; use ",
            Fix::FtpTls("implicit"),
            " if it listens for that; or, knowing that everything then travels readable, ",
            Fix::FtpTls("disable"),
        ],
    )
}

/// PBSZ or PROT refused: the data channel cannot be protected.
pub fn protection_refused(reply: &Reply, command: &str) -> Failure {
    Failure::new(
        ErrorClass::TlsHandshake,
        format!("the server refused {command}, so listings would travel unprotected: {}", said(reply)),
    )
    .with_hint("the server must allow protected data connections (PROT P) once TLS is on: ask its owner")
}

/// How a directory the server will not enter or list is told apart: what `STAT path`
/// showed of it, when the server answers that.
pub enum Seen {
    Directory,
    File,
    Nothing,
    /// STAT is not available, or said nothing usable.
    Unknown,
}

/// CWD or LIST refused `path`.
pub fn path_refused(reply: &Reply, user: &str, path: &str, seen: Seen) -> Failure {
    let text = reply.text().to_ascii_lowercase();
    let by_text = if ["no such file", "not found", "does not exist", "doesn't exist", "no such directory"]
        .iter()
        .any(|w| text.contains(w))
    {
        Some(false)
    } else if ["permission denied", "access denied", "access is denied", "not allowed", "forbidden"]
        .iter()
        .any(|w| text.contains(w))
    {
        Some(true)
    } else {
        None
    };
    let not_found = |message: String| {
        Failure::new(ErrorClass::NotFound, message).with_hint(if path.starts_with('/') {
            "check the path: it is absolute (ftp://host/%2Fdata in a URL); a chrooted account sees a different /"
        } else {
            "check the path: it starts in the login directory (ftp://host/data is `data` there, as curl reads it)"
        })
    };
    let forbidden = |message: String| {
        Failure::new(ErrorClass::PermissionDenied, message)
            .with_hint("the credentials work: ask the server's owner to let this account enter and read the directory")
    };
    match (seen, by_text) {
        (Seen::Directory, _) | (_, Some(true)) => {
            forbidden(format!("`{user}` logged in but may not open `{path}`: {}", said(reply)))
        }
        (Seen::File, _) => {
            Failure::new(ErrorClass::NotFound, format!("`{path}` is a file, not a directory: {}", said(reply)))
                .with_hint("`path` must name a directory to list")
        }
        (Seen::Nothing, _) | (_, Some(false)) => {
            not_found(format!("`{path}` does not exist for `{user}`: {}", said(reply)))
        }
        (Seen::Unknown, None) => not_found(format!(
            "the server will not open `{path}` for `{user}` and does not say whether it is missing or forbidden: {}",
            said(reply)
        )),
    }
}

/// What `STAT path`'s listing shows of `path`: its entry's type, or nothing.
pub fn seen_in_status(reply: &Reply) -> Seen {
    if !matches!(reply.code, 211..=213) {
        return Seen::Unknown;
    }
    // `213-Status follows:`, the entries, `213 End of status`.
    let entries: Vec<&str> = match reply.lines.as_slice() {
        [_, middle @ .., _] => middle.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect(),
        _ => Vec::new(),
    };
    match entries.first().and_then(|e| e.chars().next()) {
        None => Seen::Nothing,
        Some('d' | 'l') => Seen::Directory,
        Some('-') => Seen::File,
        Some(_) => Seen::Unknown,
    }
}

/// The data connection could not be opened to the port the server named.
pub fn data_connect_failed(host: &str, port: u16, failure: &Failure) -> Failure {
    Failure::new(ErrorClass::Network, format!("the data connection to {host}:{port} (the port the server named) failed: {}", failure.message))
        .with_hint("the server's passive ports are not reachable from here: a firewall allows its control port only (open the passive range, vsftpd's pasv_min_port..pasv_max_port), or the server announces a port a NAT does not forward")
}

/// The data connection's TLS failed: the server most often wants it to resume the control
/// connection's session, which authprobe does; the reply (522) says what it saw.
pub fn data_tls_failed(why: &str, reply: Option<&Reply>) -> Failure {
    let server = reply.map(|r| format!("; the server said: {}", said(r))).unwrap_or_default();
    Failure::new(ErrorClass::TlsHandshake, format!("the data connection's TLS handshake failed: {why}{server}"))
        .with_hint("the server requires the data connection to reuse the control connection's TLS session (vsftpd's require_ssl_reuse), as authprobe, curl and lftp do: a TLS-terminating proxy or load balancer between them breaks that; its owner can also turn the requirement off")
}

/// LIST's final or preliminary reply refused the listing.
pub fn listing_refused(reply: &Reply, user: &str, path: &str) -> Failure {
    match reply.code {
        425 | 426 => Failure::new(
            ErrorClass::Network,
            format!("the server could not use the data connection: {}", said(reply)),
        )
        .with_hint(
            "something between here and the server cuts data connections (a firewall or NAT that tracks FTP badly)",
        ),
        522 => data_tls_failed("the server refused it", Some(reply)),
        450 | 550 => path_refused(reply, user, path, Seen::Unknown),
        _ => unexpected(reply, &format!("listing `{path}`")),
    }
}

/// Whether a 226 says the listing failed anyway (vsftpd: "Transfer done (but failed to
/// open directory).", for a directory the account may enter but not read).
pub fn completed_without_listing(reply: &Reply) -> bool {
    reply.text().to_ascii_lowercase().contains("failed to open directory")
}

/// A data connection that ended in a TLS or socket error.
pub fn data_io_failed(io: &std::io::Error) -> Failure {
    Failure::new(classify_io(io), format!("the data connection broke: {}", describe_io(io)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, lines: &[&str]) -> Reply {
        Reply { code, lines: lines.iter().map(|l| l.to_string()).collect() }
    }

    #[test]
    fn a_550_is_missing_or_forbidden_by_what_stat_saw() {
        let cwd = reply(550, &["Failed to change directory."]);
        let missing = seen_in_status(&reply(213, &["Status follows:", "End of status"]));
        assert_eq!(path_refused(&cwd, "u", "x", missing).class, ErrorClass::NotFound);
        let dir = seen_in_status(&reply(
            213,
            &["Status follows:", "drwx------    2 0 0 4096 Dec 06 17:35 private", "End of status"],
        ));
        assert_eq!(path_refused(&cwd, "u", "private", dir).class, ErrorClass::PermissionDenied);
        let file =
            seen_in_status(&reply(213, &["Status follows:", "-rw-r--r-- 1 0 0 3 Dec 06 a.txt", "End of status"]));
        assert!(path_refused(&cwd, "u", "a.txt", file).message.contains("is a file"));
        let by_text = reply(550, &["/x: Permission denied"]);
        assert_eq!(path_refused(&by_text, "u", "x", Seen::Unknown).class, ErrorClass::PermissionDenied);
        assert_eq!(
            path_refused(&reply(550, &["No such file or directory"]), "u", "x", Seen::Unknown).class,
            ErrorClass::NotFound
        );
    }

    #[test]
    fn logins_refused_for_tls_say_tls() {
        let vsftpd = reply(530, &["Non-anonymous sessions must use encryption."]);
        assert_eq!(user_refused(&vsftpd, "u", false).class, ErrorClass::TlsHandshake);
        assert_eq!(password_refused(&reply(530, &["Login incorrect."]), "u", false).class, ErrorClass::AuthRejected);
        assert_eq!(user_refused(&reply(530, &["Permission denied."]), "u", false).class, ErrorClass::AuthRejected);
        assert_eq!(password_refused(&reply(421, &["Timeout."]), "u", false).class, ErrorClass::UnexpectedResponse);
        assert!(completed_without_listing(&reply(226, &["Transfer done (but failed to open directory)."])));
    }
}
