//! Recurses without bound through scalar-only frames, so the wasm call stack
//! (not Rust's shadow stack in linear memory) overflows: the host must stop
//! it with a stack-overflow trap, never touching its own stack.
use postern_policy_sdk::{ScoreInput, Symbol, score};

#[inline(never)]
#[allow(unconditional_recursion)] // the point of this guest
fn down(depth: u64) -> u64 {
    // Not a tail call: the addition happens after the recursive call returns.
    std::hint::black_box(down(std::hint::black_box(depth + 1))).wrapping_add(depth)
}

#[score]
fn recurse(_input: &ScoreInput) -> Vec<Symbol> {
    let n = down(0);
    vec![Symbol::new("NEVER", n as f64, "unreachable")]
}
