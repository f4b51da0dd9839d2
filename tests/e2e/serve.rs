//! The `postern serve` binary as an operator runs it: the embedded default
//! answering Debian's `swaks`, signals (SIGHUP reload, SIGTERM drain), JSON
//! logs, and SIGKILL under load losing no acknowledged message.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::checks::{Scratch, message};
use crate::smtp_util::{Client, config_text, dot_stuff, http, queued_id};

/// A `postern serve` child process; killed on drop.
struct Served {
    child: Child,
    smtp: SocketAddr,
    http: SocketAddr,
    admin: Option<SocketAddr>,
    spool: PathBuf,
    stderr: PathBuf,
}

impl Served {
    /// Starts the binary in `cwd` with `args` after `serve` and waits for
    /// the lines saying where it listens.
    fn start(cwd: &Path, args: &[&str]) -> Self {
        let stderr = cwd.join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
            .arg("serve")
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn postern serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut smtp, mut http, mut spool, mut admin) = (None, None, None, None);
        while http.is_none() || smtp.is_none() || spool.is_none() {
            let Some(Ok(line)) = lines.next() else {
                panic!("serve exited early: {}", std::fs::read_to_string(&stderr).unwrap_or_default());
            };
            let addr = |l: &str| l.rsplit(' ').next().unwrap().parse::<SocketAddr>().unwrap();
            if line.starts_with("postern: SMTP listening on ") {
                smtp = Some(addr(&line));
            } else if line.starts_with("postern: HTTP listening on ") {
                http = Some(addr(&line));
            } else if line.starts_with("postern: admin API listening on ") {
                admin = Some(addr(&line));
            } else if let Some(path) = line.strip_prefix("postern: spool ") {
                spool = Some(cwd.join(path));
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Served { child, smtp: smtp.unwrap(), http: http.unwrap(), admin, spool: spool.unwrap(), stderr }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -s {name}");
    }

    /// Waits for the process to exit, at most `limit`.
    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < limit, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn swaks(server: SocketAddr, args: &[&str]) -> Output {
    Command::new("swaks")
        .args(["--server", &server.ip().to_string(), "--port", &server.port().to_string(), "--timeout", "30"])
        .args(args)
        .output()
        .expect("swaks is installed by scripts/setup (apt-get install swaks)")
}

/// The final reply swaks printed for the message (after DATA), e.g.
/// `250 2.0.0 Message accepted…`, or the RCPT refusal.
fn swaks_outcome(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('<'))
        .filter_map(|l| {
            // "<-  250 …", "<~  250 …" (TLS), "<** 550 …" (error).
            let reply = l.trim_start_matches(|c: char| !c.is_ascii_digit());
            (reply.len() > 4 && reply.as_bytes()[3] == b' ').then_some(reply)
        })
        .filter(|r| !r.starts_with("221") && !r.starts_with("220"))
        .collect();
    replies.last().unwrap_or(&"").to_string()
}

#[test]
fn the_embedded_default_answers_swaks_for_the_example_workspace() {
    let scratch = Scratch::new();
    let mut srv = Served::start(&scratch.0, &["--smtp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]);
    assert_eq!(srv.spool, scratch.0.join("./var/spool"), "the spool is under the local data dir");

    let out = swaks(srv.smtp, &["--to", "help@support.acme.test", "--from", "alice@customer.test"]);
    let outcome = swaks_outcome(&out);
    assert!(outcome.starts_with("250 2.0.0 Message accepted for delivery as "), "{outcome}\n{}", srv.log());
    let out = swaks(srv.smtp, &["--to", "help@nowhere.test", "--from", "alice@customer.test"]);
    assert_eq!(swaks_outcome(&out), "550 5.1.2 Domain not bound to any Crisp website");
    let out = swaks(srv.smtp, &["--to", "help@support.acme.test", "--from", "bob@noauth.test", "--body", "Other text"]);
    assert_eq!(
        swaks_outcome(&out),
        "550 5.7.26 Email not authenticated. The sender must authenticate with at least one of SPF or DKIM: bob@noauth.test"
    );
    let out = swaks(
        srv.smtp,
        &[
            "--to",
            "acme+s-0001@reply.postern.test",
            "--from",
            "alice@customer.test",
            "--tls",
            "--pipeline",
            "--body",
            "A reply",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("TLS started"), "{stdout}");
    assert!(swaks_outcome(&out).starts_with("250 2.0.0 "), "{stdout}");
    let delivered = std::fs::read_dir(srv.spool.join("acme/new")).unwrap().count();
    assert_eq!(delivered, 2);
    let (status, body) = http(srv.http, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, "ok"));

    srv.signal("TERM");
    assert!(srv.wait_exit(Duration::from_secs(20)).success(), "{}", srv.log());
}

fn load_config(scratch: &Scratch, server: &str) -> PathBuf {
    scratch.file(
        "config.toml",
        &config_text(None, server, "[rate_limit]\nworkspace = { count = 1000000, per_seconds = 60 }\n"),
    )
}

#[test]
fn sigterm_lets_an_open_transaction_finish_then_exits() {
    let scratch = Scratch::new();
    let config = load_config(&scratch, "drain_timeout_secs = 20");
    let mut srv = Served::start(&scratch.0, &["--config", config.to_str().unwrap()]);
    let mut busy = Client::connect(srv.smtp);
    busy.ehlo();
    let mut idle = Client::connect(srv.smtp);
    idle.ehlo();
    assert_eq!(busy.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(busy.cmd("RCPT TO:<help@support.acme.test>").code, 250);
    assert_eq!(busy.cmd("DATA").code, 354);

    srv.signal("TERM");
    // The idle session is told to come back later.
    assert_eq!(idle.reply().line(), "421 4.3.2 Service shutting down, please try again later");
    std::thread::sleep(Duration::from_millis(200));
    assert!(srv.child.try_wait().unwrap().is_none(), "still draining the open transaction");
    let msg = message("alice@customer.test", "help@support.acme.test", "Drain", "Sent while the server drains.");
    busy.send(&dot_stuff(&msg));
    let id = queued_id(&busy.reply());
    assert!(srv.spool.join("acme/new").join(id).exists());
    assert_eq!(busy.reply().line(), "421 4.3.2 Service shutting down, please try again later");
    assert!(srv.wait_exit(Duration::from_secs(20)).success(), "{}", srv.log());
}

#[test]
fn sighup_reloads_the_config_and_json_logs_one_line_per_message() {
    let scratch = Scratch::new();
    let config = load_config(&scratch, "log_format = \"json\"");
    let srv = Served::start(&scratch.0, &["--config", config.to_str().unwrap()]);
    let mut c = Client::connect(srv.smtp);
    c.ehlo();
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<x@unbound.test>").line(), "550 5.1.2 Domain not bound to any Crisp website");

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("brand = \"Acme Desk\"\n{text}")).unwrap();
    srv.signal("HUP");
    let started = Instant::now();
    loop {
        let r = c.cmd("RCPT TO:<x@unbound.test>");
        if r.line() == "550 5.1.2 Domain not bound to any Acme Desk website" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not reloaded: {r:?}\n{}", srv.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.cmd("RCPT TO:<help@support.acme.test>").code, 250);
    let msg = message("alice@customer.test", "help@support.acme.test", "Logged", "One line per message.");
    let id = queued_id(&c.data(&msg));
    drop(c);
    let started = Instant::now();
    let line = loop {
        let log = srv.log();
        if let Some(line) = log.lines().find(|l| l.contains(&id)) {
            break line.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no verdict line for {id}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["fields"]["workspace"], "acme", "{v}");
    assert_eq!(v["fields"]["reply"], 250, "{v}");
    assert!(v["fields"]["policies"].as_str().unwrap().contains("spam-score@"), "{v}");
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_message() {
    let scratch = Scratch::new();
    let config = load_config(&scratch, "");
    let mut srv = Served::start(&scratch.0, &["--config", config.to_str().unwrap()]);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|t| {
            let (acked, stop, addr) = (acked.clone(), stop.clone(), srv.smtp);
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Any I/O error (the server died) ends this client.
                    let Ok(()) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let mut c = Client::connect(addr);
                        c.ehlo();
                        for _ in 0..20 {
                            n += 1;
                            let from = format!("sender{t}x{n}@customer.test");
                            let msg = message(
                                &from,
                                "help@support.acme.test",
                                &format!("Load {t}/{n}"),
                                &format!("Message {n} of client {t}, with its own text."),
                            );
                            let r = c.deliver(&from, &["help@support.acme.test"], &msg);
                            if r.code == 250 {
                                acked.lock().unwrap().push((queued_id(&r), msg));
                            }
                        }
                    })) else {
                        return;
                    };
                }
            })
        })
        .collect();
    // Let the load build up, then pull the plug mid-flight.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 60 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    srv.child.kill().unwrap(); // SIGKILL
    srv.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let acked = acked.lock().unwrap();
    assert!(acked.len() >= 60, "only {} messages acknowledged before the kill", acked.len());
    for (id, msg) in acked.iter() {
        let path = srv.spool.join("acme/new").join(id);
        let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("acknowledged {id} is not on disk: {e}"));
        assert!(stored.ends_with(msg.as_str()), "{id} is not intact");
        assert!(srv.spool.join("acme/verdicts").join(format!("{id}.json")).exists(), "{id} has no verdict");
    }
}

#[test]
fn a_policy_deployed_beside_a_relative_config_is_picked_up_while_serving() {
    let scratch = Scratch::new();
    let token = "serve-test-token-0123456789";
    let text = config_text(
        None,
        "",
        &format!("[policies]\ndir = \"policies.d\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n"),
    );
    scratch.file("config.toml", &text);
    // A relative config path: the deployment directory is relative too.
    let srv = Served::start(&scratch.0, &["--config", "config.toml"]);
    let admin = srv.admin.expect("admin API").to_string();
    let manifest = "name = \"route-default\"\nstage = \"route\"\nversion = \"7.0.0\"\n[config]\ninbox = \"seven\"\n";
    crate::policies::deploy(
        &scratch.0.join("policies.d/platform"),
        "route-default",
        postern::policy::builtin::ROUTE_DEFAULT.wasm,
        manifest,
    );
    let started = Instant::now();
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_postern"))
            .args(["policy", "list", "--json", "--server", &admin, "--token", token])
            .output()
            .unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if rows.as_array().is_some_and(|r| r.iter().any(|p| p["source"] == "directory" && p["version"] == "7.0.0")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never picked up: {rows}\n{}", srv.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
