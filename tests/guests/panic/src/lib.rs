//! Panics: the guest aborts with a trap.
use postern_policy_sdk::{ScoreInput, Symbol, score};

#[score]
fn boom(input: &ScoreInput) -> Vec<Symbol> {
    let subject = input.message.subject().unwrap_or_default();
    panic!("policy bug while reading subject {subject:?}");
}
