//! The pipeline with the real default components: verdicts, catalog texts,
//! routes, policy versions, and each failure mode of a policy.

use postern::policy::{PolicySet, builtin};
use postern::runtime::types::MailKind;
use postern::verdict::{Action, Code, Verdict};

use crate::util::{defaults, guest, judge_in, policy};

/// Judges a fixture with no DNS and a one-workspace directory (`acme`, with
/// the junk filter as given) where a reply session `s-0001` exists.
fn judge(set: PolicySet, fixture: &str, kind: MailKind, junk_filter: bool) -> Verdict {
    judge_in(set, fixture, kind, junk_filter)
}

fn manifest(name: &str, stage: &str, on_error: &str, extra: &str) -> String {
    format!("name = \"{name}\"\nstage = \"{stage}\"\nversion = \"9.9.9\"\non_error = \"{on_error}\"\n{extra}")
}

#[test]
fn clean_mail_is_accepted_as_a_new_conversation_with_every_policy_named() {
    let v = judge(defaults(), "clean.eml", MailKind::NewMail, true);
    assert_eq!(v.action, Action::Accept, "{v:#?}");
    assert_eq!(v.code, None);
    assert_eq!((v.smtp.code, v.smtp.enhanced.as_str()), (250, "2.0.0"));
    assert_eq!(v.classification, Some("deliver"));
    let route = v.route.expect("accepted mail has a route");
    assert_eq!((route.inbox.as_str(), route.conversation, route.session), ("default", "new-conversation", None));
    let names: Vec<_> = v.policies.iter().map(|p| (p.name.as_str(), p.stage, p.outcome.as_str())).collect();
    assert_eq!(
        names,
        vec![("spam-score", "score", "ok"), ("junk-threshold", "threshold", "ok"), ("route-default", "route", "ok")]
    );
    for p in &v.policies {
        assert!(p.version == "0.1.0" || p.version == "0.2.0", "{}", p.version);
        assert_eq!(p.sha256.len(), 64);
        assert_eq!(p.scope, "platform");
    }
    let steps: Vec<_> = v.trace.iter().map(|t| t.step.as_str()).collect();
    assert_eq!(
        steps,
        vec![
            "parse",
            "recipient",
            "headers",
            "text_size",
            "duplicate",
            "rate_limit",
            "mx",
            "auth",
            "dmarc",
            "score",
            "threshold",
            "route"
        ]
    );
    let dns_steps: Vec<_> = v.trace.iter().filter(|t| ["mx", "auth", "dmarc"].contains(&t.step.as_str())).collect();
    assert!(dns_steps.iter().all(|t| t.outcome == "skipped" && t.detail == "no DNS configured"));
}

#[test]
fn a_reply_joins_its_session() {
    let v = judge(defaults(), "clean.eml", MailKind::Reply("s-0001".into()), true);
    let route = v.route.expect("route");
    assert_eq!((route.conversation, route.session.as_deref()), ("existing-session", Some("s-0001")));
}

