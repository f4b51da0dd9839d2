//! Reads the wall clock, so the component imports `wasi:clocks`: the host
//! must refuse to load it.
use postern_policy_sdk::{ScoreInput, Symbol, score};

#[score]
fn timing(_input: &ScoreInput) -> Vec<Symbol> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    vec![Symbol::new("CLOCK", (now % 2) as f64, "leaks time")]
}
