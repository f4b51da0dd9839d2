//! Hostile and broken guests are contained within their limits, with the
//! right typed error, while a well-behaved policy keeps answering on another
//! thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use postern::runtime::types::MailKind;
use postern::runtime::{CallLimits, CompiledPolicy, OutputLimits, PolicyError, Stage, StageOutput};

use crate::util::{Context, defaults, guest, parsed, runtime};

/// Runs `f` while another thread keeps calling the default scorer; returns
/// `f`'s result once the well-behaved calls have all succeeded.
fn while_neighbour_runs<T>(f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let neighbour = {
        let (stop, ok) = (stop.clone(), ok.clone());
        std::thread::spawn(move || {
            let scorer = defaults().scorers[0].clone();
            let msg = parsed("clean.eml");
            let ctx = Context::new(MailKind::NewMail, true);
            while !stop.load(Ordering::Relaxed) || ok.load(Ordering::Relaxed) < 3 {
                let out = runtime().call(
                    &scorer.compiled,
                    &ctx.input(&msg, &scorer.config_json),
                    &CallLimits::default(),
                    &OutputLimits::default(),
                );
                assert!(matches!(out.result, Ok(StageOutput::Symbols(_))), "neighbour failed: {:?}", out.result);
                ok.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let result = f();
    stop.store(true, Ordering::Relaxed);
    neighbour.join().expect("the well-behaved neighbour never failed");
    assert!(ok.load(Ordering::Relaxed) >= 3);
    result
}

fn load(wasm: &[u8]) -> CompiledPolicy {
    runtime().load(wasm, Stage::Score).expect("guest loads")
}

fn call(policy: &CompiledPolicy, limits: CallLimits) -> (Result<StageOutput, PolicyError>, Duration, String) {
    let msg = parsed("clean.eml");
    let ctx = Context::new(MailKind::NewMail, true);
    let started = Instant::now();
    let out = runtime().call(policy, &ctx.input(&msg, "{}"), &limits, &OutputLimits::default());
    (out.result, started.elapsed(), out.log)
}

#[test]
fn infinite_loop_is_interrupted_at_its_deadline() {
    let policy = load(guest!("guest_loop"));
    let limits = CallLimits { time: Duration::from_millis(30), ..CallLimits::default() };
    let (result, took, _) = while_neighbour_runs(|| call(&policy, limits));
    assert_eq!(result, Err(PolicyError::Timeout(30)));
    assert!(took >= Duration::from_millis(30), "stopped before its budget: {took:?}");
    // Containment, not speed: generous bound for a loaded CI machine.
    assert!(took < Duration::from_millis(1500), "not stopped near its budget: {took:?}");
}

#[test]
fn memory_bomb_hits_the_cap() {
    let policy = load(guest!("guest_memory_bomb"));
    let limits = CallLimits { memory_bytes: 8 << 20, ..CallLimits::default() };
    let (result, _, _) = while_neighbour_runs(|| call(&policy, limits));
    assert_eq!(result, Err(PolicyError::OutOfMemory(8 << 20)));
}

#[test]
fn deep_recursion_overflows_the_guest_stack_only() {
    let policy = load(guest!("guest_deep_recursion"));
    let (result, _, _) = while_neighbour_runs(|| call(&policy, CallLimits::default()));
    assert_eq!(result, Err(PolicyError::StackOverflow));
}

#[test]
fn panic_is_a_trap() {
    let policy = load(guest!("guest_panic"));
    let (result, _, _) = while_neighbour_runs(|| call(&policy, CallLimits::default()));
    match result {
        Err(PolicyError::Trap(msg)) => assert!(msg.contains("unreachable"), "{msg}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn oversized_output_is_refused() {
    let policy = load(guest!("guest_oversized_output"));
    let (result, _, _) = while_neighbour_runs(|| call(&policy, CallLimits::default()));
    match result {
        Err(PolicyError::Output(msg)) => assert!(msg.contains("10000 symbols"), "{msg}"),
        other => panic!("expected invalid output, got {other:?}"),
    }
}

#[test]
fn guest_error_is_reported_with_its_text() {
    let policy = load(guest!("guest_guest_error"));
    let (result, _, _) = call(&policy, CallLimits::default());
    assert_eq!(result, Err(PolicyError::Guest("config key `required` is missing".into())));
}

#[test]
fn chatty_guest_is_capped_and_still_answers() {
    let policy = load(guest!("guest_chatty"));
    // The budget is generous: this is about the cap, not speed.
    let limits = CallLimits { time: Duration::from_secs(2), ..CallLimits::default() };
    let (result, _, log) = call(&policy, limits);
    match result {
        Ok(StageOutput::Symbols(s)) => assert_eq!(s[0].name, "CHATTY_DONE"),
        other => panic!("expected an answer, got {other:?}"),
    }
    assert_eq!(log.len(), CallLimits::default().log_bytes);
    assert!(log.starts_with("chatty policy log line"));
}

#[test]
fn clock_reading_guest_is_refused_at_load() {
    match runtime().load(guest!("guest_forbidden_import"), Stage::Score) {
        Err(PolicyError::ForbiddenImport(name)) => assert!(name.starts_with("wasi:clocks/"), "{name}"),
        other => panic!("expected a forbidden import, got {other:?}"),
    }
}

#[test]
fn wrong_contract_version_is_refused_at_load() {
    match runtime().load(guest!("guest_wrong_version"), Stage::Score) {
        Err(PolicyError::Contract(msg)) => {
            assert!(msg.contains("postern:policy/scorer@0.1.0"), "{msg}");
            assert!(msg.contains("0.0.9"), "names what it found: {msg}");
        }
        other => panic!("expected a contract mismatch, got {other:?}"),
    }
}

#[test]
fn a_component_of_another_stage_is_refused() {
    let scorer = include_bytes!(concat!(env!("OUT_DIR"), "/spam_score.wasm"));
    match runtime().load(scorer, Stage::Route) {
        Err(PolicyError::Contract(msg)) => assert!(msg.contains("postern:policy/router@0.1.0"), "{msg}"),
        other => panic!("expected a contract mismatch, got {other:?}"),
    }
}

#[test]
fn garbage_does_not_compile() {
    assert!(matches!(runtime().load(b"\0asm not really", Stage::Score), Err(PolicyError::Compile(_))));
    assert!(matches!(runtime().load(b"", Stage::Score), Err(PolicyError::Compile(_))));
}

#[test]
fn each_call_gets_a_fresh_instance_after_a_trap() {
    // A trapped instance cannot be re-entered; the next call must not care.
    let panicky = load(guest!("guest_panic"));
    assert!(call(&panicky, CallLimits::default()).0.is_err());
    let scorer = defaults().scorers[0].clone();
    let msg = parsed("spam-dirty.eml");
    let ctx = Context::new(MailKind::NewMail, true);
    for _ in 0..3 {
        let out =
            runtime().call(&scorer.compiled, &ctx.input(&msg, "{}"), &CallLimits::default(), &OutputLimits::default());
        assert!(matches!(out.result, Ok(StageOutput::Symbols(ref s)) if !s.is_empty()), "{:?}", out.result);
    }
}
