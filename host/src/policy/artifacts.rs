//! An on-disk cache of precompiled policy components, so a restart or the
//! re-load of an evicted policy skips Cranelift (≈ 55 ms → ≈ 0.1 ms).
//!
//! Layout: `<dir>/<engine hash>/<sha256>.cwasm` and `<sha256>.sum`, the hex
//! SHA-256 of the `.cwasm` bytes. Wasmtime runs a deserialized artifact's
//! machine code as it is, so an artifact is only deserialized when it lies in
//! this cache's directory for this engine configuration and its bytes, as
//! read into memory, match the checksum written after it. The checksum
//! catches corruption and torn writes, not a hostile writer: the directory
//! must be writable only by the service.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::runtime::{CompiledPolicy, PolicyError, Runtime, Stage, sha256_hex};

/// Precompiled components on disk, keyed by the component's SHA-256 and the engine's compatibility hash.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

/// Where a load came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from an intact cached artifact.
    Hit,
    /// Compiled from the component (and stored for next time).
    Miss,
}

/// Why a cached artifact was not used.
enum Unusable {
    /// No artifact, or no checksum yet (a write that did not finish).
    Absent,
    /// Present but not intact.
    Corrupt(String),
}

impl ArtifactCache {
    /// Opens (creating) the cache directory.
    pub fn open(dir: &Path) -> Result<Self, std::io::Error> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Whoever can write here can make the host run their code.
            if std::fs::metadata(dir)?.permissions().mode() & 0o022 != 0 {
                tracing::warn!(dir = %dir.display(), "policy artifact cache is writable by group or others");
            }
        }
        Ok(ArtifactCache { dir: dir.to_path_buf() })
    }

    /// A policy component for `stage`: from the cache when an intact artifact is there, else compiled (and stored for next time).
    pub fn load(
        &self,
        runtime: &Runtime,
        wasm: &[u8],
        stage: Stage,
    ) -> Result<(CompiledPolicy, CacheOutcome), PolicyError> {
        let sha256 = sha256_hex(wasm);
        let (cwasm, sum) = self.paths(runtime, &sha256);
        match read_verified(&cwasm, &sum) {
            Ok(artifact) => match runtime.load_precompiled(&artifact, &sha256, wasm.len(), stage) {
                Ok(policy) => return Ok((policy, CacheOutcome::Hit)),
                // Only a refused artifact is the cache's problem; a contract
                // or import error is the component's and would recur.
                Err(PolicyError::Compile(e)) => discard(&cwasm, &sum, &e),
                Err(e) => return Err(e),
            },
            Err(Unusable::Absent) => {}
            Err(Unusable::Corrupt(why)) => discard(&cwasm, &sum, &why),
        }
        let artifact = runtime.precompile(wasm)?;
        // Loading from the artifact (≈ 0.1 ms) proves it deserializes before
        // it is stored, and validates the component: rejected ones are not
        // stored.
        let policy = runtime.load_precompiled(&artifact, &sha256, wasm.len(), stage)?;
        if let Err(e) = store(&cwasm, &sum, &artifact) {
            tracing::warn!(path = %cwasm.display(), error = %e, "could not store policy artifact; it will be compiled again next time");
        }
        Ok((policy, CacheOutcome::Miss))
    }

    #[cfg(test)]
    /// Whether an artifact for this component is cached.
    ///
    /// True only when it is intact (its checksum matches), as
    /// [`ArtifactCache::load`] requires.
    fn contains(&self, runtime: &Runtime, sha256: &str) -> bool {
        // The name becomes a path: accept only what `sha256_hex` produces.
        let well_formed = sha256.len() == 64 && sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            return false;
        }
        let (cwasm, sum) = self.paths(runtime, sha256);
        read_verified(&cwasm, &sum).is_ok()
    }

    /// The artifact and checksum paths of a component under this engine.
    fn paths(&self, runtime: &Runtime, sha256: &str) -> (PathBuf, PathBuf) {
        let dir = self.dir.join(engine_hash(runtime));
        (dir.join(format!("{sha256}.cwasm")), dir.join(format!("{sha256}.sum")))
    }
}

