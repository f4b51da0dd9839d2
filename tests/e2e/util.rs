//! Shared helpers: one runtime per test binary, the built guests, fixtures.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use postern::message::{ParseLimits, ParsedMessage};
use postern::policy::builtin;
use postern::policy::{LoadedPolicy, PolicySet, Scope};
use postern::runtime::types::{AuthResult, Authentication, Dmarc, DmarcPolicy, Envelope, MailKind, Spf, Workspace};
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
    Arc::new(LoadedPolicy::load(&runtime(), manifest, wasm, Scope::Platform).expect("guest loads"))
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
        let spf = Spf { domain: String::new(), result: AuthResult::NotChecked };
        Context {
            envelope: Envelope {
                client_ip: "127.0.0.1".into(),
                helo: "localhost".into(),
                mail_from: "alice@customer.test".into(),
                rcpt_to: vec!["help@support.acme.test".into()],
            },
            auth: Authentication {
                spf_mail_from: spf.clone(),
                spf_helo: spf,
                dkim: vec![],
                dmarc: Dmarc {
                    result: AuthResult::NotChecked,
                    policy: DmarcPolicy::Unspecified,
                    spf_aligned: false,
                    dkim_aligned: false,
                },
            },
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
            score: 0.0,
            symbols: &[],
        }
    }
}
