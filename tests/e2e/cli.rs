//! The `postern check` command as a user runs it.

use std::process::Command;

use serde_json::Value;

use crate::util::fixture;

fn postern(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_postern")).args(args).output().expect("run postern")
}

fn verdicts(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "postern failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON verdict per line"))
        .collect()
}

#[test]
fn check_json_prints_the_verdict_with_symbols_policies_and_timings() {
    let file = fixture("spam-dirty.eml");
    let out = postern(&["check", "--json", file.to_str().unwrap()]);
    let v = &verdicts(&out)[0];
    assert_eq!(v["action"], "reject");
    assert_eq!(v["code"], "spam");
    assert_eq!(v["smtp"]["code"], 550);
    assert_eq!(v["smtp"]["enhanced"], "5.7.1");
    assert!(v["smtp"]["text"].as_str().unwrap().starts_with("Your email has been classified as spam"));
    assert!(v["score"].as_f64().unwrap() > 6.0);
    assert!(
        v["symbols"].as_array().unwrap().iter().any(|s| s["name"] == "URL_IP_LITERAL" && s["policy"] == "spam-score")
    );
    let policies = v["policies"].as_array().unwrap();
    assert_eq!(policies[0]["name"], "spam-score");
    assert_eq!(policies[0]["version"], "0.2.0");
    assert_eq!(policies[0]["sha256"].as_str().unwrap().len(), 64);
    for key in ["parse_us", "score_us", "threshold_us", "total_us"] {
        assert!(v["timings"][key].is_u64(), "timings.{key}");
    }
    assert_eq!(v["file"], file.to_str().unwrap());
}

#[test]
fn check_takes_the_envelope_from_flags() {
    let file = fixture("clean.eml");
    let out = postern(&[
        "check",
        "--json",
        "--rcpt",
        "<help@support.acme.test>",
        "--mail-from",
        "<>",
        "--client-ip",
        "192.0.2.1",
        "--helo",
        "mx.customer.test",
        file.to_str().unwrap(),
    ]);
    let v = &verdicts(&out)[0];
    assert_eq!(v["action"], "accept");
    assert_eq!(v["code"], Value::Null);
    assert_eq!(v["route"]["conversation"], "new-conversation");
}

#[test]
fn check_prints_one_line_per_file_in_order() {
    let (a, b) = (fixture("clean.eml"), fixture("no-from.eml"));
    let out = postern(&["check", "--json", a.to_str().unwrap(), b.to_str().unwrap()]);
    let v = verdicts(&out);
    assert_eq!(v.len(), 2);
    assert_eq!((v[0]["action"].as_str(), v[1]["code"].as_str()), (Some("accept"), Some("headers_missing")));
}

#[test]
fn check_summary_is_readable() {
    let out = postern(&["check", fixture("spam-junk.eml").to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verdict   REJECT 550 5.7.1 Your email has been classified as spam"), "{text}");
    assert!(text.contains("BODY_SPAM_WORDS"), "{text}");
    assert!(text.contains("policy    score spam-score [platform] 0.2.0"), "{text}");
}

#[test]
fn check_reports_bad_input_clearly() {
    let out = postern(&["check", "/nonexistent/message.eml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/message.eml"));
    let out = postern(&["check", "--client-ip", "not-an-ip", fixture("clean.eml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = postern(&["check"]);
    assert_eq!(out.status.code(), Some(2), "a file is required");
}
