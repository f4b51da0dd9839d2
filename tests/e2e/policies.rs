//! The policy deployment directory: per-workspace filters, hot swaps under
//! load, half-written and broken files, deletion, shadow mode, rollback, and
//! a thousand workspaces within a memory budget.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postern::checks::{CheckSettings, FixedChecks};
use postern::directory::{Directory, Snapshot};
use postern::pipeline::{Pipeline, Settings, Submission};
use postern::policy::builtin::{JUNK_THRESHOLD, ROUTE_DEFAULT, SPAM_SCORE};
use postern::policy::registry::{Registry, RegistryConfig};
use postern::policy::{PolicySource, Scope};
use postern::runtime::types::Envelope;
use postern::state::RateLimit;
use postern::verdict::{Action, Verdict};

use crate::checks::{Scratch, message};
use crate::util::{defaults, fixture_bytes, guest, runtime};

/// A deployment directory and its registry (not watched unless asked).
struct Deployment {
    scratch: Scratch,
    registry: Arc<Registry>,
}

fn config(root: &Path, budget: usize) -> RegistryConfig {
    RegistryConfig {
        dir: root.join("policies.d"),
        cache_dir: root.join("cache"),
        cache_memory_bytes: budget,
        debounce: Duration::from_millis(20),
    }
}

impl Deployment {
    fn new() -> Self {
        Self::with_budget(256 << 20)
    }

    fn with_budget(budget: usize) -> Self {
        let scratch = Scratch::new();
        let registry = Registry::open(runtime(), defaults(), config(&scratch.0, budget)).expect("registry");
        Deployment { scratch, registry }
    }

    fn scope_dir(&self, scope: &Scope) -> PathBuf {
        match scope {
            Scope::Platform => self.scratch.0.join("policies.d/platform"),
            Scope::Workspace(id) => self.scratch.0.join("policies.d/workspaces").join(id),
        }
    }

    /// Deploys the documented way: each file written beside, then renamed
    /// into place; the manifest last.
    fn deploy(&self, scope: &Scope, name: &str, wasm: &[u8], manifest: &str) {
        deploy(&self.scope_dir(scope), name, wasm, manifest);
    }

    fn reload(&self, scope: &Scope) {
        self.registry.reload_scope(scope);
    }

    /// A pipeline over this deployment; recipients `help@<id>.test` belong
    /// to workspace `<id>` for each id given.
    fn pipeline(&self, workspaces: &[&str]) -> Pipeline {
        let mut text = String::new();
        for id in workspaces {
            text.push_str(&format!("[[workspace]]\nid = \"{id}\"\ndomains = [\"{id}.test\"]\n"));
        }
        let directory: Arc<dyn Directory> = Arc::new(Snapshot::parse(&text).unwrap());
        // Rates out of the way: these tests send one sender's mail fast.
        let unlimited = RateLimit { count: u32::MAX, period_ms: 1000 };
        let checks = FixedChecks {
            settings: CheckSettings {
                duplicate_window_ms: 1,
                sender_rate: unlimited,
                workspace_rate: unlimited,
                ..CheckSettings::default()
            },
            directory: Some(directory),
            ..FixedChecks::offline()
        };
        Pipeline::with_source(runtime(), self.registry.clone(), Settings::default(), checks)
    }
}

/// Deploys a policy into `dir` the documented way: each file written under
/// a hidden name, then renamed into place; the manifest last.
pub(crate) fn deploy(dir: &Path, name: &str, wasm: &[u8], manifest: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for (file, bytes) in [(format!("{name}.wasm"), wasm), (format!("{name}.toml"), manifest.as_bytes())] {
        let tmp = dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, dir.join(file)).unwrap();
    }
}

fn route_manifest(name: &str, version: &str, inbox: &str, mode: &str) -> String {
    format!(
        "name = \"{name}\"\nstage = \"route\"\nversion = \"{version}\"\non_error = \"tempfail\"\nmode = \"{mode}\"\n[config]\ninbox = \"{inbox}\"\n"
    )
}

fn threshold_manifest(name: &str, version: &str, junk_from: f64, dirty_above: f64, mode: &str) -> String {
    format!(
        "name = \"{name}\"\nstage = \"threshold\"\nversion = \"{version}\"\nmode = \"{mode}\"\n[config]\njunk_from = {junk_from}\ndirty_above = {dirty_above}\n"
    )
}

/// Judges a message to `help@<workspace>.test`; `n` makes the text unique.
fn judge(pipeline: &Pipeline, workspace: &str, n: usize) -> Verdict {
    let to = format!("help@{workspace}.test");
    let raw = message(
        "Alice <alice@customer.test>",
        &to,
        &format!("Question {n}"),
        &format!("Hello, question number {n} about the export."),
    );
    judge_raw(pipeline, workspace, raw.as_bytes())
}

