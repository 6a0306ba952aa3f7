//! The identity layer: where credentials that are not a plain password come from. OAuth2
//! token endpoints (`oauth2`), Google and Azure identities (`cloud`), AWS credential
//! sources, SigV4 signing and the AWS SDK's HTTP client on our connections (`aws`).
//! Kerberos tickets and GSS-API contexts, through the system's MIT krb5 (`kerberos`).

pub mod aws;
pub mod cloud;
pub mod kerberos;
pub mod oauth2;
pub mod stores;
