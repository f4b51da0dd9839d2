//! Calls one default policy in a loop, for profiling (`perf record`).
//! `cargo run --release -p postern --example profile_call -- threshold 200000`

use std::sync::Arc;

use postern::message::{ParseLimits, ParsedMessage};
use postern::policy::builtin;
use postern::runtime::types::{Envelope, MailKind, Workspace};
use postern::runtime::{CallInput, CallLimits, EngineOptions, OutputLimits, Runtime};

fn main() {
    let mut args = std::env::args().skip(1);
    let stage = args.next().unwrap_or_else(|| "threshold".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let raw = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/bench-10k.eml")).unwrap();
    let msg = Arc::new(ParsedMessage::parse(&raw, &ParseLimits::default()).unwrap());
    let runtime = Runtime::new(&EngineOptions::default()).unwrap();
    let set = builtin::load_defaults(&runtime).unwrap();
    let policy = match stage.as_str() {
        "score" | "score-rules" => &set.scorers[0],
        "route" => &set.route,
        _ => &set.threshold,
    };
    let auth = postern::checks::auth::not_checked();
    let envelope =
        Envelope { client_ip: "127.0.0.1".into(), helo: "h".into(), mail_from: "a@b.test".into(), rcpt_to: vec![] };
    let workspace = Workspace { id: "w".into(), junk_filter: true, kind: MailKind::NewMail, settings: vec![] };
    let input = CallInput {
        message: &msg,
        envelope: &envelope,
        auth: &auth,
        workspace: &workspace,
        config: &policy.config_json,
        // `score-rules`: the scorer without its model, to see the model's share.
        data: if stage == "score-rules" { None } else { policy.data.as_ref() },
        score: 1.0,
        symbols: &[],
    };
    let (mut inst, mut call) = (0u128, 0u128);
    for _ in 0..n {
        let out = runtime.call(&policy.compiled, &input, &CallLimits::default(), &OutputLimits::default());
        out.result.unwrap();
        inst += out.instantiate.as_nanos();
        call += out.call.as_nanos();
    }
    println!(
        "{stage}: instantiate {:.2} µs, call {:.2} µs (mean of {n})",
        inst as f64 / n as f64 / 1000.0,
        call as f64 / n as f64 / 1000.0
    );
}