fn judge_raw(pipeline: &Pipeline, workspace: &str, raw: &[u8]) -> Verdict {
    let envelope = Envelope {
        client_ip: "127.0.0.1".into(),
        helo: "client.test".into(),
        mail_from: "alice@customer.test".into(),
        rcpt_to: vec![format!("help@{workspace}.test")],
    };
    crate::util::block_on(pipeline.check(&Submission { raw, envelope }))
}

fn policy<'v>(v: &'v Verdict, name: &str) -> Option<&'v postern::verdict::PolicyRun> {
    v.policies.iter().find(|p| p.name == name)
}

fn status_of(registry: &Registry, scope: &str, name: &str) -> Vec<postern::policy::status::PolicyStatus> {
    registry.status().into_iter().filter(|s| s.scope == scope && s.name == name).collect()
}

#[test]
fn a_workspace_route_replaces_the_platforms_for_that_workspace_only() {
    let d = Deployment::new();
    let acme = Scope::Workspace("acme".into());
    d.deploy(&acme, "acme-route", ROUTE_DEFAULT.wasm, &route_manifest("acme-route", "1.0.0", "acme-inbox", "enforce"));
    d.reload(&acme);
    let p = d.pipeline(&["acme", "other"]);
    let v = judge(&p, "acme", 1);
    assert_eq!(v.action, Action::Accept, "{v:#?}");
    assert_eq!(v.route.as_ref().unwrap().inbox, "acme-inbox");
    let run = policy(&v, "acme-route").expect("the workspace's route ran");
    assert_eq!((run.scope.as_str(), run.version.as_str()), ("workspace:acme", "1.0.0"));
    assert!(policy(&v, "route-default").is_none(), "replaced for acme");
    // Another workspace never sees acme's policy.
    let v = judge(&p, "other", 2);
    assert_eq!(v.route.as_ref().unwrap().inbox, "default");
    assert!(policy(&v, "acme-route").is_none());
    assert!(policy(&v, "route-default").is_some());
    let rows = status_of(&d.registry, "workspace:acme", "acme-route");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].state.as_str(), rows[0].stage.as_str()), ("active", "route"));
    assert!(rows[0].calls >= 1, "{rows:?}");
}

#[test]
fn workspace_scorers_add_after_the_platforms_and_the_dirty_limit_still_holds() {
    let d = Deployment::new();
    let acme = Scope::Workspace("acme".into());
    let dir = d.scope_dir(&acme);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.bin"), SPAM_SCORE.data.unwrap()).unwrap();
    d.deploy(
        &acme,
        "second-opinion",
        SPAM_SCORE.wasm,
        "name = \"second-opinion\"\nstage = \"score\"\nversion = \"2.0.0\"\ndata_file = \"model.bin\"\n",
    );
    // A workspace threshold that would let anything through.
    d.deploy(&acme, "lenient", JUNK_THRESHOLD.wasm, &threshold_manifest("lenient", "1.0.0", 1000.0, 1000.0, "enforce"));
    d.reload(&acme);
    let p = d.pipeline(&["acme"]);
    let v = judge_raw(&p, "acme", &fixture_bytes("spam-dirty.eml").replace_to("help@acme.test"));
    let owners: Vec<&str> = v.symbols.iter().map(|s| s.policy.as_str()).collect();
    let first_own = owners.iter().position(|o| *o == "second-opinion").expect("workspace symbols present");
    assert!(owners[..first_own].iter().all(|o| *o == "spam-score"), "platform symbols first: {owners:?}");
    assert!(owners[first_own..].iter().all(|o| *o == "second-opinion"), "{owners:?}");
    assert_eq!(policy(&v, "lenient").map(|r| r.scope.as_str()), Some("workspace:acme"));
    assert!(v.score > 6.0, "{}", v.score);
    assert_eq!(v.action, Action::Reject, "the platform's dirty limit applies whatever the workspace says");
    assert_eq!(v.classification, Some("dirty"));
}

/// Rewrites a fixture's To (and nothing else).
trait ReplaceTo {
    fn replace_to(&self, to: &str) -> Vec<u8>;
}

impl ReplaceTo for Vec<u8> {
    fn replace_to(&self, to: &str) -> Vec<u8> {
        String::from_utf8_lossy(self).replace("help@support.acme.test", to).into_bytes()
    }
}

