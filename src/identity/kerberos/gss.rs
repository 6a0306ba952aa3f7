//! The GSS-API initiator: the tokens a protocol carries, made from a [`Ticket`]'s memory
//! cache (no KDC traffic: the service ticket is already there). Mutual authentication is
//! asked for: the context completes only once the server proved it holds the service key.

use std::ptr::null_mut;

use super::acquire::Ticket;
use super::ffi::{self, OM_uint32, gss_buffer_desc, gss_cred_id_t, gss_ctx_id_t, gss_name_t};
use crate::model::error::{ErrorClass, Failure};
use crate::model::stages::StageLog;

/// Which GSS mechanism the protocol speaks: SPNEGO for HTTP Negotiate, Kerberos 5 itself
/// for the databases and SSH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Spnego,
    Krb5,
}

/// A security context being established with one service.
pub struct Initiator {
    ticket: Ticket,
    cred: gss_cred_id_t,
    target: gss_name_t,
    context: gss_ctx_id_t,
    mechanism: Mechanism,
    complete: bool,
}

// SAFETY: GSS handles may move between threads; an Initiator is used by one probe at a time.
unsafe impl Send for Initiator {}

impl Drop for Initiator {
    fn drop(&mut self) {
        let gss = &self.ticket.libs.gss;
        let mut minor = 0;
        // SAFETY: handles this initiator made, released once, before the ticket's cache.
        unsafe {
            if !self.context.is_null() {
                (gss.gss_delete_sec_context)(&mut minor, &mut self.context, null_mut());
            }
            if !self.target.is_null() {
                (gss.gss_release_name)(&mut minor, &mut self.target);
            }
            if !self.cred.is_null() {
                (gss.gss_release_cred)(&mut minor, &mut self.cred);
            }
        }
    }
}

/// The words of a GSS failure: the major status's, then the mechanism's.
fn status_text(ticket: &Ticket, major: OM_uint32, minor: OM_uint32) -> String {
    let gss = &ticket.libs.gss;
    let mut parts = Vec::new();
    for (code, kind) in [(major, ffi::GSS_C_GSS_CODE), (minor, ffi::GSS_C_MECH_CODE)] {
        if code == 0 {
            continue;
        }
        let mut context: OM_uint32 = 0;
        loop {
            let (mut local_minor, mut text) = (0, gss_buffer_desc::empty());
            // SAFETY: out-parameters are locals; the text buffer is released with GSS's call.
            let status = unsafe {
                (gss.gss_display_status)(&mut local_minor, code, kind, std::ptr::null(), &mut context, &mut text)
            };
            if status != 0 {
                break;
            }
            // SAFETY: GSS filled the buffer with `length` bytes.
            let line = unsafe {
                let bytes = if text.value.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(text.value as *const u8, text.length)
                };
                let line = String::from_utf8_lossy(bytes).into_owned();
                (gss.gss_release_buffer)(&mut local_minor, &mut text);
                line
            };
            if !line.is_empty() && !parts.contains(&line) {
                parts.push(line);
            }
            if context == 0 {
                break;
            }
        }
    }
    parts.join(": ")
}

impl Initiator {
    /// Prepares the context for the ticket's service.
    pub fn new(ticket: Ticket, mechanism: Mechanism) -> Result<Initiator, Failure> {
        let gss = &ticket.libs.gss;
        let name =
            ffi::c_string(&ticket.service, "the service principal").map_err(|e| Failure::new(ErrorClass::Config, e))?;
        let mut init =
            Initiator { ticket, cred: null_mut(), target: null_mut(), context: null_mut(), mechanism, complete: false };
        let mut minor = 0;
        // The memory cache by name ("MEMORY:…"), so that GSS makes a credential every
        // mechanism can use (SPNEGO's included), not a krb5-only one.
        let cache = ffi::c_string(&init.ticket.cache_name(), "the cache name")
            .map_err(|e| Failure::new(ErrorClass::Internal, e))?;
        let element = ffi::gss_key_value_element_desc { key: c"ccache".as_ptr(), value: cache.as_ptr() };
        let store = ffi::gss_key_value_set_desc { count: 1, elements: &element };
        // SAFETY: the ticket's memory cache is live for the initiator's life (it owns the
        // ticket); the store borrows locals alive during the call; the credential is a
        // field released in Drop.
        let major = unsafe {
            (gss.gss_acquire_cred_from)(
                &mut minor,
                null_mut(),
                0,
                std::ptr::null(),
                ffi::GSS_C_INITIATE,
                &store,
                &mut init.cred,
                null_mut(),
                null_mut(),
            )
        };
        if major != 0 {
            return Err(init.failure(major, minor, "using the ticket"));
        }
        let name_type = ffi::oid(ffi::KRB5_PRINCIPAL_NAME);
        let mut buffer = gss_buffer_desc::borrowing(name.as_bytes());
        // SAFETY: the buffer borrows `name`, alive during the call.
        let major = unsafe { (gss.gss_import_name)(&mut minor, &mut buffer, &name_type, &mut init.target) };
        if major != 0 {
            return Err(init.failure(major, minor, "naming the service"));
        }
        Ok(init)
    }

    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// Whether the server proved its identity (mutual authentication completed).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Says in -v that the server proved who it is, once it has.
    pub fn report_proof(&self, ctx: &StageLog) {
        if self.complete {
            ctx.detail(format!("kerberos: mutual authentication: the server proved it is {}", self.ticket.service));
        }
    }

