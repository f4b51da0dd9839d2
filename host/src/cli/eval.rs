//! `postern eval DIR --labels labels.csv`: a labelled corpus through the
//! real pipeline (the checks that need live DNS, the directory or shared
//! counters skipped: corpora are old and repeat senders), in parallel, with
//! the confusion matrix per tier, the ROC points, the false positives and
//! the throughput. How the platform team tests a new policy or model.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use super::check::message_envelope;
use crate::checks::CheckName;
use crate::corpus::{self, Example, Label, Part};
use crate::pipeline::{Pipeline, Submission};
use crate::policy::{LoadedPolicy, Scope, builtin};
use crate::runtime::{EngineOptions, Runtime};
use crate::setup::{Overrides, build_pipeline, memory_state};
use crate::verdict::Verdict;

/// Arguments of `postern eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Directory holding the messages.
    dir: PathBuf,
    /// CSV of `filename,label` (ham or spam); a header row is allowed.
    #[arg(long, value_name = "FILE")]
    labels: PathBuf,
    /// Evaluate only the held-out fraction (as `train --holdout` left out);
    /// 0 evaluates everything.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    holdout: f64,
    /// Seed of the split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use this model file instead of the default scorer's.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Worker threads [default: the number of cores].
    #[arg(long)]
    threads: Option<usize>,
    /// How many false positives to list.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// One message's outcome.
#[derive(Debug, Clone, Serialize)]
struct Outcome {
    file: String,
    label: Label,
    /// `deliver`, `junk`, `dirty`, or `refused` (stopped by a fixed check).
    tier: String,
    score: f64,
    code: Option<String>,
    top_symbols: Vec<(String, f64)>,
}

/// Counts per label and tier.
#[derive(Debug, Default, Clone, Serialize)]
struct Row {
    deliver: usize,
    junk: usize,
    dirty: usize,
    refused: usize,
}

impl Row {
    fn scored(&self) -> usize {
        self.deliver + self.junk + self.dirty
    }
}

#[derive(Debug, Serialize)]
struct RocPoint {
    max_ham_false_positive_rate: f64,
    threshold: f64,
    ham_false_positive_rate: f64,
    spam_detection_rate: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    messages: usize,
    seconds: f64,
    messages_per_second: f64,
    ham: Row,
    spam: Row,
    spam_caught: f64,
    ham_junked_or_dropped: f64,
    ham_dropped: f64,
    roc: Vec<RocPoint>,
    false_positives: Vec<Outcome>,
    false_negatives: usize,
}

