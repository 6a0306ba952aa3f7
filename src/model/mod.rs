//! The core model: the failure model (stages, error classes, failures and their advice),
//! the report every output renders, secret scrubbing, and the small pure helpers
//! (wildcards, serve's target patterns). It knows nothing of connections, identities or
//! probe kinds.

pub mod advice;
pub mod approvals;
pub mod cards;
pub mod error;
pub mod expiry;
pub mod facts;
pub mod glob;
pub mod hygiene;
pub mod redact;
pub mod release;
pub mod report;
pub mod seal;
pub mod signed_link;
pub mod sniff;
pub mod stages;
pub mod targets;
