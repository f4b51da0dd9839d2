//! The `postern` command line: the binary's edge, where errors become
//! messages and exit codes.

mod check;
mod eval;
mod policy;
mod serve;
mod train;

// The HTTP check API defaults its envelope exactly as `postern check` does.
pub(crate) use check::message_envelope;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Postern: an inbound-email gate with WebAssembly policies.
#[derive(Debug, Parser)]
#[command(name = "postern", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Judge messages (.eml files) and print each verdict with its trace.
    Check(check::CheckArgs),
    /// Train the default scorer's model on a labelled corpus.
    Train(train::TrainArgs),
    /// Run a labelled corpus through the pipeline: confusion matrix, ROC
    /// points, false positives, throughput.
    Eval(eval::EvalArgs),
    /// Operate the deployed policies: list, status, rollback.
    Policy(policy::PolicyArgs),
    /// Run the gate: SMTP (and LMTP) listeners, durable spool, HTTP API
    /// with metrics. SIGHUP reloads, SIGTERM drains.
    Serve(serve::ServeArgs),
}

/// Parses the command line, runs the command, and maps failures to exit
/// code 2 with the error chain on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        init_logging(crate::config::LogFormat::Text, "warn");
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Policy(args) => policy::run(args),
        Command::Check(args) => check::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postern: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr as text or JSON lines, filtered by `RUST_LOG` (else
/// `default_level`).
fn init_logging(format: crate::config::LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Text => builder.try_init(),
    };
}
