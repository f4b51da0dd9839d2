//! `postern check FILE.eml…`: judge messages offline and print the verdicts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::checks::CheckName;
use crate::config::Config;
use crate::message::{ParseLimits, ParsedMessage};
use crate::pipeline::Submission;
use crate::policy::builtin;
use crate::policy::registry::{Registry, RegistryConfig};
use crate::policy::{FixedPolicies, PolicySource};
use crate::runtime::types::Envelope;
use crate::runtime::{EngineOptions, Runtime};
use crate::setup::{Overrides, build_pipeline_with, memory_state};
use crate::verdict::Verdict;

/// Largest message `check` reads.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Arguments of `postern check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Messages to judge, in order (RFC 5322 files).
    #[arg(required = true, value_name = "FILE.eml")]
    files: Vec<PathBuf>,
    /// Envelope recipient [default: the first To address].
    #[arg(long, value_name = "ADDR")]
    rcpt: Option<String>,
    /// Envelope sender, MAIL FROM [default: the From address; `<>` for the null sender].
    #[arg(long, value_name = "ADDR")]
    mail_from: Option<String>,
    /// Connecting client's IP address.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    client_ip: std::net::IpAddr,
    /// HELO/EHLO name of the client.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    helo: String,
    /// Print JSON (one verdict per line) instead of a summary.
    #[arg(long)]
    json: bool,
    /// Configuration file (TOML). Without one, the checks that need DNS or
    /// the workspace directory are skipped unless --dns-zone / --directory
    /// are given.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Answer DNS from this zone file (RFC 1035 master-file format),
    /// overriding the config's [dns].
    #[arg(long, value_name = "FILE")]
    dns_zone: Option<PathBuf>,
    /// Workspace directory file, overriding the config's [directory].
    #[arg(long, value_name = "FILE")]
    directory: Option<PathBuf>,
    /// Fixed checks to skip, comma-separated: recipient, headers, text_size,
    /// duplicate, rate_limit, mx, auth, dmarc.
    #[arg(long, value_name = "CHECK,…", value_delimiter = ',', value_parser = parse_check)]
    skip: Vec<CheckName>,
    /// Judge with this policy deployment directory (`platform/`,
    /// `workspaces/<id>/`) on top of the built-ins, as a server with
    /// `[policies] dir` would (overrides the config's).
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
}

fn parse_check(s: &str) -> Result<CheckName, String> {
    CheckName::parse(s)
}

/// Runs `check`.
pub fn run(args: CheckArgs) -> Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Some(Config::load(path)?),
        None => None,
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    tokio.block_on(check_files(&args, config.as_ref()))
}

