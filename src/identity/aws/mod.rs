//! AWS: credential sources (`creds`), SigV4 presigning for RDS IAM tokens (`sign`), and the
//! SDK's HTTP client on authprobe's own connections (`http`).

pub mod creds;
pub mod http;
pub mod sign;
