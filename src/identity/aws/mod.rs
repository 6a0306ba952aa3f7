//! AWS: credential sources (`creds`), SigV4 presigning for RDS IAM tokens (`sign`), the
//! SDK's HTTP client on authprobe's own connections (`http`), and what a credential is
//! (`account`: the caller's identity and its key's age, for hygiene).

pub mod account;
pub mod creds;
pub mod http;
pub mod sign;
