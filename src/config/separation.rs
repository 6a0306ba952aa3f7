//! Production and test sharing one credential: a config warning naming both probes and
//! keys, never the value (secrets are compared by a keyed hash the reader keeps per
//! process; see [`ReadContext::take_secret_uses`]).

use std::collections::HashMap;

use super::reader::{ReadContext, SecretUse};

/// Which tags put a probe in which environment (`[defaults] environments`), in the order
/// written: a probe is in the first environment one of its tags names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environments(pub Vec<(String, Vec<String>)>);

impl Default for Environments {
    fn default() -> Self {
        let group = |name: &str, tags: &[&str]| (name.to_string(), tags.iter().map(|t| t.to_string()).collect());
        Environments(vec![
            group("production", &["prod", "production", "live"]),
            group("test", &["test", "testing", "staging", "stage", "dev", "development", "sandbox", "qa"]),
        ])
    }
}

impl Environments {
    pub fn of(&self, tags: &[String]) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, names)| tags.iter().any(|tag| names.iter().any(|n| n.eq_ignore_ascii_case(tag))))
            .map(|(env, _)| env.as_str())
    }
}

/// The secrets one probe's keys hold.
pub struct ProbeSecrets {
    pub name: String,
    pub tags: Vec<String>,
    pub uses: Vec<SecretUse>,
}

/// Warns, at the later probe's key, for each secret that probes of different environments
/// share.
pub fn warn_shared(ctx: &ReadContext<'_>, environments: &Environments, probes: &[ProbeSecrets]) {
    // digest -> (probe, environment, key) of its first use in each environment
    let mut first_use: HashMap<u64, Vec<(&str, &str, &str)>> = HashMap::new();
    for probe in probes {
        let Some(env) = environments.of(&probe.tags) else { continue };
        let mut warned = Vec::new();
        for secret in &probe.uses {
            let seen = first_use.entry(secret.digest).or_default();
            if let Some((other, other_env, other_key)) = seen.iter().find(|(_, e, _)| *e != env)
                && !warned.contains(&secret.digest)
            {
                warned.push(secret.digest);
                ctx.warning_for(
                    &format!("probe `{}`", probe.name),
                    secret.span.clone(),
                    Some(secret.key.clone()),
                    format!(
                        "the same secret as probe `{other}` (key `{other_key}`, {other_env}) is used here in {env}: \
                         give each environment its own credential"
                    ),
                );
            }
            if !seen.iter().any(|(_, e, _)| *e == env) {
                seen.push((&probe.name, env, &secret.key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_in_the_first_environment_its_tags_name() {
        let envs = Environments::default();
        assert_eq!(envs.of(&["team-a".into(), "PROD".into()]), Some("production"));
        assert_eq!(envs.of(&["staging".into()]), Some("test"));
        assert_eq!(envs.of(&["nightly".into()]), None);
    }
}
