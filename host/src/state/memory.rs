//! The in-memory state backend (one host), bounded in size.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{RateLimit, StateError, StateStore, gcra};

/// Keys kept per table before expired ones are swept.
const SWEEP_AT: usize = 100_000;

/// Counters and fingerprints in memory.
#[derive(Debug, Default)]
pub struct MemoryState {
    /// key → (theoretical arrival time, expires at).
    rates: Mutex<HashMap<String, (f64, u64)>>,
    /// key → expires at.
    seen: Mutex<HashMap<String, u64>>,
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StateStore for MemoryState {
    fn rate_allow(&self, key: &str, limit: RateLimit, now_ms: u64) -> Result<bool, StateError> {
        let mut rates = lock(&self.rates);
        if rates.len() >= SWEEP_AT {
            rates.retain(|_, (_, expires)| *expires > now_ms);
        }
        let tat = rates.get(key).map(|(tat, _)| *tat);
        match gcra(tat, limit, now_ms) {
            Some(new_tat) => {
                // The key is irrelevant once its TAT has passed.
                rates.insert(key.to_string(), (new_tat, new_tat.ceil() as u64));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn seen_within(&self, key: &str, _window_ms: u64, now_ms: u64) -> Result<bool, StateError> {
        Ok(lock(&self.seen).get(key).is_some_and(|expires| *expires > now_ms))
    }

    fn record_seen(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<(), StateError> {
        let mut seen = lock(&self.seen);
        if seen.len() >= SWEEP_AT {
            seen.retain(|_, expires| *expires > now_ms);
        }
        seen.insert(key.to_string(), now_ms.saturating_add(window_ms));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_exact_at_the_boundary_and_per_key() {
        let s = MemoryState::new();
        let limit = RateLimit { count: 3, period_ms: 60_000 };
        assert!((0..3).all(|_| s.rate_allow("a", limit, 1_000).unwrap()));
        assert!(!s.rate_allow("a", limit, 1_000).unwrap());
        assert!(s.rate_allow("b", limit, 1_000).unwrap(), "keys are independent");
        assert!(!s.rate_allow("a", limit, 20_999).unwrap());
        assert!(s.rate_allow("a", limit, 21_000).unwrap());
    }

    #[test]
    fn seen_expires_exactly_at_the_window() {
        let s = MemoryState::new();
        s.record_seen("k", 600_000, 1_000).unwrap();
        assert!(s.seen_within("k", 600_000, 1_000).unwrap());
        assert!(s.seen_within("k", 600_000, 600_999).unwrap());
        assert!(!s.seen_within("k", 600_000, 601_000).unwrap());
        assert!(!s.seen_within("other", 600_000, 1_000).unwrap());
    }
}
