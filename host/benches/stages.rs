//! Per-stage and whole-pipeline costs with the real default components.
//!
//! `cargo bench -p postern --bench stages`. Prints criterion's figures; the
//! README records the medians measured on the project's 2-core machine.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use postern::checks::{CheckName, FixedChecks};
use postern::message::{ParseLimits, ParsedMessage};
use postern::pipeline::{Pipeline, Settings, Submission};
use postern::policy::builtin;
use postern::runtime::types::{
    AuthResult, Authentication, Dmarc, DmarcPolicy, Envelope, MailKind, Spf, Symbol, Workspace,
};
use postern::runtime::{CallInput, CallLimits, EngineOptions, OutputLimits, Runtime, Stage};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn context() -> (Envelope, Authentication, Workspace) {
    let spf = Spf { domain: "vendor.test".into(), result: AuthResult::Pass };
    (
        Envelope {
            client_ip: "198.51.100.25".into(),
            helo: "mail.vendor.test".into(),
            mail_from: "support@vendor.test".into(),
            rcpt_to: vec!["help@support.acme.test".into()],
        },
        Authentication {
            spf_mail_from: spf.clone(),
            spf_helo: spf,
            dkim: vec![],
            dmarc: Dmarc {
                result: AuthResult::Pass,
                policy: DmarcPolicy::None,
                spf_aligned: true,
                dkim_aligned: false,
            },
        },
        Workspace { id: "acme".into(), junk_filter: true, kind: MailKind::NewMail, settings: vec![] },
    )
}

fn stages(c: &mut Criterion) {
    let big = fixture("bench-10k.eml");
    let small = fixture("clean.eml");
    let msg_big = Arc::new(ParsedMessage::parse(&big, &ParseLimits::default()).unwrap());
    let msg_small = Arc::new(ParsedMessage::parse(&small, &ParseLimits::default()).unwrap());
    let (envelope, auth, workspace) = context();
    let symbols = vec![Symbol { name: "SPF_PASS".into(), score: -0.5, description: "SPF passed".into() }];
    let limits = CallLimits::default();
    let out = OutputLimits::default();

    for pooling in [true, false] {
        let runtime = Arc::new(Runtime::new(&EngineOptions { pooling, ..EngineOptions::default() }).unwrap());
        let set = builtin::load_defaults(&runtime).unwrap();
        let alloc = if pooling { "pooling" } else { "on-demand" };
        let mut g = c.benchmark_group(format!("stage_call/{alloc}"));
        let input = |msg, config, data, score| CallInput {
            message: msg,
            envelope: &envelope,
            auth: &auth,
            workspace: &workspace,
            config,
            data,
            score,
            symbols: &symbols,
        };
        g.bench_function("score_10k", |b| {
            let p = &set.scorers[0];
            let i = input(&msg_big, &p.config_json, p.data.as_ref(), 0.0);
            b.iter(|| black_box(runtime.call(&p.compiled, &i, &limits, &out).result.unwrap()))
        });
        g.bench_function("threshold_10k", |b| {
            let p = &set.threshold;
            let i = input(&msg_big, &p.config_json, p.data.as_ref(), -0.5);
            b.iter(|| black_box(runtime.call(&p.compiled, &i, &limits, &out).result.unwrap()))
        });
        g.bench_function("route_10k", |b| {
            let p = &set.route;
            let i = input(&msg_big, &p.config_json, p.data.as_ref(), -0.5);
            b.iter(|| black_box(runtime.call(&p.compiled, &i, &limits, &out).result.unwrap()))
        });
        // The fixed cost of a stage call: fresh store + instantiate + a call
        // with a small input that reads no body.
        g.bench_function("fixed_cost_threshold_small", |b| {
            let p = &set.threshold;
            let i = input(&msg_small, &p.config_json, p.data.as_ref(), -0.5);
            b.iter(|| black_box(runtime.call(&p.compiled, &i, &limits, &out).result.unwrap()))
        });
        g.finish();

        // Parse, header checks and the three stages: no directory, DNS or
        // counters here (the `checks` bench measures those).
        let mut checks = FixedChecks::offline();
        checks.settings.skip = [CheckName::Duplicate, CheckName::RateLimit].into_iter().collect();
        let pipeline = Pipeline::new(runtime.clone(), set.clone(), Settings::default(), checks);
        // As the server runs it: a multi-thread runtime (policy calls leave
        // the executor with block_in_place; a current-thread runtime would
        // pay a thread hop per message).
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        c.bench_function(&format!("pipeline/{alloc}/three_stages_10k"), |b| {
            b.iter(|| {
                let v = rt.block_on(pipeline.check(&Submission { raw: &big, envelope: envelope.clone() }));
                assert_eq!(v.policies.len(), 3, "{:?}", v.trace);
                black_box(v)
            })
        });
    }

    c.bench_function("parse/10k", |b| b.iter(|| black_box(ParsedMessage::parse(&big, &ParseLimits::default()))));

    let runtime = Runtime::new(&EngineOptions::default()).unwrap();
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("spam_score", |b| {
        b.iter(|| black_box(runtime.load(builtin::SPAM_SCORE.wasm, Stage::Score).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
