//! `postern serve`: the SMTP/LMTP gate with its HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::config::LogFormat;
use crate::server::{self, ServeOptions};

/// Arguments of `postern serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML). Without it: the embedded default (SMTP on
    /// 127.0.0.1:2525, HTTP on 127.0.0.1:8025, the example workspace
    /// directory and DNS zone, spool in ./var/spool).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Spool directory (overrides `[server] spool_dir`).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// SMTP address (overrides `[server] smtp_listen`; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    smtp_listen: Option<std::net::SocketAddr>,
    /// LMTP address (overrides `[server] lmtp_listen`).
    #[arg(long, value_name = "ADDR")]
    lmtp_listen: Option<std::net::SocketAddr>,
    /// HTTP address (overrides `[server] http_listen`).
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<std::net::SocketAddr>,
    /// Log line format (overrides `[server] log_format`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// Runs the server until SIGTERM/SIGINT.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let options = ServeOptions {
        config: args.config,
        spool_dir: args.spool_dir,
        smtp_listen: args.smtp_listen,
        lmtp_listen: args.lmtp_listen,
        http_listen: args.http_listen,
    };
    // Read once up front: a broken file is reported before anything starts,
    // and the log format comes from it.
    let config = server::load_config(&options)?;
    let format = match args.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.server.log_format,
    };
    // The in-process zone server logs every query at info.
    super::init_logging(format, "info,hickory_server=warn,hickory_proto=warn");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start tokio")?;
    runtime.block_on(server::run(options))?;
    Ok(ExitCode::SUCCESS)
}