/// 16 hex digits naming the engine configuration an artifact belongs to.
/// Hashed with SHA-256 rather than `DefaultHasher`, whose output may change
/// between Rust releases (needlessly emptying the cache).
fn engine_hash(runtime: &Runtime) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            let digest = self.0.clone().finalize();
            u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
        }
    }
    let mut h = ShaHasher(Sha256::new());
    runtime.engine().precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The artifact's bytes, if it is there and matches its checksum. The bytes
/// checked are the bytes returned: a file changed after the check is never
/// deserialized.
fn read_verified(cwasm: &Path, sum: &Path) -> Result<Vec<u8>, Unusable> {
    let read = |p: &Path| match std::fs::read(p) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Unusable::Absent),
        Err(e) => Err(Unusable::Corrupt(format!("{}: {e}", p.display()))),
    };
    let expected = read(sum)?;
    let artifact = read(cwasm)?;
    if expected.trim_ascii() != sha256_hex(&artifact).as_bytes() {
        return Err(Unusable::Corrupt("checksum mismatch".into()));
    }
    Ok(artifact)
}

/// Removes an unusable artifact so it is rebuilt.
fn discard(cwasm: &Path, sum: &Path, why: &str) {
    tracing::warn!(path = %cwasm.display(), reason = why, "discarding cached policy artifact; compiling again");
    for p in [sum, cwasm] {
        if let Err(e) = std::fs::remove_file(p)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %p.display(), error = %e, "could not remove cached policy artifact");
        }
    }
}

/// Stores an artifact: the old checksum goes first and the new one is
/// written last, each file through a temporary file and a rename. Nothing
/// is fsynced: it would put two disk flushes on every hot swap's path, and
/// a crash that loses or tears either file leaves a checksum mismatch (or
/// no checksum), which is recompiled, never trusted.
fn store(cwasm: &Path, sum: &Path, artifact: &[u8]) -> std::io::Result<()> {
    let dir = cwasm.parent().expect("artifact paths have a parent");
    std::fs::create_dir_all(dir)?;
    if let Err(e) = std::fs::remove_file(sum)
        && e.kind() != ErrorKind::NotFound
    {
        return Err(e);
    }
    write_atomic(cwasm, artifact)?;
    write_atomic(sum, sha256_hex(artifact).as_bytes())
}

