//! Every host key a server has, one key exchange per key type, as `ssh-keyscan` does
//! (for `inspect`).

use super::*;

/// A host key found by [`scan`].
#[derive(Debug, Clone)]
pub struct ScannedKey {
    pub algorithm: String,
    pub sha256: String,
    /// The key in SSH wire format (for known_hosts lines).
    pub blob: Vec<u8>,
}

/// The key types asked for one at a time by [`scan`], in the order a probe prefers them.
pub(super) const SCAN_ORDER: [Algorithm; 5] = [
    Algorithm::Ed25519,
    Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 },
    Algorithm::Ecdsa { curve: EcdsaCurve::NistP384 },
    Algorithm::Ecdsa { curve: EcdsaCurve::NistP521 },
    Algorithm::Rsa { hash: Some(HashAlg::Sha512) },
];

/// Every host key a server has, one key exchange per key type (as `ssh-keyscan`), without
/// authenticating. The first is the one a probe without known_hosts negotiates.
pub async fn scan(host: &str, port: u16) -> Result<Vec<ScannedKey>, Failure> {
    let address = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let addrs = crate::connect::net::resolve(host, port).await?;
    let mut keys = Vec::new();
    for algorithm in SCAN_ORDER {
        let tcp = crate::connect::net::connect_any(host, port, &addrs).await?;
        let presented = Arc::new(Mutex::new(None));
        let callbacks = Callbacks {
            host: host.to_string(),
            port,
            policy: HostKeyPolicy { show_only: true, ..HostKeyPolicy::default() },
            approvals: Arc::default(),
            role: Role::Probe,
            presented: presented.clone(),
            refusals: Arc::default(),
            negotiated: Arc::default(),
        };
        match client::connect_stream(client_config(vec![algorithm]), tcp, callbacks).await {
            Ok(handle) => {
                let goodbye = handle.disconnect(russh::Disconnect::ByApplication, "", "en");
                let _ = tokio::time::timeout(std::time::Duration::from_millis(200), goodbye).await;
            }
            // The server has no key of this type.
            Err(russh::Error::NoCommonAlgo { .. }) => continue,
            Err(err) if keys.is_empty() => return Err(classify_transport(&err, &address)),
            Err(_) => continue,
        }
        if let Some(key) = presented.lock().ok().and_then(|mut p| p.take()) {
            keys.push(ScannedKey { algorithm: key.algorithm, sha256: key.sha256, blob: key.blob });
        }
    }
    if keys.is_empty() {
        return Err(Failure::new(
            ErrorClass::Protocol,
            format!("{address} offered none of the host key types authprobe checks"),
        ));
    }
    Ok(keys)
}
