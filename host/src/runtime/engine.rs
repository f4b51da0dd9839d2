//! The shared wasmtime engine: Cranelift, epoch interruption driven by a
//! ticker thread, and the pooling instance allocator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of every time budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Use the pooling allocator (pre-reserved instance slots).
    pub pooling: bool,
    /// Instances that may run at once with pooling.
    pub max_concurrent: u32,
    /// The largest memory cap any policy may have, in bytes.
    pub max_memory_bytes: usize,
    /// Bytes of each linear memory kept resident between calls (used only
    /// where the kernel has PAGEMAP_SCAN, Linux 6.7 and later).
    pub keep_resident_bytes: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { pooling: true, max_concurrent: 256, max_memory_bytes: 64 << 20, keep_resident_bytes: 2 << 20 }
    }
}

/// Builds the engine every policy is compiled and run with.
pub fn build_engine(opts: &EngineOptions) -> wasmtime::Result<Engine> {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    cfg.cranelift_opt_level(OptLevel::Speed);
    cfg.max_wasm_stack(512 * 1024);
    #[cfg(feature = "profiling")]
    cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    if opts.pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(opts.max_concurrent);
        pool.total_core_instances(opts.max_concurrent * 4);
        pool.total_memories(opts.max_concurrent * 2);
        pool.total_tables(opts.max_concurrent * 4);
        pool.max_memory_size(opts.max_memory_bytes);
        // Reset the pages a call touched with memset instead of madvise: no
        // TLB shootdown on release and no page faults on the next call.
        // PAGEMAP_SCAN (Linux >= 6.7) finds just the touched pages.
        // Without PAGEMAP_SCAN the whole kept region would be memset on
        // every release, which costs more than it saves: keep nothing then.
        let keep = if pagemap_scan_supported() { opts.keep_resident_bytes } else { 0 };
        pool.linear_memory_keep_resident(keep);
        pool.table_keep_resident(keep.min(1 << 20));
        pool.pagemap_scan(wasmtime::Enabled::Auto);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&cfg)
}

/// True on Linux 6.7 and later, where wasmtime can find the pages a call
/// touched with the PAGEMAP_SCAN ioctl.
fn pagemap_scan_supported() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else { return false };
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    matches!((parts.next(), parts.next()), (Some(major), Some(minor)) if (major, minor) >= (6, 7))
}

/// Advances the engine's epoch every `EPOCH_TICK` (1 ms) until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("postern-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch ticker thread");
        EpochTicker { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Epoch ticks for a budget: rounded up, plus one for the tick in progress.
pub fn deadline_ticks(budget: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    (budget.as_nanos().div_ceil(tick) as u64).max(1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_up_and_covers_the_current_tick() {
        assert_eq!(deadline_ticks(Duration::from_millis(50)), 51);
        assert_eq!(deadline_ticks(Duration::from_micros(1500)), 3);
        assert_eq!(deadline_ticks(Duration::ZERO), 2);
    }
}
