//! Per-message state shared across messages: rate-limit counters and recent
//! text fingerprints. Behind a trait: in memory for one host (here), a
//! shared backend for a fleet. Times are milliseconds since the Unix epoch,
//! passed in by the caller, so limits are exact and testable.

mod memory;

pub use memory::MemoryState;

/// A rate: `count` events per `period_ms`, `count` also being the burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Events allowed per period.
    pub count: u32,
    /// The period in milliseconds.
    pub period_ms: u64,
}

/// The state backend failed: the message must be retried, not judged.
#[derive(Debug, thiserror::Error)]
#[error("state backend: {0}")]
pub struct StateError(pub String);

/// Rate counters and fingerprints.
pub trait StateStore: Send + Sync {
    /// Counts one event for `key` under `limit` (GCRA); false when the key is
    /// over its rate (the event is then not counted).
    fn rate_allow(&self, key: &str, limit: RateLimit, now_ms: u64) -> Result<bool, StateError>;

    /// True when `key` was recorded less than `window_ms` ago.
    fn seen_within(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<bool, StateError>;

    /// Records `key` as seen at `now_ms`.
    fn record_seen(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<(), StateError>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The generic cell rate algorithm on one key's "theoretical arrival time":
/// returns the new TAT when the event conforms, `None` when it does not.
/// `count` events may arrive at once; then one per `period / count`.
pub fn gcra(tat_ms: Option<f64>, limit: RateLimit, now_ms: u64) -> Option<f64> {
    let interval = limit.period_ms as f64 / f64::from(limit.count.max(1));
    let tolerance = limit.period_ms as f64 - interval;
    let now = now_ms as f64;
    let tat = tat_ms.unwrap_or(now).max(now);
    // Conforms when tat - now <= tolerance (a small epsilon absorbs float
    // rounding at the exact boundary).
    if tat - now > tolerance + 1e-6 { None } else { Some(tat + interval) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let limit = RateLimit { count: 30, period_ms: 60_000 };
        let mut tat = None;
        for i in 0..30 {
            tat = Some(gcra(tat, limit, 0).unwrap_or_else(|| panic!("event {} refused", i + 1)));
        }
        assert_eq!(gcra(tat, limit, 0), None, "the 31st at once is over the rate");
        assert_eq!(gcra(tat, limit, 1_999), None, "still over just before one interval");
        assert!(gcra(tat, limit, 2_000).is_some(), "one interval later, one more is allowed");
        assert!(gcra(tat, limit, 60_000).is_some());
    }
}
