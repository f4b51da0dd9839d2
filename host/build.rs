//! Builds the policy components (the default policies in `policies/` and the
//! test guests in `tests/guests/`) for `wasm32-wasip2` and copies them into
//! `OUT_DIR`, so the host embeds the defaults and the tests find the guests
//! with no manual step.
//!
//! The nested cargo uses its own target directory, so it never waits on the
//! lock of the build that runs this script.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "policy";

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ has a parent").to_path_buf();
    let out_dir = PathBuf::from(env("OUT_DIR"));
    for dir in ["policies", "policy-sdk", "tests/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=POSTERN_WASM_TARGET_DIR");

    let crates = guest_crates(&root);
    ensure_target();
    let target_dir = std::env::var_os("POSTERN_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("policy-wasm"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--locked", "--target", TARGET, "--profile", PROFILE, "--target-dir"])
        .arg(&target_dir);
    for name in &crates {
        cmd.args(["-p", name]);
    }
    // Do not pass this build's compiler wrappers, flags or target on to the
    // nested one (clippy-driver, coverage flags, …).
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the policy components");
    if !status.success() {
        panic!("building the policy components for {TARGET} failed (see the errors above)");
    }
    let built = target_dir.join(TARGET).join(PROFILE);
    for name in &crates {
        let file = format!("{}.wasm", name.replace('-', "_"));
        let from = built.join(&file);
        std::fs::copy(&from, out_dir.join(&file)).unwrap_or_else(|e| panic!("copy {} to OUT_DIR: {e}", from.display()));
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// Package names of every guest crate: the directories under `policies/` and
/// `tests/guests/` that have a Cargo.toml.
fn guest_crates(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for dir in ["policies", "tests/guests"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        for path in dirs {
            let Ok(toml) = std::fs::read_to_string(path.join("Cargo.toml")) else { continue };
            let name = toml
                .lines()
                .find_map(|l| l.trim().strip_prefix("name = \"").and_then(|r| r.strip_suffix('"')))
                .unwrap_or_else(|| panic!("{}: no package name", path.display()));
            names.push(name.to_string());
        }
    }
    names
}

/// Makes sure the toolchain can build for the guest target, adding it with
/// rustup when missing.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let present = |root: &Option<PathBuf>| root.as_ref().is_some_and(|r| r.join("lib/rustlib").join(TARGET).exists());
    if present(&sysroot) {
        return;
    }
    let added = Command::new("rustup").args(["target", "add", TARGET]).status().is_ok_and(|s| s.success());
    if !added || !present(&sysroot) {
        panic!(
            "the Rust target {TARGET} is not installed and `rustup target add {TARGET}` failed: \
             install it (rustup target add {TARGET}) and build again"
        );
    }
}
