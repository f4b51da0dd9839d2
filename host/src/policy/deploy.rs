//! The deployment directory on disk: `platform/` and `workspaces/<id>/`,
//! each policy a component `NAME.wasm` beside its manifest `NAME.toml` (and
//! the data file the manifest names). Editors' temporary files are ignored;
//! only complete pairs count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Scope;
use crate::directory::is_valid_id;

/// Where a scope's policies live under the deployment directory.
pub fn scope_dir(root: &Path, scope: &Scope) -> PathBuf {
    match scope {
        Scope::Platform => root.join("platform"),
        Scope::Workspace(id) => root.join("workspaces").join(id),
    }
}

/// The scope a changed path belongs to (`None`: not a policy file of any
/// scope, or a file to ignore). `Some(None)` means "every workspace" (the
/// `workspaces/` directory itself changed).
pub fn scope_of(root: &Path, path: &Path) -> Option<Option<Scope>> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
    if let Some(name) = parts.last()
        && parts.len() > 1
        && ignored(name)
    {
        return None;
    }
    match parts.as_slice() {
        ["platform", ..] => Some(Some(Scope::Platform)),
        ["workspaces"] => Some(None),
        ["workspaces", id, ..] if is_valid_id(id) => Some(Some(Scope::Workspace((*id).to_string()))),
        _ => None,
    }
}

/// Editors' and deployers' temporary files: hidden files, backups, swap
/// files, partial downloads. Deploy by writing elsewhere (or to such a
/// name) and renaming into place.
pub fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || [".swp", ".swx", ".tmp", ".part", ".partial", ".new", ".bak"].iter().any(|s| name.ends_with(s))
}

/// The policy pairs of one scope directory: stem → (manifest, component).
/// A stem with only one of the two files is not a policy (yet).
pub fn pairs(dir: &Path) -> std::io::Result<BTreeMap<String, (PathBuf, PathBuf)>> {
    let mut pairs = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(pairs),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let (Some(stem), Some("toml")) =
            (path.file_stem().and_then(|s| s.to_str()), path.extension().and_then(|e| e.to_str()))
        else {
            continue;
        };
        if ignored(stem) {
            continue;
        }
        let wasm = path.with_extension("wasm");
        if wasm.is_file() {
            pairs.insert(stem.to_string(), (path.clone(), wasm));
        }
    }
    Ok(pairs)
}

/// The workspace ids that have a directory under `workspaces/`.
pub fn workspace_ids(root: &Path) -> std::io::Result<Vec<String>> {
    let dir = root.join("workspaces");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(id) = entry.file_name().to_str()
            && is_valid_id(id)
            && entry.path().is_dir()
        {
            ids.push(id.to_string());
        }
    }
    ids.sort();
    Ok(ids)
}

/// A data file name from a manifest: a plain file name in the scope's
/// directory (no path, so a policy cannot read another scope's files).
pub fn data_path(dir: &Path, file: &str) -> Result<PathBuf, String> {
    if file.is_empty() || file.contains('/') || file.contains('\\') || file == "." || file == ".." {
        return Err(format!("data_file `{file}` must be a file name in the policy's directory"));
    }
    Ok(dir.join(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_of_paths_and_ignored_names() {
        let root = Path::new("/srv/policies.d");
        assert_eq!(scope_of(root, &root.join("platform/spam.wasm")), Some(Some(Scope::Platform)));
        assert_eq!(
            scope_of(root, &root.join("workspaces/acme/filter.toml")),
            Some(Some(Scope::Workspace("acme".into())))
        );
        assert_eq!(scope_of(root, &root.join("workspaces/acme")), Some(Some(Scope::Workspace("acme".into()))));
        assert_eq!(scope_of(root, &root.join("workspaces")), Some(None));
        assert_eq!(scope_of(root, &root.join("workspaces/Bad Id/x.toml")), None);
        assert_eq!(scope_of(root, &root.join("platform/.spam.wasm.tmp")), None);
        assert_eq!(scope_of(root, &root.join("platform/spam.toml~")), None);
        assert_eq!(scope_of(root, &root.join("platform/.#spam.toml")), None);
        assert_eq!(scope_of(root, &root.join("other/x.toml")), None);
        assert!(data_path(root, "../x").is_err());
        assert!(data_path(root, "model.bin").is_ok());
    }
}