/// Runs `eval`.
pub fn run(args: EvalArgs) -> Result<ExitCode> {
    if !(0.0..1.0).contains(&args.holdout) {
        bail!("--holdout must be at least 0 and below 1");
    }
    let examples = corpus::read_labels(&args.dir, &args.labels)?;
    let examples = corpus::select(examples, args.holdout, args.seed, Part::Test);
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let pipeline = tokio.block_on(pipeline(args.model.as_ref()))?;

    let started = Instant::now();
    let examples = Arc::new(examples);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (examples, pipeline) = (examples.clone(), pipeline.clone());
            std::thread::spawn(move || -> Result<Vec<Outcome>> {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                examples.iter().skip(t).step_by(threads).map(|ex| rt.block_on(judge(&pipeline, ex))).collect()
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(examples.len());
    for w in workers {
        outcomes.extend(w.join().map_err(|_| anyhow::anyhow!("an eval worker panicked"))??);
    }
    let seconds = started.elapsed().as_secs_f64();
    outcomes.sort_by(|a, b| a.file.cmp(&b.file));
    let report = report(outcomes, seconds, args.top);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

async fn pipeline(model: Option<&PathBuf>) -> Result<Pipeline> {
    let runtime = Arc::new(Runtime::new(&EngineOptions::default()).context("start the WebAssembly runtime")?);
    let mut policies = builtin::load_defaults(&runtime).context("load the built-in policies")?;
    if let Some(path) = model {
        let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        spam_score::model::Model::from_bytes(&data).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let b = builtin::SPAM_SCORE;
        let scorer = LoadedPolicy::load(&runtime, b.manifest, b.wasm, Some(&data), Scope::Platform)?;
        policies.scorers = vec![Arc::new(scorer)];
    }
    let skip = [
        CheckName::Recipient,
        CheckName::Duplicate,
        CheckName::RateLimit,
        CheckName::Mx,
        CheckName::Auth,
        CheckName::Dmarc,
    ];
    let overrides = Overrides { skip: skip.to_vec(), ..Overrides::default() };
    Ok(build_pipeline(None, &overrides, runtime, policies, memory_state()).await?)
}

async fn judge(pipeline: &Pipeline, ex: &Example) -> Result<Outcome> {
    let raw = std::fs::read(&ex.path).with_context(|| format!("read {}", ex.path.display()))?;
    let limits = pipeline.settings().parse_limits.clone();
    let envelope = message_envelope(&raw, &limits, None, None, [127, 0, 0, 1].into(), "localhost");
    let v: Verdict = pipeline.check(&Submission { raw: &raw, envelope }).await;
    let mut top: Vec<(String, f64)> = v.symbols.iter().map(|s| (s.name.clone(), s.score)).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(3);
    Ok(Outcome {
        file: ex.name.clone(),
        label: ex.label,
        tier: v.classification.unwrap_or("refused").to_string(),
        score: v.score,
        code: v.code.map(|c| c.as_str().to_string()),
        top_symbols: top,
    })
}

fn report(outcomes: Vec<Outcome>, seconds: f64, top: usize) -> Report {
    let (mut ham, mut spam) = (Row::default(), Row::default());
    for o in &outcomes {
        let row = if o.label == Label::Ham { &mut ham } else { &mut spam };
        match o.tier.as_str() {
            "deliver" => row.deliver += 1,
            "junk" => row.junk += 1,
            "dirty" => row.dirty += 1,
            _ => row.refused += 1,
        }
    }
    let ratio = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let scores = |label: Label| -> Vec<f64> {
        outcomes.iter().filter(|o| o.label == label && o.tier != "refused").map(|o| o.score).collect()
    };
    let (ham_scores, spam_scores) = (scores(Label::Ham), scores(Label::Spam));
    let roc = [0.01, 0.001].iter().map(|&max| roc_point(&ham_scores, &spam_scores, max)).collect();
    let mut fps: Vec<Outcome> =
        outcomes.iter().filter(|o| o.label == Label::Ham && (o.tier == "junk" || o.tier == "dirty")).cloned().collect();
    fps.sort_by(|a, b| b.score.total_cmp(&a.score));
    fps.truncate(top);
    Report {
        messages: outcomes.len(),
        seconds,
        messages_per_second: ratio(outcomes.len(), 1) / seconds.max(1e-9),
        spam_caught: ratio(spam.junk + spam.dirty, spam.scored()),
        ham_junked_or_dropped: ratio(ham.junk + ham.dirty, ham.scored()),
        ham_dropped: ratio(ham.dirty, ham.scored()),
        false_negatives: spam.deliver,
        ham,
        spam,
        roc,
        false_positives: fps,
    }
}

/// The lowest score threshold whose ham false-positive rate is at most
/// `max`, and the share of spam at or above it.
fn roc_point(ham: &[f64], spam: &[f64], max: f64) -> RocPoint {
    let mut sorted = ham.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max * ham.len() as f64).floor() as usize;
    // Just above the (allowed+1)-th highest ham score.
    let threshold = sorted.get(allowed).map_or(f64::NEG_INFINITY, |s| s + 1e-9);
    let above = |xs: &[f64]| xs.iter().filter(|s| **s >= threshold).count();
    let rate = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    RocPoint {
        max_ham_false_positive_rate: max,
        threshold: (threshold * 100.0).round() / 100.0,
        ham_false_positive_rate: rate(above(ham), ham.len()),
        spam_detection_rate: rate(above(spam), spam.len()),
    }
}

fn print_report(r: &Report) {
    let pct = |x: f64| format!("{:.2}%", x * 100.0);
    println!("{} messages in {:.2} s ({:.0} messages/s)", r.messages, r.seconds, r.messages_per_second);
    println!();
    println!("{:<6} {:>8} {:>6} {:>6} {:>8}", "", "deliver", "junk", "dirty", "refused");
    for (name, row) in [("ham", &r.ham), ("spam", &r.spam)] {
        println!("{name:<6} {:>8} {:>6} {:>6} {:>8}", row.deliver, row.junk, row.dirty, row.refused);
    }
    println!(
        "(refused: stopped by a fixed check before the policies, e.g. missing headers; rates below are over the rest)"
    );
    println!();
    println!("spam caught (junk or dirty): {}", pct(r.spam_caught));
    println!("ham junked or dropped:       {}", pct(r.ham_junked_or_dropped));
    println!("ham dropped (dirty):         {}", pct(r.ham_dropped));
    for p in &r.roc {
        println!(
            "ROC at <= {} ham false positives: threshold {:.2} catches {} of spam ({} ham above it)",
            pct(p.max_ham_false_positive_rate),
            p.threshold,
            pct(p.spam_detection_rate),
            pct(p.ham_false_positive_rate)
        );
    }
    if !r.false_positives.is_empty() {
        println!();
        println!("false positives (ham junked or dropped):");
        for o in &r.false_positives {
            let symbols: Vec<String> = o.top_symbols.iter().map(|(n, s)| format!("{n} {s:+.2}")).collect();
            println!("  {:<20} {:<6} {:>6.2}  {}", o.file, o.tier, o.score, symbols.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_point_respects_the_false_positive_budget() {
        let ham: Vec<f64> = (0..100).map(|i| i as f64 / 10.0).collect(); // 0.0 .. 9.9
        let spam = vec![5.0, 9.95, 10.0, 12.0];
        let p = roc_point(&ham, &spam, 0.01);
        assert!(p.ham_false_positive_rate <= 0.01, "{p:?}");
        assert_eq!(p.spam_detection_rate, 0.75);
        let p = roc_point(&ham, &spam, 0.0);
        assert_eq!(p.ham_false_positive_rate, 0.0);
    }
}
