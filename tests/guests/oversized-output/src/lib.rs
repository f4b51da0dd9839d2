//! Returns 10,000 symbols with long names: the host must refuse the output.
use postern_policy_sdk::{ScoreInput, Symbol, score};

#[score]
fn flood(_input: &ScoreInput) -> Vec<Symbol> {
    (0..10_000).map(|i| Symbol::new(format!("SYMBOL_{i:05}_{}", "X".repeat(100)), 0.01, "x".repeat(200))).collect()
}
