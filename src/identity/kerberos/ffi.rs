//! MIT krb5 and its GSS-API, loaded at run time (libloading) from the system: no C headers
//! or libraries are needed to build authprobe, and a machine without Kerberos runs every
//! other kind. Only the few calls authprobe makes are declared, with the layouts of MIT's
//! `krb5.h` and `gssapi.h` (stable ABI: libkrb5.so.3, libgssapi_krb5.so.2).

#![allow(non_camel_case_types)]

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_uint, c_void};
use std::sync::OnceLock;

pub type krb5_context = *mut c_void;
pub type krb5_ccache = *mut c_void;
pub type krb5_principal = *mut c_void;
pub type krb5_keytab = *mut c_void;
pub type profile_t = *mut c_void;
pub type krb5_error_code = i32;
pub type OM_uint32 = u32;
pub type gss_name_t = *mut c_void;
pub type gss_cred_id_t = *mut c_void;
pub type gss_ctx_id_t = *mut c_void;

#[repr(C)]
pub struct krb5_data {
    pub magic: i32,
    pub length: c_uint,
    pub data: *mut c_char,
}

#[repr(C)]
pub struct krb5_keyblock {
    pub magic: i32,
    pub enctype: i32,
    pub length: c_uint,
    pub contents: *mut u8,
}

#[repr(C)]
pub struct krb5_ticket_times {
    pub authtime: i32,
    pub starttime: i32,
    pub endtime: i32,
    pub renew_till: i32,
}

#[repr(C)]
pub struct krb5_creds {
    pub magic: i32,
    pub client: krb5_principal,
    pub server: krb5_principal,
    pub keyblock: krb5_keyblock,
    pub times: krb5_ticket_times,
    pub is_skey: c_uint,
    pub ticket_flags: i32,
    pub addresses: *mut *mut c_void,
    pub ticket: krb5_data,
    pub second_ticket: krb5_data,
    pub authdata: *mut *mut c_void,
}

impl krb5_creds {
    pub fn zeroed() -> krb5_creds {
        // SAFETY: krb5_creds is plain data (integers and pointers); all-zero is its empty
        // value, as `memset(&creds, 0, sizeof(creds))` in MIT's own callers.
        unsafe { std::mem::zeroed() }
    }
}

#[repr(C)]
pub struct krb5_trace_info {
    pub message: *const c_char,
}

#[repr(C)]
pub struct gss_buffer_desc {
    pub length: usize,
    pub value: *mut c_void,
}

impl gss_buffer_desc {
    pub fn empty() -> gss_buffer_desc {
        gss_buffer_desc { length: 0, value: std::ptr::null_mut() }
    }

    /// A buffer borrowing `bytes` (GSS only reads input buffers).
    pub fn borrowing(bytes: &[u8]) -> gss_buffer_desc {
        gss_buffer_desc { length: bytes.len(), value: bytes.as_ptr() as *mut c_void }
    }
}

#[repr(C)]
pub struct gss_OID_desc {
    pub length: OM_uint32,
    pub elements: *mut c_void,
}

pub type TraceFn = unsafe extern "C" fn(krb5_context, *const krb5_trace_info, *mut c_void);
pub type RecvHook = unsafe extern "C" fn(
    krb5_context,
    *mut c_void,
    krb5_error_code,
    *const krb5_data,
    *const krb5_data,
    *const krb5_data,
    *mut *mut krb5_data,
) -> krb5_error_code;

macro_rules! library {
    ($name:ident { $($field:ident : fn($($arg:ty),*) -> $ret:ty;)* }) => {
        pub struct $name { $(pub $field: unsafe extern "C" fn($($arg),*) -> $ret,)* }
        impl $name {
            /// Resolves every symbol in `library`; the first missing one is named.
            ///
            /// # Safety
            /// `library` must be one whose symbols have the declared signatures, and must
            /// outlive the functions resolved (the libraries here are never unloaded).
            unsafe fn resolve(library: &libloading::Library, file: &str) -> Result<$name, String> {
                Ok($name { $($field: {
                    let symbol = concat!(stringify!($field), "\0");
                    // SAFETY: the caller guarantees the signature (MIT's ABI).
                    let found = unsafe {
                        library.get::<unsafe extern "C" fn($($arg),*) -> $ret>(symbol.as_bytes())
                    };
                    *found.map_err(|_| format!("{file} has no {}", stringify!($field)))?
                },)* })
            }
        }
    };
}

