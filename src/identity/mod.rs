//! The identity layer: where credentials that are not a plain password come from. OAuth2
//! token endpoints (`oauth2`), Google and Azure identities (`cloud`), AWS credential
//! sources, SigV4 signing and the AWS SDK's HTTP client on our connections (`aws`).

pub mod aws;
pub mod cloud;
pub mod oauth2;
