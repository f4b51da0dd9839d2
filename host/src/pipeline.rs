//! The pipeline: parse, fixed checks, policy stages, verdict. One call per
//! message; it never panics on input and never returns an error: a fault of
//! the host becomes a `tempfail` verdict so the sender retries.

use std::sync::Arc;
use std::time::Instant;

use crate::checks::FixedChecks;
use crate::message::{ParseLimits, ParsedMessage};
use crate::policy::{FixedPolicies, PolicySet, PolicySource};
use crate::runtime::types::{Authentication, Classification, Envelope, Symbol, Workspace};
use crate::runtime::{OutputLimits, Runtime};
use crate::stages::{self, StageContext, Tempfail, shadow};
use crate::verdict::{Action, Code, Params, PolicyRun, Timings, TraceStep, Verdict};

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Brand word in the catalog texts (the seed says "Crisp").
    pub brand: String,
    /// Platform dirty limit: a score above it is always dropped.
    pub dirty_limit: f64,
    /// Parsing limits.
    pub parse_limits: ParseLimits,
    /// Bounds on policy outputs.
    pub output_limits: OutputLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            brand: "Crisp".into(),
            dirty_limit: 6.0,
            parse_limits: ParseLimits::default(),
            output_limits: OutputLimits::default(),
        }
    }
}

/// One message to judge.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The raw message.
    pub raw: &'a [u8],
    /// Its envelope.
    pub envelope: Envelope,
}

/// Parse → checks → stages → verdict.
#[derive(Debug, Clone)]
pub struct Pipeline {
    stages: Arc<Stages>,
    checks: FixedChecks,
}

/// What the policy stages need, shared with the thread that runs them.
#[derive(Debug)]
struct Stages {
    runtime: Arc<Runtime>,
    policies: Arc<dyn PolicySource>,
    settings: Settings,
}

/// The verdict under construction.
struct Draft {
    started: Instant,
    trace: Vec<TraceStep>,
    runs: Vec<PolicyRun>,
    timings: Timings,
}

impl Draft {
    fn step(&mut self, step: &str, outcome: &str, detail: String, since: Instant) -> u64 {
        let us = since.elapsed().as_micros() as u64;
        self.trace.push(TraceStep { step: step.into(), outcome: outcome.into(), detail, duration_us: us });
        us
    }

    fn finish(mut self, brand: &str, code: Option<Code>, params: Params) -> Verdict {
        self.timings.total_us = self.started.elapsed().as_micros() as u64;
        let (action, smtp) = match code {
            None => (Action::Accept, Verdict::accepted_reply()),
            Some(c) => (Verdict::action_for(c), Verdict::reply_for(c, brand, &params)),
        };
        Verdict {
            file: None,
            action,
            code,
            smtp,
            score: 0.0,
            classification: None,
            note: None,
            symbols: Vec::new(),
            route: None,
            policies: self.runs,
            trace: self.trace,
            timings: self.timings,
        }
    }
}

impl Pipeline {
    /// A pipeline over a runtime, its policies and the fixed checks.
    pub fn new(runtime: Arc<Runtime>, policies: PolicySet, settings: Settings, checks: FixedChecks) -> Self {
        Self::with_source(runtime, Arc::new(FixedPolicies(Arc::new(policies))), settings, checks)
    }

    /// A pipeline whose policies come from `policies` per message (the live
    /// deployment directory).
    pub fn with_source(
        runtime: Arc<Runtime>,
        policies: Arc<dyn PolicySource>,
        settings: Settings,
        checks: FixedChecks,
    ) -> Self {
        Pipeline { stages: Arc::new(Stages { runtime, policies, settings }), checks }
    }

    /// The fixed checks.
    pub fn checks(&self) -> &FixedChecks {
        &self.checks
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.stages.settings
    }

    /// Where the policies come from.
    pub fn policy_source(&self) -> Arc<dyn PolicySource> {
        self.stages.policies.clone()
    }

    /// Judges one message.
    pub async fn check(&self, sub: &Submission<'_>) -> Verdict {
        self.check_with(sub, false).await
    }

