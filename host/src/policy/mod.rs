//! Policies as the host holds them: manifest + compiled component, and the
//! built-in defaults embedded in the binary.

pub mod artifacts;
pub mod builtin;
pub mod deploy;
pub mod history;
pub mod manifest;
pub mod registry;
pub mod stats;
pub mod status;

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
    /// Its compiled component (shared by every workspace using the same one).
    pub compiled: Arc<CompiledPolicy>,
    /// Who it applies to.
    pub scope: Scope,
    /// The manifest's config as JSON, rendered once.
    pub config_json: String,
    /// The manifest's data file, read once.
    pub data: Option<Arc<[u8]>>,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Calls, errors, latency.
    pub stats: Arc<stats::PolicyStats>,
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
        Ok(Self::from_compiled(manifest, Arc::new(compiled), data.map(Arc::from), scope))
    }

    /// A policy from a parsed manifest and an already compiled component.
    pub fn from_compiled(
        manifest: Manifest,
        compiled: Arc<CompiledPolicy>,
        data: Option<Arc<[u8]>>,
        scope: Scope,
    ) -> Self {
        LoadedPolicy {
            config_json: manifest.config_json(),
            data,
            manifest,
            compiled,
            scope,
            loaded_at: SystemTime::now(),
            stats: Arc::default(),
        }
    }

    /// Stage it serves.
    pub fn stage(&self) -> Stage {
        self.manifest.stage
    }
}

/// The policies a message goes through: the scorers in order, one threshold
/// policy and one route policy, plus threshold and route policies in shadow
/// mode (run beside the enforced one, recorded, never acted on).
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// Scorers, platform first (shadow scorers among them, by their mode).
    pub scorers: Vec<Arc<LoadedPolicy>>,
    /// The threshold policy.
    pub threshold: Arc<LoadedPolicy>,
    /// The route policy.
    pub route: Arc<LoadedPolicy>,
    /// Threshold and route policies in shadow mode.
    pub shadow: Vec<Arc<LoadedPolicy>>,
}

/// Where the pipeline gets the policies for a message: a fixed set, or the
/// live deployment directory ([`registry::Registry`]).
pub trait PolicySource: Send + Sync + std::fmt::Debug {
    /// The policies for a workspace's mail (the platform's when it has
    /// none of its own). May compile or load from the artifact cache: call
    /// it off the async executor.
    fn for_workspace(&self, workspace: &str) -> Arc<PolicySet>;
    /// Every deployed policy with its state, for operators.
    fn status(&self) -> Vec<status::PolicyStatus>;
}

/// A fixed policy set (the built-in defaults, tests).
#[derive(Debug, Clone)]
pub struct FixedPolicies(pub Arc<PolicySet>);

impl PolicySource for FixedPolicies {
    fn for_workspace(&self, _workspace: &str) -> Arc<PolicySet> {
        self.0.clone()
    }

    fn status(&self) -> Vec<status::PolicyStatus> {
        status::of_set(&self.0)
    }
}
