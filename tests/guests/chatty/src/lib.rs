//! Prints ~370 KB to stdout and stderr, then answers normally: the log is
//! capped and the answer still counts.
use postern_policy_sdk::{ScoreInput, Symbol, score};

#[score]
fn chatter(_input: &ScoreInput) -> Vec<Symbol> {
    let line = "chatty policy log line ".repeat(40);
    for _ in 0..200 {
        println!("{line}");
        eprintln!("{line}");
    }
    vec![Symbol::new("CHATTY_DONE", 0.5, "answered after printing")]
}
