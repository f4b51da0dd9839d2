//! The live deployment directory: what every message's policies are, kept
//! current while mail flows.
//!
//! - Each change seen on disk is validated off the hot path (manifest,
//!   compile or load from the artifact cache, contract check) and only then
//!   swapped in atomically; a policy that fails never replaces the last good
//!   one and its error is kept for operators.
//! - A message resolves its policies once ([`PolicySource::for_workspace`])
//!   and holds them: calls in flight finish on the version they started with.
//! - Platform policies stay compiled. Workspace policies are loaded on first
//!   use (from the artifact cache) and kept in a cache bounded by memory,
//!   least recently used first out.
//! - The previous version of each policy is kept for rollback.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher};

use super::artifacts::ArtifactCache;
use super::deploy::{self, scope_dir};
use super::history::{History, KeptVersion, write_atomic};
use super::stats::PolicyStats;
use super::status::{PolicyStatus, rfc3339};
use super::{LoadedPolicy, Manifest, Mode, PolicySet, PolicySource, Scope};
use crate::runtime::{CompiledPolicy, Runtime, Stage, sha256_hex};

/// `[policies]` settings, paths resolved.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The deployment directory.
    pub dir: PathBuf,
    /// Precompiled artifacts and kept versions.
    pub cache_dir: PathBuf,
    /// Memory the compiled workspace policies may hold.
    pub cache_memory_bytes: usize,
    /// How long to wait for a burst of file events to settle.
    pub debounce: Duration,
}

impl RegistryConfig {
    /// The `[policies]` section of `config`, for the deployment directory
    /// `dir` (already resolved).
    pub fn from_config(config: &crate::config::Config, dir: PathBuf) -> Self {
        let p = &config.policies;
        RegistryConfig {
            dir,
            cache_dir: config.resolve(&p.cache_dir),
            cache_memory_bytes: usize::try_from(p.cache_memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            debounce: Duration::from_millis(p.debounce_ms),
        }
    }
}

/// Why the registry cannot start or act.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A directory cannot be created or read.
    #[error("policies: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory cannot be watched.
    #[error("policies: cannot watch {path}: {message}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Rollback is not possible.
    #[error("rollback {name} ({scope}): {message}")]
    Rollback {
        /// The policy.
        name: String,
        /// Its scope.
        scope: String,
        /// Why.
        message: String,
    },
}

/// A validated policy as deployed.
#[derive(Debug, Clone)]
struct Entry {
    manifest: Manifest,
    manifest_text: Arc<str>,
    sha256: String,
    wasm_path: PathBuf,
    data: Option<Arc<[u8]>>,
    loaded_at: SystemTime,
    stats: Arc<PolicyStats>,
    /// Platform policies stay loaded; workspace ones are loaded on use.
    loaded: Option<Arc<LoadedPolicy>>,
}

/// A version that failed validation (the last good one, if any, serves).
#[derive(Debug, Clone)]
struct Failure {
    version: String,
    stage: String,
    sha256: String,
    error: String,
    at: SystemTime,
}

#[derive(Debug, Clone, Default)]
struct WorkspaceEntries {
    generation: u64,
    entries: BTreeMap<String, Entry>,
}

/// What the deployment says now.
#[derive(Debug, Clone)]
struct View {
    platform: Arc<PolicySet>,
    platform_generation: u64,
    platform_entries: BTreeMap<String, Entry>,
    workspaces: HashMap<String, Arc<WorkspaceEntries>>,
    failures: BTreeMap<(String, String), Failure>,
}

struct CachedSet {
    set: Arc<PolicySet>,
    /// The workspace's and the platform's generations it was built from.
    generation: (u64, u64),
    cost: usize,
}

/// Workspace policy sets, least recently used first out once over budget.
struct SetCache {
    sets: lru::LruCache<String, CachedSet>,
    bytes: usize,
    budget: usize,
}

/// The live deployment.
pub struct Registry {
    runtime: Arc<Runtime>,
    builtins: PolicySet,
    config: RegistryConfig,
    artifacts: ArtifactCache,
    history: History,
    view: ArcSwap<View>,
    cache: Mutex<SetCache>,
    /// Compiled components by SHA-256, shared by every workspace using one
    /// while any of them holds it.
    compiled: Mutex<HashMap<String, std::sync::Weak<CompiledPolicy>>>,
    /// One reload at a time.
    reloading: Mutex<()>,
    generation: AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("dir", &self.config.dir).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.to_path_buf();
    move |source| RegistryError::Io { what, path, source }
}

