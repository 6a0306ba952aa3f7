//! Reading configuration: a document tree from TOML (with positions: every error names
//! file, line and key), JSON or `check`'s flags ([`document`]), walked by [`TableReader`]
//! (unknown keys get suggestions), and `${ENV}` / `${file:…}` secret references.
//! Every layer that has keys of its own (TLS options, SSH credentials, tunnels, each kind)
//! reads them through [`TableReader`]; assembling a probes file is `runner::suite`'s job.

pub mod approvals;
pub mod card_state;
pub mod document;
pub mod reader;
pub mod schema;
pub mod secrets;
pub mod separation;

pub use reader::{ConfigError, ReadContext, Source, TableReader};
