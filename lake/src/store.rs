//! Where the lake's files live: a local directory, or an object store (S3 or compatible) under a
//! URL prefix. Everything above this module names files by their path below the lake's root
//! ([`LakeFile`]), so the sink, compaction, training and backfill run unchanged on either.
//!
//! Writes replace a file whole and atomically: locally by writing beside and renaming (fsynced
//! for the sink), on S3 by one `PUT`, which is durable once acknowledged and never visible half
//! written. Object-store calls run on a small I/O runtime of this module, so the lake's API stays
//! blocking (it is called from the trainer's blocking threads).

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Whether a written file must be durable before the call returns (a sink committing offsets
/// needs it; a generator does not). Object-store writes are durable either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Fsync,
    Buffered,
}

/// Said with every object-store error: the cause is nearly always these settings.
const S3_HINT: &str = " (S3 settings: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or an instance role, \
AWS_DEFAULT_REGION, and AWS_ENDPOINT with AWS_ALLOW_HTTP=true for an S3-compatible server)";

/// A lake: a local directory or an object-store prefix. Cheap to clone.
#[derive(Clone)]
pub struct Lake {
    backend: Backend,
    /// The path or URL it was opened from, for messages.
    location: String,
}

#[derive(Clone)]
enum Backend {
    Dir(PathBuf),
    Store { store: Arc<dyn ObjectStore>, prefix: String },
}

impl std::fmt::Debug for Lake {
    // Only the location: credentials live in the store's configuration and are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Lake").field(&self.location).finish()
    }
}

impl std::fmt::Display for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location)
    }
}

/// A file of the lake, by its `/`-separated path below the root
/// (`events/date=2026-11-01/clickstream-p0-….parquet`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LakeFile(String);

impl LakeFile {
    pub fn new(rel: impl Into<String>) -> LakeFile {
        LakeFile(rel.into())
    }

    /// The path below the lake's root.
    pub fn rel(&self) -> &str {
        &self.0
    }

    /// The file name without its directory.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The file name without directory and extension.
    pub fn stem(&self) -> &str {
        let name = self.name();
        name.rsplit_once('.').map_or(name, |(stem, _)| stem)
    }

    /// A sibling of this file (same directory) named `name`.
    pub fn sibling(&self, name: &str) -> LakeFile {
        match self.0.rsplit_once('/') {
            Some((dir, _)) => LakeFile(format!("{dir}/{name}")),
            None => LakeFile(name.to_string()),
        }
    }
}

/// Runs object-store futures from blocking code. A dedicated runtime (never dropped) rather than
/// the caller's: the lake's API is blocking, and blocking on the caller's runtime from inside it
/// would deadlock or panic.
fn block_on<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> anyhow::Result<T> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lake-io")
            .enable_all()
            .build()
            .expect("the lake's I/O runtime starts")
    });
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().context("the lake's I/O task stopped without an answer")
}

impl Lake {
    /// The lake in local directory `path` (created by the first write).
    pub fn dir(path: impl Into<PathBuf>) -> Lake {
        let path = path.into();
        Lake { location: path.display().to_string(), backend: Backend::Dir(path) }
    }

    /// Opens a lake from a path or URL: a local path (or `file://` URL), or
    /// `s3://bucket/prefix`, configured from the standard `AWS_*` environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, and for an
    /// S3-compatible server `AWS_ENDPOINT` and `AWS_ALLOW_HTTP=true`). Nothing is contacted here.
    pub fn open(location: &str) -> anyhow::Result<Lake> {
        Lake::open_with(location, &[])
    }