impl Registry {
    /// Opens the deployment directory (creating `platform/` and
    /// `workspaces/` if missing) and loads everything in it.
    pub fn open(
        runtime: Arc<Runtime>,
        builtins: PolicySet,
        mut config: RegistryConfig,
    ) -> Result<Arc<Self>, RegistryError> {
        for sub in ["platform", "workspaces"] {
            let dir = config.dir.join(sub);
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        }
        // The watcher reports absolute paths: a relative root (`./policies.d`
        // from a relative config path) would match none of them.
        config.dir = std::fs::canonicalize(&config.dir).map_err(io("resolve", &config.dir))?;
        let artifacts_dir = config.cache_dir.join("artifacts");
        let artifacts = ArtifactCache::open(&artifacts_dir).map_err(io("create", &artifacts_dir))?;
        let history = History::new(&config.cache_dir.join("history"));
        let view = View {
            platform: Arc::new(builtins.clone()),
            platform_generation: 0,
            platform_entries: BTreeMap::new(),
            workspaces: HashMap::new(),
            failures: BTreeMap::new(),
        };
        let budget = config.cache_memory_bytes;
        let registry = Arc::new(Registry {
            runtime,
            builtins,
            config,
            artifacts,
            history,
            view: ArcSwap::from_pointee(view),
            cache: Mutex::new(SetCache { sets: lru::LruCache::unbounded(), bytes: 0, budget }),
            compiled: Mutex::new(HashMap::new()),
            reloading: Mutex::new(()),
            generation: AtomicU64::new(1),
        });
        registry.reload_all()?;
        Ok(registry)
    }

    /// Re-reads the whole directory (start, SIGHUP).
    pub fn reload_all(&self) -> Result<(), RegistryError> {
        let ids = deploy::workspace_ids(&self.config.dir).map_err(io("list", &self.config.dir))?;
        // Workspaces whose directory is gone lose their policies.
        let known: std::collections::HashSet<&String> = ids.iter().collect();
        let gone: Vec<String> = self.view.load().workspaces.keys().filter(|id| !known.contains(id)).cloned().collect();
        let scopes: Vec<Scope> =
            std::iter::once(Scope::Platform).chain(gone.into_iter().chain(ids).map(Scope::Workspace)).collect();
        self.reload_scopes(&scopes);
        Ok(())
    }

    /// Re-reads one scope's directory and swaps in what validates.
    pub fn reload_scope(&self, scope: &Scope) {
        self.reload_scopes(std::slice::from_ref(scope));
    }

    /// Re-reads several scopes and swaps the result in at once.
    pub fn reload_scopes(&self, scopes: &[Scope]) {
        let _guard = lock(&self.reloading);
        let mut view = (*self.view.load_full()).clone();
        for scope in scopes {
            self.apply_scope(&mut view, scope);
        }
        self.view.store(Arc::new(view));
    }

