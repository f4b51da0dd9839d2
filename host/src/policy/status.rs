//! What operators see of each policy (`postern policy list|status`, the
//! admin API, `GET /v1/policies`).

use serde::{Deserialize, Serialize};

use super::stats::PolicyStats;
use super::{LoadedPolicy, Manifest, Mode, PolicySet, Scope};

/// One policy as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// `platform` or `workspace:<id>`.
    pub scope: String,
    /// Manifest name (the file name in the deployment directory).
    pub name: String,
    /// `score`, `threshold` or `route`.
    pub stage: String,
    /// Manifest version.
    pub version: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// `builtin` (embedded in the binary) or `directory`.
    pub source: String,
    /// `active`, `shadow`, `failed` (a version that never went live; the
    /// last good one keeps serving) or `overridden` (a built-in replaced by
    /// the directory).
    pub state: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `enforce` or `shadow`.
    pub mode: String,
    /// `skip` or `tempfail`.
    pub on_error: String,
    /// Time budget per call, milliseconds.
    pub time_ms: u64,
    /// Memory cap, MiB.
    pub memory_mb: u64,
    /// When it was loaded (RFC 3339), or when the failure was seen.
    pub loaded_at: String,
    /// Calls made (since loaded).
    #[serde(default)]
    pub calls: u64,
    /// Calls that failed.
    #[serde(default)]
    pub errors: u64,
    /// Median call latency, µs.
    #[serde(default)]
    pub p50_us: Option<u64>,
    /// 99th percentile call latency, µs.
    #[serde(default)]
    pub p99_us: Option<u64>,
}

/// RFC 3339 time of a `SystemTime`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    mail_parser::DateTime::from_timestamp(secs).to_rfc3339()
}

impl PolicyStatus {
    /// The status of a loaded policy; `source` is `builtin` or `directory`.
    pub fn of(policy: &LoadedPolicy, source: &str) -> Self {
        Self::from_parts(
            &policy.scope,
            &policy.manifest,
            &policy.compiled.sha256,
            source,
            policy.loaded_at,
            &policy.stats,
        )
    }

    /// The status of a policy from what describes it.
    pub fn from_parts(
        scope: &Scope,
        m: &Manifest,
        sha256: &str,
        source: &str,
        loaded_at: std::time::SystemTime,
        stats: &PolicyStats,
    ) -> Self {
        let stats = stats.snapshot();
        PolicyStatus {
            scope: scope.to_string(),
            name: m.name.clone(),
            stage: m.stage.as_str().into(),
            version: m.version.clone(),
            sha256: sha256.to_string(),
            source: source.into(),
            state: match m.mode {
                Mode::Enforce => "active".into(),
                Mode::Shadow => "shadow".into(),
            },
            error: None,
            mode: m.mode.as_str().into(),
            on_error: m.on_error.as_str().into(),
            time_ms: m.limits.time_ms,
            memory_mb: m.limits.memory_mb,
            loaded_at: rfc3339(loaded_at),
            calls: stats.calls,
            errors: stats.errors,
            p50_us: stats.p50_us,
            p99_us: stats.p99_us,
        }
    }
}

/// Every policy of a fixed set.
pub fn of_set(set: &PolicySet) -> Vec<PolicyStatus> {
    set.scorers
        .iter()
        .chain([&set.threshold, &set.route])
        .chain(set.shadow.iter())
        .map(|p| PolicyStatus::of(p, "builtin"))
        .collect()
}
