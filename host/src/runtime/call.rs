//! Calling a policy: a fresh store and instance per call from the policy's
//! pre-instantiated template, under its limits; the outcome is a typed value
//! or a typed [`PolicyError`], never a panic of the host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Store, Trap};

use super::component::{CompiledPolicy, StageIndices};
use super::engine::deadline_ticks;
use super::host_message::MessageHandle;
use super::sandbox::{CallLimits, StoreData};
use super::types::{Authentication, Envelope, RouteDecision, Symbol, ThresholdDecision, Workspace};
use super::{PolicyError, Runtime};
use crate::message::ParsedMessage;

/// Bounds on what a policy may return.
#[derive(Debug, Clone, Copy)]
pub struct OutputLimits {
    /// Symbols per call.
    pub max_symbols: usize,
    /// Bytes of a symbol name.
    pub max_name: usize,
    /// Bytes of a description, note, inbox, tag or assignee.
    pub max_text: usize,
    /// Tags per route.
    pub max_tags: usize,
    /// Largest absolute score of one symbol.
    pub max_abs_score: f64,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits { max_symbols: 128, max_name: 64, max_text: 512, max_tags: 16, max_abs_score: 1000.0 }
    }
}

/// Everything a stage may be handed; each stage takes what its contract has.
#[derive(Debug, Clone)]
pub struct CallInput<'a> {
    /// The parsed message (shared, never copied per call).
    pub message: &'a Arc<ParsedMessage>,
    /// SMTP envelope.
    pub envelope: &'a Envelope,
    /// Authentication results.
    pub auth: &'a Authentication,
    /// Workspace context.
    pub workspace: &'a Workspace,
    /// The policy's config as JSON.
    pub config: &'a str,
    /// The policy's data file, if any.
    pub data: Option<&'a Arc<[u8]>>,
    /// Score so far (threshold and route).
    pub score: f64,
    /// Symbols so far (threshold and route).
    pub symbols: &'a [Symbol],
}

/// A stage's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StageOutput {
    /// From a score policy.
    Symbols(Vec<Symbol>),
    /// From a threshold policy.
    Threshold(ThresholdDecision),
    /// From a route policy.
    Route(RouteDecision),
}

/// The outcome of one call, with its cost.
#[derive(Debug)]
pub struct CallOutcome {
    /// The answer or the failure.
    pub result: Result<StageOutput, PolicyError>,
    /// Store creation + instantiation.
    pub instantiate: Duration,
    /// The guest call itself.
    pub call: Duration,
    /// What the guest printed (capped).
    pub log: String,
}

impl Runtime {
    /// Calls a policy once, in a fresh sandbox.
    pub fn call(
        &self,
        policy: &CompiledPolicy,
        input: &CallInput<'_>,
        limits: &CallLimits,
        out_limits: &OutputLimits,
    ) -> CallOutcome {
        let started = Instant::now();
        let mut data = StoreData::new(limits);
        data.data = input.data.cloned();
        let mut store = Store::new(&self.engine, data);
        store.limiter(|d| &mut d.limiter);
        store.set_epoch_deadline(deadline_ticks(limits.time));
        let classify = |store: &Store<StoreData>, e: wasmtime::Error| classify(store, e, limits);
        let instance = match policy.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => {
                let err = classify(&store, e);
                return CallOutcome {
                    result: Err(err),
                    instantiate: started.elapsed(),
                    call: Duration::ZERO,
                    log: String::new(),
                };
            }
        };
        let instantiate = started.elapsed();
        let call_started = Instant::now();
        let result = (|| {
            let msg = store
                .data_mut()
                .table
                .push(MessageHandle(input.message.clone()))
                .map_err(|e| PolicyError::Host(e.to_string()))?;
            let answer = match &policy.indices {
                StageIndices::Score(i) => {
                    let guest = i.load(&mut store, &instance).map_err(|e| classify(&store, e))?;
                    guest
                        .call_score(&mut store, msg, input.envelope, input.auth, input.workspace, input.config)
                        .map_err(|e| classify(&store, e))?
                        .map(StageOutput::Symbols)
                }
                StageIndices::Threshold(i) => {
                    let guest = i.load(&mut store, &instance).map_err(|e| classify(&store, e))?;
                    guest
                        .call_classify(
                            &mut store,
                            msg,
                            input.score,
                            input.symbols,
                            input.auth,
                            input.workspace,
                            input.config,
                        )
                        .map_err(|e| classify(&store, e))?
                        .map(StageOutput::Threshold)
                }
                StageIndices::Route(i) => {
                    let guest = i.load(&mut store, &instance).map_err(|e| classify(&store, e))?;
                    guest
                        .call_route(
                            &mut store,
                            msg,
                            input.envelope,
                            input.workspace,
                            input.score,
                            input.symbols,
                            input.config,
                        )
                        .map_err(|e| classify(&store, e))?
                        .map(StageOutput::Route)
                }
            };
            let answer = answer.map_err(|e| PolicyError::Guest(truncate(&e, out_limits.max_text)))?;
            validate(&answer, out_limits)?;
            Ok(answer)
        })();
        let call = call_started.elapsed();
        let log = store.data().log.text();
        CallOutcome { result, instantiate, call, log }
    }
}

