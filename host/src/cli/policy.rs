//! `postern policy list|status|rollback`: against a running server's admin
//! API, or offline against a deployment directory (validated here, without
//! call statistics).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::policy::registry::{Registry, RegistryConfig};
use crate::policy::status::PolicyStatus;
use crate::policy::{PolicySource, Scope, builtin};
use crate::runtime::{EngineOptions, Runtime};

/// Arguments of `postern policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// One line per policy: scope, name, stage, version, state, calls.
    List {
        /// Only this workspace's policies.
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Each policy in full: sha256, loaded-at, state and error, call count,
    /// error count, latency quantiles.
    Status {
        /// Only this policy.
        name: Option<String>,
        /// Only this workspace's policies.
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Restore the previous version of a policy.
    Rollback {
        /// The policy.
        name: String,
        /// Its workspace (default: the platform's policy).
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

/// Which deployment: a running server, or a directory.
#[derive(Debug, Args)]
struct Target {
    /// Admin API of a running server (`HOST:PORT` or `http://HOST:PORT`).
    #[arg(long, value_name = "ADDR")]
    server: Option<String>,
    /// Admin token (else `POSTERN_ADMIN_TOKEN`, else the config's `[admin]
    /// token`).
    #[arg(long, env = "POSTERN_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Offline: this deployment directory.
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    dir: Option<PathBuf>,
    /// Artifact and history cache for offline use (default: the config's
    /// `[policies] cache_dir`, else `var/policy-cache`).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// The server's config: its admin API (when `[admin] token` is set) or,
    /// with `--offline` or without a token, its `[policies] dir`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With `--config`: read the directory even if the admin API is set.
    #[arg(long)]
    offline: bool,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

enum Resolved {
    Online { base: String, token: String },
    Offline { dir: PathBuf, cache_dir: PathBuf },
}

impl Target {
    fn resolve(&self) -> Result<Resolved> {
        let config = match &self.config {
            Some(path) => Some(Config::load(path)?),
            None => None,
        };
        let token = self.token.clone().or_else(|| config.as_ref().and_then(|c| c.admin.token.clone()));
        if let Some(server) = &self.server {
            let token = token.context("the admin API needs a token: --token, POSTERN_ADMIN_TOKEN or --config")?;
            return Ok(Resolved::Online { base: base_url(server), token });
        }
        let cache_dir = |c: Option<&Config>| {
            self.cache_dir.clone().unwrap_or_else(|| match c {
                Some(c) => c.resolve(&c.policies.cache_dir),
                None => PathBuf::from("var/policy-cache"),
            })
        };
        if let Some(dir) = &self.dir {
            return Ok(Resolved::Offline { dir: dir.clone(), cache_dir: cache_dir(config.as_ref()) });
        }
        let Some(config) = config else {
            bail!("say which deployment: --server ADDR (a running server), --dir DIR (offline) or --config FILE");
        };
        match (&config.admin.token, self.offline) {
            (Some(token), false) => {
                let token = self.token.clone().unwrap_or_else(|| token.clone());
                Ok(Resolved::Online { base: base_url(&config.admin.listen.to_string()), token })
            }
            _ => {
                let dir = config.policies.dir.as_ref().context("the config has no [policies] dir")?;
                Ok(Resolved::Offline { dir: config.resolve(dir), cache_dir: cache_dir(Some(&config)) })
            }
        }
    }
}

fn base_url(server: &str) -> String {
    let s = server.trim_end_matches('/');
    if s.starts_with("http://") || s.starts_with("https://") { s.to_string() } else { format!("http://{s}") }
}

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build();
    ureq::Agent::new_with_config(config)
}

/// The body of an admin API answer, or its `{"error"}` as an error.
fn answer(response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>, url: &str) -> Result<String> {
    let mut response = response.with_context(|| format!("cannot reach the admin API at {url}"))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().with_context(|| format!("reading the answer of {url}"))?;
    if status >= 400 {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(body);
        bail!("{url}: HTTP {status}: {message}");
    }
    Ok(body)
}

fn offline_registry(dir: PathBuf, cache_dir: PathBuf) -> Result<Arc<Registry>> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let runtime = Arc::new(Runtime::new(&EngineOptions::default()).context("start the WebAssembly runtime")?);
    let builtins = builtin::load_defaults(&runtime).context("load the built-in policies")?;
    let config = RegistryConfig { dir, cache_dir, cache_memory_bytes: 64 << 20, debounce: Duration::ZERO };
    Ok(Registry::open(runtime, builtins, config)?)
}

fn fetch_status(target: &Target) -> Result<Vec<PolicyStatus>> {
    match target.resolve()? {
        Resolved::Online { base, token } => {
            let url = format!("{base}/v1/admin/policies");
            let body = answer(agent().get(&url).header("Authorization", &format!("Bearer {token}")).call(), &url)?;
            serde_json::from_str(&body).with_context(|| format!("unexpected answer from {url}"))
        }
        Resolved::Offline { dir, cache_dir } => Ok(offline_registry(dir, cache_dir)?.status()),
    }
}

/// Runs `postern policy …`.
pub fn run(args: PolicyArgs) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.command {
        PolicyCommand::List { workspace, target } => {
            let rows = select(fetch_status(&target)?, None, workspace.as_deref());
            emit(&mut out, target.json, &rows, |out| print_list(out, &rows))?;
        }
        PolicyCommand::Status { name, workspace, target } => {
            let rows = select(fetch_status(&target)?, name.as_deref(), workspace.as_deref());
            if rows.is_empty() && (name.is_some() || workspace.is_some()) {
                bail!("no such policy");
            }
            emit(&mut out, target.json, &rows, |out| print_status(out, &rows))?;
        }
        PolicyCommand::Rollback { name, workspace, target } => {
            let restored: PolicyStatus = match target.resolve()? {
                Resolved::Online { base, token } => {
                    let url = format!("{base}/v1/admin/policies/rollback");
                    let body = serde_json::json!({ "name": name, "workspace": workspace }).to_string();
                    let sent = agent()
                        .post(&url)
                        .header("Authorization", &format!("Bearer {token}"))
                        .header("Content-Type", "application/json")
                        .send(body);
                    serde_json::from_str(&answer(sent, &url)?)
                        .with_context(|| format!("unexpected answer from {url}"))?
                }
                Resolved::Offline { dir, cache_dir } => {
                    let scope = match workspace {
                        Some(id) => Scope::Workspace(id),
                        None => Scope::Platform,
                    };
                    offline_registry(dir, cache_dir)?.rollback(&scope, &name)?
                }
            };
            emit(&mut out, target.json, &restored, |out| {
                let r = &restored;
                writeln!(out, "rolled back {} ({}) to version {} ({})", r.name, r.scope, r.version, short(&r.sha256))
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The rows of one policy and/or one workspace.
fn select(mut rows: Vec<PolicyStatus>, name: Option<&str>, workspace: Option<&str>) -> Vec<PolicyStatus> {
    let scope = workspace.map(|w| format!("workspace:{w}"));
    rows.retain(|r| name.is_none_or(|n| n == r.name) && scope.as_ref().is_none_or(|s| *s == r.scope));
    rows
}

/// `value` as pretty JSON, or as `text` writes it.
fn emit<W: Write, T: serde::Serialize>(
    out: &mut W,
    json: bool,
    value: &T,
    text: impl FnOnce(&mut W) -> std::io::Result<()>,
) -> Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)?;
    } else {
        text(out)?;
    }
    Ok(())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn micros(v: Option<u64>) -> String {
    match v {
        None => "-".into(),
        Some(us) if us >= 1000 => format!("{:.1}ms", us as f64 / 1000.0),
        Some(us) => format!("{us}µs"),
    }
}

fn print_list(out: &mut impl Write, rows: &[PolicyStatus]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<22} {:<9} {:<10} {:<10} {:<12} {:>8} {:>7} {:>8} {:>8}",
        "SCOPE", "NAME", "STAGE", "VERSION", "STATE", "SHA256", "CALLS", "ERRORS", "P50", "P99"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<20} {:<22} {:<9} {:<10} {:<10} {:<12} {:>8} {:>7} {:>8} {:>8}",
            r.scope,
            r.name,
            r.stage,
            r.version,
            r.state,
            short(&r.sha256),
            r.calls,
            r.errors,
            micros(r.p50_us),
            micros(r.p99_us)
        )?;
    }
    Ok(())
}

fn print_status(out: &mut impl Write, rows: &[PolicyStatus]) -> std::io::Result<()> {
    for r in rows {
        writeln!(out, "{} ({})", r.name, r.scope)?;
        writeln!(out, "  state      {}", r.state)?;
        if let Some(e) = &r.error {
            writeln!(out, "  error      {e}")?;
        }
        writeln!(out, "  stage      {}    mode {}    on_error {}", r.stage, r.mode, r.on_error)?;
        writeln!(out, "  version    {}", r.version)?;
        writeln!(out, "  sha256     {}", r.sha256)?;
        writeln!(out, "  source     {}", r.source)?;
        writeln!(out, "  loaded at  {}", r.loaded_at)?;
        writeln!(out, "  limits     {} ms, {} MiB", r.time_ms, r.memory_mb)?;
        writeln!(
            out,
            "  calls      {} ({} errors), latency p50 {} p99 {}",
            r.calls,
            r.errors,
            micros(r.p50_us),
            micros(r.p99_us)
        )?;
    }
    Ok(())
}
