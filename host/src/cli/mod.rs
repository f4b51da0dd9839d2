//! The `postern` command line: the binary's edge, where errors become
//! messages and exit codes.

mod check;
mod eval;
mod train;

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
}

/// Parses the command line, runs the command, and maps failures to exit
/// code 2 with the error chain on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
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

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