    /// [`Lake::open`] with S3 settings given here (lower-case names of the environment
    /// variables, e.g. `aws_endpoint`) taking precedence over the environment.
    pub fn open_with(location: &str, options: &[(&str, &str)]) -> anyhow::Result<Lake> {
        let Some((scheme, rest)) = location.split_once("://") else {
            return Ok(Lake::dir(location));
        };
        match scheme {
            "file" => Ok(Lake::dir(rest)),
            "s3" | "s3a" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    bail!("{location} names no bucket; write s3://BUCKET/PREFIX");
                }
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (key, value) in options {
                    let key = key.parse().with_context(|| format!("{key} is not an S3 setting"))?;
                    builder = builder.with_config(key, *value);
                }
                let store = builder
                    .build()
                    .with_context(|| format!("configuring S3 for {location} (see the AWS_* environment variables)"))?;
                let prefix = prefix.trim_matches('/').to_string();
                Ok(Lake { location: location.to_string(), backend: Backend::Store { store: Arc::new(store), prefix } })
            }
            other => bail!(
                "{location}: the lake can be a local path, file://PATH or s3://BUCKET/PREFIX, not a {other}:// URL"
            ),
        }
    }

    /// [`Lake::open`] for a command-line argument.
    pub fn parse_arg(location: &str) -> Result<Lake, String> {
        Lake::open(location).map_err(|e| format!("{e:#}"))
    }

    /// The local directory, if the lake is one.
    pub fn local_dir(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Dir(p) => Some(p),
            Backend::Store { .. } => None,
        }
    }

    /// Where `file` is, as a path or URL (for messages).
    pub fn describe(&self, file: &LakeFile) -> String {
        match &self.backend {
            Backend::Dir(p) => p.join(file.rel()).display().to_string(),
            Backend::Store { .. } => format!("{}/{}", self.location.trim_end_matches('/'), file.rel()),
        }
    }

    fn local(root: &Path, file: &LakeFile) -> PathBuf {
        root.join(file.rel())
    }

    fn object(prefix: &str, rel: &str) -> anyhow::Result<ObjPath> {
        let full = if prefix.is_empty() { rel.to_string() } else { format!("{prefix}/{rel}") };
        ObjPath::parse(&full).with_context(|| format!("{full} is not a valid object path"))
    }

    /// Checks that the lake can be reached (and creates a local one), so that a service fails
    /// at start with the reason instead of at its first write.
    pub fn prepare(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Dir(p) => {
                std::fs::create_dir_all(p).with_context(|| format!("creating the lake at {}", p.display()))
            }
            Backend::Store { .. } => {
                self.list("_sink").map(drop).with_context(|| format!("cannot reach the lake at {}", self.location))
            }
        }
    }

    /// Every file below directory `under` (a path below the root), in name order.
    pub fn list(&self, under: &str) -> anyhow::Result<Vec<LakeFile>> {
        let mut out = match &self.backend {
            Backend::Dir(root) => {
                let dir = root.join(under);
                let mut out = Vec::new();
                if dir.exists() {
                    walk(root, &dir, &mut out).with_context(|| format!("listing {}", dir.display()))?;
                }
                out
            }
            Backend::Store { store, prefix } => {
                let (store, prefix, at) = (store.clone(), prefix.clone(), Lake::object(prefix, under)?);
                let metas: Vec<object_store::ObjectMeta> =
                    block_on(async move { store.list(Some(&at)).try_collect().await })?
                        .with_context(|| format!("listing {}/{under}{S3_HINT}", self.location))?;
                let skip = if prefix.is_empty() { 0 } else { prefix.len() + 1 };
                metas.into_iter().map(|m| LakeFile(m.location.as_ref()[skip..].to_string())).collect()
            }
        };
        out.sort();
        Ok(out)
    }

    /// The bytes of `file`, or `None` if it does not exist.
    pub fn get(&self, file: &LakeFile) -> anyhow::Result<Option<Bytes>> {
        match &self.backend {
            Backend::Dir(root) => match std::fs::read(Lake::local(root, file)) {
                Ok(b) => Ok(Some(Bytes::from(b))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {}", self.describe(file))),
            },
            Backend::Store { store, prefix } => {
                let (store, at) = (store.clone(), Lake::object(prefix, file.rel())?);
                let got = block_on(async move {
                    match store.get(&at).await {
                        Ok(r) => r.bytes().await.map(Some),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                })?;
                got.with_context(|| format!("reading {}{S3_HINT}", self.describe(file)))
            }
        }
    }

    /// Writes `file` whole, replacing any previous one atomically.
    pub fn put(&self, file: &LakeFile, bytes: Vec<u8>, durability: Durability) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Dir(root) => put_local(&Lake::local(root, file), &bytes, durability),
            Backend::Store { store, prefix } => {
                let (store, at) = (store.clone(), Lake::object(prefix, file.rel())?);
                block_on(async move { store.put(&at, bytes.into()).await })?
                    .with_context(|| format!("writing {}{S3_HINT}", self.describe(file)))?;
                Ok(())
            }
        }
    }

    /// Deletes `file` (a missing file is not an error: the goal is that it is gone).
    pub fn remove(&self, file: &LakeFile) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Dir(root) => match std::fs::remove_file(Lake::local(root, file)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", self.describe(file)))
                }
                _ => Ok(()),
            },
            Backend::Store { store, prefix } => {
                let (store, at) = (store.clone(), Lake::object(prefix, file.rel())?);
                block_on(async move {
                    match store.delete(&at).await {
                        Err(object_store::Error::NotFound { .. }) => Ok(()),
                        r => r,
                    }
                })?
                .with_context(|| format!("removing {}{S3_HINT}", self.describe(file)))
            }
        }
    }

    /// A Parquet file's metadata (row counts, schema), reading only its footer.
    pub fn parquet_metadata(&self, file: &LakeFile) -> anyhow::Result<ParquetMetaData> {
        let what = || format!("{} is not a readable Parquet file", self.describe(file));
        match &self.backend {
            Backend::Dir(root) => {
                let f =
                    File::open(Lake::local(root, file)).with_context(|| format!("opening {}", self.describe(file)))?;
                ParquetMetaDataReader::new().parse_and_finish(&f).with_context(what)
            }
            Backend::Store { store, prefix } => {
                let (store, at) = (store.clone(), Lake::object(prefix, file.rel())?);
                // The footer is its metadata, a 4-byte length and `PAR1`: one ranged read of the
                // tail nearly always holds it all; a larger footer takes a second read.
                const TAIL: u64 = 64 * 1024;
                let footer = block_on(async move {
                    let size = store.head(&at).await?.size;
                    let tail = store.get_range(&at, size.saturating_sub(TAIL)..size).await?;
                    Ok::<_, object_store::Error>((size, tail, store, at))
                })?;
                let (size, tail, store, at) =
                    footer.with_context(|| format!("reading {}{S3_HINT}", self.describe(file)))?;
                let n = tail.len();
                if n < 8 || &tail[n - 4..] != b"PAR1" {
                    return Err(anyhow::anyhow!("no Parquet footer")).with_context(what);
                }
                let len = u32::from_le_bytes(tail[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
                let meta = if len + 8 <= n {
                    tail.slice(n - 8 - len..n - 8)
                } else {
                    let start = size.checked_sub(8 + len as u64).with_context(what)?;
                    block_on(async move { store.get_range(&at, start..size - 8).await })?.with_context(what)?
                };
                ParquetMetaDataReader::decode_metadata(&meta).with_context(what)
            }
        }
    }
}

/// Files below `dir`, as paths relative to `root` with `/` separators (temporary files of an
/// interrupted write are not files of the lake).
fn walk(root: &Path, dir: &Path, out: &mut Vec<LakeFile>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            walk(root, &p, out)?;
        } else if p.extension().is_none_or(|e| e != "tmp")
            && let Ok(rel) = p.strip_prefix(root)
        {
            let parts: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect();
            out.push(LakeFile(parts.join("/")));
        }
    }
    Ok(())
}

/// Writes beside, then renames: a reader never sees a half-written file.
fn put_local(path: &Path, bytes: &[u8], durability: Durability) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().context("a lake file has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut name = path.file_name().context("a lake file has a name")?.to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    if durability == Durability::Fsync {
        file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))?;
    if durability == Durability::Fsync {
        // The rename itself is durable only once the directory is.
        File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}
