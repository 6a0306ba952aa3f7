//! Kerberos: a ticket for a service, from the user's ticket cache, a keytab or a password,
//! and the GSS-API security context the protocols carry (HTTP Negotiate, PostgreSQL's
//! GSSAPI authentication).
//!
//! Built on the system's MIT krb5, loaded at run time (`ffi`): it reads the same krb5.conf,
//! ticket caches and keytabs as kinit and every other client, speaks to MIT and Active
//! Directory KDCs alike, and needs nothing at build time. The TGT and the service ticket
//! are fetched by authprobe's own krb5 context (stage `token`), so that the KDC that
//! answered, the ticket lifetimes and the KDC's own error codes are known; the tickets live
//! in a memory cache that is destroyed with the probe: the user's cache is only read (its
//! TGT copied), a password or a keytab never touches one. GSS-API then builds the
//! protocol's tokens from that memory cache without talking to the KDC again.

pub mod acquire;
pub mod classify;
pub mod ffi;
pub mod gss;
pub mod kdc_error;
mod owned;
mod watch;

use std::path::PathBuf;

use crate::config::TableReader;
use crate::model::redact::Secret;

pub use acquire::Ticket;
pub use gss::{Initiator, Mechanism};

/// Where the client's credentials come from.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// An existing ticket cache: `ccache` (e.g. "FILE:/tmp/krb5cc_1000"), else `KRB5CCNAME`
    /// or the default, as kinit left it.
    Cache { ccache: Option<String> },
    /// A keytab's key for `principal`.
    Keytab { principal: String, keytab: PathBuf },
    /// `principal`'s password, exchanged for a TGT in memory.
    Password { principal: String, password: Secret },
}

/// A probe's `auth = { type = "kerberos", … }`.
#[derive(Clone, Debug)]
pub struct KerberosAuth {
    pub credentials: Credentials,
    /// Overrides krb5.conf's default realm.
    pub realm: Option<String>,
    /// KDCs for the realm (`host[:port]`), overriding krb5.conf and DNS.
    pub kdc: Vec<String>,
    /// A krb5.conf to read instead of `KRB5_CONFIG` or /etc/krb5.conf.
    pub krb5_conf: Option<PathBuf>,
    /// The service's principal, instead of the one derived from the host, as clients do.
    pub service_principal: Option<String>,
}

impl KerberosAuth {
    /// Reads the keys of an `auth` table whose `type` is "kerberos".
    pub fn read(a: &TableReader<'_, '_>) -> Option<KerberosAuth> {
        let principal = a.string("principal");
        let keytab = a.path("keytab");
        let password = a.secret("password");
        let ccache = a.string("ccache");
        let realm = a.string("realm");
        let kdc = a.string_or_list("kdc");
        let kdc_ok = kdc.is_some() || !a.has("kdc");
        let krb5_conf = a.path("krb5_conf");
        let service_principal = a.string("service_principal");
        let credentials = match (&keytab, &password, &ccache) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                a.error_here("use one of `ccache`, `keytab` or `password`, not several");
                None
            }
            (Some(keytab), None, None) => match &principal {
                Some(principal) => Some(Credentials::Keytab { principal: principal.clone(), keytab: keytab.clone() }),
                None => {
                    a.error_at("keytab", "a keytab needs `principal`: the client principal whose key it holds");
                    None
                }
            },
            (None, Some(password), None) => match &principal {
                Some(principal) => {
                    Some(Credentials::Password { principal: principal.clone(), password: password.clone() })
                }
                None => {
                    a.error_at("password", "a password needs `principal`: the client principal it belongs to");
                    None
                }
            },
            (None, None, ccache) => {
                // A key given but unreadable has been reported by its reader already.
                let unreadable =
                    ["keytab", "password"].iter().any(|key| a.has(key)) || (ccache.is_none() && a.has("ccache"));
                if principal.is_some() && !unreadable {
                    a.error_at("principal", "with a ticket cache the principal is the cache's own: leave `principal` out, or add `keytab` or `password`");
                    None
                } else if unreadable {
                    None
                } else {
                    Some(Credentials::Cache { ccache: ccache.clone() })
                }
            }
        };
        let realm_known = realm.is_some() || principal.as_deref().is_some_and(|p| p.contains('@'));
        if kdc.as_ref().is_some_and(|k| !k.is_empty()) && !realm_known {
            a.error_at("kdc", "a `kdc` needs the realm it serves: set `realm`, or write `principal` as name@REALM");
            return None;
        }
        if !kdc_ok {
            return None;
        }
        Some(KerberosAuth {
            credentials: credentials?,
            realm,
            kdc: kdc.unwrap_or_default(),
            krb5_conf,
            service_principal,
        })
    }

    /// What -v says about where the credentials come from (never the secret).
    pub fn describe(&self) -> String {
        match &self.credentials {
            Credentials::Cache { ccache: Some(name) } => format!("the ticket cache {name}"),
            Credentials::Cache { ccache: None } => "the default ticket cache (KRB5CCNAME or krb5.conf)".into(),
            Credentials::Keytab { principal, keytab } => {
                format!("{principal}'s key in the keytab {}", keytab.display())
            }
            Credentials::Password { principal, .. } => format!("{principal}'s password (a TGT kept in memory)"),
        }
    }
}

/// The `auth` keys a Kerberos table may carry, beside `type`.
pub const KEYS: &[&str] =
    &["principal", "keytab", "password", "ccache", "realm", "kdc", "krb5_conf", "service_principal"];