    /// One scope's directory, validated, into `view`.
    fn apply_scope(&self, view: &mut View, scope: &Scope) {
        let dir = scope_dir(&self.config.dir, scope);
        let old: BTreeMap<String, Entry> = match scope {
            Scope::Platform => view.platform_entries.clone(),
            Scope::Workspace(id) => view.workspaces.get(id).map(|w| w.entries.clone()).unwrap_or_default(),
        };
        let scope_key = scope.to_string();
        let failures = &mut view.failures;
        failures.retain(|(s, _), _| *s != scope_key);
        let pairs = match deploy::pairs(&dir) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot list policies; keeping the current ones");
                return;
            }
        };
        let mut entries = BTreeMap::new();
        for (stem, (toml, wasm)) in &pairs {
            match self.validate(scope, &dir, stem, toml, wasm, old.get(stem)) {
                Ok(entry) => {
                    entries.insert(stem.clone(), entry);
                }
                Err(failure) => {
                    tracing::error!(
                        scope = %scope_key,
                        policy = %stem,
                        version = %failure.version,
                        error = %failure.error,
                        "policy not loaded; the last good version (if any) stays"
                    );
                    if let Some(previous) = old.get(stem) {
                        entries.insert(stem.clone(), previous.clone());
                    }
                    failures.insert((scope_key.clone(), stem.clone()), failure);
                }
            }
        }
        one_enforced_per_stage(&scope_key, &mut entries, failures);
        match scope {
            Scope::Platform => {
                view.platform = Arc::new(self.platform_set(&entries));
                view.platform_entries = entries;
                // Every workspace set embeds the platform's: a new
                // generation makes each stale.
                view.platform_generation = self.generation.fetch_add(1, Ordering::Relaxed);
                self.invalidate_all();
            }
            Scope::Workspace(id) => {
                if entries.is_empty() {
                    view.workspaces.remove(id);
                } else {
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                    view.workspaces.insert(id.clone(), Arc::new(WorkspaceEntries { generation, entries }));
                }
                self.invalidate(id);
            }
        }
    }

    /// Checks one pair: unchanged → the current entry; changed → parsed,
    /// compiled (or loaded from the artifact cache), contract-checked.
    fn validate(
        &self,
        scope: &Scope,
        dir: &Path,
        stem: &str,
        toml: &Path,
        wasm_path: &Path,
        current: Option<&Entry>,
    ) -> Result<Entry, Failure> {
        let fail = |version: &str, stage: &str, sha256: &str, error: String| Failure {
            version: version.into(),
            stage: stage.into(),
            sha256: sha256.into(),
            error,
            at: SystemTime::now(),
        };
        let text = std::fs::read_to_string(toml)
            .map_err(|e| fail("?", "?", "", format!("cannot read {}: {e}", toml.display())))?;
        let wasm = std::fs::read(wasm_path)
            .map_err(|e| fail("?", "?", "", format!("cannot read {}: {e}", wasm_path.display())))?;
        let sha256 = sha256_hex(&wasm);
        let manifest = Manifest::parse(&text).map_err(|e| fail("?", "?", &sha256, e.to_string()))?;
        let (version, stage) = (manifest.version.clone(), manifest.stage.as_str());
        if manifest.name != stem {
            let error = format!("manifest name `{}` must match its file name `{stem}.toml`", manifest.name);
            return Err(fail(&version, stage, &sha256, error));
        }
        let data = match &manifest.data_file {
            None => None,
            Some(file) => {
                let path = deploy::data_path(dir, file).map_err(|e| fail(&version, stage, &sha256, e))?;
                let bytes = std::fs::read(&path)
                    .map_err(|e| fail(&version, stage, &sha256, format!("data file {}: {e}", path.display())))?;
                Some(Arc::<[u8]>::from(bytes))
            }
        };
        if let Some(cur) = current
            && cur.sha256 == sha256
            && *cur.manifest_text == *text
            && cur.data.as_deref() == data.as_deref()
        {
            return Ok(cur.clone());
        }
        let compiled = self.compile(&wasm, &sha256, manifest.stage).map_err(|e| fail(&version, stage, &sha256, e))?;
        let kept = KeptVersion {
            version: version.clone(),
            sha256: sha256.clone(),
            manifest: text.clone(),
            data: manifest.data_file.clone().zip(data.as_deref().map(sha256_hex)),
        };
        if let Err(e) = self.history.activated(scope, stem, kept, &wasm, data.as_deref()) {
            tracing::warn!(policy = stem, error = %e, "previous version not kept: rollback to it will not be possible");
        }
        let stats = Arc::new(PolicyStats::default());
        let loaded = match scope {
            Scope::Platform => {
                let mut p = LoadedPolicy::from_compiled(manifest.clone(), compiled, data.clone(), scope.clone());
                p.stats = stats.clone();
                Some(Arc::new(p))
            }
            // Loaded again on first use; the artifact is cached.
            Scope::Workspace(_) => None,
        };
        tracing::info!(scope = %scope, policy = stem, version = %version, sha256 = %sha256, "policy loaded");
        Ok(Entry {
            manifest,
            manifest_text: Arc::from(text),
            sha256,
            wasm_path: wasm_path.to_path_buf(),
            data,
            loaded_at: SystemTime::now(),
            stats,
            loaded,
        })
    }

    /// A compiled component, shared when another workspace holds it.
    fn compile(&self, wasm: &[u8], sha256: &str, stage: Stage) -> Result<Arc<CompiledPolicy>, String> {
        if let Some(c) = lock(&self.compiled).get(sha256).and_then(std::sync::Weak::upgrade)
            && c.stage == stage
        {
            return Ok(c);
        }
        let (compiled, _) = self.artifacts.load(&self.runtime, wasm, stage).map_err(|e| e.to_string())?;
        let compiled = Arc::new(compiled);
        let mut map = lock(&self.compiled);
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(sha256.to_string(), Arc::downgrade(&compiled));
        Ok(compiled)
    }

    /// The platform's set: built-ins, each replaced by a platform policy of
    /// the same name (a threshold or route policy replaces the built-in of
    /// its stage), then the other platform scorers.
    fn platform_set(&self, entries: &BTreeMap<String, Entry>) -> PolicySet {
        let loaded = |e: &Entry| e.loaded.clone();
        let enforced = |stage: Stage| {
            entries.values().find(|e| e.manifest.stage == stage && e.manifest.mode == Mode::Enforce).and_then(loaded)
        };
        let mut scorers: Vec<Arc<LoadedPolicy>> = self
            .builtins
            .scorers
            .iter()
            .map(|b| entries.get(&b.manifest.name).and_then(loaded).unwrap_or_else(|| b.clone()))
            .collect();
        for e in entries.values() {
            if e.manifest.stage == Stage::Score
                && !self.builtins.scorers.iter().any(|b| b.manifest.name == e.manifest.name)
                && let Some(p) = loaded(e)
            {
                scorers.push(p);
            }
        }
        PolicySet {
            scorers,
            threshold: enforced(Stage::Threshold).unwrap_or_else(|| self.builtins.threshold.clone()),
            route: enforced(Stage::Route).unwrap_or_else(|| self.builtins.route.clone()),
            shadow: self.builtins.shadow.iter().cloned().chain(shadows(entries).filter_map(loaded)).collect(),
        }
    }

    /// A workspace's set: the platform's scorers then its own; its threshold
    /// and route policies replace the platform's for it alone.
    fn workspace_set(&self, platform: &PolicySet, id: &str, ws: &WorkspaceEntries) -> (PolicySet, usize) {
        let scope = Scope::Workspace(id.to_string());
        let mut cost = 0;
        let mut load = |e: &Entry| -> Option<Arc<LoadedPolicy>> {
            match self.load_workspace_entry(e) {
                Ok(compiled) => {
                    cost += compiled.artifact_bytes.max(compiled.wasm_bytes);
                    let mut p =
                        LoadedPolicy::from_compiled(e.manifest.clone(), compiled, e.data.clone(), scope.clone());
                    p.stats = e.stats.clone();
                    p.loaded_at = e.loaded_at;
                    Some(Arc::new(p))
                }
                Err(error) => {
                    tracing::error!(workspace = id, policy = %e.manifest.name, %error, "workspace policy cannot be loaded; skipped");
                    None
                }
            }
        };
        let mut scorers = platform.scorers.clone();
        let (mut threshold, mut route) = (platform.threshold.clone(), platform.route.clone());
        let mut shadow = platform.shadow.clone();
        for e in ws.entries.values() {
            let Some(p) = load(e) else { continue };
            match (e.manifest.stage, e.manifest.mode) {
                (Stage::Score, _) => scorers.push(p),
                (Stage::Threshold, Mode::Enforce) => threshold = p,
                (Stage::Route, Mode::Enforce) => route = p,
                (_, Mode::Shadow) => shadow.push(p),
            }
        }
        (PolicySet { scorers, threshold, route, shadow }, cost)
    }

    /// A workspace policy's component: shared if loaded, else from the
    /// artifact cache (or compiled again from its file if the cache lost it).
    fn load_workspace_entry(&self, e: &Entry) -> Result<Arc<CompiledPolicy>, String> {
        if let Some(c) = lock(&self.compiled).get(&e.sha256).and_then(std::sync::Weak::upgrade) {
            return Ok(c);
        }
        let wasm = match std::fs::read(&e.wasm_path) {
            Ok(w) if sha256_hex(&w) == e.sha256 => w,
            // Replaced on disk since it was validated (its reload is on the
            // way): the kept copy is the validated one.
            _ => self.history.blob(&e.sha256).map_err(|err| format!("component {}: {err}", e.sha256))?,
        };
        self.compile(&wasm, &e.sha256, e.manifest.stage)
    }

    fn invalidate(&self, id: &str) {
        let mut cache = lock(&self.cache);
        if let Some(old) = cache.sets.pop(id) {
            cache.bytes -= old.cost;
        }
    }

    fn invalidate_all(&self) {
        let mut cache = lock(&self.cache);
        cache.sets.clear();
        cache.bytes = 0;
    }

    /// Memory the cached workspace sets account for, and how many there are.
    pub fn cache_usage(&self) -> (usize, usize) {
        let cache = lock(&self.cache);
        (cache.bytes, cache.sets.len())
    }

    /// Restores the previous version of a policy: its files are written back
    /// into the deployment directory (so the rollback survives a restart) and
    /// loaded at once. The version rolled back from becomes the previous one.
    pub fn rollback(&self, scope: &Scope, name: &str) -> Result<PolicyStatus, RegistryError> {
        let err = |message: String| RegistryError::Rollback { name: name.into(), scope: scope.to_string(), message };
        let record = self.history.record(scope, name);
        let previous = record.previous.ok_or_else(|| err("no previous version is kept".into()))?;
        let dir = scope_dir(&self.config.dir, scope);
        let wasm = self.history.blob(&previous.sha256).map_err(|e| err(e.to_string()))?;
        // Data first, component next, manifest last: each renamed into place.
        if let Some((file, sha)) = &previous.data {
            let path = deploy::data_path(&dir, file).map_err(err)?;
            let bytes = self.history.blob(sha).map_err(|e| err(e.to_string()))?;
            write_atomic(&path, &bytes).map_err(|e| err(e.to_string()))?;
        }
        write_atomic(&dir.join(format!("{name}.wasm")), &wasm).map_err(|e| err(e.to_string()))?;
        write_atomic(&dir.join(format!("{name}.toml")), previous.manifest.as_bytes())
            .map_err(|e| err(e.to_string()))?;
        self.reload_scope(scope);
        let status = self.status();
        let scope_key = scope.to_string();
        if let Some(failed) = status.iter().find(|s| s.scope == scope_key && s.name == name && s.state == "failed") {
            return Err(err(format!(
                "version {} did not load: {}",
                previous.version,
                failed.error.clone().unwrap_or_default()
            )));
        }
        status
            .into_iter()
            .find(|s| s.scope == scope_key && s.name == name && s.source == "directory")
            .ok_or_else(|| err("restored, but not active".into()))
    }

    /// Watches the directory until the returned watcher is dropped: bursts of
    /// events are debounced, temporary files ignored, and each affected
    /// scope reloaded.
    pub fn watch(self: &Arc<Self>) -> Result<notify::RecommendedWatcher, RegistryError> {
        let root = self.config.dir.clone();
        let werr = |e: notify::Error| RegistryError::Watch { path: root.clone(), message: e.to_string() };
        let (tx, rx) = std::sync::mpsc::channel::<Option<Scope>>();
        let events_root = root.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Our own reads raise access events: only changes count.
            if !matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)) {
                return;
            }
            for path in &event.paths {
                if let Some(scope) = deploy::scope_of(&events_root, path) {
                    let _ = tx.send(scope);
                }
            }
        })
        .map_err(werr)?;
        watcher.watch(&root, RecursiveMode::Recursive).map_err(werr)?;
        let me = Arc::downgrade(self);
        let debounce = self.config.debounce;
        std::thread::Builder::new()
            .name("postern-policies".into())
            .spawn(move || {
                // Ends when the watcher (and with it the sender) is dropped.
                while let Ok(first) = rx.recv() {
                    let mut scopes = vec![first];
                    let until = std::time::Instant::now() + debounce;
                    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
                        match rx.recv_timeout(left) {
                            Ok(s) => scopes.push(s),
                            Err(_) => break,
                        }
                    }
                    let Some(registry) = me.upgrade() else { return };
                    if scopes.iter().any(Option::is_none) {
                        if let Err(e) = registry.reload_all() {
                            tracing::error!(error = %e, "policies not reloaded");
                        }
                        continue;
                    }
                    let mut done: Vec<Scope> = Vec::new();
                    for scope in scopes.into_iter().flatten() {
                        if !done.contains(&scope) {
                            registry.reload_scope(&scope);
                            done.push(scope);
                        }
                    }
                }
            })
            .map_err(|e| RegistryError::Watch { path: root.clone(), message: e.to_string() })?;
        Ok(watcher)
    }
}

