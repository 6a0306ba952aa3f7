//! The `token` stage of a Kerberos probe: a TGT (from the cache, a keytab or a password)
//! and a ticket for the service, in a memory cache, by authprobe's own krb5 context. The
//! calls block (they talk to the KDC), so they run on a blocking thread; the stage's
//! timeout still bounds the probe.

use std::ffi::{c_char, c_void};
use std::ptr::null_mut;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::classify;
use super::ffi::{self, Libraries, krb5_ccache, krb5_context, krb5_creds, krb5_principal};
use super::owned::{FilledCreds, IssuedCreds, Keytab, MemoryCache, Owner, Principal, UserCache};
use super::watch::{Watch, received, trace};
use super::{Credentials, KerberosAuth};
use crate::model::error::{ErrorClass, Failure};
use crate::model::stages::StageLog;

/// A service ticket in a memory cache, with what -v reports about it. Dropping it destroys
/// the cache and the context.
pub struct Ticket {
    pub(super) libs: &'static Libraries,
    pub(super) context: krb5_context,
    pub(super) ccache: krb5_ccache,
    /// The client principal, as the KDC issued the ticket to it.
    pub client: String,
    /// The service principal the ticket is for.
    pub service: String,
    /// The realm settings written for this probe; removed when the ticket goes.
    _override_file: Option<tempfile::TempPath>,
}

// SAFETY: a krb5 context and its caches may be used from any thread, one at a time; a
// Ticket is owned by one probe and never shared.
unsafe impl Send for Ticket {}

impl Ticket {
    /// The memory cache's full name, "MEMORY:…".
    pub fn cache_name(&self) -> String {
        // SAFETY: live context and cache; the strings are copied out.
        unsafe {
            format!(
                "{}:{}",
                ffi::text((self.libs.krb5.krb5_cc_get_type)(self.context, self.ccache)),
                ffi::text((self.libs.krb5.krb5_cc_get_name)(self.context, self.ccache))
            )
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // SAFETY: the handles were made by this context and are released once, cache first.
        unsafe {
            (self.libs.krb5.krb5_cc_destroy)(self.context, self.ccache);
            (self.libs.krb5.krb5_free_context)(self.context);
        }
    }
}

/// One acquisition in progress: the context, what it watched, and the names it is about.
struct Work<'a> {
    libs: &'static Libraries,
    context: krb5_context,
    watch: Box<Mutex<Watch>>,
    auth: &'a KerberosAuth,
    client: String,
    service: String,
    host: &'a str,
    /// Whether dropping this frees the context (not once a Ticket took it over).
    owns_context: bool,
}

impl Drop for Work<'_> {
    fn drop(&mut self) {
        // SAFETY: the callbacks point into `watch`, which goes away with this; the context
        // is freed once, unless a Ticket owns it now.
        unsafe {
            (self.libs.krb5.krb5_set_trace_callback)(self.context, None, null_mut());
            (self.libs.krb5.krb5_set_kdc_recv_hook)(self.context, None, null_mut());
            if self.owns_context {
                (self.libs.krb5.krb5_free_context)(self.context);
            }
        }
    }
}

