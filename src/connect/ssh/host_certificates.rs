//! OpenSSH host certificates: asked for ahead of bare keys (as `ssh` does), trusted when a
//! `@cert-authority` line of `known_hosts` lists their CA for the host and they hold (a
//! host certificate, signed by that CA, for this name, in its validity), and otherwise
//! judged by the key they certify, exactly as a bare key: `ssh` falls back the same way.
//! The key exchange is signed with the certified key, so accepting it by its key is as safe
//! as accepting the bare key. Their end goes into the report's credentials.

use super::*;
use russh::keys::ssh_key::certificate::CertType;

/// A host certificate the server presented.
#[derive(Debug, Clone)]
pub(super) struct HostCertificate {
    pub(super) key_id: String,
    pub(super) ca_sha256: String,
    pub(super) valid_after: u64,
    pub(super) valid_before: u64,
}

impl HostCertificate {
    pub(super) fn of(certificate: &russh::keys::Certificate) -> HostCertificate {
        HostCertificate {
            key_id: certificate.key_id().to_string(),
            ca_sha256: sha256_fingerprint(&key_blob(certificate.signature_key())),
            valid_after: certificate.valid_after(),
            valid_before: certificate.valid_before(),
        }
    }

    /// Records the certificate's end among the probe's credentials, warning as for any
    /// credential near its end; an ended (or not yet valid) one was accepted only by its key,
    /// which the warning says.
    pub(super) fn note(&self, ctx: &StageLog, endpoint: &str, who: &str) {
        let what = format!("{who}the SSH host certificate of {endpoint} (`{}`, CA {})", self.key_id, self.ca_sha256);
        let outside = match note_certificate_life(ctx, &what, self.valid_after, self.valid_before) {
            crate::model::expiry::Standing::Valid => return,
            crate::model::expiry::Standing::Expired(ago) => {
                format!("ended {} ago", crate::model::signed_link::approx(ago))
            }
            crate::model::expiry::Standing::NotYet(ahead) => {
                format!("is not valid for {} more", crate::model::signed_link::approx(ahead))
            }
        };
        ctx.warn(format!(
            "{what} {outside}: the host was accepted by its approved key, but clients that trust the CA refuse it; ask the server's owner to sign its host key again (ssh-keygen -s CA_KEY -h -I ID -n HOST -V +52w HOST_KEY.pub)"
        ));
    }
}

/// A key in SSH wire format.
pub(super) fn key_blob(key: &russh::keys::ssh_key::public::KeyData) -> Vec<u8> {
    PublicKey::from(key.clone()).to_bytes().unwrap_or_default()
}

