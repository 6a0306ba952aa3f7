//! The credentials an SSH login uses (password, private key, agent) and the target they
//! log in to, as read from a probe's or a `[[tunnel]]`'s keys.

use super::*;

/// Which credentials to log in with.
#[derive(Debug, Clone)]
pub enum SshAuth {
    Password(Secret),
    Key(Arc<KeyFile>),
    /// Every identity the agent at `SSH_AUTH_SOCK` holds, in its order.
    Agent,
    /// GSS-API (`gssapi-with-mic`): the probe brings the Kerberos credentials (its own
    /// `auth` keys) and calls [`super::Session::authenticate_gssapi`].
    Gssapi,
}

/// A decoded private key and where it came from.
pub struct KeyFile {
    pub path: PathBuf,
    pub key: Arc<PrivateKey>,
    /// The file's mode when group or others can read it (ssh refuses such keys).
    pub loose_mode: Option<u32>,
    /// An OpenSSH certificate for the key (`certificate`, else `KEY-cert.pub` beside the
    /// key when it exists, as ssh finds it): presented instead of the bare key.
    pub certificate: Option<CertFile>,
}

/// A user certificate and where it came from.
pub struct CertFile {
    pub path: PathBuf,
    pub certificate: russh::keys::Certificate,
    /// Named by `certificate` (then it must be usable), or found beside the key (then an
    /// ended one is passed over for the bare key, as ssh does when the server refuses it).
    pub named: bool,
}

impl KeyFile {
    /// The public half's fingerprint, which names the key in messages.
    pub fn fingerprint(&self) -> String {
        sha256_fingerprint(&self.key.public_key().to_bytes().unwrap_or_default())
    }
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        let certificate = self.certificate.as_ref().map(|c| &c.path);
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .field("public", &self.fingerprint())
            .field("certificate", &certificate)
            .finish()
    }
}

pub(super) const AUTH_TYPES: &[&str] = &["password", "key", "agent", "kerberos"];

impl SshAuth {
    pub fn read(t: &TableReader<'_, '_>) -> Option<SshAuth> {
        let Some(a) = t.table("auth") else {
            if !t.has("auth") {
                t.error_here(
                    "missing required key `auth` (e.g. auth = { type = \"key\", private_key = \"~/.ssh/id_ed25519\" })",
                );
            }
            return None;
        };
        let kind = a.required_string("type", AUTH_TYPES.join(" | ").as_str());
        let auth = match kind.as_deref() {
            None => None,
            Some("password") => a.required_secret("password", "the password").map(SshAuth::Password),
            Some("agent") => Some(SshAuth::Agent),
            Some("key") => read_key(&a).map(|k| SshAuth::Key(Arc::new(k))),
            // The rest of the table is the probe's to read (identity layer).
            Some("kerberos") => return Some(SshAuth::Gssapi),
            Some(other) => {
                let hint = crate::config::reader::did_you_mean(other, AUTH_TYPES)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| format!("; use one of: {}", AUTH_TYPES.join(", ")));
                a.error_at("type", format!("unknown SSH auth type `{other}`{hint}"));
                return None;
            }
        };
        a.finish();
        auth
    }
}

pub(super) fn read_key(a: &TableReader<'_, '_>) -> Option<KeyFile> {
    let passphrase = a.secret("passphrase");
    let passphrase_ok = passphrase.is_some() || !a.has("passphrase");
    if !a.has("private_key") {
        a.required_string("private_key", "the private key file, e.g. ~/.ssh/id_ed25519");
        return None;
    }
    let (path, bytes) = a.file_bytes("private_key")?;
    if !passphrase_ok {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes);
    let key = match russh::keys::decode_secret_key(&text, passphrase.as_ref().map(|p| p.read_here())) {
        Ok(key) => key,
        Err(err) => {
            let why = match (&err, &passphrase) {
                (russh::keys::Error::KeyIsEncrypted, _) => "the key is encrypted: set `passphrase`".to_string(),
                (_, Some(_)) if text.contains("ENCRYPTED") || text.contains("OPENSSH PRIVATE KEY") => {
                    "cannot decrypt the key: is the passphrase right?".to_string()
                }
                _ => format!("not a usable private key ({err})"),
            };
            a.error_at("private_key", format!("{}: {why}", path.display()));
            return None;
        }
    };
    let loose_mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&path).ok().map(|m| m.permissions().mode() & 0o777).filter(|mode| mode & 0o077 != 0)
    };
    let certificate = read_certificate(a, &path, &key)?;
    Some(KeyFile { path, key: Arc::new(key), loose_mode, certificate })
}

/// The key's OpenSSH certificate: `certificate`, else `KEY-cert.pub` when it exists. It
/// must certify this key. `None` inside: no certificate; outer `None`: an error was said.
fn read_certificate(a: &TableReader<'_, '_>, key_path: &std::path::Path, key: &PrivateKey) -> Option<Option<CertFile>> {
    let named = a.has("certificate");
    let (path, bytes) = if named {
        a.file_bytes("certificate")?
    } else {
        let beside = PathBuf::from(format!("{}-cert.pub", key_path.display()));
        match crate::config::secrets::read_capped(&beside, 64 * 1024) {
            Ok(bytes) => (beside, bytes),
            Err(_) => return Some(None),
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let certificate = match russh::keys::Certificate::from_openssh(text.trim()) {
        Ok(certificate) => certificate,
        Err(err) => {
            a.error_at("private_key", format!("{}: not an OpenSSH certificate ({err})", path.display()));
            return None;
        }
    };
    if certificate.public_key() != key.public_key().key_data() {
        a.error_at(
            "private_key",
            format!(
                "{} certifies another key than {}: use the certificate signed for this key",
                path.display(),
                key_path.display()
            ),
        );
        return None;
    }
    Some(Some(CertFile { path, certificate, named }))
}

/// Where to log in, as whom, and which host key to expect: the keys an `sftp` probe and a
/// `[[tunnel]]` share.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: SshAuth,
    pub host_keys: HostKeyPolicy,
}

impl SshTarget {
    pub fn read(t: &TableReader<'_, '_>) -> Option<SshTarget> {
        let host = t.required_string("host", "the SSH server's host name or address");
        let port = t.port("port");
        let port_ok = port.is_some() || !t.has("port");
        let user = t.required_string("user", "the SSH user");
        let auth = SshAuth::read(t);
        let host_keys = HostKeyPolicy::read(t);
        if !port_ok {
            return None;
        }
        Some(SshTarget {
            host: host?,
            port: port.unwrap_or(DEFAULT_PORT),
            user: user?,
            auth: auth?,
            host_keys: host_keys?,
        })
    }

    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}
