//! The FTP control connection (RFC 959, RFC 2228's AUTH/PBSZ/PROT, RFC 2428's EPSV) as
//! authprobe's `ftp` probe speaks it. [`reply`] reads replies from bytes, sans I/O and
//! within budgets; [`command`] writes commands whose argument cannot smuggle a second
//! command; [`passive`] reads PASV and EPSV answers; [`Control`] pumps them over any
//! `AsyncRead + AsyncWrite` stream.

pub mod command;
pub mod control;
pub mod passive;
pub mod reply;

pub use command::{CommandError, command};
pub use control::{Control, ControlError};
pub use passive::{PassiveError, parse_epsv, parse_pasv};
pub use reply::{Limits, Reply, ReplyError, ReplyReader};
