//! krb5 handles that give themselves back: each is freed (or closed, or destroyed) when
//! dropped, so that every way out of an acquisition, a failure's `?` included, releases
//! what it took. All borrow the acquisition's context, which outlives them (it is freed
//! last, by `Work` or by the `Ticket` that took it over).

use std::mem::ManuallyDrop;
use std::ptr::null_mut;

use super::ffi::{Libraries, krb5_ccache, krb5_context, krb5_creds, krb5_keytab, krb5_principal};

/// The library and the context a handle belongs to.
#[derive(Clone, Copy)]
pub(super) struct Owner {
    pub libs: &'static Libraries,
    pub context: krb5_context,
}

/// A principal krb5 made (`krb5_parse_name`, `krb5_sname_to_principal`,
/// `krb5_cc_get_principal`).
pub(super) struct Principal {
    owner: Owner,
    raw: krb5_principal,
}

impl Principal {
    /// Takes ownership of `raw` (null is allowed and frees nothing).
    pub fn own(owner: Owner, raw: krb5_principal) -> Self {
        Principal { owner, raw }
    }

    pub fn raw(&self) -> krb5_principal {
        self.raw
    }
}

impl Drop for Principal {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: a principal this context made, freed once.
            unsafe { (self.owner.libs.krb5.krb5_free_principal)(self.owner.context, self.raw) }
        }
    }
}

/// A memory cache of this acquisition: destroyed unless handed to the ticket.
pub(super) struct MemoryCache {
    owner: Owner,
    raw: krb5_ccache,
}

impl MemoryCache {
    pub fn own(owner: Owner, raw: krb5_ccache) -> Self {
        MemoryCache { owner, raw }
    }

    pub fn raw(&self) -> krb5_ccache {
        self.raw
    }

    /// The handle, now the ticket's to destroy.
    pub fn into_raw(self) -> krb5_ccache {
        ManuallyDrop::new(self).raw
    }
}

impl Drop for MemoryCache {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: a memory cache this context made, destroyed once.
            unsafe { (self.owner.libs.krb5.krb5_cc_destroy)(self.owner.context, self.raw) };
        }
    }
}

/// The user's ticket cache, opened to read: closed, never destroyed.
pub(super) struct UserCache {
    owner: Owner,
    raw: krb5_ccache,
}

impl UserCache {
    pub fn own(owner: Owner, raw: krb5_ccache) -> Self {
        UserCache { owner, raw }
    }

    pub fn raw(&self) -> krb5_ccache {
        self.raw
    }
}

impl Drop for UserCache {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: a cache this context opened, closed once.
            unsafe { (self.owner.libs.krb5.krb5_cc_close)(self.owner.context, self.raw) };
        }
    }
}

/// A keytab opened to read.
pub(super) struct Keytab {
    owner: Owner,
    raw: krb5_keytab,
}

impl Keytab {
    pub fn own(owner: Owner, raw: krb5_keytab) -> Self {
        Keytab { owner, raw }
    }

    pub fn raw(&self) -> krb5_keytab {
        self.raw
    }
}

impl Drop for Keytab {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: a keytab this context opened, closed once.
            unsafe { (self.owner.libs.krb5.krb5_kt_close)(self.owner.context, self.raw) };
        }
    }
}

/// Credentials krb5 fills in (an initial ticket, one read from a cache): their contents
/// are freed on drop. Empty until filled, which frees nothing.
pub(super) struct FilledCreds {
    owner: Owner,
    pub creds: krb5_creds,
}

impl FilledCreds {
    pub fn empty(owner: Owner) -> Self {
        FilledCreds { owner, creds: krb5_creds::zeroed() }
    }
}

impl Drop for FilledCreds {
    fn drop(&mut self) {
        // SAFETY: contents MIT filled in (or all null, which it frees as nothing), once.
        unsafe { (self.owner.libs.krb5.krb5_free_cred_contents)(self.owner.context, &mut self.creds) }
    }
}

/// Credentials krb5 allocated whole (`krb5_get_credentials`' answer).
pub(super) struct IssuedCreds {
    owner: Owner,
    pub raw: *mut krb5_creds,
}

impl IssuedCreds {
    pub fn empty(owner: Owner) -> Self {
        IssuedCreds { owner, raw: null_mut() }
    }
}

impl Drop for IssuedCreds {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: credentials MIT allocated, freed once with its call.
            unsafe { (self.owner.libs.krb5.krb5_free_creds)(self.owner.context, self.raw) }
        }
    }
}
