//! Shadow mode: a policy with `mode = "shadow"` runs beside the enforced
//! one on the same input; where its decision differs, the verdict's trace
//! says so (a `shadow` step), a log line is written and a metric counted,
//! and nothing else changes.

use std::sync::Arc;

use super::{StageContext, ThresholdOutcome, run_route, run_threshold};
use crate::policy::LoadedPolicy;
use crate::runtime::Stage;
use crate::runtime::types::Symbol;
use crate::verdict::{PolicyRun, RouteOut, SymbolOut};

/// One shadow decision set against the enforced one.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowReport {
    /// `name@version` of the shadow policy (several for scorers).
    pub policy: String,
    /// The stage.
    pub stage: &'static str,
    /// Whether its decision differs from the enforced one.
    pub differs: bool,
    /// What each said.
    pub detail: String,
}

fn label(p: &LoadedPolicy) -> String {
    format!("{}@{}", p.manifest.name, p.manifest.version)
}

/// Shadow scorers: would their symbols change the classification? The
/// enforced threshold policy is asked again with them counted (that call is
/// not part of the verdict's policy runs).
pub fn compare_scores(
    ctx: &StageContext<'_>,
    threshold: &LoadedPolicy,
    shadow_symbols: &[SymbolOut],
    total: f64,
    symbols: &[Symbol],
    dirty_limit: f64,
    enforced: &ThresholdOutcome,
) -> Option<ShadowReport> {
    if shadow_symbols.is_empty() {
        return None;
    }
    let extra: f64 = shadow_symbols.iter().map(|s| s.score).sum();
    let mut with: Vec<Symbol> = symbols.to_vec();
    with.extend(shadow_symbols.iter().map(|s| Symbol {
        name: s.name.clone(),
        score: s.score,
        description: s.description.clone(),
    }));
    let mut scratch = Vec::new();
    let alt = run_threshold(ctx, threshold, total + extra, &with, dirty_limit, &mut scratch).ok()?;
    let mut policies: Vec<&str> = shadow_symbols.iter().map(|s| s.policy.as_str()).collect();
    policies.dedup();
    Some(ShadowReport {
        policy: policies.join(","),
        stage: Stage::Score.as_str(),
        differs: alt.classification != enforced.classification,
        detail: format!(
            "score {:.2} → {:.2} with shadow symbols; would be {}, enforced {}",
            total,
            total + extra,
            alt.name(),
            enforced.name()
        ),
    })
}

/// Shadow threshold policies against the enforced classification.
pub fn compare_thresholds(
    ctx: &StageContext<'_>,
    shadows: &[Arc<LoadedPolicy>],
    score: f64,
    symbols: &[Symbol],
    dirty_limit: f64,
    enforced: &ThresholdOutcome,
    runs: &mut Vec<PolicyRun>,
) -> Vec<ShadowReport> {
    shadows
        .iter()
        .filter(|p| p.stage() == Stage::Threshold)
        .map(|p| match run_threshold(ctx, p, score, symbols, dirty_limit, runs) {
            Ok(alt) => ShadowReport {
                policy: label(p),
                stage: Stage::Threshold.as_str(),
                differs: alt.classification != enforced.classification,
                detail: format!("would be {} {}, enforced {} {}", alt.name(), alt.note, enforced.name(), enforced.note),
            },
            Err(t) => failed(p, Stage::Threshold, &t.error.to_string()),
        })
        .collect()
}

/// Shadow route policies against the enforced route.
pub fn compare_routes(
    ctx: &StageContext<'_>,
    shadows: &[Arc<LoadedPolicy>],
    score: f64,
    symbols: &[Symbol],
    enforced: &RouteOut,
    runs: &mut Vec<PolicyRun>,
) -> Vec<ShadowReport> {
    shadows
        .iter()
        .filter(|p| p.stage() == Stage::Route)
        .map(|p| match run_route(ctx, p, score, symbols, runs) {
            Ok(alt) => ShadowReport {
                policy: label(p),
                stage: Stage::Route.as_str(),
                differs: alt != *enforced,
                detail: format!("would route to {}, enforced {}", describe(&alt), describe(enforced)),
            },
            Err(t) => failed(p, Stage::Route, &t.error.to_string()),
        })
        .collect()
}

/// A shadow policy that failed: recorded, never acted on (whatever its
/// `on_error`).
fn failed(p: &LoadedPolicy, stage: Stage, error: &str) -> ShadowReport {
    ShadowReport { policy: label(p), stage: stage.as_str(), differs: true, detail: format!("failed: {error}") }
}

fn describe(r: &RouteOut) -> String {
    let mut s = format!("{}/{}", r.inbox, r.conversation);
    if !r.tags.is_empty() {
        s.push_str(&format!(" tags={}", r.tags.join(",")));
    }
    if let Some(a) = &r.assignee {
        s.push_str(&format!(" assignee={a}"));
    }
    s.push_str(&format!(" priority={}", r.priority));
    s
}
