//! Hot swap and scale of the policy deployment directory:
//!
//! - swap latency: from the rename of a new manifest (and component) into
//!   place to the first verdict made by the new version, while a thread
//!   judges messages without pause; for a manifest-only change and for a new
//!   component (compiled on the way);
//! - 10,000 workspaces each with its own route policy: loading the
//!   directory with an empty and with a warm artifact cache, first-use and
//!   cached verdict latency, memory, with a cache budget smaller than the
//!   whole.
//!
//! `cargo bench -p postern --bench policy_swap [-- --workspaces N]`

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern::checks::{CheckSettings, FixedChecks};
use postern::directory::{Directory, Snapshot};
use postern::pipeline::{Pipeline, Settings, Submission};
use postern::policy::builtin::{self, ROUTE_DEFAULT};
use postern::policy::registry::{Registry, RegistryConfig};
use postern::runtime::types::Envelope;
use postern::runtime::{EngineOptions, Runtime};
use postern::state::RateLimit;

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4
}

/// The same component with a custom section appended: valid, and a
/// different SHA-256, so it is compiled as a new policy.
fn variant(wasm: &[u8], n: u64) -> Vec<u8> {
    let name = b"postern-bench";
    let payload = n.to_le_bytes();
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(&payload);
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push(body.len() as u8); // fits in one LEB128 byte
    out.extend_from_slice(&body);
    out
}

fn deploy(dir: &Path, name: &str, wasm: &[u8], manifest: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for (file, bytes) in [(format!("{name}.wasm"), wasm), (format!("{name}.toml"), manifest.as_bytes())] {
        let tmp = dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, dir.join(file)).unwrap();
    }
}

fn route(version: &str, inbox: &str) -> String {
    format!("name = \"route\"\nstage = \"route\"\nversion = \"{version}\"\n[config]\ninbox = \"{inbox}\"\n")
}

fn pipeline(runtime: &Arc<Runtime>, registry: &Arc<Registry>, workspaces: usize) -> Pipeline {
    let mut text = String::new();
    for i in 0..workspaces {
        text.push_str(&format!("[[workspace]]\nid = \"ws{i:05}\"\ndomains = [\"ws{i:05}.test\"]\n"));
    }
    let directory: Arc<dyn Directory> = Arc::new(Snapshot::parse(&text).unwrap());
    let unlimited = RateLimit { count: u32::MAX, period_ms: 1000 };
    let checks = FixedChecks {
        settings: CheckSettings {
            duplicate_window_ms: 1,
            sender_rate: unlimited,
            workspace_rate: unlimited,
            ..CheckSettings::default()
        },
        directory: Some(directory),
        ..FixedChecks::offline()
    };
    Pipeline::with_source(runtime.clone(), registry.clone(), Settings::default(), checks)
}

fn judge(rt: &tokio::runtime::Runtime, p: &Pipeline, ws: &str, n: u64) -> postern::verdict::Verdict {
    let raw = format!(
        "From: alice@customer.test\r\nTo: help@{ws}.test\r\nSubject: Question {n}\r\n\r\nHello, question {n} about the export.\r\n"
    );
    let envelope = Envelope {
        client_ip: "127.0.0.1".into(),
        helo: "client.test".into(),
        mail_from: "alice@customer.test".into(),
        rcpt_to: vec![format!("help@{ws}.test")],
    };
    rt.block_on(p.check(&Submission { raw: raw.as_bytes(), envelope }))
}

fn quantiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let q = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (q(0.5), q(0.99), *v.last().unwrap())
}

