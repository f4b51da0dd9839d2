//! Loading a policy component: compile once, check its imports against the
//! sandbox's allow-list, check it implements the stage's contract, and keep a
//! pre-instantiated template for the per-call instances.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::bindings::exports::postern::policy::{router, scorer, thresholder};
use super::sandbox::{CallLimits, StoreData};
use super::{PolicyError, Runtime};

/// The contract's package and version, as components name it.
pub const CONTRACT: &str = "postern:policy@0.1.0";

/// Imports a policy may have: the contract's types, WASI streams and the
/// parts of `wasi:cli` and `wasi:random` that Rust's standard library links.
/// Files, sockets, clocks, HTTP and everything else are refused.
const ALLOWED_IMPORTS: &[&str] = &[
    "postern:policy/types@0.1.0",
    "wasi:io/error@0.2",
    "wasi:io/streams@0.2",
    "wasi:io/poll@0.2",
    "wasi:cli/environment@0.2",
    "wasi:cli/exit@0.2",
    "wasi:cli/stdin@0.2",
    "wasi:cli/stdout@0.2",
    "wasi:cli/stderr@0.2",
    "wasi:cli/terminal-input@0.2",
    "wasi:cli/terminal-output@0.2",
    "wasi:cli/terminal-stdin@0.2",
    "wasi:cli/terminal-stdout@0.2",
    "wasi:cli/terminal-stderr@0.2",
    "wasi:random/random@0.2",
    "wasi:random/insecure@0.2",
    "wasi:random/insecure-seed@0.2",
];

/// The three policy stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Returns symbols.
    Score,
    /// Maps the score to deliver / junk / dirty.
    Threshold,
    /// Routes accepted mail.
    Route,
}

impl Stage {
    /// The interface a component of this stage exports.
    pub fn export_name(self) -> &'static str {
        match self {
            Stage::Score => "postern:policy/scorer@0.1.0",
            Stage::Threshold => "postern:policy/thresholder@0.1.0",
            Stage::Route => "postern:policy/router@0.1.0",
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Score => "score",
            Stage::Threshold => "threshold",
            Stage::Route => "route",
        }
    }
}

/// Export lookups for the stage, resolved once at load time.
pub(super) enum StageIndices {
    Score(scorer::GuestIndices),
    Threshold(thresholder::GuestIndices),
    Route(router::GuestIndices),
}