impl Work<'_> {
    fn message(&self, code: i32) -> String {
        // SAFETY: the context is live; MIT returns a string to free with its own call.
        unsafe {
            let raw = (self.libs.krb5.krb5_get_error_message)(self.context, code);
            let text = ffi::text(raw);
            (self.libs.krb5.krb5_free_error_message)(self.context, raw);
            text
        }
    }

    fn kdcs(&self) -> String {
        let watch = self.watch.lock().map(|w| w.sent_to.clone()).unwrap_or_default();
        if watch.is_empty() { "none found".into() } else { watch.join(", ") }
    }

    /// A krb5 failure as authprobe reports it (see `classify`).
    fn failure(&self, code: i32, doing: &str) -> Failure {
        let kdc_time = self.watch.lock().ok().and_then(|w| w.kdc_time);
        classify::failure(
            code,
            &format!("{doing}: {}", self.message(code)),
            &classify::Names { client: &self.client, service: &self.service, host: self.host, kdcs: &self.kdcs() },
            matches!(self.auth.credentials, Credentials::Keytab { .. }),
            kdc_time,
        )
    }

    fn check(&self, code: i32, doing: &str) -> Result<(), Failure> {
        if code == 0 { Ok(()) } else { Err(self.failure(code, doing)) }
    }

    fn owner(&self) -> Owner {
        Owner { libs: self.libs, context: self.context }
    }

    fn principal(&self, name: &str, what: &str) -> Result<Principal, Failure> {
        let c = ffi::c_string(name, what).map_err(|e| Failure::new(ErrorClass::Config, e))?;
        let mut raw = null_mut();
        // SAFETY: live context, NUL-terminated name, out-pointer to a local.
        let code = unsafe { (self.libs.krb5.krb5_parse_name)(self.context, c.as_ptr(), &mut raw) };
        let principal = Principal::own(self.owner(), raw);
        self.check(code, &format!("reading the principal {name}"))?;
        Ok(principal)
    }

    fn unparse(&self, principal: krb5_principal) -> String {
        let mut raw: *mut c_char = null_mut();
        // SAFETY: live context and principal; the string is freed with MIT's call.
        unsafe {
            if (self.libs.krb5.krb5_unparse_name)(self.context, principal, &mut raw) != 0 {
                return "?".into();
            }
            let text = ffi::text(raw);
            (self.libs.krb5.krb5_free_unparsed_name)(self.context, raw);
            text
        }
    }

    fn memory_cache(&self, client: &Principal) -> Result<MemoryCache, Failure> {
        let mut raw = null_mut();
        // SAFETY: live context; "MEMORY" is a NUL-terminated literal.
        let code =
            unsafe { (self.libs.krb5.krb5_cc_new_unique)(self.context, c"MEMORY".as_ptr(), null_mut(), &mut raw) };
        let ccache = MemoryCache::own(self.owner(), raw);
        self.check(code, "making a memory ticket cache")?;
        // SAFETY: the cache was just made by this context.
        let code = unsafe { (self.libs.krb5.krb5_cc_initialize)(self.context, ccache.raw(), client.raw()) };
        self.check(code, "making a memory ticket cache")?;
        Ok(ccache)
    }
}

/// The krb5.conf files this probe reads, first wins: its overrides (realm, KDCs), its
/// `krb5_conf` or `KRB5_CONFIG` or the system's.
fn profile_path(auth: &KerberosAuth) -> Result<(String, Option<tempfile::TempPath>), Failure> {
    let base = match &auth.krb5_conf {
        Some(path) => path.display().to_string(),
        None => std::env::var("KRB5_CONFIG").unwrap_or_else(|_| "/etc/krb5.conf".into()),
    };
    if auth.realm.is_none() && auth.kdc.is_empty() {
        return Ok((base, None));
    }
    let principal_realm = match &auth.credentials {
        Credentials::Keytab { principal, .. } | Credentials::Password { principal, .. } => {
            principal.rsplit_once('@').map(|(_, realm)| realm.to_string())
        }
        Credentials::Cache { .. } => None,
    };
    let mut text = String::new();
    if let Some(realm) = &auth.realm {
        text += &format!("[libdefaults]\n  default_realm = {realm}\n");
    }
    if let Some(realm) = auth.realm.clone().or(principal_realm)
        && !auth.kdc.is_empty()
    {
        text += &format!("[realms]\n  {realm} = {{\n");
        for kdc in &auth.kdc {
            text += &format!("    kdc = {kdc}\n");
        }
        // `}*`: final, so that the base file's KDCs for the realm are not added to these.
        text += "  }*\n";
    }
    // A new file of our own (O_EXCL, mode 0600, an unpredictable name): a predictable name
    // in a shared /tmp could be pre-created, or be a symlink, by another local user. It is
    // removed when the last holder drops it, on every path.
    let write = || -> std::io::Result<tempfile::TempPath> {
        use std::io::Write;
        let mut file = tempfile::Builder::new().prefix("authprobe-krb5-").suffix(".conf").tempfile()?;
        file.write_all(text.as_bytes())?;
        file.flush()?;
        Ok(file.into_temp_path())
    };
    let file = write().map_err(|e| {
        Failure::new(ErrorClass::Internal, format!("cannot write the realm settings to a temporary file: {e}"))
    })?;
    Ok((format!("{}:{base}", file.display()), Some(file)))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn seconds(t: i32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0))
}

/// The GSS-API initiator for `service` on `host` (or the probe's `service_principal`):
/// the ticket, then the context that will carry it. Callers run it as their `token` stage.
pub async fn initiator(
    ctx: &StageLog,
    auth: &KerberosAuth,
    service: &str,
    host: &str,
    mechanism: super::Mechanism,
) -> Result<super::Initiator, Failure> {
    super::Initiator::new(ticket(ctx, auth, service, host).await?, mechanism)
}

/// What an acquisition learned for the probe's log: `-v` lines, and each ticket's life
/// (listed with the probe's credentials, warned about before it ends).
#[derive(Default)]
struct Notes {
    lines: Vec<String>,
    tickets: Vec<(String, i64, i64)>,
}

