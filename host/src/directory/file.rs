//! The directory as a TOML file, swapped atomically on reload; a file that
//! fails to parse never replaces the last good one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher};
use serde::Deserialize;

use super::{Directory, SessionRecord, WorkspaceRecord, is_valid_id};

/// Why a directory file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The file cannot be read.
    #[error("cannot read directory {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Invalid TOML, unknown key, bad id, duplicate id or domain.
    #[error("invalid directory {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file cannot be watched.
    #[error("cannot watch directory {path}: {message}")]
    Watch {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    workspace: Vec<WorkspaceRecord>,
    #[serde(default)]
    session: Vec<SessionRecord>,
}

/// One consistent view of the directory.
#[derive(Debug, Default)]
pub struct Snapshot {
    by_id: HashMap<String, Arc<WorkspaceRecord>>,
    by_domain: HashMap<String, Arc<WorkspaceRecord>>,
    sessions: HashMap<String, SessionRecord>,
}

impl Snapshot {
    /// Parses and checks the file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: FileFormat = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        let mut snap = Snapshot::default();
        for ws in file.workspace {
            if !is_valid_id(&ws.id) {
                return Err(format!("workspace id `{}` must match [a-z0-9_-]{{1,64}}", ws.id));
            }
            let ws = Arc::new(WorkspaceRecord {
                domains: ws.domains.iter().map(|d| d.trim_end_matches('.').to_ascii_lowercase()).collect(),
                settings_json: ws
                    .settings
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap_or_default()))
                    .collect(),
                ..ws
            });
            for domain in &ws.domains {
                if let Some(other) = snap.by_domain.insert(domain.clone(), ws.clone()) {
                    return Err(format!("domain `{domain}` is bound to both `{}` and `{}`", other.id, ws.id));
                }
            }
            if snap.by_id.insert(ws.id.clone(), ws.clone()).is_some() {
                return Err(format!("workspace `{}` is defined twice", ws.id));
            }
        }
        for s in file.session {
            if !is_valid_id(&s.id) {
                return Err(format!("session id `{}` must match [a-z0-9_-]{{1,64}}", s.id));
            }
            // A session may name a workspace that no longer exists: that is
            // the `workspace_missing` case, not a file error.
            if snap.sessions.insert(s.id.clone(), s.clone()).is_some() {
                return Err(format!("session `{}` is defined twice", s.id));
            }
        }
        Ok(snap)
    }

    /// Counts (workspaces, sessions).
    pub fn len(&self) -> (usize, usize) {
        (self.by_id.len(), self.sessions.len())
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.sessions.is_empty()
    }
}

/// The TOML-file directory.
pub struct FileDirectory {
    path: PathBuf,
    current: ArcSwap<Snapshot>,
}

impl std::fmt::Debug for FileDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDirectory").field("path", &self.path).finish_non_exhaustive()
    }
}

impl FileDirectory {
    /// Loads the file.
    pub fn load(path: &Path) -> Result<Self, DirectoryError> {
        let snap = read(path)?;
        Ok(FileDirectory { path: path.to_path_buf(), current: ArcSwap::from_pointee(snap) })
    }

    /// Re-reads the file; on error the current view stays.
    pub fn reload(&self) -> Result<(), DirectoryError> {
        let snap = read(&self.path)?;
        self.current.store(Arc::new(snap));
        Ok(())
    }

    /// Reloads whenever the file is written or replaced, until the returned
    /// watcher is dropped. Failed reloads are logged and keep the last good
    /// view.
    pub fn watch(self: &Arc<Self>) -> Result<notify::RecommendedWatcher, DirectoryError> {
        let err = |e: notify::Error| DirectoryError::Watch { path: self.path.clone(), message: e.to_string() };
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        let name = self.path.file_name().map(|n| n.to_os_string());
        let me = Arc::downgrade(self);
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Our own reads raise Access events: react to writes only.
            if !matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)) {
                return;
            }
            if !event.paths.iter().any(|p| p.file_name().map(|n| n.to_os_string()) == name) {
                return;
            }
            if let Some(dir) = me.upgrade() {
                match dir.reload() {
                    Ok(()) => tracing::info!(path = %dir.path.display(), "workspace directory reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "workspace directory not reloaded; keeping the last good one")
                    }
                }
            }
        })
        .map_err(err)?;
        watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(err)?;
        Ok(watcher)
    }

    /// The current view.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
}

