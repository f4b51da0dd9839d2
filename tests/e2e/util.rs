//! Shared helpers: one runtime per test binary, the built guests, fixtures.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use postern::message::{ParseLimits, ParsedMessage};
use postern::policy::builtin;
use postern::policy::{LoadedPolicy, PolicySet, Scope};
use postern::runtime::types::{Authentication, Envelope, MailKind, Workspace};
use postern::runtime::{CallInput, EngineOptions, Runtime};

/// The runtime shared by the tests of this binary.
pub fn runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| Arc::new(Runtime::new(&EngineOptions::default()).expect("runtime"))).clone()
}

/// The compiled default policies, loaded once.
pub fn defaults() -> PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| builtin::load_defaults(&runtime()).expect("defaults load")).clone()
}

/// A test guest's component bytes (built by host/build.rs).
macro_rules! guest {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".wasm")) as &'static [u8]
    };
}
pub(crate) use guest;

/// Loads a guest as a platform policy with the given manifest body.
pub fn policy(wasm: &[u8], manifest: &str) -> Arc<LoadedPolicy> {
    Arc::new(LoadedPolicy::load(&runtime(), manifest, wasm, None, Scope::Platform).expect("guest loads"))
}

/// A fixture's path.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

/// A fixture's bytes.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A parsed fixture.
pub fn parsed(name: &str) -> Arc<ParsedMessage> {
    Arc::new(ParsedMessage::parse(&fixture_bytes(name), &ParseLimits::default()).expect("fixture parses"))
}

/// Envelope, authentication and workspace for calls.
pub struct Context {
    pub envelope: Envelope,
    pub auth: Authentication,
    pub workspace: Workspace,
}

impl Context {
    pub fn new(kind: MailKind, junk_filter: bool) -> Self {
        Context {
            envelope: Envelope {
                client_ip: "127.0.0.1".into(),
                helo: "localhost".into(),
                mail_from: "alice@customer.test".into(),
                rcpt_to: vec!["help@support.acme.test".into()],
            },
            auth: postern::checks::auth::not_checked(),
            workspace: Workspace { id: "acme".into(), junk_filter, kind, settings: vec![] },
        }
    }

    pub fn input<'a>(&'a self, message: &'a Arc<ParsedMessage>, config: &'a str) -> CallInput<'a> {
        CallInput {
            message,
            envelope: &self.envelope,
            auth: &self.auth,
            workspace: &self.workspace,
            config,
            data: None,
            score: 0.0,
            symbols: &[],
        }
    }
}

/// Judges `fixture` through a pipeline with `set`, no DNS, and a directory
/// holding workspace `acme` (bound to `support.acme.test`, junk filter as
/// given) with sessions `s-0001` and `s-9`; `kind` picks the recipient (new
/// mail to the bound domain, or a reply to the session's address).
pub fn judge_in(set: PolicySet, fixture: &str, kind: MailKind, junk_filter: bool) -> postern::verdict::Verdict {
    block_on(judge_with(set, fixture, kind, junk_filter))
}

/// `judge_in` for a caller already inside a runtime (new mail, filter on).
pub async fn judge_async(set: PolicySet, fixture: &str) -> postern::verdict::Verdict {
    judge_with(set, fixture, MailKind::NewMail, true).await
}

async fn judge_with(set: PolicySet, fixture: &str, kind: MailKind, junk_filter: bool) -> postern::verdict::Verdict {
    use postern::checks::{CheckSettings, FixedChecks};
    use postern::pipeline::{Pipeline, Settings, Submission};
    let dir = std::env::temp_dir().join(format!("postern-e2e-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("workspaces.toml");
    std::fs::write(
        &path,
        format!(
            "[[workspace]]\nid = \"acme\"\ndomains = [\"support.acme.test\"]\njunk_filter = {junk_filter}\n\
             [[session]]\nid = \"s-0001\"\nworkspace = \"acme\"\n[[session]]\nid = \"s-9\"\nworkspace = \"acme\"\n"
        ),
    )
    .unwrap();
    let directory = postern::directory::FileDirectory::load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let checks = FixedChecks {
        settings: CheckSettings { reply_domain: Some("reply.example.test".into()), ..CheckSettings::default() },
        directory: Some(Arc::new(directory)),
        ..FixedChecks::offline()
    };
    let pipeline = Pipeline::new(runtime(), set, Settings::default(), checks);
    let raw = fixture_bytes(fixture);
    let mut ctx = Context::new(kind.clone(), junk_filter);
    ctx.envelope.rcpt_to = vec![match kind {
        MailKind::NewMail => "help@support.acme.test".to_string(),
        MailKind::Reply(session) => format!("acme+{session}@reply.example.test"),
    }];
    pipeline.check(&Submission { raw: &raw, envelope: ctx.envelope }).await
}

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio").block_on(f)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