library!(Krb5 {
    profile_init_path: fn(*const c_char, *mut profile_t) -> c_long;
    profile_release: fn(profile_t) -> ();
    krb5_init_context_profile: fn(profile_t, c_int, *mut krb5_context) -> krb5_error_code;
    krb5_free_context: fn(krb5_context) -> ();
    krb5_get_error_message: fn(krb5_context, krb5_error_code) -> *const c_char;
    krb5_free_error_message: fn(krb5_context, *const c_char) -> ();
    krb5_parse_name: fn(krb5_context, *const c_char, *mut krb5_principal) -> krb5_error_code;
    krb5_unparse_name: fn(krb5_context, krb5_principal, *mut *mut c_char) -> krb5_error_code;
    krb5_free_unparsed_name: fn(krb5_context, *mut c_char) -> ();
    krb5_free_principal: fn(krb5_context, krb5_principal) -> ();
    krb5_sname_to_principal: fn(krb5_context, *const c_char, *const c_char, i32, *mut krb5_principal) -> krb5_error_code;
    krb5_get_default_realm: fn(krb5_context, *mut *mut c_char) -> krb5_error_code;
    krb5_free_default_realm: fn(krb5_context, *mut c_char) -> ();
    krb5_cc_new_unique: fn(krb5_context, *const c_char, *const c_char, *mut krb5_ccache) -> krb5_error_code;
    krb5_cc_resolve: fn(krb5_context, *const c_char, *mut krb5_ccache) -> krb5_error_code;
    krb5_cc_default: fn(krb5_context, *mut krb5_ccache) -> krb5_error_code;
    krb5_cc_get_name: fn(krb5_context, krb5_ccache) -> *const c_char;
    krb5_cc_get_type: fn(krb5_context, krb5_ccache) -> *const c_char;
    krb5_cc_initialize: fn(krb5_context, krb5_ccache, krb5_principal) -> krb5_error_code;
    krb5_cc_store_cred: fn(krb5_context, krb5_ccache, *mut krb5_creds) -> krb5_error_code;
    krb5_cc_get_principal: fn(krb5_context, krb5_ccache, *mut krb5_principal) -> krb5_error_code;
    krb5_cc_retrieve_cred: fn(krb5_context, krb5_ccache, i32, *mut krb5_creds, *mut krb5_creds) -> krb5_error_code;
    krb5_cc_close: fn(krb5_context, krb5_ccache) -> krb5_error_code;
    krb5_cc_destroy: fn(krb5_context, krb5_ccache) -> krb5_error_code;
    krb5_kt_resolve: fn(krb5_context, *const c_char, *mut krb5_keytab) -> krb5_error_code;
    krb5_kt_close: fn(krb5_context, krb5_keytab) -> krb5_error_code;
    krb5_get_init_creds_password: fn(krb5_context, *mut krb5_creds, krb5_principal, *const c_char, *mut c_void, *mut c_void, i32, *const c_char, *mut c_void) -> krb5_error_code;
    krb5_get_init_creds_keytab: fn(krb5_context, *mut krb5_creds, krb5_principal, krb5_keytab, i32, *const c_char, *mut c_void) -> krb5_error_code;
    krb5_get_credentials: fn(krb5_context, i32, krb5_ccache, *mut krb5_creds, *mut *mut krb5_creds) -> krb5_error_code;
    krb5_free_creds: fn(krb5_context, *mut krb5_creds) -> ();
    krb5_free_cred_contents: fn(krb5_context, *mut krb5_creds) -> ();
    krb5_enctype_to_name: fn(i32, c_uint, *mut c_char, usize) -> krb5_error_code;
    krb5_set_trace_callback: fn(krb5_context, Option<TraceFn>, *mut c_void) -> krb5_error_code;
    krb5_set_kdc_recv_hook: fn(krb5_context, Option<RecvHook>, *mut c_void) -> ();
});

#[repr(C)]
pub struct gss_key_value_element_desc {
    pub key: *const c_char,
    pub value: *const c_char,
}

#[repr(C)]
pub struct gss_key_value_set_desc {
    pub count: OM_uint32,
    pub elements: *const gss_key_value_element_desc,
}