impl Notes {
    fn push(&mut self, line: String) {
        self.lines.push(line);
    }

    /// A ticket's life: issued at its start time (its auth time when it has none).
    fn ticket(&mut self, what: String, times: &ffi::krb5_ticket_times) {
        let issued = if times.starttime != 0 { times.starttime } else { times.authtime };
        self.tickets.push((what, i64::from(issued), i64::from(times.endtime)));
    }
}

/// Runs the acquisition on a blocking thread; `details` get -v's lines.
pub async fn ticket(ctx: &StageLog, auth: &KerberosAuth, service: &str, host: &str) -> Result<Ticket, Failure> {
    let (auth, service, host) = (auth.clone(), service.to_string(), host.to_string());
    let (result, details) = tokio::task::spawn_blocking(move || {
        let mut details = Notes::default();
        let result = acquire(&auth, &service, &host, &mut details);
        (result, details)
    })
    .await
    .map_err(|e| Failure::internal(format!("the Kerberos thread failed: {e}")))?;
    for line in details.lines {
        ctx.detail(line);
    }
    for (what, issued, ends) in details.tickets {
        // An ended ticket was refused already (the cache's TGT) or cannot have been issued.
        let _ = ctx.note_expiry(&what, ends, Some(issued), None);
    }
    result
}

fn acquire(auth: &KerberosAuth, service: &str, host: &str, details: &mut Notes) -> Result<Ticket, Failure> {
    let libs = ffi::libraries().map_err(|e| Failure::new(ErrorClass::Config, e))?;
    let (path, override_file) = profile_path(auth)?;
    let c_path = ffi::c_string(&path, "the krb5.conf path").map_err(|e| Failure::new(ErrorClass::Config, e))?;
    let mut profile = null_mut();
    let mut context = null_mut();
    // SAFETY: NUL-terminated path list, out-pointers to locals; the profile is released
    // once the context holds its own copy.
    let code = unsafe {
        let code = (libs.krb5.profile_init_path)(c_path.as_ptr(), &mut profile);
        if code != 0 {
            code as i32
        } else {
            let code = (libs.krb5.krb5_init_context_profile)(profile, 0, &mut context);
            (libs.krb5.profile_release)(profile);
            code
        }
    };
    if code != 0 {
        return Err(Failure::new(
            ErrorClass::Config,
            format!("cannot read the Kerberos configuration ({path}): error {code}"),
        )
        .with_hint("check `krb5_conf` (or KRB5_CONFIG)"));
    }
    let work = Work {
        libs,
        context,
        watch: Box::default(),
        auth,
        client: String::new(),
        service: String::new(),
        host,
        owns_context: true,
    };
    let watch_ptr = &*work.watch as *const Mutex<Watch> as *mut c_void;
    // SAFETY: the callbacks only read what they are given and the watch outlives their
    // installation (they are removed before `work` is dropped).
    unsafe {
        (libs.krb5.krb5_set_trace_callback)(context, Some(trace), watch_ptr);
        (libs.krb5.krb5_set_kdc_recv_hook)(context, Some(received), watch_ptr);
    }
    obtain(work, service, host, details, override_file)
}

fn obtain(
    mut work: Work<'_>,
    service: &str,
    host: &str,
    details: &mut Notes,
    override_file: Option<tempfile::TempPath>,
) -> Result<Ticket, Failure> {
    // On a failure the cache is destroyed and the principal freed (they drop first), then
    // the context (with `work`).
    let (client, ccache) = initial_ticket(&mut work, details)?;
    let (service_name, times, enctype) = service_ticket(&mut work, &client, &ccache, service, host)?;
    drop(client);
    let answered = work.watch.lock().ok().and_then(|w| w.answered_by.clone());
    let expires = seconds(times.endtime);
    details.ticket(format!("the Kerberos service ticket for {service_name}"), &times);
    details.push(format!(
        "kerberos: service ticket for {service_name} ({enctype}), valid until {}{}",
        rfc3339(expires),
        answered.map(|kdc| format!(", from the KDC at {kdc}")).unwrap_or_default()
    ));
    work.owns_context = false;
    Ok(Ticket {
        libs: work.libs,
        context: work.context,
        ccache: ccache.into_raw(),
        client: std::mem::take(&mut work.client),
        service: service_name,
        _override_file: override_file,
    })
}

