//! What authprobe's krb5 context is told while it works: MIT's trace lines (for the KDC's
//! address) and the KDC's replies (for a KRB-ERROR's clock). Installed as C callbacks on
//! the context for the duration of one acquisition.

use std::ffi::c_void;
use std::sync::Mutex;

use super::ffi::{self, krb5_context};
use super::kdc_error;

/// What the krb5 library said while it worked: the KDCs it sent to and heard from, and the
/// clock of a KDC that refused a request for skew.
#[derive(Default)]
pub(super) struct Watch {
    pub(super) sent_to: Vec<String>,
    pub(super) answered_by: Option<String>,
    pub(super) kdc_time: Option<i64>,
}

/// MIT's trace lines name the KDC's address ("Sending TCP request to stream 127.0.0.1:88",
/// "Received answer (123 bytes) from stream 127.0.0.1:88"); nothing else in them is kept
/// (some carry key fingerprints).
pub(super) unsafe extern "C" fn trace(_: krb5_context, info: *const ffi::krb5_trace_info, data: *mut c_void) {
    if info.is_null() || data.is_null() {
        return;
    }
    // SAFETY: MIT passes a valid trace_info whose message lives during the call; data is
    // the Mutex<Watch> installed below, alive while the context traces.
    let (full, watch) = unsafe { (ffi::text((*info).message), &*(data as *const Mutex<Watch>)) };
    // "[pid] seconds.micros: message"
    let line = match full.strip_prefix('[') {
        Some(rest) => rest.split_once(": ").map_or(full.as_str(), |(_, message)| message).trim_end(),
        None => full.trim_end(),
    };
    let address = |after: &str| {
        line.split_once(after)
            .map(|(_, rest): (&str, &str)| rest.split_whitespace().next().unwrap_or_default().to_string())
    };
    let Ok(mut watch) = watch.lock() else { return };
    if line.starts_with("Sending") || line.starts_with("Initiating TCP") {
        for marker in [" to stream ", " to dgram ", " connection to stream "] {
            if let Some(at) = address(marker)
                && !watch.sent_to.contains(&at)
            {
                watch.sent_to.push(at);
            }
        }
    } else if line.starts_with("Received answer") {
        watch.answered_by = address(" from stream ").or_else(|| address(" from dgram "));
    }
}

/// Reads a KDC's KRB-ERROR for its clock when it refused for skew.
pub(super) unsafe extern "C" fn received(
    _: krb5_context,
    data: *mut c_void,
    code: ffi::krb5_error_code,
    _realm: *const ffi::krb5_data,
    _message: *const ffi::krb5_data,
    reply: *const ffi::krb5_data,
    _new_reply: *mut *mut ffi::krb5_data,
) -> ffi::krb5_error_code {
    if code == 0 && !reply.is_null() && !data.is_null() {
        // SAFETY: MIT passes the reply it received, valid during the call.
        let bytes = unsafe {
            let reply = &*reply;
            if reply.data.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(reply.data as *const u8, reply.length as usize)
            }
        };
        if let Some(err) = kdc_error::parse(bytes)
            && err.code == 37
        {
            // SAFETY: data is the Mutex<Watch> installed below.
            if let Ok(mut watch) = unsafe { &*(data as *const Mutex<Watch>) }.lock() {
                watch.kdc_time = Some(err.server_time);
            }
        }
    }
    code
}