library!(Gss {
    gss_acquire_cred_from: fn(*mut OM_uint32, gss_name_t, OM_uint32, *const c_void, c_int, *const gss_key_value_set_desc, *mut gss_cred_id_t, *mut *mut c_void, *mut OM_uint32) -> OM_uint32;
    gss_import_name: fn(*mut OM_uint32, *mut gss_buffer_desc, *const gss_OID_desc, *mut gss_name_t) -> OM_uint32;
    gss_init_sec_context: fn(*mut OM_uint32, gss_cred_id_t, *mut gss_ctx_id_t, gss_name_t, *const gss_OID_desc, OM_uint32, OM_uint32, *mut c_void, *mut gss_buffer_desc, *mut *mut gss_OID_desc, *mut gss_buffer_desc, *mut OM_uint32, *mut OM_uint32) -> OM_uint32;
    gss_delete_sec_context: fn(*mut OM_uint32, *mut gss_ctx_id_t, *mut gss_buffer_desc) -> OM_uint32;
    gss_release_buffer: fn(*mut OM_uint32, *mut gss_buffer_desc) -> OM_uint32;
    gss_release_name: fn(*mut OM_uint32, *mut gss_name_t) -> OM_uint32;
    gss_release_cred: fn(*mut OM_uint32, *mut gss_cred_id_t) -> OM_uint32;
    gss_display_status: fn(*mut OM_uint32, OM_uint32, c_int, *const gss_OID_desc, *mut OM_uint32, *mut gss_buffer_desc) -> OM_uint32;
    gss_get_mic: fn(*mut OM_uint32, gss_ctx_id_t, OM_uint32, *mut gss_buffer_desc, *mut gss_buffer_desc) -> OM_uint32;
    gss_wrap: fn(*mut OM_uint32, gss_ctx_id_t, c_int, OM_uint32, *mut gss_buffer_desc, *mut c_int, *mut gss_buffer_desc) -> OM_uint32;
    gss_unwrap: fn(*mut OM_uint32, gss_ctx_id_t, *mut gss_buffer_desc, *mut gss_buffer_desc, *mut c_int, *mut OM_uint32) -> OM_uint32;
});

pub struct Libraries {
    pub krb5: Krb5,
    pub gss: Gss,
    /// Kept loaded for the life of the process: the functions above point into them.
    _loaded: [libloading::Library; 2],
}

const KRB5_FILE: &str = "libkrb5.so.3";
const GSS_FILE: &str = "libgssapi_krb5.so.2";

/// MIT krb5, loaded once; the error says what to install.
pub fn libraries() -> Result<&'static Libraries, String> {
    static LOADED: OnceLock<Result<Libraries, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let open = |file: &str| {
                // SAFETY: loading MIT's libraries runs their initialisers, which have no
                // preconditions; symbols are bound now, and kept local to the handle.
                let opened = unsafe {
                    libloading::os::unix::Library::open(Some(file), libc::RTLD_NOW | libc::RTLD_LOCAL)
                };
                opened.map(libloading::Library::from).map_err(|_| {
                    format!(
                        "Kerberos needs MIT krb5's libraries ({KRB5_FILE}, {GSS_FILE}), which this machine lacks: install them (Debian/Ubuntu: libgssapi-krb5-2; RHEL: krb5-libs)"
                    )
                })
            };
            let (krb5, gss) = (open(KRB5_FILE)?, open(GSS_FILE)?);
            // SAFETY: the libraries are MIT's, whose ABI these declarations follow, and
            // they stay loaded in `_loaded` as long as the functions are reachable.
            let (krb5_fns, gss_fns) = unsafe { (Krb5::resolve(&krb5, KRB5_FILE)?, Gss::resolve(&gss, GSS_FILE)?) };
            Ok(Libraries { krb5: krb5_fns, gss: gss_fns, _loaded: [krb5, gss] })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A C string from Rust text; text with a NUL byte cannot name anything Kerberos knows.
pub fn c_string(text: &str, what: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("{what} contains a NUL byte"))
}

/// # Safety
/// `ptr` is null or a NUL-terminated string that stays valid during the call.
pub unsafe fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: per the contract above.
    unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
}

pub const GSS_C_MUTUAL_FLAG: OM_uint32 = 2;
pub const GSS_C_REPLAY_FLAG: OM_uint32 = 4;
pub const GSS_C_SEQUENCE_FLAG: OM_uint32 = 8;
pub const GSS_C_CONF_FLAG: OM_uint32 = 16;
pub const GSS_C_INTEG_FLAG: OM_uint32 = 32;
pub const GSS_S_CONTINUE_NEEDED: OM_uint32 = 1;
pub const GSS_C_GSS_CODE: c_int = 1;
pub const GSS_C_MECH_CODE: c_int = 2;
pub const KRB5_NT_SRV_HST: i32 = 3;
pub const GSS_C_INITIATE: c_int = 1;

/// Kerberos 5 (1.2.840.113554.1.2.2), SPNEGO (1.3.6.1.5.5.2) and the krb5 principal name
/// type (1.2.840.113554.1.2.2.1), DER-encoded as GSS wants them.
pub static KRB5_MECH: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
pub static SPNEGO_MECH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
pub static KRB5_PRINCIPAL_NAME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01];

pub fn oid(der: &'static [u8]) -> gss_OID_desc {
    gss_OID_desc { length: der.len() as OM_uint32, elements: der.as_ptr() as *mut c_void }
}
