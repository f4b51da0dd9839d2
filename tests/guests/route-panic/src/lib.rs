//! A route policy that panics: the host falls back to its default route
//! (`on_error = "skip"`) or tempfails (`on_error = "tempfail"`).
use postern_policy_sdk::{RouteDecision, RouteInput, route};

#[route]
fn misroute(input: &RouteInput) -> RouteDecision {
    panic!("cannot route mail for workspace {}", input.workspace.id);
}
