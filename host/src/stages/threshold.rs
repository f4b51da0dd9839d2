//! The threshold stage: one policy classifies the scored message; the host
//! then enforces the platform's dirty limit whatever the policy said.

use super::{StageContext, Tempfail, call_policy};
use crate::policy::LoadedPolicy;
use crate::runtime::StageOutput;
use crate::runtime::types::{Classification, Symbol};
use crate::verdict::PolicyRun;

/// What the threshold stage decided.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdOutcome {
    /// Deliver, junk or dirty.
    pub classification: Classification,
    /// The note for the rejection text.
    pub note: String,
}

impl ThresholdOutcome {
    /// Lower-case name of the classification.
    pub fn name(&self) -> &'static str {
        match self.classification {
            Classification::Deliver => "deliver",
            Classification::Junk => "junk",
            Classification::Dirty => "dirty",
        }
    }
}

/// Runs the threshold policy, then applies the platform's dirty limit.
pub fn run_threshold(
    ctx: &StageContext<'_>,
    policy: &LoadedPolicy,
    score: f64,
    symbols: &[Symbol],
    dirty_limit: f64,
    runs: &mut Vec<PolicyRun>,
) -> Result<ThresholdOutcome, Tempfail> {
    let decided = match call_policy(ctx, policy, score, symbols, runs)? {
        Some(StageOutput::Threshold(d)) => ThresholdOutcome { classification: d.classification, note: d.note },
        // Skipped after a failure: deliver, subject to the dirty limit below.
        _ => ThresholdOutcome { classification: Classification::Deliver, note: "(threshold policy skipped)".into() },
    };
    Ok(enforce_dirty_limit(decided, score, dirty_limit))
}

/// No workspace can lift the platform's dirty limit.
fn enforce_dirty_limit(decided: ThresholdOutcome, score: f64, dirty_limit: f64) -> ThresholdOutcome {
    if score > dirty_limit && decided.classification != Classification::Dirty {
        return ThresholdOutcome { classification: Classification::Dirty, note: "(dirty)".into() };
    }
    decided
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_limit_overrides_a_lenient_policy() {
        let lenient = ThresholdOutcome { classification: Classification::Deliver, note: "(clean)".into() };
        assert_eq!(enforce_dirty_limit(lenient.clone(), 6.5, 6.0).classification, Classification::Dirty);
        assert_eq!(enforce_dirty_limit(lenient.clone(), 6.0, 6.0), lenient);
        let junk = ThresholdOutcome { classification: Classification::Junk, note: "(junk)".into() };
        assert_eq!(enforce_dirty_limit(junk.clone(), 2.0, 6.0), junk);
    }
}
