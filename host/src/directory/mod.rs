//! The workspace directory: which workspaces exist, the domains bound to
//! them, their state, and the conversation sessions replies go to. Behind a
//! trait so a platform can plug in its own store; the embedded default is a
//! TOML file, reloaded when it changes.

mod file;

use std::sync::Arc;

pub use file::{DirectoryError, FileDirectory, Snapshot};

/// One workspace.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceRecord {
    /// Workspace id (`[a-z0-9_-]{1,64}`).
    pub id: String,
    /// Custom domains bound to it (new mail arrives there).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Blocked by moderation.
    #[serde(default)]
    pub blocked: bool,
    /// Subscription active.
    #[serde(default = "yes")]
    pub subscription_active: bool,
    /// The email-redirect plugin is on.
    #[serde(default = "yes")]
    pub email_redirect: bool,
    /// The junk filter is on.
    #[serde(default = "yes")]
    pub junk_filter: bool,
    /// Free-form settings, handed to policies.
    #[serde(default)]
    pub settings: toml::Table,
    /// `settings` rendered as (key, JSON) once at load, as policies receive
    /// them: not per message.
    #[serde(skip)]
    pub settings_json: Vec<(String, String)>,
}

fn yes() -> bool {
    true
}

/// One conversation session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRecord {
    /// Session id (`[a-z0-9_-]{1,64}`).
    pub id: String,
    /// The workspace it belongs to.
    pub workspace: String,
}

/// Lookups the recipient checks need.
pub trait Directory: Send + Sync {
    /// The workspace a custom domain is bound to.
    fn workspace_for_domain(&self, domain: &str) -> Option<Arc<WorkspaceRecord>>;
    /// A workspace by id.
    fn workspace(&self, id: &str) -> Option<Arc<WorkspaceRecord>>;
    /// A session by id.
    fn session(&self, id: &str) -> Option<SessionRecord>;
}

/// True for a well-formed workspace or session id: `[a-z0-9_-]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
