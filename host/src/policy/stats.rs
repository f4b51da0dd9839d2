//! Per-policy call statistics for operators (`postern policy status`):
//! calls, errors and latency quantiles, recorded lock-free on every call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets: powers of two from 1 µs to ~8 s (the last one open).
const BUCKETS: usize = 24;

/// Counters of one policy version.
#[derive(Debug, Default)]
pub struct PolicyStats {
    calls: AtomicU64,
    errors: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

/// A snapshot for display.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed (trap, time-out, error, bad output).
    pub errors: u64,
    /// Median latency in microseconds (upper bound of its bucket).
    pub p50_us: Option<u64>,
    /// 99th percentile latency in microseconds (upper bound of its bucket).
    pub p99_us: Option<u64>,
}

impl PolicyStats {
    /// Records one call.
    pub fn record(&self, took: Duration, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = took.as_micros().max(1) as u64;
        let bucket = (63 - us.leading_zeros() as usize).min(BUCKETS - 1);
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let counts: Vec<u64> = self.latency.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let quantile = |q: f64| {
            if total == 0 {
                return None;
            }
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            counts.iter().enumerate().find_map(|(i, c)| {
                seen += c;
                (seen >= rank).then_some(1u64 << (i + 1))
            })
        };
        StatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let s = PolicyStats::default();
        assert_eq!(s.snapshot().p50_us, None);
        for _ in 0..98 {
            s.record(Duration::from_micros(10), true);
        }
        s.record(Duration::from_millis(3), false);
        s.record(Duration::from_millis(3), true);
        let snap = s.snapshot();
        assert_eq!((snap.calls, snap.errors), (100, 1));
        assert_eq!(snap.p50_us, Some(16), "10 µs is in the 8–16 µs bucket");
        assert_eq!(snap.p99_us, Some(4096), "3 ms is in the 2–4 ms bucket");
    }
}