/// Writes `bytes` to a unique temporary file beside `path` and renames it
/// over `path`: readers never see a half-written file.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Unique per process and per write: concurrent loads of one component
    // must not share a temporary file.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("artifact");
    let tmp =
        path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::message::{ParseLimits, ParsedMessage};
    use crate::policy::Manifest;
    use crate::policy::builtin::JUNK_THRESHOLD;
    use crate::runtime::types::{
        AuthResult, Authentication, Dmarc, DmarcPolicy, Envelope, MailKind, Spf, ThresholdDecision, Workspace,
    };
    use crate::runtime::{CallInput, CallLimits, EngineOptions, OutputLimits, StageOutput};

    /// A unique temporary directory, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            TempDir(std::env::temp_dir().join(format!("postern-artifacts-{tag}-{}-{nanos}", std::process::id())))
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn runtime() -> Runtime {
        Runtime::new(&EngineOptions { pooling: false, ..EngineOptions::default() }).unwrap()
    }

    /// Calls the junk-threshold policy once on a small message.
    fn classify(runtime: &Runtime, policy: &CompiledPolicy) -> ThresholdDecision {
        let raw = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nhello\r\n";
        let message = Arc::new(ParsedMessage::parse(raw, &ParseLimits::default()).unwrap());
        let spf = Spf { domain: "example.test".into(), result: AuthResult::Pass };
        let envelope = Envelope {
            client_ip: "198.51.100.25".into(),
            helo: "mail.example.test".into(),
            mail_from: "a@example.test".into(),
            rcpt_to: vec!["b@example.test".into()],
        };
        let auth = Authentication {
            spf_mail_from: spf.clone(),
            spf_helo: spf,
            dkim: vec![],
            dmarc: Dmarc {
                result: AuthResult::Pass,
                policy: DmarcPolicy::None,
                spf_aligned: true,
                dkim_aligned: false,
            },
        };
        let workspace = Workspace { id: "acme".into(), junk_filter: true, kind: MailKind::NewMail, settings: vec![] };
        let config = Manifest::parse(JUNK_THRESHOLD.manifest).unwrap().config_json();
        let input = CallInput {
            message: &message,
            envelope: &envelope,
            auth: &auth,
            workspace: &workspace,
            config: &config,
            data: None,
            score: 0.0,
            symbols: &[],
        };
        match runtime.call(policy, &input, &CallLimits::default(), &OutputLimits::default()).result {
            Ok(StageOutput::Threshold(d)) => d,
            other => panic!("unexpected outcome: {other:?}"),
        }
    }

    #[test]
    fn miss_then_hit_gives_the_same_working_policy() {
        let tmp = TempDir::new("hit");
        let runtime = runtime();
        let cache = ArtifactCache::open(&tmp.0).unwrap();
        let sha = sha256_hex(JUNK_THRESHOLD.wasm);
        assert!(!cache.contains(&runtime, &sha));

        let (first, outcome) = cache.load(&runtime, JUNK_THRESHOLD.wasm, Stage::Threshold).unwrap();
        assert_eq!(outcome, CacheOutcome::Miss);
        assert!(cache.contains(&runtime, &sha));
        let (second, outcome) = cache.load(&runtime, JUNK_THRESHOLD.wasm, Stage::Threshold).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);

        assert_eq!((first.sha256.as_str(), second.sha256.as_str()), (sha.as_str(), sha.as_str()));
        assert_eq!(second.stage, Stage::Threshold);
        assert_eq!(second.wasm_bytes, JUNK_THRESHOLD.wasm.len());
        assert_eq!(first.artifact_bytes, second.artifact_bytes);
        assert!(second.artifact_bytes > 0);
        assert_eq!(classify(&runtime, &first), classify(&runtime, &second));
        // Only the two final files: no temporaries left behind.
        let engine_dir = tmp.0.join(engine_hash(&runtime));
        let mut names: Vec<_> =
            std::fs::read_dir(&engine_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [format!("{sha}.cwasm"), format!("{sha}.sum")]);
        assert!(!cache.contains(&runtime, "../etc/passwd"));
    }

    #[test]
    fn corrupt_artifact_is_recompiled_and_repaired() {
        let tmp = TempDir::new("corrupt");
        let runtime = runtime();
        let cache = ArtifactCache::open(&tmp.0).unwrap();
        cache.load(&runtime, JUNK_THRESHOLD.wasm, Stage::Threshold).unwrap();
        let sha = sha256_hex(JUNK_THRESHOLD.wasm);
        let (cwasm, _) = cache.paths(&runtime, &sha);
        let mut bytes = std::fs::read(&cwasm).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&cwasm, &bytes).unwrap();
        assert!(!cache.contains(&runtime, &sha));

        let (policy, outcome) = cache.load(&runtime, JUNK_THRESHOLD.wasm, Stage::Threshold).unwrap();
        assert_eq!(outcome, CacheOutcome::Miss);
        assert_eq!(policy.sha256, sha);
        assert!(cache.contains(&runtime, &sha), "the cache was not repaired");
        let (_, outcome) = cache.load(&runtime, JUNK_THRESHOLD.wasm, Stage::Threshold).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
    }

    #[test]
    fn garbage_is_a_compile_error_and_wrong_stage_a_contract_error() {
        let tmp = TempDir::new("errors");
        let runtime = runtime();
        let cache = ArtifactCache::open(&tmp.0).unwrap();
        let garbage = b"\0asm garbage, not a component";
        assert!(matches!(cache.load(&runtime, garbage, Stage::Score), Err(PolicyError::Compile(_))));
        assert!(!cache.contains(&runtime, &sha256_hex(garbage)));

        let wrong = cache.load(&runtime, JUNK_THRESHOLD.wasm, Stage::Score);
        assert!(matches!(wrong, Err(PolicyError::Contract(_))), "{wrong:?}");
        // Also when the artifact is already cached.
        cache.load(&runtime, JUNK_THRESHOLD.wasm, Stage::Threshold).unwrap();
        let wrong = cache.load(&runtime, JUNK_THRESHOLD.wasm, Stage::Route);
        assert!(matches!(wrong, Err(PolicyError::Contract(_))), "{wrong:?}");
        assert!(cache.contains(&runtime, &sha256_hex(JUNK_THRESHOLD.wasm)), "a contract error is not corruption");
    }
}