#[test]
fn dirty_spam_is_rejected_with_the_catalog_text_and_its_symbols() {
    let v = judge(defaults(), "spam-dirty.eml", MailKind::NewMail, true);
    assert_eq!(v.action, Action::Reject);
    assert_eq!(v.code, Some(Code::Spam));
    assert_eq!(v.classification, Some("dirty"));
    assert!(v.score > 6.0);
    assert_eq!((v.smtp.code, v.smtp.enhanced.as_str()), (550, "5.7.1"));
    let expected = format!(
        "Your email has been classified as spam, and we dislike spam (dirty), got score: {}",
        postern::verdict::format_score(v.score)
    );
    assert_eq!(v.smtp.text, expected);
    let names: Vec<_> = v.symbols.iter().map(|s| s.name.as_str()).collect();
    for expected in ["URL_IP_LITERAL", "URL_TEXT_MISMATCH", "ATTACH_EXECUTABLE", "HIDDEN_TEXT", "SUBJ_ALL_CAPS"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    assert!(v.route.is_none());
}

#[test]
fn junk_is_rejected_unless_the_workspace_turned_its_filter_off() {
    let on = judge(defaults(), "spam-junk.eml", MailKind::NewMail, true);
    assert!((3.0..=6.0).contains(&on.score), "fixture must score as junk: {}", on.score);
    assert_eq!((on.action, on.code, on.classification), (Action::Reject, Some(Code::Spam), Some("junk")));
    assert!(on.smtp.text.contains("we dislike spam (junk), got score: "), "{}", on.smtp.text);

    let off = judge(defaults(), "spam-junk.eml", MailKind::NewMail, false);
    assert_eq!(off.action, Action::Accept);
    assert_eq!(off.classification, Some("deliver"));
}

#[test]
fn no_workspace_setting_lifts_the_dirty_limit() {
    let v = judge(defaults(), "spam-dirty.eml", MailKind::NewMail, false);
    assert_eq!((v.action, v.classification), (Action::Reject, Some("dirty")));
}

#[test]
fn a_lenient_threshold_policy_cannot_lift_the_dirty_limit() {
    let lenient = policy(
        builtin::JUNK_THRESHOLD.wasm,
        &manifest("lenient", "threshold", "tempfail", "[config]\njunk_from = 50.0\ndirty_above = 100.0\n"),
    );
    let set = PolicySet { threshold: lenient, ..defaults() };
    let junk = judge(set.clone(), "spam-junk.eml", MailKind::NewMail, true);
    assert_eq!(junk.action, Action::Accept, "config moved the junk limit");
    let dirty = judge(set, "spam-dirty.eml", MailKind::NewMail, true);
    assert_eq!((dirty.action, dirty.classification), (Action::Reject, Some("dirty")));
}

#[test]
fn missing_and_unacceptable_headers_stop_before_any_policy() {
    let v = judge(defaults(), "no-from.eml", MailKind::NewMail, true);
    assert_eq!(v.code, Some(Code::HeadersMissing));
    assert_eq!(v.smtp.text, "Got invalid email headers (From + To required)");
    assert_eq!((v.smtp.code, v.smtp.enhanced.as_str()), (550, "5.6.0"));
    assert!(v.policies.is_empty());
    let v = judge(defaults(), "bad-from.eml", MailKind::NewMail, true);
    assert_eq!(v.code, Some(Code::HeadersUnacceptable));
    assert_eq!(v.smtp.text, "Got invalid email headers (From or To not acceptable)");
}

#[test]
fn a_failing_scorer_with_tempfail_makes_the_sender_retry() {
    let looping = policy(guest!("guest_loop"), &manifest("looper", "score", "tempfail", "[limits]\ntime_ms = 20\n"));
    let set = PolicySet { scorers: vec![looping], ..defaults() };
    let v = judge(set, "clean.eml", MailKind::NewMail, true);
    assert_eq!(v.action, Action::Tempfail);
    assert_eq!(v.code, Some(Code::InternalError));
    assert_eq!((v.smtp.code, v.smtp.enhanced.as_str()), (451, "4.3.0"));
    assert_eq!(v.smtp.text, "We could not process the email at that time due to an internal error");
    let run = &v.policies[0];
    assert_eq!((run.name.as_str(), run.outcome.as_str(), run.on_error), ("looper", "timeout", Some("tempfail")));
}

#[test]
fn a_failing_scorer_with_skip_is_recorded_and_skipped() {
    let panicky = policy(guest!("guest_panic"), &manifest("panicky", "score", "skip", ""));
    let set = PolicySet { scorers: vec![panicky, defaults().scorers[0].clone()], ..defaults() };
    let v = judge(set, "spam-dirty.eml", MailKind::NewMail, true);
    assert_eq!(v.policies[0].outcome, "trap");
    assert_eq!(v.policies[1].outcome, "ok");
    assert_eq!(v.code, Some(Code::Spam), "the other scorer still counts");
}

#[test]
fn a_failing_route_policy_falls_back_or_tempfails_per_its_manifest() {
    let skip = policy(guest!("guest_route_panic"), &manifest("misroute", "route", "skip", ""));
    let v = judge(PolicySet { route: skip, ..defaults() }, "clean.eml", MailKind::Reply("s-9".into()), true);
    assert_eq!(v.action, Action::Accept);
    let route = v.route.expect("the host's default route");
    assert_eq!((route.conversation, route.session.as_deref()), ("existing-session", Some("s-9")));
    assert_eq!(v.policies.last().map(|p| p.outcome.as_str()), Some("trap"));

    let tempfail = policy(guest!("guest_route_panic"), &manifest("misroute", "route", "tempfail", ""));
    let v = judge(PolicySet { route: tempfail, ..defaults() }, "clean.eml", MailKind::NewMail, true);
    assert_eq!((v.action, v.code), (Action::Tempfail, Some(Code::InternalError)));
}

#[test]
fn shadow_scorers_are_recorded_but_not_counted() {
    let shadow = policy(builtin::SPAM_SCORE.wasm, &manifest("spam-score-next", "score", "skip", "mode = \"shadow\"\n"));
    let set = PolicySet { scorers: vec![shadow], ..defaults() };
    let v = judge(set, "spam-dirty.eml", MailKind::NewMail, true);
    assert_eq!(v.action, Action::Accept, "shadow symbols must not count");
    assert_eq!(v.score, 0.0);
    let score_step = v.trace.iter().find(|t| t.step == "score").expect("score step");
    assert!(
        score_step.detail.contains("shadow: ") && score_step.detail.contains("URL_IP_LITERAL"),
        "{}",
        score_step.detail
    );
}

#[test]
fn a_guest_writing_to_stderr_inside_a_multi_thread_runtime_is_contained() {
    // Regression: wasmtime-wasi's synchronous stream functions block on the
    // ambient runtime; on an executor thread that used to panic the host.
    let panicky = policy(guest!("guest_panic"), &manifest("panicky", "score", "skip", ""));
    let set = PolicySet { scorers: vec![panicky], ..defaults() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let v = rt
        .block_on(async move { tokio::spawn(async move { crate::util::judge_async(set, "clean.eml").await }).await })
        .expect("no panic");
    assert_eq!(v.policies[0].outcome, "trap");
    assert_eq!(v.action, Action::Accept);
}

#[test]
fn duplicate_window_and_sender_rate_at_their_exact_boundaries() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use postern::checks::{CheckSettings, FixedChecks};
    use postern::pipeline::{Pipeline, Settings, Submission};
    use postern::state::{MemoryState, RateLimit};

    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let checks = FixedChecks {
        settings: CheckSettings {
            sender_rate: RateLimit { count: 2, period_ms: 60_000 },
            duplicate_window_ms: 600_000,
            ..CheckSettings::default()
        },
        state: Arc::new(MemoryState::new()),
        clock,
        ..FixedChecks::offline()
    };
    let pipeline = Pipeline::new(crate::util::runtime(), defaults(), Settings::default(), checks);
    let raw = crate::util::fixture_bytes("clean.eml");
    let ctx = crate::util::Context::new(MailKind::NewMail, true);
    let check = || crate::util::block_on(pipeline.check(&Submission { raw: &raw, envelope: ctx.envelope.clone() }));

    assert_eq!(check().action, Action::Accept);
    now.fetch_add(599_999, Ordering::SeqCst);
    assert_eq!(check().code, Some(Code::DuplicateText), "one millisecond before the window ends");
    now.fetch_add(1, Ordering::SeqCst);
    assert_eq!(check().action, Action::Accept, "the window has passed");
    // The sender's rate is 2 per minute: one more now is the burst's second,
    // the next at the same instant is over it.
    let text = |t: &str| String::from_utf8(raw.clone()).unwrap().replace("charged twice", t);
    let judge = |raw: &str| {
        crate::util::block_on(pipeline.check(&Submission { raw: raw.as_bytes(), envelope: ctx.envelope.clone() }))
    };
    assert_eq!(judge(&text("charged three times")).action, Action::Accept);
    assert_eq!(judge(&text("charged four times")).code, Some(Code::RateLimited));
    now.fetch_add(29_999, Ordering::SeqCst);
    assert_eq!(judge(&text("charged five times")).code, Some(Code::RateLimited), "1 ms before one interval");
    now.fetch_add(1, Ordering::SeqCst);
    let v = judge(&text("charged six times"));
    assert_eq!(v.action, Action::Accept, "one interval (60 s / 2) later, one more is allowed");
}
