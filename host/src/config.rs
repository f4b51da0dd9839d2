//! The configuration file (TOML), read by `postern check --config FILE` and
//! by the server. Unknown keys are errors that name the key; paths are
//! relative to the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Brand word in the rejection texts.
    #[serde(default = "default_brand")]
    pub brand: String,
    /// Domain of the conversations' reply-to addresses
    /// (`<workspace>+<session>@reply_domain`).
    #[serde(default)]
    pub reply_domain: Option<String>,
    /// Size limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// DNS source.
    #[serde(default)]
    pub dns: DnsConfig,
    /// Workspace directory.
    #[serde(default)]
    pub directory: DirectoryConfig,
    /// Rate limits.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Duplicate detection.
    #[serde(default)]
    pub duplicates: DuplicatesConfig,
    /// Directory of the file, for relative paths (not a key).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_brand() -> String {
    "Crisp".into()
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest text content (text and HTML bodies, decoded) in bytes.
    #[serde(default = "default_text_max")]
    pub text_max_bytes: u64,
}

fn default_text_max() -> u64 {
    1 << 20
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { text_max_bytes: default_text_max() }
    }
}

/// `[dns]`: a zone file, a nameserver, or (neither) the system resolver.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Zone file served on loopback (offline use).
    pub zone_file: Option<PathBuf>,
    /// `HOST:PORT` of a nameserver.
    pub nameserver: Option<String>,
    /// Budget of one check's lookups, in milliseconds.
    #[serde(default = "default_dns_timeout")]
    pub timeout_ms: u64,
}

fn default_dns_timeout() -> u64 {
    3000
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig { zone_file: None, nameserver: None, timeout_ms: default_dns_timeout() }
    }
}

/// `[directory]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The workspace directory file.
    pub file: Option<PathBuf>,
}

/// One rate: `count` messages per `per_seconds`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Messages allowed in the period (also the burst).
    pub count: u32,
    /// The period, in seconds.
    pub per_seconds: u64,
}

/// `[rate_limit]`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Per sender address.
    #[serde(default = "default_sender_rate")]
    pub sender: Rate,
    /// Per workspace (flood guard).
    #[serde(default = "default_workspace_rate")]
    pub workspace: Rate,
}

fn default_sender_rate() -> Rate {
    Rate { count: 30, per_seconds: 60 }
}
fn default_workspace_rate() -> Rate {
    Rate { count: 2000, per_seconds: 60 }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { sender: default_sender_rate(), workspace: default_workspace_rate() }
    }
}

/// `[duplicates]`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DuplicatesConfig {
    /// How long a text fingerprint is remembered.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
}

fn default_window() -> u64 {
    600
}

impl Default for DuplicatesConfig {
    fn default() -> Self {
        DuplicatesConfig { window_seconds: default_window() }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or an unknown key or a wrong type.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A value out of range or contradictory.
    #[error("invalid config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            brand: default_brand(),
            reply_domain: None,
            limits: LimitsConfig::default(),
            dns: DnsConfig::default(),
            directory: DirectoryConfig::default(),
            rate_limit: RateLimitConfig::default(),
            duplicates: DuplicatesConfig::default(),
            base_dir: PathBuf::from("."),
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, path, &base)
    }

    /// Parses config text; `base` is the directory relative paths start from.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string().trim().to_string() })?;
        config.base_dir = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base.to_path_buf() };
        let invalid = |message: String| Err(ConfigError::Invalid { path: path.to_path_buf(), message });
        if config.dns.zone_file.is_some() && config.dns.nameserver.is_some() {
            return invalid("[dns] takes zone_file or nameserver, not both".into());
        }
        if let Some(ns) = &config.dns.nameserver
            && ns.parse::<SocketAddr>().is_err()
        {
            return invalid(format!("[dns] nameserver `{ns}` is not HOST:PORT (an IP address and a port)"));
        }
        if config.dns.timeout_ms == 0 || config.dns.timeout_ms > 60_000 {
            return invalid("[dns] timeout_ms must be 1-60000".into());
        }
        for (name, rate) in [("sender", config.rate_limit.sender), ("workspace", config.rate_limit.workspace)] {
            if rate.count == 0 || rate.per_seconds == 0 {
                return invalid(format!("[rate_limit] {name}: count and per_seconds must be at least 1"));
            }
        }
        if config.duplicates.window_seconds == 0 {
            return invalid("[duplicates] window_seconds must be at least 1".into());
        }
        if config.limits.text_max_bytes == 0 {
            return invalid("[limits] text_max_bytes must be at least 1".into());
        }
        if let Some(domain) = &mut config.reply_domain {
            *domain = domain.trim_end_matches('.').to_ascii_lowercase();
        }
        Ok(config)
    }

    /// A path from the file, made relative to the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }

    /// The DNS time budget.
    pub fn dns_timeout(&self) -> Duration {
        Duration::from_millis(self.dns.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/postern/postern.toml"), Path::new("/etc/postern"))
    }

    #[test]
    fn full_example_parses_with_relative_paths() {
        let c = parse(
            r#"
brand = "Acme"
reply_domain = "Reply.Example.Test"
[limits]
text_max_bytes = 2048
[dns]
zone_file = "zone.txt"
[directory]
file = "workspaces.toml"
[rate_limit]
sender = { count = 3, per_seconds = 60 }
workspace = { count = 100, per_seconds = 10 }
[duplicates]
window_seconds = 30
"#,
        )
        .unwrap();
        assert_eq!(c.brand, "Acme");
        assert_eq!(c.reply_domain.as_deref(), Some("reply.example.test"));
        assert_eq!(c.resolve(c.dns.zone_file.as_ref().unwrap()), PathBuf::from("/etc/postern/zone.txt"));
        assert_eq!(c.rate_limit.sender, Rate { count: 3, per_seconds: 60 });
        assert_eq!(c.duplicates.window_seconds, 30);
    }

    #[test]
    fn defaults_apply() {
        let c = parse("").unwrap();
        assert_eq!(c.brand, "Crisp");
        assert_eq!(c.limits.text_max_bytes, 1048576);
        assert_eq!(c.rate_limit, RateLimitConfig::default());
        assert_eq!(c.dns.timeout_ms, 3000);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("brand = \"x\"\ncolour = \"blue\"\n").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let err = parse("[dns]\nzonefile = \"z\"\n").unwrap_err().to_string();
        assert!(err.contains("zonefile"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse("[dns]\nzone_file = \"z\"\nnameserver = \"127.0.0.1:53\"\n").is_err());
        assert!(parse("[dns]\nnameserver = \"localhost\"\n").is_err());
        assert!(parse("[rate_limit]\nsender = { count = 0, per_seconds = 60 }\n").is_err());
    }
}