/// Shadow threshold and route policies of a scope.
fn shadows(entries: &BTreeMap<String, Entry>) -> impl Iterator<Item = &Entry> {
    entries.values().filter(|e| e.manifest.mode == Mode::Shadow && e.manifest.stage != Stage::Score)
}

/// A scope has at most one enforced threshold and one enforced route
/// policy: the first by name wins, the others fail with a clear error.
fn one_enforced_per_stage(
    scope: &str,
    entries: &mut BTreeMap<String, Entry>,
    failures: &mut BTreeMap<(String, String), Failure>,
) {
    for stage in [Stage::Threshold, Stage::Route] {
        let names: Vec<String> = entries
            .iter()
            .filter(|(_, e)| e.manifest.stage == stage && e.manifest.mode == Mode::Enforce)
            .map(|(n, _)| n.clone())
            .collect();
        for extra in names.iter().skip(1) {
            if let Some(e) = entries.remove(extra) {
                let error = format!(
                    "{scope} already has the enforced {} policy `{}`; set mode = \"shadow\" or remove one",
                    stage.as_str(),
                    names[0]
                );
                failures.insert(
                    (scope.to_string(), extra.clone()),
                    Failure {
                        version: e.manifest.version,
                        stage: stage.as_str().into(),
                        sha256: e.sha256,
                        error,
                        at: SystemTime::now(),
                    },
                );
            }
        }
    }
}

