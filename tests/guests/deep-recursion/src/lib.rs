//! Recurses without bound: must overflow the wasm stack, not the host's.
use postern_policy_sdk::{ScoreInput, Symbol, score};

fn down(depth: u64, pad: [u8; 256]) -> u64 {
    let pad = std::hint::black_box(pad);
    std::hint::black_box(down(depth + 1, pad)) + pad[(depth % 256) as usize] as u64
}

#[score]
fn recurse(_input: &ScoreInput) -> Vec<Symbol> {
    let n = down(0, [7; 256]);
    vec![Symbol::new("NEVER", n as f64, "unreachable")]
}