/// Names the failure from the trap code and the sandbox's own records.
fn classify(store: &Store<StoreData>, e: wasmtime::Error, limits: &CallLimits) -> PolicyError {
    if store.data().limiter.exceeded {
        return PolicyError::OutOfMemory(limits.memory_bytes);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PolicyError::Timeout(limits.time.as_millis() as u64),
        Some(Trap::StackOverflow) => PolicyError::StackOverflow,
        Some(trap) => PolicyError::Trap(trap.to_string()),
        None => PolicyError::Trap(format!("{e:#}")),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Refuses outputs beyond the limits, and non-finite scores.
fn validate(out: &StageOutput, lim: &OutputLimits) -> Result<(), PolicyError> {
    let text = |what: &str, s: &str, max: usize| {
        if s.len() > max {
            Err(PolicyError::Output(format!("{what} is {} bytes (limit {max})", s.len())))
        } else {
            Ok(())
        }
    };
    match out {
        StageOutput::Symbols(symbols) => {
            if symbols.len() > lim.max_symbols {
                return Err(PolicyError::Output(format!("{} symbols (limit {})", symbols.len(), lim.max_symbols)));
            }
            for s in symbols {
                if s.name.is_empty() {
                    return Err(PolicyError::Output("a symbol has an empty name".into()));
                }
                text("symbol name", &s.name, lim.max_name)?;
                text("symbol description", &s.description, lim.max_text)?;
                if !s.score.is_finite() || s.score.abs() > lim.max_abs_score {
                    return Err(PolicyError::Output(format!(
                        "symbol {} has score {} (limit ±{})",
                        s.name, s.score, lim.max_abs_score
                    )));
                }
            }
        }
        StageOutput::Threshold(d) => text("note", &d.note, lim.max_text)?,
        StageOutput::Route(r) => {
            text("inbox", &r.inbox, lim.max_name)?;
            if r.tags.len() > lim.max_tags {
                return Err(PolicyError::Output(format!("{} tags (limit {})", r.tags.len(), lim.max_tags)));
            }
            for t in &r.tags {
                text("tag", t, lim.max_name)?;
            }
            if let Some(a) = &r.assignee {
                text("assignee", a, lim.max_name)?;
            }
            if let super::types::Conversation::ExistingSession(s) = &r.conversation {
                text("session id", s, lim.max_name)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_bounds_symbols() {
        let lim = OutputLimits::default();
        let ok = StageOutput::Symbols(vec![Symbol { name: "A".into(), score: 1.0, description: "d".into() }]);
        assert!(validate(&ok, &lim).is_ok());
        let nan = StageOutput::Symbols(vec![Symbol { name: "A".into(), score: f64::NAN, description: String::new() }]);
        assert!(matches!(validate(&nan, &lim), Err(PolicyError::Output(_))));
        let many = StageOutput::Symbols(vec![Symbol { name: "A".into(), score: 0.0, description: String::new() }; 129]);
        assert!(matches!(validate(&many, &lim), Err(PolicyError::Output(_))));
        let long = StageOutput::Symbols(vec![Symbol { name: "A".repeat(65), score: 0.0, description: String::new() }]);
        assert!(matches!(validate(&long, &lim), Err(PolicyError::Output(_))));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("ééé", 3), "é…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
