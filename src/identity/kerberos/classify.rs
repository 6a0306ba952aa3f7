//! Kerberos failures by the krb5 library's own codes (RFC 4120's KDC errors and MIT's
//! library errors): the class, and a hint that says what to do.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::error::{ErrorClass, Failure};

pub const BASE: i32 = -1_765_328_384;
pub const C_PRINCIPAL_UNKNOWN: i32 = BASE + 6;
pub const S_PRINCIPAL_UNKNOWN: i32 = BASE + 7;
pub const NAME_EXP: i32 = BASE + 1;
pub const CLIENT_REVOKED: i32 = BASE + 18;
pub const KEY_EXP: i32 = BASE + 23;
pub const PREAUTH_FAILED: i32 = BASE + 24;
pub const BAD_INTEGRITY: i32 = BASE + 31;
pub const TKT_EXPIRED: i32 = BASE + 32;
pub const SKEW: i32 = BASE + 37;
pub const SKEW_IN_REPLY: i32 = BASE + 148;
pub const CC_NOTFOUND: i32 = BASE + 141;
pub const REALM_UNKNOWN: i32 = BASE + 154;
pub const KDC_UNREACH: i32 = BASE + 156;
pub const KT_NOTFOUND: i32 = BASE + 181;
pub const FCC_NOFILE: i32 = BASE + 195;
pub const NO_HOST_REALM: i32 = BASE + 217;
pub const KDC_ADDRESS_UNRESOLVED: i32 = BASE + 220;
pub const NO_DEFAULT_REALM: i32 = BASE + 224;

/// The names a failure message speaks of.
pub struct Names<'a> {
    pub client: &'a str,
    pub service: &'a str,
    pub host: &'a str,
    /// The KDCs tried, for "cannot reach".
    pub kdcs: &'a str,
}

/// A krb5 failure as authprobe reports it: the class from the code, what was being done
/// and the library's own words (`at`), and what to do.
pub fn failure(code: i32, at: &str, names: &Names<'_>, keytab: bool, kdc_time: Option<i64>) -> Failure {
    let at = at.to_string();
    let client = names.client;
    match code {
        C_PRINCIPAL_UNKNOWN => Failure::new(ErrorClass::AuthRejected, format!("{at} (the KDC does not know {client})"))
            .with_hint("check `principal` and its realm (names are case-sensitive)"),
        PREAUTH_FAILED | BAD_INTEGRITY => {
            let (what, hint) = match keytab {
                true => (
                    "the keytab's key is not the KDC's (a stale keytab: the key or its version changed)",
                    "export the keytab again (kadmin ktadd, or ktpass on Active Directory) after the password or key changed",
                ),
                false => ("the password is wrong", "check the password (the account may also be locked out after failures)"),
            };
            Failure::new(ErrorClass::AuthRejected, format!("{at}: {what} for {client}")).with_hint(hint)
        }
        KEY_EXP => Failure::new(ErrorClass::AuthRejected, format!("{at} ({client})"))
            .with_hint("change the password (kpasswd), then update it where the probe reads it"),
        NAME_EXP | CLIENT_REVOKED => Failure::new(ErrorClass::AuthRejected, format!("{at} ({client})"))
            .with_hint("the account is expired, disabled or locked: ask the KDC's administrators"),
        S_PRINCIPAL_UNKNOWN => Failure::new(
            ErrorClass::NotFound,
            format!("{at}: the KDC knows no service principal {}", names.service),
        )
        .with_hint(format!(
            "authprobe derived {} from the host name `{}`, as clients do: connect with the name the service is registered under (an alias or an IP address usually is not; reverse DNS and dns_canonicalize_hostname change the name), or set service_principal",
            names.service, names.host
        )),
        SKEW | SKEW_IN_REPLY => {
            let measured = match kdc_time {
                Some(kdc) => {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
                    let skew = kdc - now;
                    format!(
                        "; the KDC's clock is {} s {} this machine's",
                        skew.abs(),
                        if skew > 0 { "ahead of" } else { "behind" }
                    )
                }
                None => String::new(),
            };
            Failure::new(ErrorClass::AuthRejected, format!("{at}{measured} (Kerberos allows 5 minutes by default)"))
                .with_hint("synchronise the clocks of this machine, the KDC and the service (NTP)")
        }
        TKT_EXPIRED => Failure::new(ErrorClass::AuthRejected, at).with_hint("get a new ticket (kinit)"),
        KDC_UNREACH => Failure::new(
            ErrorClass::Network,
            format!("{at} (tried: {})", names.kdcs),
        )
        .with_hint("check the KDC's address (`kdc`, krb5.conf or DNS SRV records) and that it is reachable on port 88, TCP and UDP"),
        KDC_ADDRESS_UNRESOLVED => Failure::new(ErrorClass::Dns, at)
            .with_hint("the KDC's host name does not resolve: check `kdc` or krb5.conf"),
        REALM_UNKNOWN | NO_DEFAULT_REALM | NO_HOST_REALM => Failure::new(ErrorClass::Config, at)
            .with_hint("name the realm and its KDC: `realm` and `kdc` on the probe, or krb5.conf ([libdefaults] default_realm, [realms])"),
        FCC_NOFILE | CC_NOTFOUND => Failure::new(ErrorClass::Config, at)
            .with_hint("get a ticket first (kinit), point `ccache` (or KRB5CCNAME) at the cache, or use `keytab` or `password`"),
        KT_NOTFOUND => Failure::new(ErrorClass::Config, format!("{at} (no key for {client})"))
            .with_hint("export the principal's key into the keytab (kadmin ktadd), or check `principal`"),
        2 | 13 => Failure::new(ErrorClass::Config, at).with_hint("check the path and that this user may read it"),
        _ => Failure::new(ErrorClass::AuthRejected, at),
    }
}
