//! The model registry: a directory with one sub-directory per model version
//! (`model.json`, `metrics.json`, `report.md`, …) and a `current` file naming the champion.
//! Promotion writes `current` beside and renames it, so a reader never sees a torn pointer.

use anyhow::Context;
use models::ModelArtifact;
use std::path::{Path, PathBuf};

pub const CURRENT: &str = "current";
/// The newest candidate that did not beat the champion; the scorer may shadow it.
pub const CHALLENGER: &str = "challenger";
pub const MODEL_FILE: &str = "model.json";

pub fn version_dir(registry: &Path, version: &str) -> PathBuf {
    registry.join(version)
}

/// The promoted version, if any.
pub fn current_version(registry: &Path) -> anyhow::Result<Option<String>> {
    read_pointer(registry, CURRENT)
}

/// The challenger version, if any.
pub fn challenger_version(registry: &Path) -> anyhow::Result<Option<String>> {
    read_pointer(registry, CHALLENGER)
}

/// Names `version` the challenger (shadowed, never acting).
pub fn set_challenger(registry: &Path, version: &str) -> anyhow::Result<()> {
    write_atomic(&registry.join(CHALLENGER), format!("{version}\n").as_bytes())
}

fn read_pointer(registry: &Path, name: &str) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(registry.join(name)) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", registry.join(name).display())),
    }
}

/// Loads and checks a version's artifact against this build's feature schema.
pub fn load(registry: &Path, version: &str) -> anyhow::Result<ModelArtifact> {
    let path = version_dir(registry, version).join(MODEL_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading model {}", path.display()))?;
    let artifact: ModelArtifact =
        serde_json::from_str(&text).with_context(|| format!("{} is not a model artifact", path.display()))?;
    artifact.check()?;
    Ok(artifact)
}

/// Loads the champion, with advice when there is none.
pub fn load_current(registry: &Path) -> anyhow::Result<ModelArtifact> {
    let version = current_version(registry)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no promoted model in registry {}; train one with `trainer train --lake LAKE --registry {}`",
            registry.display(),
            registry.display()
        )
    })?;
    load(registry, &version)
}

/// Writes a new version's files (atomically per file). Does not promote.
pub fn write_version(registry: &Path, artifact: &ModelArtifact, extra: &[(&str, Vec<u8>)]) -> anyhow::Result<PathBuf> {
    let dir = version_dir(registry, &artifact.version);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(&dir.join(MODEL_FILE), &serde_json::to_vec_pretty(artifact)?)?;
    for (name, bytes) in extra {
        write_atomic(&dir.join(name), bytes)?;
    }
    Ok(dir)
}

/// Makes `version` the champion.
pub fn promote(registry: &Path, version: &str) -> anyhow::Result<()> {
    write_atomic(&registry.join(CURRENT), format!("{version}\n").as_bytes())
}

/// Writes beside, syncs, renames into place and syncs the directory: a reader never sees a
/// torn file, and a promotion that returned survives a crash (the rename is durable only once
/// the directory is). The lake's local store writes its files the same way (`lake::store`);
/// the two stay apart because neither crate should depend on the other.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}
