//! TDS 7.4 (SQL Server's protocol), as much as authprobe's probe needs: PRELOGIN, the TLS
//! handshake carried inside PRELOGIN packets, LOGIN7 with a SQL login, one SQL batch whose
//! result tokens are walked to the end (rows skipped without being kept), and the server's
//! ERROR, INFO, ENVCHANGE, LOGINACK and DONE tokens. See README.md for what it refuses and
//! why it exists.
//!
//! [`codec`] is pure (bytes in, values out); [`carrier`] and [`client`] move those bytes
//! over any `AsyncRead + AsyncWrite` stream.

pub mod carrier;
pub mod client;
pub mod codec;

pub use carrier::{TdsTls, prelogin};
pub use client::{LoginAck, Tds};
pub use codec::{Encryption, Login, PRELOGIN, PreloginAnswer, TdsError, login7, parse_prelogin, prelogin_request};

#[cfg(test)]
mod tests;