fn read(path: &Path) -> Result<Snapshot, DirectoryError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| DirectoryError::Read { path: path.to_path_buf(), source })?;
    Snapshot::parse(&text).map_err(|message| DirectoryError::Invalid { path: path.to_path_buf(), message })
}

impl Directory for Snapshot {
    fn workspace_for_domain(&self, domain: &str) -> Option<Arc<WorkspaceRecord>> {
        self.by_domain.get(&domain.trim_end_matches('.').to_ascii_lowercase()).cloned()
    }

    fn workspace(&self, id: &str) -> Option<Arc<WorkspaceRecord>> {
        self.by_id.get(id).cloned()
    }

    fn session(&self, id: &str) -> Option<SessionRecord> {
        self.sessions.get(id).cloned()
    }
}

impl Directory for FileDirectory {
    fn workspace_for_domain(&self, domain: &str) -> Option<Arc<WorkspaceRecord>> {
        self.current.load().workspace_for_domain(domain)
    }

    fn workspace(&self, id: &str) -> Option<Arc<WorkspaceRecord>> {
        self.current.load().workspace(id)
    }

    fn session(&self, id: &str) -> Option<SessionRecord> {
        self.current.load().session(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[workspace]]
id = "acme"
domains = ["Support.Acme.Test"]
junk_filter = false
[workspace.settings]
vip = ["boss@acme.test"]

[[workspace]]
id = "globex"
domains = ["help.globex.test"]
blocked = true

[[session]]
id = "s-0001"
workspace = "acme"

[[session]]
id = "s-orphan"
workspace = "deleted-ws"
"#;

    #[test]
    fn parses_the_schema_with_defaults() {
        let snap = Snapshot::parse(EXAMPLE).unwrap();
        assert_eq!(snap.len(), (2, 2));
        let acme = snap.by_domain.get("support.acme.test").unwrap();
        assert_eq!(acme.id, "acme");
        assert!(!acme.junk_filter && acme.subscription_active && acme.email_redirect && !acme.blocked);
        assert!(acme.settings.contains_key("vip"));
        assert_eq!(acme.settings_json, vec![("vip".to_string(), r#"["boss@acme.test"]"#.to_string())]);
        assert!(snap.by_id["globex"].blocked);
        assert_eq!(snap.sessions["s-orphan"].workspace, "deleted-ws");
    }

    #[test]
    fn refuses_unknown_keys_bad_ids_and_duplicates() {
        let err = Snapshot::parse("[[workspace]]\nid = \"a\"\ncolour = 1\n").unwrap_err();
        assert!(err.contains("colour"), "{err}");
        assert!(Snapshot::parse("[[workspace]]\nid = \"Bad Id\"\n").is_err());
        assert!(Snapshot::parse("[[workspace]]\nid = \"a\"\n[[workspace]]\nid = \"a\"\n").is_err());
        let err = Snapshot::parse(
            "[[workspace]]\nid = \"a\"\ndomains = [\"x.test\"]\n[[workspace]]\nid = \"b\"\ndomains = [\"X.test\"]\n",
        )
        .unwrap_err();
        assert!(err.contains("x.test"), "{err}");
    }

    #[test]
    fn reload_keeps_the_last_good_view() {
        let dir = std::env::temp_dir().join(format!("postern-dir-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("workspaces.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        let d = FileDirectory::load(&path).unwrap();
        assert!(d.workspace_for_domain("SUPPORT.acme.test.").is_some());
        std::fs::write(&path, "[[workspace]]\nid = \"new\"\ndomains = [\"new.test\"]\n").unwrap();
        d.reload().unwrap();
        assert!(d.workspace_for_domain("support.acme.test").is_none());
        assert_eq!(d.workspace("new").unwrap().domains, vec!["new.test".to_string()]);
        std::fs::write(&path, "not toml [").unwrap();
        assert!(d.reload().is_err());
        assert!(d.workspace("new").is_some(), "a broken file never replaces the last good one");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