    /// Judges one message received over SMTP/LMTP, whose sender's rate was
    /// charged at RCPT time when `sender_charged`.
    pub async fn check_with(&self, sub: &Submission<'_>, sender_charged: bool) -> Verdict {
        let (verdict, pending) = self.judge(sub, sender_charged).await;
        self.commit(pending, verdict.action != Action::Tempfail);
        verdict
    }

    /// Judges one message without recording it: the caller stores the
    /// message, then calls [`Pipeline::commit`] with whether the outcome it
    /// gave the sender is final (an accepted message that failed to store
    /// was answered 4xx: its retry must not be a duplicate).
    pub async fn judge(&self, sub: &Submission<'_>, sender_charged: bool) -> (Verdict, Pending) {
        let mut d = Draft { started: Instant::now(), trace: Vec::new(), runs: Vec::new(), timings: Timings::default() };
        let brand = self.stages.settings.brand.as_str();

        let t = Instant::now();
        let message = match ParsedMessage::parse(sub.raw, &self.stages.settings.parse_limits) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                d.timings.parse_us = d.step("parse", "fail", e.to_string(), t);
                return (d.finish(brand, Some(e.code()), Params::default()), Pending(None));
            }
        };
        d.timings.parse_us = d.step("parse", "ok", String::new(), t);

        let t = Instant::now();
        let run = self.checks.run_with(&message, sub.raw, &sub.envelope, sender_charged).await;
        d.timings.checks_us = t.elapsed().as_micros() as u64;
        d.trace.extend(run.trace.iter().cloned());
        let verdict = match &run.failure {
            Some((code, params)) => d.finish(brand, Some(*code), params.clone()),
            None => {
                let (stages, envelope) = (self.stages.clone(), sub.envelope.clone());
                let (workspace, auth) = (run.workspace.clone(), run.auth.clone());
                let started = d.started;
                // The semaphore is never closed: acquiring only waits.
                let permit = policy_slots().acquire().await.ok();
                let ran = off_async(move || stages.run(d, &message, &envelope, &workspace, &auth)).await;
                drop(permit);
                ran.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "policy stages failed");
                    let d = Draft { started, trace: Vec::new(), runs: Vec::new(), timings: Timings::default() };
                    d.finish(brand, Some(Code::InternalError), Params::default())
                })
            }
        };
        (verdict, Pending(Some(run)))
    }

    /// Records what a final verdict must leave behind (the duplicate
    /// fingerprint); nothing when `final_outcome` is false.
    pub fn commit(&self, pending: Pending, final_outcome: bool) {
        if let Pending(Some(run)) = pending {
            self.checks.commit(&run, final_outcome);
        }
    }
}

/// What a verdict will record once the caller knows the outcome is final.
#[derive(Debug)]
#[must_use = "pass it to Pipeline::commit"]
pub struct Pending(Option<crate::checks::CheckRun>);

