//! The MySQL/MariaDB client protocol, as much of it as authprobe's probe needs: the
//! server's greeting, the TLS upgrade request, the login with the common authentication
//! plugins (mysql_native_password, caching_sha2_password and sha256_password with their
//! RSA path, mysql_clear_password, MariaDB's client_ed25519), one text query read to its
//! first row, and quit. See README.md for what it refuses and why it exists.
//!
//! Sans-I/O where it decides anything: [`codec`] and [`exchange`] are pure functions and
//! state machines over packets; [`client`] only frames packets over a stream.

pub mod client;
pub mod codec;
pub mod exchange;

pub use client::{
    BoxError, GssProvider, InitiatorFuture, Packets, login, query, query_rows, quit, read_greeting, rows_then_query,
};
pub use codec::*;
pub use exchange::{
    GSSAPI_PLUGIN, GssInitiator, LoginExchange, LoginStep, QueryExchange, RowsExchange, parse_text_row, query_packet,
};

#[cfg(test)]
mod tests;
