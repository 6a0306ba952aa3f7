//! Commands: a verb and an optional argument, ended by CRLF. An argument holding CR, LF or
//! NUL would end the command early and start another (a path from a config or a URL that
//! smuggles `DELE`), so it is refused, never cleaned.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    #[error("the argument of {0} holds a line break or NUL, which would start another FTP command")]
    Smuggled(&'static str),
}

/// The bytes of `VERB arg\r\n` (or `VERB\r\n`).
pub fn command(verb: &'static str, arg: Option<&str>) -> Result<Vec<u8>, CommandError> {
    let mut out = Vec::with_capacity(verb.len() + arg.map_or(0, str::len) + 3);
    out.extend_from_slice(verb.as_bytes());
    if let Some(arg) = arg {
        if arg.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(CommandError::Smuggled(verb));
        }
        out.push(b' ');
        out.extend_from_slice(arg.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_one_line_each() {
        assert_eq!(command("PBSZ", Some("0")).unwrap(), b"PBSZ 0\r\n");
        assert_eq!(command("EPSV", None).unwrap(), b"EPSV\r\n");
        assert_eq!(command("CWD", Some("with space")).unwrap(), b"CWD with space\r\n");
        assert_eq!(command("CWD", Some("x\r\nDELE y")), Err(CommandError::Smuggled("CWD")));
        assert_eq!(command("USER", Some("a\0b")), Err(CommandError::Smuggled("USER")));
    }
}
