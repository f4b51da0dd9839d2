//! What can go wrong loading or calling a policy.

/// A policy failed to load or to answer. Every variant is contained: the host
/// applies the policy's failure mode and carries on.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PolicyError {
    /// The bytes are not a valid WebAssembly component.
    #[error("does not compile: {0}")]
    Compile(String),
    /// The component does not implement this contract (wrong version, wrong
    /// world, or mismatched types).
    #[error("contract mismatch: {0}")]
    Contract(String),
    /// The component imports a capability the sandbox does not grant.
    #[error("forbidden import `{0}`: policies get no files, network, clocks or other host access")]
    ForbiddenImport(String),
    /// The call ran past its time budget.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The guest asked for more memory than its cap.
    #[error("out of memory (cap {0} bytes)")]
    OutOfMemory(usize),
    /// The guest overflowed its stack (deep recursion).
    #[error("stack overflow")]
    StackOverflow,
    /// The guest trapped (panic, unreachable, bad memory access, …).
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest returned an error of its own.
    #[error("policy error: {0}")]
    Guest(String),
    /// The guest returned more than the host accepts, or an invalid value.
    #[error("invalid output: {0}")]
    Output(String),
    /// The host itself failed to set the call up.
    #[error("host error: {0}")]
    Host(String),
}

impl PolicyError {
    /// Short stable label for metrics and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::Compile(_) => "compile",
            PolicyError::Contract(_) => "contract",
            PolicyError::ForbiddenImport(_) => "forbidden_import",
            PolicyError::Timeout(_) => "timeout",
            PolicyError::OutOfMemory(_) => "out_of_memory",
            PolicyError::StackOverflow => "stack_overflow",
            PolicyError::Trap(_) => "trap",
            PolicyError::Guest(_) => "guest_error",
            PolicyError::Output(_) => "invalid_output",
            PolicyError::Host(_) => "host_error",
        }
    }
}
