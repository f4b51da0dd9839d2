//! End-to-end tests of the host: the real built components (default policies
//! and purpose-built hostile guests), the pipeline, and the `postern` binary.

mod checks;
mod cli;
mod eval;
mod pipeline;
mod policies;
mod policy_cli;
mod sandbox;
mod serve;
mod smtp;
mod smtp_util;
mod util;
