//! Building a policy's result.

use crate::Symbol;

impl Symbol {
    /// A symbol: `name` (upper case by convention), its score, and why it
    /// fired.
    pub fn new(name: impl Into<String>, score: f64, description: impl Into<String>) -> Self {
        Symbol { name: name.into(), score, description: description.into() }
    }
}

/// What a policy function may return: the value itself, or a `Result` whose
/// error is reported to the host as a policy failure (the host then applies
/// the policy's failure mode).
pub trait IntoOutcome<T> {
    /// The value, or the failure as text.
    fn into_outcome(self) -> Result<T, String>;
}

impl<T> IntoOutcome<T> for T {
    fn into_outcome(self) -> Result<T, String> {
        Ok(self)
    }
}

impl<T, E: std::fmt::Display> IntoOutcome<T> for Result<T, E> {
    fn into_outcome(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}