    fn failure(&self, major: OM_uint32, minor: OM_uint32, doing: &str) -> Failure {
        let said = status_text(&self.ticket, major, minor);
        const MUTUAL_FAILED: i32 = -1_765_328_338;
        const SKEW: i32 = -1_765_328_347;
        let message = format!("{doing} ({} for {}): {said}", self.ticket.client, self.ticket.service);
        match minor as i32 {
            // the server's AP-REP did not verify: whoever answered does not hold the key
            MUTUAL_FAILED => Failure::new(ErrorClass::UnexpectedResponse, message),
            SKEW => Failure::new(ErrorClass::AuthRejected, message)
                .with_hint("synchronise the clocks of this machine and the service (NTP)"),
            _ => Failure::new(ErrorClass::AuthRejected, message),
        }
    }

    /// One step: the server's last token in (none to begin with), the next token to send
    /// out (empty when there is none).
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, Failure> {
        let gss = &self.ticket.libs.gss;
        let mech = ffi::oid(match self.mechanism {
            Mechanism::Spnego => ffi::SPNEGO_MECH,
            Mechanism::Krb5 => ffi::KRB5_MECH,
        });
        let flags = ffi::GSS_C_MUTUAL_FLAG
            | ffi::GSS_C_REPLAY_FLAG
            | ffi::GSS_C_SEQUENCE_FLAG
            | ffi::GSS_C_INTEG_FLAG
            | ffi::GSS_C_CONF_FLAG;
        let mut input_buffer = input.map(gss_buffer_desc::borrowing);
        let input_ptr = input_buffer.as_mut().map_or(null_mut(), |b| b as *mut gss_buffer_desc);
        let (mut minor, mut output, mut returned) = (0, gss_buffer_desc::empty(), 0);
        // SAFETY: handles from `new`; the input borrows the caller's bytes; the output is
        // copied and released with GSS's call.
        let major = unsafe {
            (gss.gss_init_sec_context)(
                &mut minor,
                self.cred,
                &mut self.context,
                self.target,
                &mech,
                flags,
                0,
                null_mut(),
                input_ptr,
                null_mut(),
                &mut output,
                &mut returned,
                null_mut(),
            )
        };
        let token = take(&self.ticket, &mut output);
        if major & 0xffff_0000 != 0 {
            let doing = if input.is_some() { "checking the server's answer" } else { "making the first token" };
            return Err(self.failure(major, minor, doing));
        }
        self.complete = major & ffi::GSS_S_CONTINUE_NEEDED == 0;
        Ok(token)
    }

    /// A MIC over `message` (SSH's gssapi-with-mic).
    pub fn mic(&self, message: &[u8]) -> Result<Vec<u8>, Failure> {
        let gss = &self.ticket.libs.gss;
        let (mut minor, mut input, mut output) = (0, gss_buffer_desc::borrowing(message), gss_buffer_desc::empty());
        // SAFETY: an established context; the input borrows `message`.
        let major = unsafe { (gss.gss_get_mic)(&mut minor, self.context, 0, &mut input, &mut output) };
        let token = take(&self.ticket, &mut output);
        if major & 0xffff_0000 != 0 {
            return Err(self.failure(major, minor, "signing"));
        }
        Ok(token)
    }
}

/// Copies a GSS output buffer and releases it.
fn take(ticket: &Ticket, buffer: &mut gss_buffer_desc) -> Vec<u8> {
    if buffer.value.is_null() || buffer.length == 0 {
        return Vec::new();
    }
    // SAFETY: GSS filled `length` bytes; released right after copying.
    unsafe {
        let bytes = std::slice::from_raw_parts(buffer.value as *const u8, buffer.length).to_vec();
        let mut minor = 0;
        (ticket.libs.gss.gss_release_buffer)(&mut minor, buffer);
        bytes
    }
}
