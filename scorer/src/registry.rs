//! The champion model, hot-swapped when the registry's `current` pointer moves.
//!
//! The processor takes the model once per micro-batch, so a swap happens between batches: no
//! event is dropped or scored twice because of it.

use models::ModelArtifact;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct ModelHandle(Arc<RwLock<Arc<ModelArtifact>>>);

impl ModelHandle {
    pub fn new(m: ModelArtifact) -> Self {
        ModelHandle(Arc::new(RwLock::new(Arc::new(m))))
    }
    pub fn get(&self) -> Arc<ModelArtifact> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set(&self, m: ModelArtifact) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(m);
    }
}

/// Polls the registry every `every` and swaps in a newly promoted model. A model that fails
/// its checks (another feature schema, a corrupt file) is refused and the champion kept.
pub async fn watch(
    registry: PathBuf,
    handle: ModelHandle,
    on_change: impl Fn(&ModelArtifact) + Send + 'static,
    reload_errors: prometheus::IntCounter,
    every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut refused: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {},
        }
        let current = handle.get().version.clone();
        match platform::registry::current_version(&registry) {
            Ok(Some(v)) if v != current && refused.as_deref() != Some(v.as_str()) => {
                match platform::registry::load(&registry, &v) {
                    Ok(m) => {
                        tracing::info!(from = %current, to = %v, "promoted model loaded");
                        on_change(&m);
                        handle.set(m);
                    }
                    Err(e) => {
                        reload_errors.inc();
                        tracing::error!(version = %v, error = format!("{e:#}"), "refusing promoted model; keeping the current one");
                        refused = Some(v);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the registry"),
        }
    }
}
