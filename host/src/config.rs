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
    /// Listeners, spool and the limits on what a stranger may send
    /// (`postern serve`).
    #[serde(default)]
    pub server: ServerConfig,
    /// The policy deployment directory (hot-swapped policies).
    #[serde(default)]
    pub policies: PoliciesConfig,
    /// The admin API (policy status and rollback).
    #[serde(default)]
    pub admin: AdminConfig,
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

/// Log line format of the server.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[server]`: where `postern serve` listens, where it spools, and every
/// limit on what a stranger can send. Defaults are the embedded default's.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// SMTP listener.
    pub smtp_listen: SocketAddr,
    /// LMTP listener (none by default).
    pub lmtp_listen: Option<SocketAddr>,
    /// HTTP API (check, health, metrics, policies).
    pub http_listen: SocketAddr,
    /// Name in the greeting, EHLO reply and Received header.
    pub hostname: String,
    /// Spool root (one Maildir per workspace), relative to the config file.
    pub spool_dir: PathBuf,
    /// PEM certificate chain for STARTTLS; without it a self-signed one is
    /// generated at start.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Largest message (SIZE, DATA, BDAT), in bytes.
    pub max_message_bytes: u64,
    /// Recipients per transaction.
    pub max_recipients: usize,
    /// Longest line (command or message), in bytes, CRLF included.
    pub max_line_length: usize,
    /// Commands per connection.
    pub max_commands: u32,
    /// Bad commands (syntax, sequence, unknown) per connection.
    pub max_bad_commands: u32,
    /// Seconds a client may stay silent.
    pub idle_timeout_secs: u64,
    /// Seconds a connection may last in total.
    pub session_timeout_secs: u64,
    /// Open connections in total (SMTP and LMTP).
    pub max_connections: usize,
    /// Open connections per client IP.
    pub max_connections_per_ip: usize,
    /// Seconds SIGTERM waits for open sessions before exiting.
    pub drain_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            smtp_listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            lmtp_listen: None,
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8025)),
            hostname: "localhost".into(),
            spool_dir: PathBuf::from("var/spool"),
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Text,
            max_message_bytes: 25 << 20,
            max_recipients: 100,
            max_line_length: 8192,
            max_commands: 1000,
            max_bad_commands: 10,
            idle_timeout_secs: 300,
            session_timeout_secs: 1800,
            max_connections: 1000,
            max_connections_per_ip: 100,
            drain_timeout_secs: 30,
        }
    }
}

/// `[policies]`: the deployment directory of hot-swapped policies.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// `platform/` and `workspaces/<id>/` (relative to the config file);
    /// none: the built-in policies only.
    pub dir: Option<PathBuf>,
    /// Precompiled artifacts and the versions kept for rollback.
    pub cache_dir: PathBuf,
    /// Memory the compiled workspace policies may hold, MiB.
    pub cache_memory_mb: u64,
    /// How long a burst of file events must settle before a reload, ms.
    pub debounce_ms: u64,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        PoliciesConfig {
            dir: None,
            cache_dir: PathBuf::from("var/policy-cache"),
            cache_memory_mb: 256,
            debounce_ms: 20,
        }
    }
}

/// `[admin]`: the operators' API (`postern policy …` against a running
/// server). Off unless a token is set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where it listens (loopback by default).
    pub listen: SocketAddr,
    /// Bearer token every request must carry.
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: SocketAddr::from(([127, 0, 0, 1], 8026)), token: None }
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
            server: ServerConfig::default(),
            policies: PoliciesConfig::default(),
            admin: AdminConfig::default(),
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
        let srv = &config.server;
        if srv.tls_cert.is_some() != srv.tls_key.is_some() {
            return invalid("[server] tls_cert and tls_key go together".into());
        }
        if srv.hostname.trim().is_empty() || srv.hostname.contains(char::is_whitespace) {
            return invalid("[server] hostname must be one word".into());
        }
        for (name, value) in [
            ("max_message_bytes", srv.max_message_bytes),
            ("max_recipients", srv.max_recipients as u64),
            ("max_commands", srv.max_commands as u64),
            ("max_bad_commands", srv.max_bad_commands as u64),
            ("idle_timeout_secs", srv.idle_timeout_secs),
            ("session_timeout_secs", srv.session_timeout_secs),
            ("max_connections", srv.max_connections as u64),
            ("max_connections_per_ip", srv.max_connections_per_ip as u64),
        ] {
            if value == 0 {
                return invalid(format!("[server] {name} must be at least 1"));
            }
        }
        if srv.max_line_length < 512 {
            // RFC 5321 4.5.3.1: a command line of 512 octets must be accepted.
            return invalid("[server] max_line_length must be at least 512".into());
        }
        if config.policies.cache_memory_mb == 0 {
            return invalid("[policies] cache_memory_mb must be at least 1".into());
        }
        if config.policies.debounce_ms > 10_000 {
            return invalid("[policies] debounce_ms must be at most 10000".into());
        }
        if config.admin.token.as_ref().is_some_and(|t| t.trim().len() < 16) {
            return invalid("[admin] token must be at least 16 characters".into());
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

    /// The server's spool root.
    pub fn spool_dir(&self) -> PathBuf {
        self.resolve(&self.server.spool_dir)
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
        assert!(parse("[server]\ntls_cert = \"c.pem\"\n").is_err());
        assert!(parse("[server]\nmax_line_length = 100\n").is_err());
        assert!(parse("[server]\nmax_recipients = 0\n").is_err());
    }

    #[test]
    fn server_section_keeps_the_issue_names() {
        let c = parse(
            r#"
[server]
smtp_listen = "127.0.0.1:2526"
lmtp_listen = "127.0.0.1:2424"
http_listen = "127.0.0.1:8026"
hostname = "mx.example.test"
spool_dir = "var/spool"
"#,
        )
        .unwrap();
        assert_eq!(c.server.smtp_listen.port(), 2526);
        assert_eq!(c.server.lmtp_listen.map(|a| a.port()), Some(2424));
        assert_eq!(c.server.hostname, "mx.example.test");
        assert_eq!(c.spool_dir(), PathBuf::from("/etc/postern/var/spool"));
        let err = parse("[server]\nsmtp_port = 25\n").unwrap_err().to_string();
        assert!(err.contains("smtp_port"), "{err}");
    }
}
