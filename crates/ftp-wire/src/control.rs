//! The control connection over any stream: send a command, read the reply. The stream can
//! be taken back (to start TLS on it after `AUTH TLS`) and handed in again.

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::command::{CommandError, command};
use crate::reply::{Limits, Reply, ReplyError, ReplyReader};

#[derive(Debug, Error)]
pub enum ControlError {
    #[error(transparent)]
    Reply(#[from] ReplyError),
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The server closed the connection; `mid_reply` when it stopped inside a reply.
    #[error("the server closed the control connection{}", if *.mid_reply { " in the middle of a reply" } else { "" })]
    Closed { mid_reply: bool },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A control connection: the stream and the replies read from it.
pub struct Control<S> {
    stream: S,
    reader: ReplyReader,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Control<S> {
    pub fn new(stream: S, limits: Limits) -> Control<S> {
        Control { stream, reader: ReplyReader::new(limits) }
    }

    /// The next reply, reading as much as it takes.
    pub async fn reply(&mut self) -> Result<Reply, ControlError> {
        let mut chunk = [0u8; 2048];
        loop {
            if let Some(reply) = self.reader.next_reply()? {
                return Ok(reply);
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(ControlError::Closed { mid_reply: self.reader.mid_reply() });
            }
            self.reader.feed(&chunk[..n])?;
        }
    }

    /// Sends `VERB arg` and reads its final reply (preliminary 1xx replies are for
    /// transfers: [`Control::send`] and [`Control::reply`] handle those).
    pub async fn ask(&mut self, verb: &'static str, arg: Option<&str>) -> Result<Reply, ControlError> {
        self.send(verb, arg).await?;
        self.reply().await
    }

    /// Sends a command without waiting for its reply.
    pub async fn send(&mut self, verb: &'static str, arg: Option<&str>) -> Result<(), ControlError> {
        let bytes = command(verb, arg)?;
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Whether the server sent bytes beyond the last reply read: after `234` to `AUTH TLS`
    /// there must be none, or a man in the middle could have injected plain-text replies
    /// that would be read as if they came through TLS (the STARTTLS injection).
    pub fn has_unread(&self) -> bool {
        self.reader.mid_reply()
    }

    /// The stream, for a TLS handshake on it; the reply reader's budgets go with `Control::new`.
    pub fn into_stream(self) -> S {
        self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn asks_and_reads_over_a_stream() {
        let (client, mut server) = tokio::io::duplex(4096);
        let mut control = Control::new(client, Limits::default());
        server.write_all(b"220 hello\r\n331 Please specify the password.\r\n").await.unwrap();
        assert_eq!(control.reply().await.unwrap().code, 220);
        assert_eq!(control.ask("USER", Some("anonymous")).await.unwrap().code, 331);
        let mut sent = [0u8; 16];
        let n = server.read(&mut sent).await.unwrap();
        assert_eq!(&sent[..n], b"USER anonymous\r\n");
        drop(server);
        assert!(matches!(control.reply().await, Err(ControlError::Closed { mid_reply: false })));
    }

    #[tokio::test]
    async fn bytes_after_auth_tls_are_seen() {
        let (client, mut server) = tokio::io::duplex(4096);
        let mut control = Control::new(client, Limits::default());
        server.write_all(b"234 Proceed with negotiation.\r\n230 injected\r\n").await.unwrap();
        assert_eq!(control.reply().await.unwrap().code, 234);
        assert!(control.has_unread());
    }
}
