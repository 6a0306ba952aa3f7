//! The credential release rule as a type. A secret leaves authprobe in recoverable form
//! (as it is, reversibly encoded, or encrypted to a key nobody vouched for) only through
//! [`Secret::release`](crate::model::redact::Secret::release), which takes a [`Release`]:
//! proof that the peer's identity was verified, or that the probe consents to an
//! unverified one. A kind cannot forget the rule, since without the proof it cannot get at
//! the value to send.
//!
//! The proof is made in few places, each where the fact it states is established:
//! `connect::tls` (a handshake whose certificate a CA, a pin or an approval vouched for),
//! `connect::ssh` (a host key that `known_hosts` or an approval vouches for),
//! `StageLog::consent` (the probe's `allow_unverified_password = true`) and
//! `connect::proxy` (a password the operator wrote into a plain proxy URL, for that proxy).
//! `tests/architecture.rs` checks that no other file makes one.
//!
//! A proof is not copyable: each release names the proof it came from. Outside this crate
//! nothing makes one at all:
//!
//! ```compile_fail
//! let proof = authprobe::model::release::Release::verified_tls();
//! ```

/// Why a peer may receive a secret in recoverable form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ground {
    /// TLS whose certificate a CA, a pin or an approval vouched for.
    VerifiedTls,
    /// An SSH server whose host key `known_hosts`, a host certificate's CA or an approval
    /// vouches for.
    ApprovedHostKey,
    /// The probe's `allow_unverified_password = true` (or the store's).
    Consent,
    /// A proxy's own password, which the operator wrote into a plain `http://` or
    /// `socks5h://` proxy URL: such a proxy can only be given it in the clear, as curl does.
    PlainProxyUrl,
}

/// Proof that a secret may go to the peer at hand in recoverable form.
#[derive(Debug)]
pub struct Release {
    ground: Ground,
}

impl Release {
    /// Made by `connect::tls` for a verified handshake.
    pub(crate) fn verified_tls() -> Self {
        Release { ground: Ground::VerifiedTls }
    }

    /// Made by `connect::ssh` for a host key it accepted.
    pub(crate) fn approved_host_key() -> Self {
        Release { ground: Ground::ApprovedHostKey }
    }

    /// Made by `StageLog::consent` for a probe that allows unverified peers.
    pub(crate) fn consented() -> Self {
        Release { ground: Ground::Consent }
    }

    /// Made by `connect::proxy` for the password of a plain proxy URL.
    pub(crate) fn plain_proxy_url() -> Self {
        Release { ground: Ground::PlainProxyUrl }
    }

    pub fn ground(&self) -> Ground {
        self.ground
    }

    /// Whether the peer's identity is verified (not only consented to).
    pub fn peer_verified(&self) -> bool {
        matches!(self.ground, Ground::VerifiedTls | Ground::ApprovedHostKey)
    }
}
