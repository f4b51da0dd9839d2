//! The policy stages, in order: `score` (every scorer adds symbols),
//! `threshold` (deliver / junk / dirty), `route` (where accepted mail goes).
//! Each stage calls its policies through the runtime and turns a policy's
//! failure into what its manifest says (`on_error`).

mod route;
mod score;
pub mod shadow;
mod threshold;

use std::sync::Arc;

pub use route::{default_route, run_route};
pub use score::{ScoreOutcome, run_score};
pub use threshold::{ThresholdOutcome, run_threshold};

use crate::message::ParsedMessage;
use crate::policy::{LoadedPolicy, OnError};
use crate::runtime::types::{Authentication, Envelope, Symbol, Workspace};
use crate::runtime::{CallInput, OutputLimits, PolicyError, Runtime, StageOutput};
use crate::verdict::PolicyRun;

/// What every stage is handed.
#[derive(Debug, Clone, Copy)]
pub struct StageContext<'a> {
    /// The runtime to call policies with.
    pub runtime: &'a Runtime,
    /// The parsed message.
    pub message: &'a Arc<ParsedMessage>,
    /// SMTP envelope.
    pub envelope: &'a Envelope,
    /// Authentication results.
    pub auth: &'a Authentication,
    /// The workspace.
    pub workspace: &'a Workspace,
    /// Bounds on policy outputs.
    pub output_limits: &'a OutputLimits,
}

/// A policy failure that its manifest says must fail the message for now.
#[derive(Debug, Clone, PartialEq)]
pub struct Tempfail {
    /// The policy that failed.
    pub policy: String,
    /// What went wrong.
    pub error: PolicyError,
}

/// Calls one policy and records the run. `Err` only when the policy failed
/// and its manifest says `tempfail`; a `skip` failure is `Ok(None)`.
fn call_policy(
    ctx: &StageContext<'_>,
    policy: &LoadedPolicy,
    score: f64,
    symbols: &[Symbol],
    runs: &mut Vec<PolicyRun>,
) -> Result<Option<StageOutput>, Tempfail> {
    let input = CallInput {
        message: ctx.message,
        envelope: ctx.envelope,
        auth: ctx.auth,
        workspace: ctx.workspace,
        config: &policy.config_json,
        data: policy.data.as_ref(),
        score,
        symbols,
    };
    let outcome = ctx.runtime.call(&policy.compiled, &input, &policy.manifest.limits.call_limits(), ctx.output_limits);
    policy.stats.record(outcome.instantiate + outcome.call, outcome.result.is_ok());
    if !outcome.log.is_empty() {
        tracing::debug!(policy = %policy.manifest.name, log = %outcome.log, "policy output");
    }
    let mut run = PolicyRun {
        name: policy.manifest.name.clone(),
        version: policy.manifest.version.clone(),
        sha256: policy.compiled.sha256.clone(),
        stage: policy.stage().as_str(),
        scope: policy.scope.to_string(),
        outcome: "ok".into(),
        error: None,
        on_error: None,
        duration_us: (outcome.instantiate + outcome.call).as_micros() as u64,
    };
    match outcome.result {
        Ok(out) => {
            runs.push(run);
            Ok(Some(out))
        }
        Err(error) => {
            tracing::warn!(policy = %policy.manifest.name, version = %policy.manifest.version, %error, "policy failed");
            run.outcome = error.kind().into();
            run.error = Some(error.to_string());
            run.on_error = Some(policy.manifest.on_error.as_str());
            runs.push(run);
            match policy.manifest.on_error {
                OnError::Skip => Ok(None),
                OnError::Tempfail => Err(Tempfail { policy: policy.manifest.name.clone(), error }),
            }
        }
    }
}
