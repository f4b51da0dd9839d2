//! `postern train DIR --labels labels.csv --out model.bin`: trains the
//! default scorer's model on a labelled corpus. Deterministic: the same
//! corpus, split and seed give the same bytes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use postern_policy_sdk::{Authentication, Message};
use spam_score::features;
use spam_score::model::{self, TrainOptions};

use crate::corpus::{self, Label, Part};
use crate::message::{ParseLimits, ParsedMessage};
use crate::runtime::sha256_hex;

/// Arguments of `postern train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Directory holding the messages.
    dir: PathBuf,
    /// CSV of `filename,label` (ham or spam); a header row is allowed.
    #[arg(long, value_name = "FILE")]
    labels: PathBuf,
    /// Where to write the model.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Fraction held out for `postern eval` (never trained on); 0 trains on
    /// everything.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    holdout: f64,
    /// Seed of the split and of the training order.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Passes over the data.
    #[arg(long, default_value_t = 30)]
    epochs: u32,
    /// Hash buckets, as a power of two.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(8..=24))]
    bits: u8,
}

/// Runs `train`.
pub fn run(args: TrainArgs) -> Result<ExitCode> {
    if !(0.0..1.0).contains(&args.holdout) {
        bail!("--holdout must be at least 0 and below 1");
    }
    let examples = corpus::read_labels(&args.dir, &args.labels)?;
    let examples = corpus::select(examples, args.holdout, args.seed, Part::Train);
    let limits = ParseLimits::default();
    let auth = Authentication::default();
    let (mut data, mut skipped) = (Vec::with_capacity(examples.len()), 0usize);
    for ex in &examples {
        let raw = std::fs::read(&ex.path).with_context(|| format!("read {}", ex.path.display()))?;
        let Ok(parsed) = ParsedMessage::parse(&raw, &limits) else {
            skipped += 1;
            continue;
        };
        let msg = Message::new(corpus::sdk_message(&parsed));
        let hashes = features::extract(&msg, &auth).iter().map(|f| f.hash).collect();
        data.push((hashes, ex.label == Label::Spam));
    }
    let spam = data.iter().filter(|(_, s)| *s).count();
    if spam == 0 || spam == data.len() {
        bail!("the training set needs both ham and spam ({} ham, {spam} spam)", data.len() - spam);
    }
    let opts = TrainOptions { bits: args.bits, epochs: args.epochs, seed: args.seed, ..TrainOptions::default() };
    let bytes = model::train(&data, &opts).to_bytes();
    std::fs::write(&args.out, &bytes).with_context(|| format!("write {}", args.out.display()))?;
    println!(
        "trained on {} messages ({} ham, {spam} spam{}) -> {} ({} bytes, sha256 {})",
        data.len(),
        data.len() - spam,
        if skipped > 0 { format!(", {skipped} unparseable skipped") } else { String::new() },
        args.out.display(),
        bytes.len(),
        sha256_hex(&bytes)
    );
    Ok(ExitCode::SUCCESS)
}
