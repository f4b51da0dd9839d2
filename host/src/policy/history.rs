//! The previous version of every policy, kept so `postern policy rollback`
//! can restore it. By the time a new version is seen on disk the old files
//! are gone, so each version is copied when it goes live: its component and
//! data file as content-addressed blobs, its manifest in a small record per
//! policy (`current` and `previous`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Scope;
use crate::runtime::sha256_hex;

/// One version of a policy, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptVersion {
    /// Manifest version.
    pub version: String,
    /// SHA-256 of the component (its blob's name).
    pub sha256: String,
    /// The manifest, word for word.
    pub manifest: String,
    /// The data file's name and the SHA-256 of its content.
    #[serde(default)]
    pub data: Option<(String, String)>,
}

/// What is kept of one policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// The version live now.
    pub current: Option<KeptVersion>,
    /// The one before it.
    pub previous: Option<KeptVersion>,
}

/// The history directory.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
}

impl History {
    /// History under `dir` (created on first use).
    pub fn new(dir: &Path) -> Self {
        History { dir: dir.to_path_buf() }
    }

    fn record_path(&self, scope: &Scope, name: &str) -> PathBuf {
        let scope_dir = match scope {
            Scope::Platform => "platform".to_string(),
            Scope::Workspace(id) => format!("workspace-{id}"),
        };
        self.dir.join(scope_dir).join(format!("{name}.json"))
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs").join(sha256)
    }

    /// The record of a policy (empty if none).
    pub fn record(&self, scope: &Scope, name: &str) -> Record {
        std::fs::read(self.record_path(scope, name))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// A version went live: keep its bytes; the one it replaces becomes
    /// `previous`. Nothing changes when it is the current one already.
    pub fn activated(
        &self,
        scope: &Scope,
        name: &str,
        kept: KeptVersion,
        wasm: &[u8],
        data: Option<&[u8]>,
    ) -> std::io::Result<()> {
        let mut record = self.record(scope, name);
        if record.current.as_ref() == Some(&kept) {
            return Ok(());
        }
        self.store_blob(&kept.sha256, wasm)?;
        if let (Some((_, sha)), Some(bytes)) = (&kept.data, data) {
            self.store_blob(sha, bytes)?;
        }
        record.previous = record.current.take();
        record.current = Some(kept);
        let json = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
        // Not synced: a crash can only cost the latest rollback point, and
        // syncing per activation made loading 1,000 workspaces 10× slower.
        write_renamed(&self.record_path(scope, name), &json, false)
    }

    /// The bytes of a kept blob.
    pub fn blob(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        let bytes = std::fs::read(self.blob_path(sha256))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(std::io::Error::other(format!("kept blob {sha256} is corrupt")));
        }
        Ok(bytes)
    }

    fn store_blob(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.blob_path(sha256);
        if path.exists() {
            return Ok(());
        }
        write_renamed(&path, bytes, false)
    }
}

/// Writes through a synced temporary file renamed into place (the way a
/// deployer must write into the deployment directory, too).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_renamed(path, bytes, true)
}

/// Writes through a temporary file renamed into place, synced when `sync`:
/// readers never see a half-written file either way.
fn write_renamed(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if sync {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
