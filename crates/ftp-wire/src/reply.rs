//! Replies: `ddd text` on one line, or `ddd-first line` … `ddd last line` (RFC 959 4.2).
//! The reader is fed bytes as they arrive and hands out whole replies; every line, the
//! number of lines of one reply and its total size are bounded, and the budget is checked
//! before anything is kept.

use thiserror::Error;

/// One reply: its code and its text lines (without the code prefix of the first and last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The first digit: 1 preliminary, 2 done, 3 more needed, 4 transient, 5 permanent.
    pub fn kind(&self) -> u8 {
        (self.code / 100) as u8
    }

    /// The text, lines joined with a space: for messages (the caller scrubs and caps it).
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
    }

    /// The first line's text, which is where servers put the point.
    pub fn first_line(&self) -> &str {
        self.lines.first().map(|l| l.trim()).unwrap_or("")
    }
}

/// How much of a server's talk is read before it is cut off.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of one line, without its line ending.
    pub line: usize,
    /// Lines of one reply.
    pub lines: usize,
    /// Bytes of one reply, every line counted.
    pub reply: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { line: 4096, lines: 512, reply: 64 * 1024 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    #[error("a reply line is longer than {0} bytes")]
    LineTooLong(usize),
    #[error("a multi-line reply runs past {0} lines")]
    TooManyLines(usize),
    #[error("a reply is larger than {0} bytes")]
    TooLarge(usize),
    /// The first line of a reply does not start with a three-digit code: not an FTP server
    /// (or not at this point of the conversation). Holds the line's first bytes, lossily.
    #[error("the server's line does not start with a reply code: {0:?}")]
    NotAReply(String),
}

/// A multi-line reply in progress.
struct Partial {
    code: u16,
    lines: Vec<String>,
    size: usize,
}

/// Reads replies from the bytes of a control connection, as they come.
pub struct ReplyReader {
    limits: Limits,
    buffer: Vec<u8>,
    partial: Option<Partial>,
    /// Set once a budget is broken: the stream is out of step for good.
    broken: Option<ReplyError>,
}

impl ReplyReader {
    pub fn new(limits: Limits) -> ReplyReader {
        ReplyReader { limits, buffer: Vec::new(), partial: None, broken: None }
    }

    /// Adds bytes read from the connection. A line without its end is kept only up to the
    /// line budget (plus its line ending), so a server that never ends a line costs nothing.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), ReplyError> {
        if let Some(err) = &self.broken {
            return Err(err.clone());
        }
        self.buffer.extend_from_slice(bytes);
        let unended = match self.buffer.iter().rposition(|&b| b == b'\n') {
            Some(at) => self.buffer.len() - at - 1,
            None => self.buffer.len(),
        };
        if unended > self.limits.line + 1 {
            return Err(self.break_with(ReplyError::LineTooLong(self.limits.line)));
        }
        Ok(())
    }

    /// Whether bytes of a reply not yet complete are held (a server that closes now
    /// closed mid-reply).
    pub fn mid_reply(&self) -> bool {
        self.partial.is_some() || !self.buffer.is_empty()
    }

    /// The next whole reply, if the bytes fed so far complete one.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        if let Some(err) = &self.broken {
            return Err(err.clone());
        }
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = &raw[..raw.len() - 1];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > self.limits.line {
                return Err(self.break_with(ReplyError::LineTooLong(self.limits.line)));
            }
            if let Some(reply) = self.take_line(line)? {
                return Ok(Some(reply));
            }
        }
        Ok(None)
    }

    fn take_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let code = reply_code(line);
        match self.partial.as_mut() {
            None => {
                let Some(code) = code else {
                    let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
                    return Err(self.break_with(ReplyError::NotAReply(shown)));
                };
                let text = text_after_code(line);
                if line.get(3) == Some(&b'-') {
                    self.partial = Some(Partial { code, lines: vec![text], size: line.len() });
                    Ok(None)
                } else {
                    Ok(Some(Reply { code, lines: vec![text] }))
                }
            }
            Some(partial) => {
                partial.size += line.len();
                if partial.size > self.limits.reply {
                    let limit = self.limits.reply;
                    return Err(self.break_with(ReplyError::TooLarge(limit)));
                }
                // The last line repeats the code followed by a space (or nothing at all).
                let last = code == Some(partial.code) && matches!(line.get(3), None | Some(b' '));
                if last {
                    let mut done = self.partial.take().map(|p| (p.code, p.lines)).unwrap_or_default();
                    done.1.push(text_after_code(line));
                    return Ok(Some(Reply { code: done.0, lines: done.1 }));
                }
                if partial.lines.len() + 1 >= self.limits.lines {
                    let limit = self.limits.lines;
                    return Err(self.break_with(ReplyError::TooManyLines(limit)));
                }
                partial.lines.push(String::from_utf8_lossy(line).into_owned());
                Ok(None)
            }
        }
    }

    fn break_with(&mut self, err: ReplyError) -> ReplyError {
        self.buffer = Vec::new();
        self.partial = None;
        self.broken = Some(err.clone());
        err
    }
}