/// A compiled, validated policy component, ready to instantiate per call.
pub struct CompiledPolicy {
    pub(super) pre: InstancePre<StoreData>,
    pub(super) indices: StageIndices,
    /// Stage it implements.
    pub stage: Stage,
    /// SHA-256 of the component bytes, hex.
    pub sha256: String,
    /// Size of the component in bytes.
    pub wasm_bytes: usize,
    /// Size of the compiled code image (what a precompiled artifact holds):
    /// most of the memory a loaded policy costs.
    pub artifact_bytes: usize,
    /// Time spent compiling (or deserializing) and validating it.
    pub load_time: Duration,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy").field("stage", &self.stage).field("sha256", &self.sha256).finish()
    }
}

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Runtime {
    /// Compiles and validates a component for `stage`. Nothing runs on the
    /// hot path that could fail here: imports, exports and types are all
    /// checked, and one trial instance is created.
    pub fn load(&self, wasm: &[u8], stage: Stage) -> Result<CompiledPolicy, PolicyError> {
        let started = Instant::now();
        let sha256 = sha256_hex(wasm);
        let component = Component::new(&self.engine, wasm).map_err(|e| PolicyError::Compile(format!("{e:#}")))?;
        self.prepare(component, stage, sha256, wasm.len(), started)
    }

    /// Validates a component precompiled by [`Runtime::precompile`] (the
    /// same checks as [`Runtime::load`]), skipping Cranelift. `sha256` and
    /// `wasm_bytes` describe the source component it was compiled from.
    ///
    /// The artifact must come from a trusted place: wasmtime runs its code
    /// as it is. Bytes that are not an artifact of this engine's
    /// configuration are refused with [`PolicyError::Compile`].
    pub fn load_precompiled(
        &self,
        artifact: &[u8],
        sha256: &str,
        wasm_bytes: usize,
        stage: Stage,
    ) -> Result<CompiledPolicy, PolicyError> {
        let started = Instant::now();
        // SAFETY: wasmtime checks the header (version, engine config) but
        // trusts the machine code. The callers' contract (documented above)
        // is that `artifact` is the output of `precompile` on a host we
        // control; the artifact cache enforces it with its own checksums.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, artifact) }
            .map_err(|e| PolicyError::Compile(format!("not a loadable precompiled artifact: {e:#}")))?;
        self.prepare(component, stage, sha256.to_string(), wasm_bytes, started)
    }

    /// Compiles a component to the engine's precompiled form, for
    /// [`Runtime::load_precompiled`]. Checks nothing beyond compilation.
    pub fn precompile(&self, wasm: &[u8]) -> Result<Vec<u8>, PolicyError> {
        self.engine.precompile_component(wasm).map_err(|e| PolicyError::Compile(format!("{e:#}")))
    }

    /// The checks shared by both ways of loading: imports against the
    /// allow-list, the stage's export and its types, and one trial instance.
    fn prepare(
        &self,
        component: Component,
        stage: Stage,
        sha256: String,
        wasm_bytes: usize,
        started: Instant,
    ) -> Result<CompiledPolicy, PolicyError> {
        let image = component.image_range();
        let artifact_bytes = image.end.addr() - image.start.addr();
        let ty = component.component_type();
        for (name, _) in ty.imports(&self.engine) {
            check_import(name)?;
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| PolicyError::Contract(format!("{e:#}")))?;
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let missing = |e: wasmtime::Error| {
            PolicyError::Contract(format!(
                "a {} policy must export `{}`; this component exports [{}] ({e})",
                stage.as_str(),
                stage.export_name(),
                exports.join(", ")
            ))
        };
        let indices = match stage {
            Stage::Score => StageIndices::Score(scorer::GuestIndices::new(&pre).map_err(missing)?),
            Stage::Threshold => StageIndices::Threshold(thresholder::GuestIndices::new(&pre).map_err(missing)?),
            Stage::Route => StageIndices::Route(router::GuestIndices::new(&pre).map_err(missing)?),
        };
        let policy =
            CompiledPolicy { pre, indices, stage, sha256, wasm_bytes, artifact_bytes, load_time: Duration::ZERO };
        // One trial instance type-checks the export's signature now rather
        // than on the first message.
        let mut store = Store::new(&self.engine, StoreData::new(&CallLimits::default()));
        store.set_epoch_deadline(super::engine::deadline_ticks(Duration::from_secs(1)));
        let instance = policy.pre.instantiate(&mut store).map_err(|e| PolicyError::Contract(format!("{e:#}")))?;
        let typed = match &policy.indices {
            StageIndices::Score(i) => i.load(&mut store, &instance).map(drop),
            StageIndices::Threshold(i) => i.load(&mut store, &instance).map(drop),
            StageIndices::Route(i) => i.load(&mut store, &instance).map(drop),
        };
        typed
            .map_err(|e| PolicyError::Contract(format!("`{}` has the wrong signature: {e:#}", stage.export_name())))?;
        Ok(CompiledPolicy { load_time: started.elapsed(), ..policy })
    }
}

/// Refuses imports outside the allow-list, naming a version mismatch of the
/// contract as such.
fn check_import(name: &str) -> Result<(), PolicyError> {
    let allowed = ALLOWED_IMPORTS
        .iter()
        .any(|a| name == *a || (name.starts_with(a) && name.as_bytes().get(a.len()) == Some(&b'.')));
    if allowed {
        return Ok(());
    }
    if let Some(rest) = name.strip_prefix("postern:policy/") {
        return Err(PolicyError::Contract(format!(
            "built against `postern:policy/{rest}`, but this host implements {CONTRACT}: rebuild it with the current policy SDK"
        )));
    }
    Err(PolicyError::ForbiddenImport(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_allow_list() {
        assert!(check_import("wasi:io/streams@0.2.6").is_ok());
        assert!(check_import("wasi:cli/stdout@0.2.0").is_ok());
        assert!(check_import("postern:policy/types@0.1.0").is_ok());
        assert!(matches!(check_import("wasi:filesystem/types@0.2.6"), Err(PolicyError::ForbiddenImport(_))));
        assert!(matches!(check_import("wasi:sockets/tcp@0.2.6"), Err(PolicyError::ForbiddenImport(_))));
        assert!(matches!(check_import("wasi:clocks/wall-clock@0.2.6"), Err(PolicyError::ForbiddenImport(_))));
        assert!(matches!(check_import("wasi:io/streams@0.3.0"), Err(PolicyError::ForbiddenImport(_))));
        assert!(matches!(check_import("postern:policy/types@0.2.0"), Err(PolicyError::Contract(_))));
    }
}