/// The service ticket, into the memory cache: its principal, expiry and encryption type.
fn service_ticket(
    work: &mut Work<'_>,
    client: &Principal,
    ccache: &MemoryCache,
    service: &str,
    host: &str,
) -> Result<(String, ffi::krb5_ticket_times, String), Failure> {
    let libs = work.libs;
    let context = work.context;
    let server = match &work.auth.service_principal {
        Some(name) => work.principal(name, "service_principal")?,
        None => {
            let config = |e| Failure::new(ErrorClass::Config, e);
            let (h, s) = (
                ffi::c_string(host, "the host name").map_err(config)?,
                ffi::c_string(service, "the service").map_err(config)?,
            );
            let mut raw = null_mut();
            // SAFETY: live context, NUL-terminated strings, out-pointer to a local.
            let code = unsafe {
                (libs.krb5.krb5_sname_to_principal)(context, h.as_ptr(), s.as_ptr(), ffi::KRB5_NT_SRV_HST, &mut raw)
            };
            let server = Principal::own(work.owner(), raw);
            work.check(code, &format!("naming the service {service}/{host}"))?;
            server
        }
    };
    work.service = work.unparse(server.raw());
    if work.service.ends_with('@') {
        // The referral realm (none from krb5.conf): the KDC of the client's realm is asked.
        let realm = work.client.rsplit_once('@').map(|(_, realm)| realm.to_string()).unwrap_or_default();
        work.service.push_str(&realm);
    }
    // The request borrows the two principals (their owners free them).
    let mut request = krb5_creds::zeroed();
    request.client = client.raw();
    request.server = server.raw();
    let mut issued = IssuedCreds::empty(work.owner());
    // SAFETY: live context and cache; the request's principals outlive the call.
    let code = unsafe { (libs.krb5.krb5_get_credentials)(context, 0, ccache.raw(), &mut request, &mut issued.raw) };
    if code != 0 {
        return Err(work.failure(code, &format!("getting a ticket for {}", work.service)));
    }
    // SAFETY: `issued` is a valid krb5_creds from MIT until its owner frees it.
    unsafe {
        let creds = &*issued.raw;
        let name = work.unparse(creds.server);
        let mut buf = [0 as c_char; 64];
        let enctype = if (libs.krb5.krb5_enctype_to_name)(creds.keyblock.enctype, 0, buf.as_mut_ptr(), buf.len()) == 0 {
            ffi::text(buf.as_ptr())
        } else {
            format!("enctype {}", creds.keyblock.enctype)
        };
        let times = ffi::krb5_ticket_times { ..creds.times };
        Ok((name, times, enctype))
    }
}