#[test]
fn a_policy_swapped_a_hundred_times_under_load_loses_nothing_and_every_verdict_names_its_version() {
    let d = Deployment::new();
    let _watcher = d.registry.watch().expect("watch");
    let platform = Scope::Platform;
    d.deploy(
        &platform,
        "route-default",
        ROUTE_DEFAULT.wasm,
        &route_manifest("route-default", "1.0.0", "v0", "enforce"),
    );
    d.reload(&platform);
    let pipeline = Arc::new(d.pipeline(&["acme"]));
    let stop = Arc::new(AtomicBool::new(false));
    let verdicts = Arc::new(std::sync::Mutex::new(Vec::<(String, String, Action)>::new()));
    let load: Vec<_> = (0..2)
        .map(|t| {
            let (pipeline, stop, verdicts) = (pipeline.clone(), stop.clone(), verdicts.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let v = judge(&pipeline, "acme", t * 1_000_000 + n);
                    let run = policy(&v, "route-default").map(|r| r.version.clone()).unwrap_or_default();
                    let inbox = v.route.as_ref().map(|r| r.inbox.clone()).unwrap_or_default();
                    verdicts.lock().unwrap().push((run, inbox, v.action));
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for n in 1..=100 {
        let version = format!("1.0.{n}");
        let started = Instant::now();
        d.deploy(
            &platform,
            "route-default",
            ROUTE_DEFAULT.wasm,
            &route_manifest("route-default", &version, &format!("v{n}"), "enforce"),
        );
        // The first verdict made by the new version.
        loop {
            if verdicts.lock().unwrap().iter().rev().take(8).any(|(v, _, _)| *v == version) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "version {version} never served");
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(started.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let verdicts = verdicts.lock().unwrap();
    assert!(verdicts.len() > 100, "{} verdicts", verdicts.len());
    for (version, inbox, action) in verdicts.iter() {
        assert_eq!(*action, Action::Accept, "no message failed during a swap");
        // The route came from exactly the version the verdict names.
        let n = version.strip_prefix("1.0.").unwrap_or_else(|| panic!("verdict names no version: {version:?}"));
        assert_eq!(*inbox, format!("v{n}"));
    }
    latencies.sort();
    eprintln!("swap latency p50 {:?}, max {:?}", latencies[latencies.len() / 2], latencies.last().unwrap());
}

#[test]
fn a_half_written_file_and_a_broken_module_never_go_live() {
    let d = Deployment::new();
    let platform = Scope::Platform;
    d.deploy(
        &platform,
        "route-default",
        ROUTE_DEFAULT.wasm,
        &route_manifest("route-default", "1.0.0", "good", "enforce"),
    );
    d.reload(&platform);
    let p = d.pipeline(&["acme"]);
    assert_eq!(judge(&p, "acme", 1).route.unwrap().inbox, "good");

    // Written in place and caught half-way (no rename).
    let dir = d.scope_dir(&platform);
    std::fs::write(dir.join("route-default.wasm"), &ROUTE_DEFAULT.wasm[..ROUTE_DEFAULT.wasm.len() / 2]).unwrap();
    std::fs::write(dir.join("route-default.toml"), route_manifest("route-default", "2.0.0", "half", "enforce"))
        .unwrap();
    d.reload(&platform);
    let v = judge(&p, "acme", 2);
    assert_eq!(v.route.as_ref().unwrap().inbox, "good", "the last good version serves");
    assert_eq!(policy(&v, "route-default").unwrap().version, "1.0.0");
    let rows = status_of(&d.registry, "platform", "route-default");
    let failed = rows.iter().find(|r| r.state == "failed").expect("the failure is visible");
    assert_eq!(failed.version, "2.0.0");
    assert!(failed.error.as_deref().unwrap_or("").contains("ompil"), "{failed:?}");
    assert!(rows.iter().any(|r| r.state == "active" && r.version == "1.0.0"), "{rows:?}");

    // A whole module that breaks the contract (imports the clock).
    d.deploy(
        &platform,
        "route-default",
        guest!("guest_forbidden_import"),
        &route_manifest("route-default", "3.0.0", "bad", "enforce"),
    );
    d.reload(&platform);
    assert_eq!(judge(&p, "acme", 3).route.unwrap().inbox, "good");
    let rows = status_of(&d.registry, "platform", "route-default");
    let failed = rows.iter().find(|r| r.state == "failed").unwrap();
    assert_eq!(failed.version, "3.0.0");
    assert!(failed.error.as_deref().unwrap().contains("wasi:clocks"), "{failed:?}");

    // A scorer manifest for a route component: the contract check refuses it.
    d.deploy(
        &platform,
        "route-default",
        ROUTE_DEFAULT.wasm,
        "name = \"route-default\"\nstage = \"score\"\nversion = \"4.0.0\"\n",
    );
    d.reload(&platform);
    assert_eq!(judge(&p, "acme", 4).route.unwrap().inbox, "good");

    // Fixed, it goes live.
    d.deploy(
        &platform,
        "route-default",
        ROUTE_DEFAULT.wasm,
        &route_manifest("route-default", "5.0.0", "fixed", "enforce"),
    );
    d.reload(&platform);
    assert_eq!(judge(&p, "acme", 5).route.unwrap().inbox, "fixed");
    assert!(status_of(&d.registry, "platform", "route-default").iter().all(|r| r.state != "failed"));
}

#[test]
fn deleting_a_workspace_policy_falls_back_to_the_platforms() {
    let d = Deployment::new();
    let acme = Scope::Workspace("acme".into());
    d.deploy(
        &Scope::Platform,
        "route-default",
        ROUTE_DEFAULT.wasm,
        &route_manifest("route-default", "1.0.0", "platform", "enforce"),
    );
    d.deploy(&acme, "mine", ROUTE_DEFAULT.wasm, &route_manifest("mine", "1.0.0", "mine", "enforce"));
    d.registry.reload_all().unwrap();
    let p = d.pipeline(&["acme"]);
    assert_eq!(judge(&p, "acme", 1).route.unwrap().inbox, "mine");
    for ext in ["toml", "wasm"] {
        std::fs::remove_file(d.scope_dir(&acme).join(format!("mine.{ext}"))).unwrap();
    }
    d.reload(&acme);
    assert_eq!(judge(&p, "acme", 2).route.unwrap().inbox, "platform");
    // And the platform's, deleted, falls back to the built-in.
    for ext in ["toml", "wasm"] {
        std::fs::remove_file(d.scope_dir(&Scope::Platform).join(format!("route-default.{ext}"))).unwrap();
    }
    d.reload(&Scope::Platform);
    let v = judge(&p, "acme", 3);
    assert_eq!(v.route.as_ref().unwrap().inbox, "default");
    assert_eq!(
        policy(&v, "route-default").unwrap().version,
        ROUTE_DEFAULT.manifest.lines().find(|l| l.starts_with("version")).unwrap().split('"').nth(1).unwrap()
    );
}

#[test]
fn shadow_policies_record_their_differences_without_acting() {
    let d = Deployment::new();
    let platform = Scope::Platform;
    // A strict threshold (everything is junk) and another route, in shadow.
    d.deploy(
        &platform,
        "strict",
        JUNK_THRESHOLD.wasm,
        &threshold_manifest("strict", "0.9.0", -100.0, 1000.0, "shadow"),
    );
    d.deploy(
        &platform,
        "other-route",
        ROUTE_DEFAULT.wasm,
        &route_manifest("other-route", "0.9.0", "elsewhere", "shadow"),
    );
    d.reload(&platform);
    let p = d.pipeline(&["acme"]);
    let v = judge(&p, "acme", 1);
    assert_eq!(v.action, Action::Accept, "shadow policies never act: {v:#?}");
    assert_eq!(v.route.as_ref().unwrap().inbox, "default");
    let shadow: Vec<_> = v.trace.iter().filter(|s| s.step == "shadow").collect();
    assert_eq!(shadow.len(), 2, "{:#?}", v.trace);
    assert!(shadow.iter().all(|s| s.outcome == "differs"), "{shadow:#?}");
    assert!(shadow[0].detail.starts_with("strict@0.9.0 (threshold): would be junk"), "{shadow:#?}");
    assert!(shadow[1].detail.starts_with("other-route@0.9.0 (route): would route to elsewhere"), "{shadow:#?}");
    assert!(policy(&v, "strict").is_some() && policy(&v, "other-route").is_some(), "shadow runs are listed");
    let rows = status_of(&d.registry, "platform", "strict");
    assert_eq!(rows[0].state, "shadow");
    // A shadow that agrees is recorded as such.
    d.deploy(&platform, "strict", JUNK_THRESHOLD.wasm, &threshold_manifest("strict", "1.0.0", 3.0, 6.0, "shadow"));
    d.reload(&platform);
    let v = judge(&p, "acme", 2);
    let step = v.trace.iter().find(|s| s.step == "shadow" && s.detail.starts_with("strict@1.0.0")).unwrap();
    assert_eq!(step.outcome, "same");
}

#[test]
fn rollback_restores_the_previous_version_and_back() {
    let d = Deployment::new();
    let acme = Scope::Workspace("acme".into());
    d.deploy(&acme, "mine", ROUTE_DEFAULT.wasm, &route_manifest("mine", "1.0.0", "one", "enforce"));
    d.reload(&acme);
    let err = d.registry.rollback(&acme, "mine").unwrap_err().to_string();
    assert!(err.contains("no previous version"), "{err}");
    d.deploy(&acme, "mine", ROUTE_DEFAULT.wasm, &route_manifest("mine", "2.0.0", "two", "enforce"));
    d.reload(&acme);
    let p = d.pipeline(&["acme"]);
    assert_eq!(judge(&p, "acme", 1).route.unwrap().inbox, "two");
    let restored = d.registry.rollback(&acme, "mine").expect("rollback");
    assert_eq!((restored.version.as_str(), restored.state.as_str()), ("1.0.0", "active"));
    assert_eq!(judge(&p, "acme", 2).route.unwrap().inbox, "one");
    // On disk too: a restart keeps it.
    let on_disk = std::fs::read_to_string(d.scope_dir(&acme).join("mine.toml")).unwrap();
    assert!(on_disk.contains("version = \"1.0.0\""));
    let again = d.registry.rollback(&acme, "mine").expect("roll forward");
    assert_eq!(again.version, "2.0.0");
    assert_eq!(judge(&p, "acme", 3).route.unwrap().inbox, "two");
}

#[test]
fn a_thousand_workspace_policies_stay_within_the_memory_budget() {
    // Room for about 50 compiled workspace sets.
    let probe = runtime().load(ROUTE_DEFAULT.wasm, postern::runtime::Stage::Route).unwrap();
    let per_set = probe.artifact_bytes.max(probe.wasm_bytes);
    let d = Deployment::with_budget(per_set * 50);
    let ids: Vec<String> = (0..1000).map(|i| format!("ws{i:04}")).collect();
    for id in &ids {
        let scope = Scope::Workspace(id.clone());
        d.deploy(
            &scope,
            "route",
            ROUTE_DEFAULT.wasm,
            &route_manifest("route", "1.0.0", &format!("inbox-{id}"), "enforce"),
        );
    }
    let started = Instant::now();
    d.registry.reload_all().unwrap();
    eprintln!("1,000 workspace policies loaded in {:?}", started.elapsed());
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let p = d.pipeline(&refs);
    for (n, id) in ids.iter().enumerate() {
        let v = judge(&p, id, n);
        assert_eq!(v.route.as_ref().map(|r| r.inbox.as_str()), Some(format!("inbox-{id}").as_str()), "{id}");
        let (bytes, sets) = d.registry.cache_usage();
        assert!(bytes <= per_set * 50, "cache holds {bytes} bytes over its budget");
        assert!(sets <= 50, "{sets} sets cached");
    }
    // Evicted ones come back (from the artifact cache) and still answer.
    let v = judge(&p, &ids[0], 5000);
    assert_eq!(v.route.unwrap().inbox, "inbox-ws0000");
    assert_eq!(d.registry.status().iter().filter(|s| s.scope.starts_with("workspace:")).count(), 1000);
}

#[test]
fn the_example_custom_filter_works_for_its_workspace_only() {
    let d = Deployment::new();
    let acme = Scope::Workspace("acme".into());
    let manifest = include_str!("../../policies/keyword-filter/policy.toml");
    d.deploy(&acme, "keyword-filter", guest!("keyword_filter"), manifest);
    d.reload(&acme);
    let p = d.pipeline(&["acme", "other"]);
    let v = judge(&p, "acme", 1);
    assert_eq!(v.action, Action::Accept, "{v:#?}");
    let trusted = v.symbols.iter().find(|s| s.name == "SENDER_TRUSTED").expect("the filter's symbol");
    assert_eq!(trusted.policy, "keyword-filter");
    assert_eq!(policy(&v, "keyword-filter").map(|r| r.scope.as_str()), Some("workspace:acme"));
    let blocked =
        "From: Deals <deals@promo-mailer.test>\r\nTo: help@acme.test\r\nSubject: Hello\r\n\r\nJust saying hello.\r\n";
    let v = judge_raw(&p, "acme", blocked.as_bytes());
    assert_eq!(v.action, Action::Reject, "{v:#?}");
    assert!(v.symbols.iter().any(|s| s.name == "SENDER_BLOCKED"));
    let v = judge_raw(&p, "other", blocked.replace("help@acme.test", "help@other.test").as_bytes());
    assert_eq!(v.action, Action::Accept, "another workspace is not affected: {v:#?}");
    assert!(policy(&v, "keyword-filter").is_none());
}