impl PolicySource for Registry {
    fn for_workspace(&self, workspace: &str) -> Arc<PolicySet> {
        let view = self.view.load();
        let Some(ws) = view.workspaces.get(workspace) else { return view.platform.clone() };
        {
            let mut cache = lock(&self.cache);
            if let Some(c) = cache.sets.get(workspace)
                && c.generation == (ws.generation, view.platform_generation)
            {
                return c.set.clone();
            }
        }
        let (set, cost) = self.workspace_set(&view.platform, workspace, ws);
        let set = Arc::new(set);
        let mut cache = lock(&self.cache);
        if let Some(old) = cache.sets.put(
            workspace.to_string(),
            CachedSet { set: set.clone(), generation: (ws.generation, view.platform_generation), cost },
        ) {
            cache.bytes -= old.cost;
        }
        cache.bytes += cost;
        // Least recently used out until within budget (the one just added
        // stays: it is in use).
        while cache.bytes > cache.budget && cache.sets.len() > 1 {
            match cache.sets.pop_lru() {
                Some((_, evicted)) => cache.bytes -= evicted.cost,
                None => break,
            }
        }
        set
    }

    fn status(&self) -> Vec<PolicyStatus> {
        let view = self.view.load();
        let mut rows = Vec::new();
        let entry_row = |scope: &Scope, e: &Entry| {
            PolicyStatus::from_parts(scope, &e.manifest, &e.sha256, "directory", e.loaded_at, &e.stats)
        };
        let in_use = |p: &Arc<LoadedPolicy>| {
            view.platform
                .scorers
                .iter()
                .chain([&view.platform.threshold, &view.platform.route])
                .any(|u| Arc::ptr_eq(u, p))
        };
        for b in self.builtins.scorers.iter().chain([&self.builtins.threshold, &self.builtins.route]) {
            let mut row = PolicyStatus::of(b, "builtin");
            if !in_use(b) {
                row.state = "overridden".into();
            }
            rows.push(row);
        }
        for e in view.platform_entries.values() {
            rows.push(entry_row(&Scope::Platform, e));
        }
        let mut ids: Vec<&String> = view.workspaces.keys().collect();
        ids.sort();
        for id in ids {
            let scope = Scope::Workspace(id.clone());
            for e in view.workspaces[id].entries.values() {
                rows.push(entry_row(&scope, e));
            }
        }
        for ((scope, name), f) in &view.failures {
            rows.push(PolicyStatus {
                scope: scope.clone(),
                name: name.clone(),
                stage: f.stage.clone(),
                version: f.version.clone(),
                sha256: f.sha256.clone(),
                source: "directory".into(),
                state: "failed".into(),
                error: Some(f.error.clone()),
                mode: String::new(),
                on_error: String::new(),
                time_ms: 0,
                memory_mb: 0,
                loaded_at: rfc3339(f.at),
                calls: 0,
                errors: 0,
                p50_us: None,
                p99_us: None,
            });
        }
        rows
    }
}