/// The TGT, in a fresh memory cache: obtained with the keytab or password, or copied from
/// the user's cache (after checking it is still valid). Returns the client principal.
fn initial_ticket(work: &mut Work<'_>, details: &mut Notes) -> Result<(Principal, MemoryCache), Failure> {
    let libs = work.libs;
    let context = work.context;
    match &work.auth.credentials {
        Credentials::Password { principal, password } => {
            work.client = principal.clone();
            let client = work.principal(principal, "principal")?;
            let secret =
                ffi::c_string(password.for_proof(), "the password").map_err(|e| Failure::new(ErrorClass::Config, e))?;
            let mut creds = FilledCreds::empty(work.owner());
            // SAFETY: live context and principal; the password string lives during the call;
            // no prompter; the credentials' contents are freed by their owner.
            let code = unsafe {
                (libs.krb5.krb5_get_init_creds_password)(
                    context,
                    &mut creds.creds,
                    client.raw(),
                    secret.as_ptr(),
                    null_mut(),
                    null_mut(),
                    0,
                    std::ptr::null(),
                    null_mut(),
                )
            };
            drop(secret);
            store_initial(work, client, creds, code, "getting a TGT with the password", details)
        }
        Credentials::Keytab { principal, keytab } => {
            work.client = principal.clone();
            let client = work.principal(principal, "principal")?;
            let name = ffi::c_string(&format!("FILE:{}", keytab.display()), "the keytab path")
                .map_err(|e| Failure::new(ErrorClass::Config, e))?;
            if !keytab.is_file() {
                return Err(Failure::new(
                    ErrorClass::Config,
                    format!("the keytab {} does not exist", keytab.display()),
                )
                .with_hint("check `keytab`"));
            }
            let mut raw = null_mut();
            // SAFETY: live context, NUL-terminated name, out-pointer to a local.
            let code = unsafe { (libs.krb5.krb5_kt_resolve)(context, name.as_ptr(), &mut raw) };
            let kt = Keytab::own(work.owner(), raw);
            work.check(code, &format!("opening the keytab {}", keytab.display()))?;
            let mut creds = FilledCreds::empty(work.owner());
            // SAFETY: live context, principal and keytab.
            let code = unsafe {
                (libs.krb5.krb5_get_init_creds_keytab)(
                    context,
                    &mut creds.creds,
                    client.raw(),
                    kt.raw(),
                    0,
                    std::ptr::null(),
                    null_mut(),
                )
            };
            drop(kt);
            store_initial(work, client, creds, code, "getting a TGT with the keytab", details)
        }
        Credentials::Cache { ccache } => {
            let mut raw = null_mut();
            // SAFETY: live context; out-pointer to a local; a NUL-terminated name.
            let code = unsafe {
                match ccache {
                    Some(name) => {
                        let c = ffi::c_string(name, "ccache").map_err(|e| Failure::new(ErrorClass::Config, e))?;
                        (libs.krb5.krb5_cc_resolve)(context, c.as_ptr(), &mut raw)
                    }
                    None => (libs.krb5.krb5_cc_default)(context, &mut raw),
                }
            };
            let user_cache = UserCache::own(work.owner(), raw);
            work.check(code, "opening the ticket cache")?;
            // SAFETY: the cache handle is live; its name is copied out.
            let cache_name = unsafe {
                format!(
                    "{}:{}",
                    ffi::text((libs.krb5.krb5_cc_get_type)(context, user_cache.raw())),
                    ffi::text((libs.krb5.krb5_cc_get_name)(context, user_cache.raw()))
                )
            };
            let mut raw = null_mut();
            // SAFETY: live cache; out-pointer to a local.
            let code = unsafe { (libs.krb5.krb5_cc_get_principal)(context, user_cache.raw(), &mut raw) };
            let client = Principal::own(work.owner(), raw);
            if code != 0 {
                return Err(work.failure(code, &format!("reading the ticket cache {cache_name}")));
            }
            work.client = work.unparse(client.raw());
            let realm = work.client.rsplit_once('@').map(|(_, r)| r.to_string()).unwrap_or_default();
            let tgt_name = work.principal(&format!("krbtgt/{realm}@{realm}"), "the TGT's name")?;
            // The request borrows the two principals (their owners free them).
            let mut wanted = krb5_creds::zeroed();
            wanted.client = client.raw();
            wanted.server = tgt_name.raw();
            let mut tgt = FilledCreds::empty(work.owner());
            // SAFETY: live cache; the request's principals outlive the call.
            let code =
                unsafe { (libs.krb5.krb5_cc_retrieve_cred)(context, user_cache.raw(), 0, &mut wanted, &mut tgt.creds) };
            drop((tgt_name, user_cache));
            if code != 0 {
                return Err(work.failure(code, &format!("finding a TGT for {} in {cache_name}", work.client)));
            }
            let expires = seconds(tgt.creds.times.endtime);
            if expires <= SystemTime::now() {
                return Err(Failure::new(
                    ErrorClass::AuthRejected,
                    format!("the TGT of {} in {cache_name} expired at {}", work.client, rfc3339(expires)),
                )
                .with_hint("renew it (kinit -R, within its renewable life) or get a new one (kinit)"));
            }
            details.ticket(format!("the Kerberos TGT of {}", work.client), &tgt.creds.times);
            details.push(format!(
                "kerberos: TGT of {} from {cache_name}, valid until {}",
                work.client,
                rfc3339(expires)
            ));
            let memory = work.memory_cache(&client)?;
            // SAFETY: live memory cache; the TGT is copied into it.
            let code = unsafe { (libs.krb5.krb5_cc_store_cred)(context, memory.raw(), &mut tgt.creds) };
            work.check(code, "copying the TGT into memory")?;
            Ok((client, memory))
        }
    }
}

/// Stores a TGT just obtained in a memory cache (or reports why it was not obtained).
fn store_initial(
    work: &Work<'_>,
    client: Principal,
    mut creds: FilledCreds,
    code: i32,
    doing: &str,
    details: &mut Notes,
) -> Result<(Principal, MemoryCache), Failure> {
    if code != 0 {
        return Err(work.failure(code, doing));
    }
    let answered = work.watch.lock().ok().and_then(|w| w.answered_by.clone());
    details.ticket(format!("the Kerberos TGT of {}", work.client), &creds.creds.times);
    details.push(format!(
        "kerberos: TGT for {}, valid until {}{}",
        work.client,
        rfc3339(seconds(creds.creds.times.endtime)),
        answered.map(|kdc| format!(", from the KDC at {kdc}")).unwrap_or_default()
    ));
    let memory = work.memory_cache(&client)?;
    // SAFETY: live memory cache; the TGT is stored (copied), its owner frees the local one.
    let code = unsafe { (work.libs.krb5.krb5_cc_store_cred)(work.context, memory.raw(), &mut creds.creds) };
    work.check(code, "keeping the TGT in memory")?;
    Ok((client, memory))
}
