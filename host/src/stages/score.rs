//! The score stage: every scorer that applies, in order; the total is the sum
//! of the enforced scorers' symbols.

use std::sync::Arc;

use super::{StageContext, Tempfail, call_policy};
use crate::policy::{LoadedPolicy, Mode};
use crate::runtime::StageOutput;
use crate::verdict::{PolicyRun, SymbolOut};

/// What the score stage produced.
#[derive(Debug, Clone, Default)]
pub struct ScoreOutcome {
    /// Symbols of enforced scorers.
    pub symbols: Vec<SymbolOut>,
    /// Symbols of shadow scorers (recorded, not counted).
    pub shadow_symbols: Vec<SymbolOut>,
    /// Sum of `symbols`.
    pub total: f64,
}

/// Runs the scorers.
pub fn run_score(
    ctx: &StageContext<'_>,
    scorers: &[Arc<LoadedPolicy>],
    runs: &mut Vec<PolicyRun>,
) -> Result<ScoreOutcome, Tempfail> {
    let mut out = ScoreOutcome::default();
    for policy in scorers {
        let Some(StageOutput::Symbols(symbols)) = call_policy(ctx, policy, 0.0, &[], runs)? else { continue };
        let target = match policy.manifest.mode {
            Mode::Enforce => &mut out.symbols,
            Mode::Shadow => &mut out.shadow_symbols,
        };
        target.extend(symbols.into_iter().map(|s| SymbolOut {
            name: s.name,
            score: s.score,
            description: s.description,
            policy: policy.manifest.name.clone(),
        }));
    }
    out.total = out.symbols.iter().fold(0.0, |sum, s| sum + s.score);
    Ok(out)
}