fn swap_latency(runtime: &Arc<Runtime>, root: &Path, new_component: bool) -> (Duration, Duration, Duration) {
    let config = RegistryConfig {
        dir: root.join("swap.d"),
        cache_dir: root.join("swap-cache"),
        cache_memory_bytes: 256 << 20,
        debounce: Duration::from_millis(20),
    };
    let builtins = builtin::load_defaults(runtime).unwrap();
    let registry = Registry::open(runtime.clone(), builtins, config).unwrap();
    let _watcher = registry.watch().unwrap();
    let platform = root.join("swap.d/platform");
    deploy(&platform, "route", ROUTE_DEFAULT.wasm, &route("0", "v0"));
    registry.reload_all().unwrap();
    let p = Arc::new(pipeline(runtime, &registry, 1));
    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(Mutex::new(String::new()));
    let load = {
        let (p, stop, latest) = (p.clone(), stop.clone(), latest.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let v = judge(&rt, &p, "ws00000", n);
                if let Some(run) = v.policies.iter().find(|r| r.name == "route") {
                    *latest.lock().unwrap() = run.version.clone();
                }
            }
        })
    };
    let mut latencies = Vec::new();
    for n in 1..=50u64 {
        let version = n.to_string();
        let wasm = if new_component { variant(ROUTE_DEFAULT.wasm, n) } else { ROUTE_DEFAULT.wasm.to_vec() };
        let started = Instant::now();
        deploy(&platform, "route", &wasm, &route(&version, &format!("v{n}")));
        while *latest.lock().unwrap() != version {
            assert!(started.elapsed() < Duration::from_secs(30), "version {version} never served");
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies.push(started.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    quantiles(latencies)
}

fn main() {
    let mut workspaces = 10_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--workspaces" {
            workspaces = args.next().and_then(|v| v.parse().ok()).expect("--workspaces N");
        }
    }
    let root: PathBuf = std::env::temp_dir().join(format!("postern-swap-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let runtime = Arc::new(Runtime::new(&EngineOptions::default()).unwrap());

    // What a new component costs before it can serve: a Cranelift compile,
    // against a load from the artifact cache (deserialize + validate).
    let (mut compile, mut load) = (Vec::new(), Vec::new());
    for n in 0..5 {
        let wasm = variant(ROUTE_DEFAULT.wasm, 9000 + n);
        let t = Instant::now();
        let artifact = runtime.precompile(&wasm).unwrap();
        compile.push(t.elapsed());
        let t = Instant::now();
        runtime.load_precompiled(&artifact, "bench", wasm.len(), postern::runtime::Stage::Route).unwrap();
        load.push(t.elapsed());
    }
    println!(
        "route-default ({} B): compile p50 {:.1?}, load from an artifact p50 {:.1?}",
        ROUTE_DEFAULT.wasm.len(),
        quantiles(compile).0,
        quantiles(load).0
    );
    let (p50, p99, max) = swap_latency(&runtime, &root, false);
    println!("swap, manifest change (same component): p50 {p50:.1?}, p99 {p99:.1?}, max {max:.1?} (50 swaps)");
    let (p50, p99, max) = swap_latency(&runtime, &root.join("new"), true);
    println!("swap, new component (compiled on the way): p50 {p50:.1?}, p99 {p99:.1?}, max {max:.1?} (50 swaps)");

    // Scale: every workspace its own route policy; one component per 100
    // workspaces (so 1% of them compile), each with its own config.
    let dir = root.join("scale.d");
    let distinct = workspaces.div_ceil(100) as u64;
    for i in 0..workspaces {
        let wasm = variant(ROUTE_DEFAULT.wasm, 1000 + (i as u64 % distinct));
        deploy(&dir.join(format!("workspaces/ws{i:05}")), "route", &wasm, &route("1", &format!("inbox-{i}")));
    }
    let budget = 64 << 20;
    let config = || RegistryConfig {
        dir: dir.clone(),
        cache_dir: root.join("scale-cache"),
        cache_memory_bytes: budget,
        debounce: Duration::from_millis(20),
    };
    let builtins = builtin::load_defaults(&runtime).unwrap();
    let before = rss_kib();
    let started = Instant::now();
    let registry = Registry::open(runtime.clone(), builtins.clone(), config()).unwrap();
    println!(
        "{workspaces} workspace policies ({distinct} distinct components): loaded with an empty artifact cache in {:.1?}, +{} MiB resident",
        started.elapsed(),
        (rss_kib().saturating_sub(before)) / 1024
    );
    drop(registry);
    let started = Instant::now();
    let registry = Registry::open(runtime.clone(), builtins, config()).unwrap();
    println!("  again with the artifact cache warm (a restart): {:.1?}", started.elapsed());
    let p = pipeline(&runtime, &registry, workspaces);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let before = rss_kib();
    let mut first = Vec::new();
    for i in 0..workspaces {
        let ws = format!("ws{i:05}");
        let t = Instant::now();
        let v = judge(&rt, &p, &ws, i as u64);
        first.push(t.elapsed());
        assert_eq!(v.route.map(|r| r.inbox), Some(format!("inbox-{i}")));
    }
    let (bytes, sets) = registry.cache_usage();
    let (f50, f99, fmax) = quantiles(first);
    println!(
        "  first message per workspace (set built, component shared or loaded from the artifact cache): p50 {f50:.1?}, p99 {f99:.1?}, max {fmax:.1?}"
    );
    println!(
        "  cache after all {workspaces}: {sets} sets, {} MiB accounted (budget {} MiB), +{} MiB resident",
        bytes >> 20,
        budget >> 20,
        (rss_kib().saturating_sub(before)) / 1024
    );
    let mut again = Vec::new();
    for i in (0..workspaces).step_by(7) {
        let t = Instant::now();
        judge(&rt, &p, &format!("ws{i:05}"), 1_000_000 + i as u64);
        again.push(t.elapsed());
    }
    let (a50, a99, amax) = quantiles(again);
    println!(
        "  messages to random workspaces afterwards (most evicted, reloaded from the artifact cache): p50 {a50:.1?}, p99 {a99:.1?}, max {amax:.1?}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
