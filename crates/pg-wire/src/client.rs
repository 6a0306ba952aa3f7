//! Startup, authentication and one query over any `AsyncRead + AsyncWrite` stream: message
//! framing (lengths checked before anything is read), and nothing else to decide — the
//! decisions are [`crate::exchange`]'s.

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::exchange::{LoginExchange, LoginStep};
use crate::{AuthPolicy, Backend, CHATTER_CAP, LoginOutcome, MESSAGE_CAP, PgError, parse_backend, protocol};

/// The frontend side of one connection, over any stream the connection layer hands it.
pub struct Client<S> {
    stream: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Client { stream }
    }

    async fn send(&mut self, buf: &BytesMut) -> Result<(), PgError> {
        self.stream.write_all(buf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads one message. A data row's body is not read (the probe stops at the first
    /// row); any other body longer than [`MESSAGE_CAP`] is refused before it is read.
    pub async fn read(&mut self) -> Result<Backend, PgError> {
        Ok(self.read_message(false).await?.0)
    }

    /// Reads one message; with `rows`, a data row's body too (capped like any message) and
    /// its columns as text (`None` for NULL).
    async fn read_message(&mut self, rows: bool) -> Result<(Backend, Option<Vec<Option<String>>>), PgError> {
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).await?;
        let tag = header[0];
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        if len < 4 {
            return Err(protocol(format!("the server sent a message with an impossible length ({len})")));
        }
        if tag == b'D' && !rows {
            return Ok((Backend::DataRow, None));
        }
        let body_len = usize::try_from(len - 4).unwrap_or(usize::MAX);
        if body_len > MESSAGE_CAP {
            return Err(protocol(format!(
                "the server announced a {}-byte message (type '{}'); authprobe reads at most {} KiB of one",
                body_len,
                char::from(tag).escape_default(),
                MESSAGE_CAP / 1024
            )));
        }
        let mut body = vec![0u8; body_len];
        self.stream.read_exact(&mut body).await?;
        if tag == b'D' {
            let columns = crate::parse_data_row(&body)?;
            return Ok((Backend::DataRow, Some(columns)));
        }
        Ok((parse_backend(tag, &body)?, None))
    }

    /// Reads past notices (bounded), returning the first message that means something.
    async fn read_meaningful(&mut self, parameters: &mut Vec<(String, String)>) -> Result<Backend, PgError> {
        for _ in 0..CHATTER_CAP {
            match self.read().await? {
                Backend::Notice => {}
                Backend::Parameter { name, value } => {
                    if matches!(name.as_str(), "server_version" | "server_encoding" | "TimeZone")
                        && parameters.len() < 8
                    {
                        parameters.push((name, value));
                    }
                }
                other => return Ok(other),
            }
        }
        Err(protocol(format!("the server sent more than {CHATTER_CAP} notices and parameters without answering")))
    }

    /// Sends the startup message and authenticates (see [`LoginExchange`]).
    pub async fn login(
        &mut self,
        user: &str,
        database: &str,
        password: Option<crate::Password<'_>>,
        policy: &AuthPolicy,
        end_point: Option<Vec<u8>>,
        gss: Option<&mut dyn crate::GssInitiator>,
    ) -> Result<LoginOutcome, PgError> {
        let (mut exchange, startup) = LoginExchange::start(user, database, password, policy, end_point)?;
        if let Some(gss) = gss {
            exchange = exchange.with_gss(gss);
        }
        self.send(&startup).await?;
        loop {
            let message = self.read().await?;
            match exchange.on_message(message)? {
                LoginStep::Send(bytes) => self.send(&bytes).await?,
                LoginStep::Read => {}
                LoginStep::Done(outcome) => return Ok(outcome),
            }
        }
    }

    /// Runs `sql` with the simple query protocol and stops at the first row or the end of
    /// the first statement: the probe needs to know that the query runs, not its result.
    pub async fn query(&mut self, sql: &str) -> Result<(), PgError> {
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)?;
        self.send(&buf).await?;
        self.read_check_answer().await
    }

    /// Asks `question` (answered as by [`Client::query_row`]) and runs `sql` (as by
    /// [`Client::query`]) in one write: the question costs no round trip of its own. A
    /// server error in the answer to the question is returned inside, not as a failure.
    pub async fn ask_then_query(
        &mut self,
        question: &str,
        sql: &str,
    ) -> Result<Result<Option<Vec<Option<String>>>, crate::ServerError>, PgError> {
        let mut buf = BytesMut::new();
        frontend::query(question, &mut buf)?;
        frontend::query(sql, &mut buf)?;
        self.send(&buf).await?;
        let answer = match self.read_row_answer().await {
            Ok(row) => Ok(row),
            Err(PgError::Server(e)) => Err(e),
            Err(other) => return Err(other),
        };
        self.read_check_answer().await?;
        Ok(answer)
    }

    /// The answer to the check query, up to its first row or its end.
    async fn read_check_answer(&mut self) -> Result<(), PgError> {
        let mut ignored = Vec::new();
        loop {
            match self.read_meaningful(&mut ignored).await? {
                Backend::RowDescription => {}
                Backend::DataRow | Backend::CommandComplete | Backend::EmptyQuery | Backend::ReadyForQuery => {
                    return Ok(());
                }
                Backend::Error(e) => return Err(PgError::Server(e)),
                Backend::Other(b'G' | b'H' | b'W') => {
                    return Err(protocol("the check query started a COPY; use a query that returns rows"));
                }
                Backend::Other(b'A') => {}
                _ => return Err(protocol("unexpected message in the answer to the check query")),
            }
        }
    }

    /// Runs `sql` (one statement) with the simple query protocol to its end and returns its
    /// first row as text, for a question the probe asks of the server itself (what the role
    /// may do). The connection is ready for the next query afterwards.
    pub async fn query_row(&mut self, sql: &str) -> Result<Option<Vec<Option<String>>>, PgError> {
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)?;
        self.send(&buf).await?;
        self.read_row_answer().await
    }

    /// The answer to one query, read to its ReadyForQuery; its first row.
    async fn read_row_answer(&mut self) -> Result<Option<Vec<Option<String>>>, PgError> {
        let mut first = None;
        let mut error = None;
        for _ in 0..CHATTER_CAP {
            match self.read_message(true).await? {
                (Backend::DataRow, row) => {
                    if first.is_none() {
                        first = row;
                    }
                }
                (Backend::ReadyForQuery, _) => {
                    return match error {
                        Some(e) => Err(PgError::Server(e)),
                        None => Ok(first),
                    };
                }
                (Backend::Error(e), _) => error = Some(e),
                (
                    Backend::RowDescription
                    | Backend::CommandComplete
                    | Backend::EmptyQuery
                    | Backend::Notice
                    | Backend::Parameter { .. }
                    | Backend::Other(b'A'),
                    _,
                ) => {}
                _ => return Err(protocol("unexpected message in the answer to a query")),
            }
        }
        Err(protocol(format!("the answer to a one-row query went on for more than {CHATTER_CAP} messages")))
    }

    /// Terminate, best effort.
    pub async fn terminate(&mut self) {
        let mut buf = BytesMut::new();
        frontend::terminate(&mut buf);
        let _ = self.stream.write_all(&buf).await;
        let _ = self.stream.shutdown().await;
    }
}
