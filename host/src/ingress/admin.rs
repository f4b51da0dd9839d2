//! The admin API for operators (`postern policy list|status|rollback`
//! against a running server): loopback by default, every request carries
//! the configured bearer token.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::policy::registry::Registry;
use crate::policy::{PolicySource, Scope};

/// What the admin API needs.
#[derive(Clone)]
pub struct AdminState {
    /// The bearer token.
    pub token: Arc<str>,
    /// Every policy, with its state and statistics.
    pub source: Arc<dyn PolicySource>,
    /// The deployment directory, when there is one (rollback needs it).
    pub registry: Option<Arc<Registry>>,
}

/// `POST /v1/admin/policies/rollback` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Policy name.
    pub name: String,
    /// Its workspace (none: the platform's).
    #[serde(default)]
    pub workspace: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Compares in time independent of where the first difference is.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn authorized(state: &AdminState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if same_token(given.trim().as_bytes(), state.token.as_bytes()) {
        Ok(())
    } else {
        Err(Box::new(error(StatusCode::UNAUTHORIZED, "missing or wrong admin token (Authorization: Bearer …)")))
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/v1/admin/policies", get(policies))
        .route("/v1/admin/policies/rollback", post(rollback))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

async fn policies(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return *denied;
    }
    let source = state.source.clone();
    match tokio::task::spawn_blocking(move || source.status()).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn rollback(State(state): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return *denied;
    }
    let request: RollbackRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("body must be {{\"name\": …, \"workspace\": …}}: {e}"));
        }
    };
    let Some(registry) = state.registry.clone() else {
        return error(StatusCode::CONFLICT, "no deployment directory is configured ([policies] dir)");
    };
    let scope = match request.workspace {
        Some(id) if crate::directory::is_valid_id(&id) => Scope::Workspace(id),
        Some(id) => return error(StatusCode::BAD_REQUEST, format!("invalid workspace id `{id}`")),
        None => Scope::Platform,
    };
    // Rewrites files and recompiles: off the executor.
    let name = request.name;
    match tokio::task::spawn_blocking(move || registry.rollback(&scope, &name)).await {
        Ok(Ok(status)) => Json(status).into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_token(b"", b"0123456789abcdef"));
    }
}
