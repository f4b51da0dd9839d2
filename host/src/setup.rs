//! Assembling a pipeline from a configuration: DNS source, workspace
//! directory, state, limits. Shared by `postern check` and the server.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::checks::{CheckName, CheckSettings, FixedChecks};
use crate::config::Config;
use crate::directory::{Directory, DirectoryError, FileDirectory, Snapshot};
use crate::dns::{Dns, DnsError, DnsSource};
use crate::pipeline::{Pipeline, Settings};
use crate::policy::{FixedPolicies, PolicySet, PolicySource};
use crate::runtime::Runtime;
use crate::state::{MemoryState, RateLimit, StateStore};

/// Command-line overrides of a configuration.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--dns-zone FILE`.
    pub dns_zone: Option<PathBuf>,
    /// `--directory FILE`.
    pub directory: Option<PathBuf>,
    /// `--skip CHECK,…`.
    pub skip: Vec<CheckName>,
    /// Use the embedded example directory and zone (the embedded default
    /// of `postern serve`, run without a config file).
    pub example: bool,
}

/// The example workspace directory compiled into the binary.
pub const EXAMPLE_DIRECTORY: &str = include_str!("../defaults/workspaces.toml");
/// The example DNS zone compiled into the binary.
pub const EXAMPLE_ZONE: &str = include_str!("../defaults/zone.txt");
/// The reply domain of the embedded default.
pub const EXAMPLE_REPLY_DOMAIN: &str = "reply.postern.test";

/// The configuration of `postern serve` without a file: the defaults plus
/// the example's reply domain (directory and zone come with
/// [`Overrides::example`]).
pub fn embedded_config() -> Config {
    Config { reply_domain: Some(EXAMPLE_REPLY_DOMAIN.into()), ..Config::default() }
}

/// What can stop a pipeline from being assembled.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// DNS cannot be set up.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The directory cannot be loaded.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// Where DNS answers come from: `--dns-zone`, else the config's `[dns]`
/// (zone file, nameserver, or the system resolver). With neither a config
/// file nor `--dns-zone`, no DNS: the checks that need it are skipped.
pub fn dns_source(config: Option<&Config>, overrides: &Overrides) -> Option<DnsSource> {
    if overrides.example && overrides.dns_zone.is_none() {
        return Some(DnsSource::ZoneText(EXAMPLE_ZONE));
    }
    if let Some(zone) = &overrides.dns_zone {
        return Some(DnsSource::ZoneFile(zone.clone()));
    }
    let config = config?;
    Some(match (&config.dns.zone_file, &config.dns.nameserver) {
        (Some(zone), _) => DnsSource::ZoneFile(config.resolve(zone)),
        (None, Some(ns)) => match ns.parse::<SocketAddr>() {
            Ok(addr) => DnsSource::Nameserver(addr),
            Err(_) => DnsSource::System, // refused by Config::parse already
        },
        (None, None) => DnsSource::System,
    })
}

/// Builds the pipeline. Must run inside a tokio runtime (DNS lives there).
pub async fn build_pipeline(
    config: Option<&Config>,
    overrides: &Overrides,
    runtime: Arc<Runtime>,
    policies: PolicySet,
    state: Arc<dyn StateStore>,
) -> Result<Pipeline, SetupError> {
    let policies: Arc<dyn PolicySource> = Arc::new(FixedPolicies(Arc::new(policies)));
    Ok(build_pipeline_with(config, overrides, runtime, policies, state, false).await?.0)
}

/// [`build_pipeline`] with policies from any source (a deployment
/// directory). With `watch` (a long-running server) the workspace directory
/// file is reloaded on change until the returned watcher is dropped.
pub async fn build_pipeline_with(
    config: Option<&Config>,
    overrides: &Overrides,
    runtime: Arc<Runtime>,
    policies: Arc<dyn PolicySource>,
    state: Arc<dyn StateStore>,
    watch: bool,
) -> Result<(Pipeline, Option<notify::RecommendedWatcher>), SetupError> {
    let defaults = Config::default();
    let cfg = config.unwrap_or(&defaults);
    let dns = match dns_source(config, overrides) {
        Some(source) => Some(Arc::new(Dns::new(&source, cfg.dns_timeout()).await?)),
        None => None,
    };
    let directory_file = overrides.directory.clone().or_else(|| cfg.directory.file.as_ref().map(|f| cfg.resolve(f)));
    let mut watcher = None;
    let directory = match directory_file {
        Some(path) => {
            let dir = Arc::new(FileDirectory::load(&path)?);
            if watch {
                watcher = Some(dir.watch()?);
            }
            Some(dir as Arc<dyn Directory>)
        }
        None if overrides.example => {
            let snapshot = Snapshot::parse(EXAMPLE_DIRECTORY)
                .map_err(|message| DirectoryError::Invalid { path: PathBuf::from("<embedded example>"), message })?;
            Some(Arc::new(snapshot) as Arc<dyn Directory>)
        }
        None => None,
    };
    let checks = FixedChecks {
        settings: CheckSettings {
            reply_domain: cfg.reply_domain.clone(),
            text_max_bytes: cfg.limits.text_max_bytes,
            sender_rate: rate(cfg.rate_limit.sender),
            workspace_rate: rate(cfg.rate_limit.workspace),
            duplicate_window_ms: cfg.duplicates.window_seconds * 1000,
            skip: overrides.skip.iter().copied().collect::<HashSet<_>>(),
        },
        directory,
        dns,
        state,
        clock: Arc::new(crate::state::now_ms),
    };
    let mut settings = Settings { brand: cfg.brand.clone(), ..Settings::default() };
    // Text up to the limit must be readable to be judged, and one byte more
    // to be found oversized.
    settings.parse_limits.max_body_bytes =
        settings.parse_limits.max_body_bytes.max(cfg.limits.text_max_bytes.saturating_add(1) as usize);
    Ok((Pipeline::with_source(runtime, policies, settings, checks), watcher))
}

fn rate(r: crate::config::Rate) -> RateLimit {
    RateLimit { count: r.count, period_ms: r.per_seconds * 1000 }
}

/// In-memory state: the single-host default.
pub fn memory_state() -> Arc<dyn StateStore> {
    Arc::new(MemoryState::new())
}
