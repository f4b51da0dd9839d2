//! The verdict: what the pipeline decided, why (symbols, trace), and which
//! policy versions decided it. Serialised as the JSON of `postern check
//! --json` and of the HTTP check API.

pub mod catalog;

use serde::Serialize;

pub use catalog::{Code, Params, format_score};

/// What happens to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Deliver it (SMTP 250 once stored).
    Accept,
    /// Refuse it (SMTP 5xx: the sender's MTA bounces it).
    Reject,
    /// Refuse it for now (SMTP 4xx: the sender's MTA retries).
    Tempfail,
}

/// The SMTP reply that carries the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmtpReply {
    /// Basic reply code (250, 550, 451, …).
    pub code: u16,
    /// Enhanced status code (RFC 3463).
    pub enhanced: String,
    /// Human-readable text.
    pub text: String,
}

/// One symbol in the verdict, with the policy that produced it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolOut {
    /// Symbol name.
    pub name: String,
    /// Its score.
    pub score: f64,
    /// Why it fired.
    pub description: String,
    /// Name of the policy that returned it.
    pub policy: String,
}

/// Where an accepted message goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteOut {
    /// Inbox of the workspace.
    pub inbox: String,
    /// `new-conversation` or `existing-session`.
    pub conversation: &'static str,
    /// The session, for `existing-session`.
    pub session: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Assignee.
    pub assignee: Option<String>,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: &'static str,
}

/// A policy that took part in the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyRun {
    /// Manifest name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// Stage.
    pub stage: &'static str,
    /// `platform` or `workspace:<id>`.
    pub scope: String,
    /// `ok`, or the failure kind (`timeout`, `trap`, …).
    pub outcome: String,
    /// The failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the host did about a failure (`skip`, `tempfail`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<&'static str>,
    /// Instantiate + call, in microseconds.
    pub duration_us: u64,
}

/// One step of the pipeline, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStep {
    /// Step name (`parse`, a check name, `score`, `threshold`, `route`).
    pub step: String,
    /// `pass`, `fail`, `skipped`, `tempfail` or `ok`.
    pub outcome: String,
    /// Detail for a human.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Duration in microseconds.
    pub duration_us: u64,
}

/// Time spent per phase, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Parsing the message.
    pub parse_us: u64,
    /// Fixed checks.
    pub checks_us: u64,
    /// Score stage.
    pub score_us: u64,
    /// Threshold stage.
    pub threshold_us: u64,
    /// Route stage.
    pub route_us: u64,
    /// Everything.
    pub total_us: u64,
}

/// The full verdict on one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The file checked, when from the CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Accept, reject or tempfail.
    pub action: Action,
    /// Catalog code (`null` when accepted).
    pub code: Option<Code>,
    /// SMTP reply.
    pub smtp: SmtpReply,
    /// Total score (sum of the symbols).
    pub score: f64,
    /// `deliver`, `junk` or `dirty`, when the threshold stage ran.
    pub classification: Option<&'static str>,
    /// The threshold stage's note.
    pub note: Option<String>,
    /// Every symbol.
    pub symbols: Vec<SymbolOut>,
    /// Route of an accepted message.
    pub route: Option<RouteOut>,
    /// Policies that ran, with their versions.
    pub policies: Vec<PolicyRun>,
    /// Steps in order.
    pub trace: Vec<TraceStep>,
    /// Phase timings.
    pub timings: Timings,
}

impl Verdict {
    /// The SMTP reply for an accepted message.
    pub fn accepted_reply() -> SmtpReply {
        SmtpReply { code: 250, enhanced: "2.0.0".into(), text: "Message accepted for delivery".into() }
    }

    /// The SMTP reply for a catalog code.
    pub fn reply_for(code: Code, brand: &str, params: &Params) -> SmtpReply {
        let (basic, enhanced) = code.reply();
        SmtpReply { code: basic, enhanced: enhanced.into(), text: code.text(brand, params) }
    }

    /// The action a code implies.
    pub fn action_for(code: Code) -> Action {
        if code.is_temporary() { Action::Tempfail } else { Action::Reject }
    }
}
