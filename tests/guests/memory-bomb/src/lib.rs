//! Allocates 1 MiB blocks forever: must hit the memory cap.
use postern_policy_sdk::{ScoreInput, Symbol, score};

#[score]
fn hog(_input: &ScoreInput) -> Vec<Symbol> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(std::hint::black_box(vec![1u8; 1 << 20]));
    }
}
