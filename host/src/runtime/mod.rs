//! The WebAssembly runtime the policy stages use: one engine, one linker,
//! components compiled once and instantiated per call in a sandbox.
//!
//! - `bindings`: the contract, bound from `policy-sdk/wit`;
//! - `engine`: engine settings and the epoch ticker behind time budgets;
//! - `component`: loading and validating a component;
//! - `sandbox`: per-call store data, memory cap, captured output;
//! - `host_message`: the `message` resource handed to guests;
//! - `call`: one typed call and the classification of its failures.

mod bindings;
mod call;
mod component;
mod engine;
mod error;
pub(crate) mod host_message;
mod sandbox;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

pub use bindings::postern::policy::types;
pub use call::{CallInput, CallOutcome, OutputLimits, StageOutput};
pub use component::{CONTRACT, CompiledPolicy, Stage, sha256_hex};
pub use engine::{EngineOptions, EpochTicker};
pub use error::PolicyError;
pub use sandbox::{CallLimits, StoreData};

/// Engine, linker and epoch ticker: everything needed to load and call
/// policies. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreData>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime with the given engine options.
    pub fn new(opts: &EngineOptions) -> Result<Self, PolicyError> {
        let host = |e: wasmtime::Error| PolicyError::Host(format!("{e:#}"));
        let engine = engine::build_engine(opts).map_err(host)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(host)?;
        types::add_to_linker::<StoreData, HasSelf<StoreData>>(&mut linker, |d| d).map_err(host)?;
        let ticker = EpochTicker::start(&engine);
        Ok(Runtime { engine, linker, _ticker: ticker })
    }

    /// The engine (for precompilation and its compatibility hash).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
