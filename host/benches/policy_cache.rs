//! The artifact cache: cold load of the default scorer from a cached
//! precompiled artifact (read + checksum + deserialize + validate) against
//! compiling it from source, and the resident memory each cached policy
//! costs.
//!
//! `cargo bench -p postern --bench policy_cache`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use postern::policy::artifacts::{ArtifactCache, CacheOutcome};
use postern::policy::builtin;
use postern::runtime::{EngineOptions, Runtime, Stage};

/// A cache directory of its own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        TempDir(std::env::temp_dir().join(format!("postern-bench-policy-cache-{}", std::process::id())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// Same reader as the `policy_memory` bench.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}

fn load_times(c: &mut Criterion) {
    let tmp = TempDir::new();
    let runtime = Runtime::new(&EngineOptions::default()).expect("runtime");
    let cache = ArtifactCache::open(&tmp.0).expect("cache dir");
    let wasm = builtin::SPAM_SCORE.wasm;
    let (first, outcome) = cache.load(&runtime, wasm, Stage::Score).expect("load");
    assert_eq!(outcome, CacheOutcome::Miss);
    println!("policy_cache: spam-score component {} bytes, artifact {} bytes", wasm.len(), first.artifact_bytes);

    let mut g = c.benchmark_group("policy_load/spam_score");
    g.bench_function("from_artifact_cache", |b| {
        b.iter(|| {
            let (policy, outcome) = cache.load(&runtime, wasm, Stage::Score).expect("load");
            assert_eq!(outcome, CacheOutcome::Hit);
            black_box(policy)
        })
    });
    // The same without the file reads and the checksum: deserialize +
    // validation alone.
    let artifact = runtime.precompile(wasm).expect("precompile");
    let sha256 = postern::runtime::sha256_hex(wasm);
    g.bench_function("load_precompiled_in_memory", |b| {
        b.iter(|| black_box(runtime.load_precompiled(&artifact, &sha256, wasm.len(), Stage::Score).expect("load")))
    });
    g.sample_size(10);
    g.bench_function("compile_from_source", |b| b.iter(|| black_box(runtime.load(wasm, Stage::Score).expect("load"))));
    g.finish();
}

fn memory_per_cached_policy(_c: &mut Criterion) {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes every bench binary.
    }
    let tmp = TempDir::new();
    let runtime = Runtime::new(&EngineOptions::default()).expect("runtime");
    let cache = ArtifactCache::open(&tmp.0).expect("cache dir");
    let wasm = builtin::JUNK_THRESHOLD.wasm;
    // Warm up: stores the artifact and maps the engine's shared code.
    let (warm, _) = cache.load(&runtime, wasm, Stage::Threshold).expect("load");
    let _ = cache.load(&runtime, wasm, Stage::Threshold).expect("load");
    const N: usize = 200;
    let before = rss_bytes();
    let kept: Vec<_> = (0..N)
        .map(|_| {
            let (policy, outcome) = cache.load(&runtime, wasm, Stage::Threshold).expect("load");
            assert_eq!(outcome, CacheOutcome::Hit);
            policy
        })
        .collect();
    let after = rss_bytes();
    let per = after.saturating_sub(before) as f64 / N as f64;
    println!(
        "policy_cache: junk-threshold component {} bytes, artifact {} bytes; {N} copies loaded from the cache; \
         resident growth {:.0} KiB per cached policy",
        wasm.len(),
        warm.artifact_bytes,
        per / 1024.0
    );
    drop(kept);
}

criterion_group!(benches, load_times, memory_per_cached_policy);
criterion_main!(benches);
