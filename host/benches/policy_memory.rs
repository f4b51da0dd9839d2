//! Memory per loaded policy: loads the default scorer N times and reports the
//! growth of the process's resident set per copy.
//!
//! `cargo bench -p postern --bench policy_memory`

use postern::policy::builtin;
use postern::runtime::{EngineOptions, Runtime, Stage};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes every bench binary.
    }
    let runtime = Runtime::new(&EngineOptions::default()).expect("runtime");
    // Warm up: the first load maps the engine's shared code.
    let _warm = runtime.load(builtin::SPAM_SCORE.wasm, Stage::Score).expect("load");
    const N: usize = 50;
    let before = rss_bytes();
    let kept: Vec<_> = (0..N).map(|_| runtime.load(builtin::SPAM_SCORE.wasm, Stage::Score).expect("load")).collect();
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) as f64 / N as f64;
    println!(
        "policy_memory: spam-score component {} bytes; {N} loaded copies; resident growth {:.0} KiB per loaded policy",
        builtin::SPAM_SCORE.wasm.len(),
        per / 1024.0
    );
    drop(kept);
}
