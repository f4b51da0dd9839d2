//! A policy's manifest: what it is, which stage it serves, its limits, what
//! to do when it fails, and its configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::{CallLimits, Stage};

/// A policy manifest (`NAME.toml` beside `NAME.wasm`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Policy name.
    pub name: String,
    /// Stage it serves.
    pub stage: Stage,
    /// Version, as the author numbers it.
    pub version: String,
    /// Resource limits per call.
    #[serde(default)]
    pub limits: Limits,
    /// What the host does when the policy fails.
    #[serde(default)]
    pub on_error: OnError,
    /// Enforce its decisions, or only record them.
    #[serde(default)]
    pub mode: Mode,
    /// A data file handed to the policy on request (a trained model, a
    /// list), relative to the manifest.
    #[serde(default)]
    pub data_file: Option<String>,
    /// Configuration handed to the policy (as JSON).
    #[serde(default)]
    pub config: toml::Table,
}

/// Per-call limits of a policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Time budget in milliseconds.
    #[serde(default = "default_time_ms")]
    pub time_ms: u64,
    /// Memory cap in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
}

fn default_time_ms() -> u64 {
    50
}
fn default_memory_mb() -> u64 {
    16
}

impl Default for Limits {
    fn default() -> Self {
        Limits { time_ms: default_time_ms(), memory_mb: default_memory_mb() }
    }
}

/// The largest limits a manifest may ask for.
pub const MAX_TIME_MS: u64 = 5_000;
/// The largest memory cap a manifest may ask for (the engine's pool size).
pub const MAX_MEMORY_MB: u64 = 64;

impl Limits {
    /// The runtime limits these stand for.
    pub fn call_limits(&self) -> CallLimits {
        CallLimits {
            time: Duration::from_millis(self.time_ms),
            memory_bytes: (self.memory_mb as usize) << 20,
            ..CallLimits::default()
        }
    }
}

/// What happens when a policy fails (trap, time-out, error, bad output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Answer 4xx so the sender retries: nothing is lost.
    #[default]
    Tempfail,
    /// Carry on without this policy (its stage falls back to the host's
    /// default for that stage).
    Skip,
}

impl OnError {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Tempfail => "tempfail",
            OnError::Skip => "skip",
        }
    }
}

/// Whether a policy's decisions count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Its decisions count.
    #[default]
    Enforce,
    /// It runs and its decisions are recorded, not applied.
    Shadow,
}

impl Mode {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not valid TOML, or an unknown or missing key.
    #[error("invalid manifest: {0}")]
    Parse(String),
    /// A value out of range.
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        let bad = |s: String| Err(ManifestError::Invalid(s));
        if m.name.is_empty()
            || m.name.len() > 64
            || !m.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad(format!("name `{}` must be 1-64 characters of [A-Za-z0-9_-]", m.name));
        }
        if m.version.is_empty() || m.version.len() > 64 {
            return bad("version must be 1-64 characters".into());
        }
        if m.limits.time_ms == 0 || m.limits.time_ms > MAX_TIME_MS {
            return bad(format!("limits.time_ms must be 1-{MAX_TIME_MS}"));
        }
        if m.limits.memory_mb == 0 || m.limits.memory_mb > MAX_MEMORY_MB {
            return bad(format!("limits.memory_mb must be 1-{MAX_MEMORY_MB}"));
        }
        Ok(m)
    }

    /// The config table as JSON text, as policies receive it.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults() {
        let m = Manifest::parse("name = \"spam-score\"\nstage = \"score\"\nversion = \"1.0.0\"\n").unwrap();
        assert_eq!(m.limits, Limits::default());
        assert_eq!(m.on_error, OnError::Tempfail);
        assert_eq!(m.mode, Mode::Enforce);
        assert_eq!(m.config_json(), "{}");
    }

    #[test]
    fn config_becomes_json() {
        let m = Manifest::parse(
            "name = \"t\"\nstage = \"threshold\"\nversion = \"2\"\non_error = \"skip\"\n[config]\njunk_from = 4.0\n",
        )
        .unwrap();
        assert_eq!(m.config_json(), r#"{"junk_from":4.0}"#);
        assert_eq!(m.on_error, OnError::Skip);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let err = Manifest::parse("name = \"t\"\nstage = \"score\"\nversion = \"1\"\ncolour = 1\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        assert!(Manifest::parse("name = \"t\"\nstage = \"filter\"\nversion = \"1\"\n").is_err());
        assert!(Manifest::parse("name = \"bad name\"\nstage = \"score\"\nversion = \"1\"\n").is_err());
        assert!(Manifest::parse("name = \"t\"\nstage = \"score\"\nversion = \"1\"\n[limits]\ntime_ms = 0\n").is_err());
        assert!(
            Manifest::parse("name = \"t\"\nstage = \"score\"\nversion = \"1\"\n[limits]\nmemory_mb = 1000\n").is_err()
        );
    }
}