impl HostKeyPolicy {
    /// Whether a CA listed for `host:port` certifies this host certificate: `None` when no
    /// CA is listed for the host (the certified key is then judged as a bare key), else how
    /// it is trusted or why the certificate does not hold.
    pub(super) fn certified(
        &self,
        host: &str,
        port: u16,
        certificate: &russh::keys::Certificate,
        now: u64,
    ) -> Option<Result<String, String>> {
        let file = self.known_hosts.as_ref()?;
        let authorities = file.authorities_for(host, port);
        if authorities.is_empty() {
            return None;
        }
        let path = file.path.display();
        let ca_blob = key_blob(certificate.signature_key());
        let ca = sha256_fingerprint(&ca_blob);
        let Some((line, _)) = authorities.iter().find(|(_, blob)| *blob == ca_blob.as_slice()) else {
            let lines: Vec<String> = authorities.iter().map(|(line, _)| line.to_string()).collect();
            return Some(Err(format!(
                "its host certificate is signed by CA {ca}, not by the @cert-authority of {path} line {}",
                lines.join(", ")
            )));
        };
        if let Some(revoked) = file.revoked_line(host, port, &ca_blob) {
            return Some(Err(format!("its certificate's CA {ca} is marked @revoked in {path} line {revoked}")));
        }
        if certificate.cert_type() != CertType::Host {
            return Some(Err("it presented a user certificate as its host key".into()));
        }
        let name = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let principals = certificate.valid_principals();
        if !principals.is_empty() && !principals.iter().any(|p| p.eq_ignore_ascii_case(&name)) {
            return Some(Err(format!(
                "its host certificate names {} but not {name}",
                principals.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
            )));
        }
        if now >= certificate.valid_before() {
            let ended = i64::try_from(certificate.valid_before()).map(crate::model::expiry::rfc3339);
            return Some(Err(format!("its host certificate ended at {}", ended.unwrap_or_default())));
        }
        if now < certificate.valid_after() {
            return Some(Err("its host certificate is not valid yet (check this machine's clock)".into()));
        }
        if !certificate.critical_options().is_empty() {
            return Some(Err("its host certificate carries critical options, which no host certificate may".into()));
        }
        let fingerprint = PublicKey::from(certificate.signature_key().clone()).fingerprint(HashAlg::Sha256);
        if certificate.validate_at(now, [&fingerprint]).is_err() {
            return Some(Err(format!("its host certificate's signature does not verify with CA {ca}")));
        }
        Some(Ok(format!("certified by CA {ca} ({path} line {line})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    fn ed25519(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn certificate(
        ca: &PrivateKey,
        host_key: &PrivateKey,
        kind: CertType,
        names: &[&str],
        from: u64,
        to: u64,
    ) -> russh::keys::Certificate {
        let mut builder = Builder::new([7u8; 32], host_key.public_key().key_data().clone(), from, to).unwrap();
        builder.cert_type(kind).unwrap().key_id("web-1").unwrap();
        for name in names {
            builder.valid_principal(*name).unwrap();
        }
        if names.is_empty() {
            builder.all_principals_valid().unwrap();
        }
        builder.sign(ca).unwrap()
    }

    fn policy(lines: &str) -> HostKeyPolicy {
        let file = KnownHosts::parse(std::path::Path::new("known_hosts"), lines).unwrap();
        HostKeyPolicy { known_hosts: Some(Arc::new(file)), ..HostKeyPolicy::default() }
    }

    fn line(marker: &str, hosts: &str, key: &PrivateKey) -> String {
        format!("{marker} {hosts} {}\n", key.public_key().to_openssh().unwrap())
    }

    #[test]
    fn a_listed_ca_certifies_hosts_it_names_within_the_validity() {
        let (ca, other_ca, host) = (ed25519(1), ed25519(2), ed25519(3));
        let now = 1_800_000_000;
        let file = policy(&line("@cert-authority", "*.internal,[127.0.0.1]:2222", &ca));
        let good = certificate(&ca, &host, CertType::Host, &["sftp.internal", "127.0.0.1"], now - 60, now + 60);
        assert!(file.certified("sftp.internal", 22, &good, now).unwrap().unwrap().contains("line 1"));
        assert!(file.certified("127.0.0.1", 2222, &good, now).unwrap().is_ok());
        // No CA for this name: judged by its key, as ssh does.
        assert!(file.certified("127.0.0.1", 22, &good, now).is_none());
        let wrong_name = file.certified("db.internal", 22, &good, now).unwrap().unwrap_err();
        assert!(wrong_name.contains("not db.internal"), "{wrong_name}");
        let ended = file.certified("sftp.internal", 22, &good, now + 61).unwrap().unwrap_err();
        assert!(ended.contains("ended at"), "{ended}");
        let by_other = certificate(&other_ca, &host, CertType::Host, &[], now - 60, now + 60);
        assert!(
            file.certified("sftp.internal", 22, &by_other, now)
                .unwrap()
                .unwrap_err()
                .contains("not by the @cert-authority")
        );
        let user = certificate(&ca, &host, CertType::User, &["sftp.internal"], now - 60, now + 60);
        assert!(file.certified("sftp.internal", 22, &user, now).unwrap().unwrap_err().contains("user certificate"));
        // No principals: valid for any host the CA is listed for.
        let any = certificate(&ca, &host, CertType::Host, &[], now - 60, now + 60);
        assert!(file.certified("api.internal", 22, &any, now).unwrap().is_ok());
    }

    #[test]
    fn a_revoked_ca_certifies_nothing() {
        let (ca, host) = (ed25519(1), ed25519(3));
        let now = 1_800_000_000;
        let file = policy(&format!("{}{}", line("@cert-authority", "*", &ca), line("@revoked", "*", &ca)));
        let cert = certificate(&ca, &host, CertType::Host, &[], now - 60, now + 60);
        assert!(file.certified("h", 22, &cert, now).unwrap().unwrap_err().contains("@revoked"));
        // A revoked CA line does not make the file's key lines about the CA.
        assert!(matches!(
            file.known_hosts.as_ref().unwrap().verdict("h", 22, "ssh-ed25519", &key_blob(host.public_key().key_data())),
            Verdict::Unknown
        ));
    }
}
