//! `postern train` and `postern eval` on a tiny labelled fixture corpus
//! (`tests/fixtures/corpus/`), and the default scorer's model loaded as its
//! data file.

use std::process::Command;

use postern::policy::{LoadedPolicy, Scope, builtin};
use postern::runtime::types::MailKind;
use serde_json::Value;

use crate::util::{defaults, fixture, judge_in, runtime};

fn postern(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_postern")).args(args).output().expect("run postern");
    assert!(out.status.success(), "postern {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `postern eval` on the fixture corpus with `extra` flags; the output.
fn eval(extra: &[&str]) -> std::process::Output {
    let dir = fixture("corpus");
    let labels = dir.join("labels.csv");
    let mut args = vec!["eval", dir.to_str().unwrap(), "--labels", labels.to_str().unwrap()];
    args.extend_from_slice(extra);
    postern(&args)
}

fn train(out: &std::path::Path, seed: &str) -> Vec<u8> {
    let dir = fixture("corpus");
    let labels = dir.join("labels.csv");
    postern(&[
        "train",
        dir.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        seed,
    ]);
    std::fs::read(out).unwrap()
}

#[test]
fn training_is_deterministic_and_the_model_separates_its_set() {
    let tmp = std::env::temp_dir().join(format!("postern-train-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let (a, b, c) = (tmp.join("a.bin"), tmp.join("b.bin"), tmp.join("c.bin"));
    let first = train(&a, "7");
    assert_eq!(first, train(&b, "7"), "same inputs and seed, same model bytes");
    assert_ne!(first, train(&c, "8"), "another seed, another order");

    let out = eval(&["--model", a.to_str().unwrap(), "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["messages"], 12);
    assert_eq!(
        (r["ham"]["deliver"].as_u64(), r["ham"]["junk"].as_u64(), r["ham"]["dirty"].as_u64()),
        (Some(6), Some(0), Some(0)),
        "{r:#}"
    );
    assert_eq!(r["spam"]["deliver"], 0, "{r:#}");
    assert_eq!(r["spam"]["junk"].as_u64().unwrap() + r["spam"]["dirty"].as_u64().unwrap(), 6);
    assert_eq!(r["spam_caught"], 1.0);
    assert_eq!(r["ham_junked_or_dropped"], 0.0);
    assert!(r["messages_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(r["roc"].as_array().unwrap().len(), 2);

    let text = eval(&["--model", a.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ham           6      0      0        0"), "{text}");
    assert!(text.contains("spam caught (junk or dirty): 100.00%"), "{text}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn eval_holds_out_what_train_left_out() {
    let out = eval(&["--holdout", "0.5", "--seed", "3", "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = r["messages"].as_u64().unwrap();
    assert!(n > 0 && n < 12, "only the held-out part: {n}");
}

#[test]
fn the_default_scorer_explains_its_model() {
    let v = judge_in(defaults(), "spam-dirty.eml", MailKind::NewMail, true);
    let model = v.symbols.iter().find(|s| s.name == "MODEL_SPAM").expect("model symbol");
    assert!(model.description.starts_with("model p(spam)="), "{}", model.description);
    assert!(model.description.contains("driven by"), "{}", model.description);
    let v = judge_in(defaults(), "clean.eml", MailKind::NewMail, true);
    assert!(v.symbols.iter().any(|s| s.name.starts_with("MODEL_")), "{:?}", v.symbols);
}

#[test]
fn a_broken_or_missing_model_is_a_policy_failure_not_a_crash() {
    let b = builtin::SPAM_SCORE;
    let err = LoadedPolicy::load(&runtime(), b.manifest, b.wasm, None, Scope::Platform).unwrap_err();
    assert!(err.to_string().contains("model.bin"), "{err}");
    let broken = LoadedPolicy::load(&runtime(), b.manifest, b.wasm, Some(b"not a model"), Scope::Platform).unwrap();
    let set = postern::policy::PolicySet { scorers: vec![std::sync::Arc::new(broken)], ..defaults() };
    let v = judge_in(set, "clean.eml", MailKind::NewMail, true);
    assert_eq!(v.policies[0].outcome, "guest_error");
    assert!(v.policies[0].error.as_deref().unwrap_or("").contains("invalid model"), "{:?}", v.policies[0]);
    assert_eq!(v.code, Some(postern::verdict::Code::InternalError), "spam-score's on_error is tempfail");
}
