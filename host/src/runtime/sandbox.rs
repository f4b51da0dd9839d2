//! Per-call sandbox: the store's data, its memory limiter and the captured
//! guest output. A policy gets no WASI capability: no preopened directories,
//! no environment, no arguments, no sockets, an empty stdin, a fixed-seed
//! random source, and stdout/stderr captured (capped) for the log.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bounds of one policy call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock budget, enforced by epoch interruption.
    pub time: Duration,
    /// Linear memory cap, in bytes.
    pub memory_bytes: usize,
    /// Captured stdout + stderr, in bytes (the rest is dropped).
    pub log_bytes: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits { time: Duration::from_millis(50), memory_bytes: 16 << 20, log_bytes: 4096 }
    }
}

/// The data of one call's store.
pub struct StoreData {
    wasi: WasiCtx,
    /// The policy's data file, handed over on request.
    pub(super) data: Option<Arc<[u8]>>,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) log: CappedLog,
}

impl StoreData {
    /// A fresh sandbox for one call.
    pub fn new(limits: &CallLimits) -> Self {
        let log = CappedLog::new(limits.log_bytes);
        let wasi = WasiCtx::builder()
            .stdout(log.clone())
            .stderr(log.clone())
            // Deterministic randomness: a policy's result must not depend on
            // entropy, and a HashMap's seed needs some source.
            .secure_random(wasmtime_wasi::Deterministic::new(vec![0x5a; 32]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![0xa5; 32]))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        StoreData {
            wasi,
            data: None,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { cap: limits.memory_bytes, exceeded: false },
            log,
        }
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memories and tables, and remembers a refusal so the caller can
/// report "out of memory" rather than a generic trap.
pub(super) struct MemoryLimiter {
    cap: usize,
    pub(super) exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            return Err(wasmtime::format_err!("memory limit of {} bytes exceeded (asked for {desired})", self.cap));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a policy needs a few thousand.
        Ok(desired <= 100_000)
    }
}

/// Guest stdout/stderr: kept up to a cap, silently dropped beyond, so a
/// chatty policy neither fails nor floods the host's memory.
#[derive(Clone)]
pub(super) struct CappedLog {
    buf: Arc<Mutex<Vec<u8>>>,
    cap: usize,
}

impl CappedLog {
    fn new(cap: usize) -> Self {
        CappedLog { buf: Arc::new(Mutex::new(Vec::new())), cap }
    }

    /// What the guest wrote, lossily decoded.
    pub(super) fn text(&self) -> String {
        let buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn append(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl IsTerminal for CappedLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use this; they are refused at load time.
        Box::new(tokio::io::sink())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedLog {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedLog {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}
