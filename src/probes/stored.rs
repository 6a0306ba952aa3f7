//! A probe whose config reads secrets from stores (`${vault:secret/app#token}`): at each
//! attempt its `secret` stage fetches them, the probe is built from its config with the
//! values, and runs; leases of dynamic secrets are given back when it is done. So a `--wait`
//! or a health cron sees a rotation the moment it happens.

use std::collections::HashMap;
use std::sync::Arc;

use crate::connect::context::ProbeContext;
pub use crate::identity::stores::{Fetched, SecretStores};
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::probes::{Probe, ProbeFuture};

pub use crate::config::secrets::STORE_PLACEHOLDER;

/// Builds the probe again from its config, with the references' values.
pub type Rebuild = dyn Fn(&HashMap<String, String>) -> Result<Arc<dyn Probe>, String> + Send + Sync;

pub struct StoreBacked {
    /// The probe as loaded, with placeholders: for its target and stages only.
    template: Arc<dyn Probe>,
    /// The references (text between `${` and `}`), each once.
    refs: Vec<String>,
    stores: Arc<SecretStores>,
    rebuild: Arc<Rebuild>,
    /// `serve`'s `?module=…&target=…`: applied to each rebuilt probe.
    retarget: Option<String>,
    /// The target of the last probe built with the store's values (a user name read from
    /// the store is part of it; names are not secrets).
    last_target: std::sync::Mutex<Option<String>>,
}

impl StoreBacked {
    pub fn new(template: Arc<dyn Probe>, refs: Vec<String>, stores: Arc<SecretStores>, rebuild: Arc<Rebuild>) -> Self {
        StoreBacked { template, refs, stores, rebuild, retarget: None, last_target: Default::default() }
    }
}

impl Probe for StoreBacked {
    fn target(&self) -> String {
        let last = self.last_target.lock().map(|t| t.clone()).unwrap_or_default();
        last.unwrap_or_else(|| self.template.target())
    }

    fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::Secret];
        stages.extend(self.template.stages());
        stages
    }

    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> ProbeFuture<'a> {
        Box::pin(async move {
            // The store is reached directly, not through the probe's tunnel or proxy.
            let direct = ctx.direct();
            let fetched = ctx.stage(Stage::Secret, self.stores.fetch(&direct, &self.refs)).await?;
            let mut lent = Lent { stores: &self.stores, ctx: &direct, fetched: Some(fetched) };
            let values = lent.fetched.as_ref().map(|f| f.values.clone()).unwrap_or_default();
            let built = (self.rebuild)(&values)
                .and_then(|probe| match &self.retarget {
                    Some(target) => probe.retarget(target),
                    None => Ok(probe),
                })
                .map_err(|why| {
                    Failure::new(ErrorClass::Config, format!("with the values from the store: {why}")).at(Stage::Secret)
                });
            let result = match built {
                Ok(probe) => {
                    if let Ok(mut last) = self.last_target.lock() {
                        *last = Some(probe.target());
                    }
                    probe.run(ctx).await
                }
                Err(failure) => Err(failure),
            };
            if let Some(fetched) = lent.fetched.take() {
                self.stores.release(&direct, fetched).await;
            }
            result
        })
    }

    fn retarget(&self, target: &str) -> Result<Arc<dyn Probe>, String> {
        Ok(Arc::new(StoreBacked {
            template: self.template.retarget(target)?,
            refs: self.refs.clone(),
            stores: self.stores.clone(),
            rebuild: self.rebuild.clone(),
            retarget: Some(target.to_string()),
            last_target: Default::default(),
        }))
    }
}

/// What an attempt fetched, while the probe uses it: when the attempt is cut (dropped at the
/// `--wait` budget or the probe's timeout) before giving its leases back, they are given
/// back in the background.
struct Lent<'a> {
    stores: &'a Arc<SecretStores>,
    ctx: &'a ProbeContext,
    fetched: Option<Fetched>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(fetched) = self.fetched.take() {
            self.stores.release_later(self.ctx.clone(), fetched);
        }
    }
}
