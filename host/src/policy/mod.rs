//! Policies as the host holds them: manifest + compiled component, and the
//! built-in defaults embedded in the binary.

pub mod builtin;
pub mod manifest;

use std::sync::Arc;
use std::time::SystemTime;

pub use manifest::{Manifest, ManifestError, Mode, OnError};

use crate::runtime::{CompiledPolicy, PolicyError, Runtime, Stage};

/// Who a policy applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every workspace.
    Platform,
    /// One workspace.
    Workspace(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Platform => f.write_str("platform"),
            Scope::Workspace(id) => write!(f, "workspace:{id}"),
        }
    }
}

/// A policy ready to call.
#[derive(Debug)]
pub struct LoadedPolicy {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its compiled component.
    pub compiled: CompiledPolicy,
    /// Who it applies to.
    pub scope: Scope,
    /// The manifest's config as JSON, rendered once.
    pub config_json: String,
    /// The manifest's data file, read once.
    pub data: Option<Arc<[u8]>>,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest names a data file that was not provided.
    #[error("policy `{name}`: data file `{file}` not found")]
    MissingData {
        /// Policy name.
        name: String,
        /// The file the manifest names.
        file: String,
    },
    /// The component is invalid.
    #[error("policy `{name}`: {source}")]
    Component {
        /// Policy name.
        name: String,
        /// What is wrong.
        source: PolicyError,
    },
}

impl LoadedPolicy {
    /// Loads a policy from its manifest text, component bytes and data file
    /// (required when the manifest names one).
    pub fn load(
        runtime: &Runtime,
        manifest_text: &str,
        wasm: &[u8],
        data: Option<&[u8]>,
        scope: Scope,
    ) -> Result<Self, LoadError> {
        let manifest = Manifest::parse(manifest_text)?;
        if let (Some(file), None) = (&manifest.data_file, data) {
            return Err(LoadError::MissingData { name: manifest.name.clone(), file: file.clone() });
        }
        let compiled = runtime
            .load(wasm, manifest.stage)
            .map_err(|source| LoadError::Component { name: manifest.name.clone(), source })?;
        Ok(LoadedPolicy {
            config_json: manifest.config_json(),
            data: data.map(Arc::from),
            manifest,
            compiled,
            scope,
            loaded_at: SystemTime::now(),
        })
    }

    /// Stage it serves.
    pub fn stage(&self) -> Stage {
        self.manifest.stage
    }
}

/// The policies a message goes through: the scorers in order, one threshold
/// policy and one route policy.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// Scorers, platform first.
    pub scorers: Vec<Arc<LoadedPolicy>>,
    /// The threshold policy.
    pub threshold: Arc<LoadedPolicy>,
    /// The route policy.
    pub route: Arc<LoadedPolicy>,
}