async fn check_files(args: &CheckArgs, config: Option<&Config>) -> Result<ExitCode> {
    let runtime = Arc::new(Runtime::new(&EngineOptions::default()).context("start the WebAssembly runtime")?);
    let policies = builtin::load_defaults(&runtime).context("load the built-in policies")?;
    let overrides = Overrides {
        dns_zone: args.dns_zone.clone(),
        directory: args.directory.clone(),
        skip: args.skip.clone(),
        example: false,
    };
    // A deployment directory (`--policies`, else the config's): the verdict
    // is the one a server with that directory would give.
    let defaults = Config::default();
    let cfg = config.unwrap_or(&defaults);
    let dir = args.policies.clone().or_else(|| cfg.policies.dir.as_ref().map(|d| cfg.resolve(d)));
    let source: Arc<dyn PolicySource> = match dir {
        Some(dir) => {
            let registry = Registry::open(runtime.clone(), policies, RegistryConfig::from_config(cfg, dir))?;
            for failed in registry.status().iter().filter(|s| s.state == "failed") {
                eprintln!(
                    "postern: policy {} ({}) not loaded: {}",
                    failed.name,
                    failed.scope,
                    failed.error.as_deref().unwrap_or("")
                );
            }
            registry
        }
        None => Arc::new(FixedPolicies(Arc::new(policies))),
    };
    let (pipeline, _) = build_pipeline_with(config, &overrides, runtime, source, memory_state(), false).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in &args.files {
        let raw = read_message(file)?;
        let envelope = envelope_for(args, &raw, pipeline.settings().parse_limits.clone());
        let mut verdict = pipeline.check(&Submission { raw: &raw, envelope }).await;
        verdict.file = Some(file.display().to_string());
        if args.json {
            serde_json::to_writer(&mut out, &verdict)?;
            writeln!(out)?;
        } else {
            write_summary(&mut out, &verdict)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_message(file: &PathBuf) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(file).with_context(|| format!("read {}", file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", file.display());
    }
    if meta.len() > MAX_FILE_BYTES {
        bail!("{} is {} bytes, more than the {} bytes a message may have", file.display(), meta.len(), MAX_FILE_BYTES);
    }
    std::fs::read(file).with_context(|| format!("read {}", file.display()))
}

/// The envelope from the flags, defaulting to the message's own addresses.
fn envelope_for(args: &CheckArgs, raw: &[u8], limits: ParseLimits) -> Envelope {
    message_envelope(raw, &limits, args.mail_from.as_deref(), args.rcpt.as_deref(), args.client_ip, &args.helo)
}

/// An envelope for a saved message: MAIL FROM defaults to its From address
/// (`<>` is the null sender), RCPT to its first To address.
pub(crate) fn message_envelope(
    raw: &[u8],
    limits: &ParseLimits,
    mail_from: Option<&str>,
    rcpt: Option<&str>,
    client_ip: std::net::IpAddr,
    helo: &str,
) -> Envelope {
    // Parsed here only to default the envelope; the pipeline parses for real.
    let parsed = (mail_from.is_none() || rcpt.is_none()).then(|| ParsedMessage::parse(raw, limits).ok()).flatten();
    let first = |f: fn(&ParsedMessage) -> &Vec<crate::runtime::types::Address>| {
        parsed.as_ref().and_then(|p| f(p).first()).map(|a| a.address.clone())
    };
    let mail_from = match mail_from {
        Some("<>") => String::new(),
        Some(a) => a.trim_matches(['<', '>']).to_string(),
        None => first(|p| &p.from).unwrap_or_default(),
    };
    let rcpt = match rcpt {
        Some(a) => a.trim_matches(['<', '>']).to_string(),
        None => first(|p| &p.to).unwrap_or_else(|| "postmaster@localhost".into()),
    };
    Envelope { client_ip: client_ip.to_string(), helo: helo.to_string(), mail_from, rcpt_to: vec![rcpt] }
}

/// The readable form of a verdict.
fn write_summary(out: &mut impl Write, v: &Verdict) -> std::io::Result<()> {
    let action =
        serde_json::to_value(v.action).ok().and_then(|a| a.as_str().map(str::to_uppercase)).unwrap_or_default();
    writeln!(out, "{}", v.file.as_deref().unwrap_or("-"))?;
    writeln!(out, "  verdict   {action} {} {} {}", v.smtp.code, v.smtp.enhanced, v.smtp.text)?;
    if let Some(code) = v.code {
        writeln!(out, "  code      {}", code.as_str())?;
    }
    if let Some(class) = v.classification {
        writeln!(out, "  score     {:.2} ({class})", v.score)?;
    }
    for s in &v.symbols {
        writeln!(out, "    {:>6.2}  {:<24} {}", s.score, s.name, s.description)?;
    }
    if let Some(r) = &v.route {
        let session = r.session.as_deref().map(|s| format!(" {s}")).unwrap_or_default();
        let tags = if r.tags.is_empty() { String::new() } else { format!(" tags={}", r.tags.join(",")) };
        writeln!(out, "  route     inbox={} {}{session} priority={}{tags}", r.inbox, r.conversation, r.priority)?;
    }
    for p in &v.policies {
        let error =
            p.error.as_deref().map(|e| format!(" ({e}; on_error={})", p.on_error.unwrap_or("-"))).unwrap_or_default();
        writeln!(
            out,
            "  policy    {} {} [{}] {} sha256:{}… {}µs{error}",
            p.stage,
            p.name,
            p.scope,
            p.version,
            &p.sha256[..12],
            p.duration_us
        )?;
    }
    for t in &v.trace {
        let detail = if t.detail.is_empty() { String::new() } else { format!(" — {}", t.detail) };
        writeln!(out, "  trace     {:<10} {:<9} {:>6}µs{detail}", t.step, t.outcome, t.duration_us)?;
    }
    writeln!(out, "  total     {}µs", v.timings.total_us)?;
    Ok(())
}