impl Stages {
    fn run(
        &self,
        mut d: Draft,
        message: &Arc<ParsedMessage>,
        envelope: &Envelope,
        workspace: &Workspace,
        auth: &Authentication,
    ) -> Verdict {
        let brand = self.settings.brand.as_str();
        let ctx = StageContext {
            runtime: &self.runtime,
            message,
            envelope,
            auth,
            workspace,
            output_limits: &self.settings.output_limits,
        };
        let tempfail = |mut d: Draft, stage: &str, t: Tempfail, since: Instant| {
            d.step(stage, "tempfail", format!("{}: {}", t.policy, t.error), since);
            d.finish(brand, Some(Code::InternalError), Params::default())
        };

        // Resolved once: the whole message sees one version of each policy,
        // however the deployment changes meanwhile.
        let policies = self.policies.for_workspace(&workspace.id);
        let t = Instant::now();
        let scored = match stages::run_score(&ctx, &policies.scorers, &mut d.runs) {
            Ok(s) => s,
            Err(e) => return tempfail(d, "score", e, t),
        };
        let detail = if scored.shadow_symbols.is_empty() {
            format!("{} symbols", scored.symbols.len())
        } else {
            format!("{} symbols; shadow: {}", scored.symbols.len(), names(&scored.shadow_symbols))
        };
        d.timings.score_us = d.step("score", "ok", detail, t);
        let symbols: Vec<Symbol> = scored
            .symbols
            .iter()
            .map(|s| Symbol { name: s.name.clone(), score: s.score, description: s.description.clone() })
            .collect();

        let t = Instant::now();
        let decided = match stages::run_threshold(
            &ctx,
            &policies.threshold,
            scored.total,
            &symbols,
            self.settings.dirty_limit,
            &mut d.runs,
        ) {
            Ok(o) => o,
            Err(e) => return tempfail(d, "threshold", e, t),
        };
        d.timings.threshold_us = d.step("threshold", decided.name(), decided.note.clone(), t);
        let limit = self.settings.dirty_limit;
        let t = Instant::now();
        let shadows = shadow::compare_scores(
            &ctx,
            &policies.threshold,
            &scored.shadow_symbols,
            scored.total,
            &symbols,
            limit,
            &decided,
        )
        .into_iter()
        .chain(shadow::compare_thresholds(
            &ctx,
            &policies.shadow,
            scored.total,
            &symbols,
            limit,
            &decided,
            &mut d.runs,
        ));
        for report in shadows.collect::<Vec<_>>() {
            record_shadow(&mut d, report, t);
        }

        let finish = |d: Draft, code: Option<Code>, route| {
            let params = Params { note: decided.note.clone(), score: scored.total, ..Params::default() };
            let mut v = d.finish(brand, code, params);
            v.score = scored.total;
            v.classification = Some(decided.name());
            v.note = Some(decided.note.clone());
            v.symbols = scored.symbols.clone();
            v.route = route;
            v
        };
        if decided.classification != Classification::Deliver {
            return finish(d, Some(Code::Spam), None);
        }

        let t = Instant::now();
        let route = match stages::run_route(&ctx, &policies.route, scored.total, &symbols, &mut d.runs) {
            Ok(r) => r,
            Err(e) => return tempfail(d, "route", e, t),
        };
        d.timings.route_us = d.step("route", "ok", format!("{} / {}", route.inbox, route.conversation), t);
        let t = Instant::now();
        for report in shadow::compare_routes(&ctx, &policies.shadow, scored.total, &symbols, &route, &mut d.runs) {
            record_shadow(&mut d, report, t);
        }
        finish(d, None, Some(route))
    }
}

/// A shadow comparison goes into the trace (step `shadow`, outcome
/// `differs` or `same`, detail starting with the policy); a difference is
/// also logged. The server counts the differences in its metrics.
fn record_shadow(d: &mut Draft, report: shadow::ShadowReport, since: Instant) {
    if report.differs {
        tracing::info!(
            target: "postern::shadow",
            policy = %report.policy,
            stage = report.stage,
            detail = %report.detail,
            "shadow decision differs"
        );
    }
    let outcome = if report.differs { "differs" } else { "same" };
    d.step("shadow", outcome, format!("{} ({}): {}", report.policy, report.stage, report.detail), since);
}

fn names(symbols: &[crate::verdict::SymbolOut]) -> String {
    symbols.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Policy calls running at once in the process, at most one per core, for
/// every pipeline (a reload makes a new one while the old finishes). A
/// policy's time budget is wall-clock (epoch): with more threads than cores
/// running policies, a preempted call would time out under load through no
/// fault of its own. Waiting messages queue here without a thread.
fn policy_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS
        .get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)))
}

/// Runs blocking policy work off the async executor. wasmtime-wasi's
/// synchronous host functions (a guest writing to stdout, say) block on the
/// ambient tokio runtime, which panics on an executor thread.
async fn off_async<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => Ok(tokio::task::block_in_place(f)),
        Ok(_) => tokio::task::spawn_blocking(f).await.map_err(|e| e.to_string()),
        Err(_) => Ok(f()),
    }
}
