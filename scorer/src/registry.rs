//! Models from the registry, hot-swapped when a pointer (`current`, `challenger`) moves.
//!
//! The processor takes the models once per micro-batch, so a swap happens between batches: no
//! event is dropped or scored twice because of it.

use models::ModelArtifact;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A hot-swappable model (the champion is always present; the challenger may not be).
#[derive(Clone, Default)]
pub struct ModelSlot(Arc<RwLock<Option<Arc<ModelArtifact>>>>);

impl ModelSlot {
    pub fn new(m: ModelArtifact) -> Self {
        ModelSlot(Arc::new(RwLock::new(Some(Arc::new(m)))))
    }
    pub fn get(&self) -> Option<Arc<ModelArtifact>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set(&self, m: ModelArtifact) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(m));
    }
    fn version(&self) -> Option<String> {
        self.get().map(|m| m.version.clone())
    }
}

/// Which registry pointer a slot follows.
#[derive(Debug, Clone, Copy)]
pub enum Pointer {
    Champion,
    Challenger,
}

impl Pointer {
    fn read(self, registry: &Path) -> anyhow::Result<Option<String>> {
        match self {
            Pointer::Champion => platform::registry::current_version(registry),
            Pointer::Challenger => platform::registry::challenger_version(registry),
        }
    }
}

/// Polls the registry every `every` and loads the model `pointer` names into `slot`. A model
/// that fails its checks (another feature schema, a corrupt file, a policy that cannot use
/// it) is refused, logged and counted, and the slot keeps its model.
pub async fn watch(
    registry: PathBuf,
    pointer: Pointer,
    slot: ModelSlot,
    accept: impl Fn(&ModelArtifact) -> anyhow::Result<()> + Send + 'static,
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
        let current = slot.version();
        match pointer.read(&registry) {
            Ok(Some(v)) if Some(&v) != current.as_ref() && refused.as_ref() != Some(&v) => {
                match platform::registry::load(&registry, &v).and_then(|m| accept(&m).map(|()| m)) {
                    Ok(m) => {
                        tracing::info!(?pointer, from = ?current, to = %v, "model loaded");
                        slot.set(m);
                    }
                    Err(e) => {
                        reload_errors.inc();
                        tracing::error!(?pointer, version = %v, error = format!("{e:#}"), "refusing model; keeping the current one");
                        refused = Some(v);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the registry"),
        }
    }
}
