//! The default policies, built from `policies/` for `wasm32-wasip2` by the
//! host's build script and embedded in the binary with their manifests.

use std::sync::Arc;

use super::{LoadError, LoadedPolicy, PolicySet, Scope};
use crate::runtime::Runtime;

/// One embedded policy: manifest text and component bytes.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Directory name under `policies/`.
    pub name: &'static str,
    /// `policy.toml`.
    pub manifest: &'static str,
    /// The component.
    pub wasm: &'static [u8],
    /// Its data file, if the manifest names one.
    pub data: Option<&'static [u8]>,
}

macro_rules! builtin {
    ($dir:literal, $file:literal $(, data = $data:literal)?) => {
        Builtin {
            name: $dir,
            manifest: include_str!(concat!("../../../policies/", $dir, "/policy.toml")),
            wasm: include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".wasm")),
            data: builtin!(@data $dir $(, $data)?),
        }
    };
    (@data $dir:literal) => { None };
    (@data $dir:literal, $data:literal) => {
        Some(include_bytes!(concat!("../../../policies/", $dir, "/", $data)) as &'static [u8])
    };
}

/// The platform's default scorer.
pub const SPAM_SCORE: Builtin = builtin!("spam-score", "spam_score", data = "model.bin");
/// The platform's default threshold policy.
pub const JUNK_THRESHOLD: Builtin = builtin!("junk-threshold", "junk_threshold");
/// The platform's default route policy.
pub const ROUTE_DEFAULT: Builtin = builtin!("route-default", "route_default");

/// Compiles the three defaults (in parallel: compilation dominates start-up).
pub fn load_defaults(runtime: &Runtime) -> Result<PolicySet, LoadError> {
    let load = |b: Builtin| LoadedPolicy::load(runtime, b.manifest, b.wasm, b.data, Scope::Platform).map(Arc::new);
    let (score, threshold, route) = std::thread::scope(|s| {
        let score = s.spawn(|| load(SPAM_SCORE));
        let threshold = s.spawn(|| load(JUNK_THRESHOLD));
        let route = load(ROUTE_DEFAULT);
        (score.join().expect("compile thread"), threshold.join().expect("compile thread"), route)
    });
    Ok(PolicySet { scorers: vec![score?], threshold: threshold?, route: route?, shadow: Vec::new() })
}
