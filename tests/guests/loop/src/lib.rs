//! Never returns: must be stopped by the epoch deadline.
use postern_policy_sdk::{ScoreInput, Symbol, score};

#[score]
fn spin(input: &ScoreInput) -> Vec<Symbol> {
    let mut n: u64 = input.message.size();
    loop {
        n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}
