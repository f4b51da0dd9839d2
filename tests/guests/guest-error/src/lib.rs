//! Returns an error of its own (a `Result::Err`), which the host reports as
//! a policy failure.
use postern_policy_sdk::{ScoreInput, Symbol, score};

#[score]
fn refuse(input: &ScoreInput) -> Result<Vec<Symbol>, String> {
    match input.config.get("required") {
        Some(_) => Ok(vec![]),
        None => Err("config key `required` is missing".to_string()),
    }
}
