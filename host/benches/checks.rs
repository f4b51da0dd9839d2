//! The fixed checks with a warm DNS cache, DKIM verification alone, and the
//! whole pipeline (parse + every check + the three stages) on a 10 KB
//! DKIM-signed message. DNS comes from `tests/fixtures/auth/zone.txt`,
//! served on loopback by Postern's zone server.
//!
//! `cargo bench -p postern --bench checks`

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::{AuthenticatedMessage, DkimResult, Parameters};
use postern::checks::{CheckSettings, FixedChecks};
use postern::directory::FileDirectory;
use postern::dns::{Dns, DnsSource};
use postern::message::{ParseLimits, ParsedMessage};
use postern::pipeline::{Pipeline, Settings, Submission};
use postern::policy::builtin;
use postern::runtime::types::Envelope;
use postern::runtime::{EngineOptions, Runtime};
use postern::state::{MemoryState, RateLimit};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The 10 KB fixture, sent from dkim.test and signed with the test key.
fn signed_10k() -> Vec<u8> {
    let raw = std::fs::read_to_string(fixtures().join("bench-10k.eml"))
        .unwrap()
        .replace("support@vendor.test", "support@dkim.test")
        .replace("Return-Path: <support@dkim.test>\r\n", "");
    let pem = std::fs::read_to_string(fixtures().join("auth/dkim-test.key")).unwrap();
    #[allow(deprecated)] // the fixture key is kept as PEM
    let key = RsaKey::<Sha256>::from_rsa_pem(&pem).unwrap();
    let sig = DkimSigner::from_key(key)
        .domain("dkim.test")
        .selector("test")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(raw.as_bytes())
        .unwrap();
    format!("{}{raw}", sig.to_header()).into_bytes()
}

fn checks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let raw = signed_10k();
    let dns = Arc::new(
        rt.block_on(Dns::new(
            &DnsSource::ZoneFile(fixtures().join("auth/zone.txt")),
            std::time::Duration::from_secs(2),
        ))
        .unwrap(),
    );
    let directory = Arc::new(FileDirectory::load(&fixtures().join("auth/workspaces.toml")).unwrap());
    // Each call is two seconds after the last, so neither the 1 s duplicate
    // window nor the rates refuse a message: every check runs in full.
    let now = Arc::new(AtomicU64::new(1_700_000_000_000));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.fetch_add(2_000, Ordering::Relaxed))
    };
    let fixed = FixedChecks {
        settings: CheckSettings {
            reply_domain: Some("reply.example.test".into()),
            sender_rate: RateLimit { count: 30, period_ms: 60_000 },
            duplicate_window_ms: 1_000,
            ..CheckSettings::default()
        },
        directory: Some(directory),
        dns: Some(dns.clone()),
        state: Arc::new(MemoryState::new()),
        clock,
    };
    let envelope = Envelope {
        client_ip: "192.0.2.10".into(),
        helo: "mx.sender.test".into(),
        mail_from: "support@dkim.test".into(),
        rcpt_to: vec!["help@support.acme.test".into()],
    };
    let parsed = ParsedMessage::parse(&raw, &ParseLimits::default()).unwrap();

    // Warm the caches and make sure the message passes every check.
    let run = rt.block_on(fixed.run(&parsed, &raw, &envelope));
    assert!(run.failure.is_none(), "bench message must pass: {:?}", run.trace);

    c.bench_function("checks/all_fixed_checks_10k_warm_dns", |b| {
        b.iter(|| {
            let run = rt.block_on(fixed.run(&parsed, &raw, &envelope));
            assert!(run.failure.is_none());
            black_box(run)
        })
    });

    c.bench_function("checks/dkim_verify_10k_warm_key", |b| {
        b.iter(|| {
            rt.block_on(async {
                let msg = AuthenticatedMessage::parse(&raw).unwrap();
                let out = dns.authenticator.verify_dkim(Parameters::new(&msg).with_txt_cache(&dns.caches.txt)).await;
                assert_eq!(*out[0].result(), DkimResult::Pass);
                black_box(out.len())
            })
        })
    });

    let runtime = Arc::new(Runtime::new(&EngineOptions::default()).unwrap());
    let policies = builtin::load_defaults(&runtime).unwrap();
    let pipeline = Pipeline::new(runtime, policies, Settings::default(), fixed);
    c.bench_function("pipeline/full_10k_every_check_and_stage", |b| {
        b.iter(|| {
            let v = rt.block_on(pipeline.check(&Submission { raw: &raw, envelope: envelope.clone() }));
            assert_eq!(v.policies.len(), 3, "{:?}", v.trace);
            black_box(v)
        })
    });
}

criterion_group!(benches, checks);
criterion_main!(benches);
