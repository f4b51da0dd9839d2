//! The server with a deployment directory: a customer's filter deployed
//! while it runs, operators' `postern policy list|status|rollback` against
//! the admin API (token required) and offline against the directory.

use std::process::Command;
use std::time::{Duration, Instant};

use postern::policy::builtin::ROUTE_DEFAULT;
use serde_json::Value;

use crate::checks::message;
use crate::policies::deploy;
use crate::smtp_util::{TestServer, http, queued_id};

const TOKEN: &str = "test-admin-token-0123456789";

fn route(version: &str, inbox: &str) -> String {
    format!("name = \"mine\"\nstage = \"route\"\nversion = \"{version}\"\n[config]\ninbox = \"{inbox}\"\n")
}

fn policy_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postern")).arg("policy").args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn rows(json: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(json).unwrap_or_else(|e| panic!("{e}: {json}")).as_array().unwrap().clone()
}

fn find<'r>(rows: &'r [Value], scope: &str, name: &str, state: &str) -> Option<&'r Value> {
    rows.iter().find(|r| r["scope"] == scope && r["name"] == name && r["state"] == state)
}

#[test]
fn operators_see_swap_and_roll_back_a_customer_filter_on_a_running_server() {
    let srv = TestServer::start(
        "",
        &format!(
            "[policies]\ndir = \"policies.d\"\ncache_dir = \"cache\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n"
        ),
    );
    let admin = srv.admin.expect("admin API configured").to_string();
    let ws_dir = srv.dir().join("policies.d/workspaces/acme");
    deploy(&ws_dir, "mine", ROUTE_DEFAULT.wasm, &route("1.0.0", "first"));

    // The watcher picks it up; the admin API shows it.
    let started = Instant::now();
    loop {
        let (ok, out, err) = policy_cli(&["list", "--server", &admin, "--token", TOKEN, "--json"]);
        assert!(ok, "{err}");
        if find(&rows(&out), "workspace:acme", "mine", "active").is_some_and(|r| r["version"] == "1.0.0") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never loaded: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = srv.connect();
    c.ehlo();
    let msg = message("alice@customer.test", "help@support.acme.test", "Routed", "Route me, please.");
    let id = queued_id(&c.deliver("alice@customer.test", &["help@support.acme.test"], &msg));
    let verdict: Value =
        serde_json::from_slice(&std::fs::read(srv.spool.join("acme/verdicts").join(format!("{id}.json"))).unwrap())
            .unwrap();
    assert_eq!(verdict["route"]["inbox"], "first");
    assert!(
        verdict["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "mine" && p["version"] == "1.0.0" && p["scope"] == "workspace:acme")
    );

    // The call is counted against the version that made it.
    let (_, out, _) =
        policy_cli(&["status", "mine", "--workspace", "acme", "--server", &admin, "--token", TOKEN, "--json"]);
    let status = rows(&out);
    let v1 = find(&status, "workspace:acme", "mine", "active").expect("v1 active");
    assert!(v1["calls"].as_u64().unwrap() >= 1, "{v1}");
    deploy(&ws_dir, "mine", ROUTE_DEFAULT.wasm, &route("2.0.0", "second"));
    let started = Instant::now();
    loop {
        let (_, out, _) =
            policy_cli(&["status", "mine", "--workspace", "acme", "--server", &admin, "--token", TOKEN, "--json"]);
        if rows(&out).iter().any(|r| r["version"] == "2.0.0" && r["state"] == "active") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "v2 never loaded: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, out, err) = policy_cli(&["rollback", "mine", "--workspace", "acme", "--server", &admin, "--token", TOKEN]);
    assert!(ok, "{err}");
    assert!(out.contains("rolled back mine (workspace:acme) to version 1.0.0"), "{out}");
    let (_, out, _) =
        policy_cli(&["status", "mine", "--workspace", "acme", "--server", &admin, "--token", TOKEN, "--json"]);
    let status = rows(&out);
    let active = find(&status, "workspace:acme", "mine", "active").expect("active");
    assert_eq!(active["version"], "1.0.0");
    assert!(active["loaded_at"].as_str().is_some_and(|t| t.starts_with("20") && t.contains('T')), "{active}");
    let (ok, text, _) = policy_cli(&["list", "--server", &admin, "--token", TOKEN]);
    assert!(ok && text.starts_with("SCOPE"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("workspace:acme") && l.contains("mine") && l.contains("1.0.0")),
        "{text}"
    );

    // No token, no admin.
    let (ok, _, err) = policy_cli(&["list", "--server", &admin, "--token", "wrong-token-wrong-token"]);
    assert!(!ok && err.contains("401"), "{err}");
    let (status, body) =
        http(srv.admin.unwrap(), b"GET /v1/admin/policies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 401, "{body}");
}

#[test]
fn offline_status_validates_a_directory_and_names_what_is_broken() {
    let scratch = crate::checks::Scratch::new();
    let dir = scratch.0.join("policies.d");
    deploy(&dir.join("workspaces/acme"), "mine", ROUTE_DEFAULT.wasm, &route("1.0.0", "x"));
    deploy(
        &dir.join("platform"),
        "broken",
        b"\0asm not really",
        "name = \"broken\"\nstage = \"score\"\nversion = \"0.0.1\"\n",
    );
    let cache = scratch.0.join("cache");
    let (ok, out, err) =
        policy_cli(&["status", "--dir", dir.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let rows = rows(&out);
    assert!(find(&rows, "workspace:acme", "mine", "active").is_some(), "{out}");
    let broken = find(&rows, "platform", "broken", "failed").expect("broken module reported");
    assert!(broken["error"].as_str().unwrap().contains("ompil"), "{broken}");
    assert!(find(&rows, "platform", "spam-score", "active").is_some_and(|r| r["source"] == "builtin"), "{out}");
    let (ok, _, err) = policy_cli(&["list"]);
    assert!(!ok && err.contains("--server"), "{err}");
}

#[test]
fn check_judges_with_a_deployment_directory_as_a_customer_tests_a_filter() {
    let scratch = crate::checks::Scratch::new();
    let dir = scratch.0.join("policies.d");
    let manifest = route("0.3.0", "from-my-filter").replace("name = \"mine\"", "name = \"route\"");
    deploy(&dir.join("platform"), "route", ROUTE_DEFAULT.wasm, &manifest);
    deploy(
        &dir.join("platform"),
        "half",
        &ROUTE_DEFAULT.wasm[..100],
        "name = \"half\"\nstage = \"route\"\nversion = \"0\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .current_dir(&scratch.0)
        .args(["check", "--json", "--policies"])
        .arg(&dir)
        .arg(crate::util::fixture("clean.eml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["route"]["inbox"], "from-my-filter", "{v}");
    assert!(v["policies"].as_array().unwrap().iter().any(|p| p["name"] == "route" && p["version"] == "0.3.0"), "{v}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("policy half (platform) not loaded"), "{stderr}");
}
