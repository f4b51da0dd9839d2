//! The route stage: one policy says where an accepted message goes; if it
//! fails with `on_error = "skip"`, the host's default route applies.

use super::{StageContext, Tempfail, call_policy};
use crate::policy::LoadedPolicy;
use crate::runtime::StageOutput;
use crate::runtime::types::{Conversation, MailKind, Priority, RouteDecision, Symbol, Workspace};
use crate::verdict::{PolicyRun, RouteOut};

/// Runs the route policy.
pub fn run_route(
    ctx: &StageContext<'_>,
    policy: &LoadedPolicy,
    score: f64,
    symbols: &[Symbol],
    runs: &mut Vec<PolicyRun>,
) -> Result<RouteOut, Tempfail> {
    let decision = match call_policy(ctx, policy, score, symbols, runs)? {
        Some(StageOutput::Route(r)) => r,
        _ => default_route(ctx.workspace),
    };
    Ok(route_out(decision))
}

/// The host's route when no policy decides: new mail opens a conversation in
/// the default inbox, a reply joins its session.
pub fn default_route(workspace: &Workspace) -> RouteDecision {
    RouteDecision {
        inbox: "default".into(),
        conversation: match &workspace.kind {
            MailKind::Reply(s) => Conversation::ExistingSession(s.clone()),
            MailKind::NewMail => Conversation::NewConversation,
        },
        tags: Vec::new(),
        assignee: None,
        priority: Priority::Normal,
    }
}

fn route_out(r: RouteDecision) -> RouteOut {
    let (conversation, session) = match r.conversation {
        Conversation::NewConversation => ("new-conversation", None),
        Conversation::ExistingSession(s) => ("existing-session", Some(s)),
    };
    RouteOut {
        inbox: r.inbox,
        conversation,
        session,
        tags: r.tags,
        assignee: r.assignee,
        priority: match r.priority {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        },
    }
}