/// The code of a line that starts with three digits, the first 1–5.
fn reply_code(line: &[u8]) -> Option<u16> {
    match line {
        [a @ b'1'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', rest @ ..]
            if matches!(rest.first(), None | Some(b' ' | b'-')) =>
        {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

fn text_after_code(line: &[u8]) -> String {
    String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut reader = ReplyReader::new(Limits::default());
        reader.feed(bytes)?;
        let mut out = Vec::new();
        while let Some(reply) = reader.next_reply()? {
            out.push(reply);
        }
        Ok(out)
    }

    #[test]
    fn single_and_multi_line_replies_as_vsftpd_sends_them() {
        let replies = read_all(b"220 (vsFTPd 3.0.3)\r\n211-Features:\r\n AUTH TLS\r\n EPSV\r\n211 End\r\n").unwrap();
        assert_eq!(replies[0], Reply { code: 220, lines: vec!["(vsFTPd 3.0.3)".into()] });
        assert_eq!(replies[1].code, 211);
        assert_eq!(replies[1].lines, ["Features:", " AUTH TLS", " EPSV", "End"]);
        assert_eq!(replies[1].kind(), 2);
    }

    #[test]
    fn a_reply_split_anywhere_reads_the_same() {
        let whole = b"230-Welcome\r\n230-123 is not the end\r\n230 Login successful.\r\n";
        for cut in 0..whole.len() {
            let mut reader = ReplyReader::new(Limits::default());
            reader.feed(&whole[..cut]).unwrap();
            let early = reader.next_reply().unwrap();
            reader.feed(&whole[cut..]).unwrap();
            let reply = early.or_else(|| reader.next_reply().unwrap()).unwrap();
            assert_eq!(reply.lines.len(), 3, "cut at {cut}");
            assert_eq!(reply.text(), "Welcome 230-123 is not the end Login successful.");
        }
    }

    #[test]
    fn budgets_stop_hostile_servers() {
        let mut reader = ReplyReader::new(Limits::default());
        assert_eq!(reader.feed(&vec![b'2'; 10_000]), Err(ReplyError::LineTooLong(4096)));
        assert!(reader.feed(b"220 ok\r\n").is_err(), "a broken stream stays broken");
        let mut endless = b"220-hi\r\n".to_vec();
        for _ in 0..600 {
            endless.extend_from_slice(b" more\r\n");
        }
        assert_eq!(read_all(&endless), Err(ReplyError::TooManyLines(512)));
        let mut large = b"220-hi\r\n".to_vec();
        for _ in 0..100 {
            large.extend_from_slice(&[b'x'; 1000]);
            large.extend_from_slice(b"\r\n");
        }
        assert_eq!(read_all(&large), Err(ReplyError::TooLarge(64 * 1024)));
        assert!(matches!(read_all(b"SSH-2.0-OpenSSH_9.2\r\n"), Err(ReplyError::NotAReply(_))));
        assert!(matches!(read_all(b"HTTP/1.1 400 Bad Request\r\n"), Err(ReplyError::NotAReply(_))));
    }

    #[test]
    fn bare_line_feeds_and_codes_without_text_are_read() {
        let replies = read_all(b"200\n331 Password required\n").unwrap();
        assert_eq!(replies[0].code, 200);
        assert_eq!(replies[0].text(), "");
        assert_eq!(replies[1].first_line(), "Password required");
    }
}
