//! The fixed checks every message must pass before any policy runs, in
//! order; the first failure decides the verdict.

pub mod headers;

use crate::verdict::{Code, Params};

/// The outcome of one fixed check.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    /// The message passes this check.
    Pass,
    /// The message is refused with this catalog code.
    Fail(Code, Params),
    /// The check was not run (configuration).
    Skipped,
}

impl CheckOutcome {
    /// Trace label.
    pub fn label(&self) -> &'static str {
        match self {
            CheckOutcome::Pass => "pass",
            CheckOutcome::Fail(code, _) if code.is_temporary() => "tempfail",
            CheckOutcome::Fail(..) => "fail",
            CheckOutcome::Skipped => "skipped",
        }
    }
}
