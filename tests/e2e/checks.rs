//! The fixed checks through `postern check --config … --json`, with DNS
//! answered by a real server on loopback (the zone file served in-process,
//! or a test server that never answers or answers SERVFAIL), and
//! DKIM-signed messages produced here from a fixed test key. One test per
//! catalog code, with the exact text.

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::fixture;

const GOOD_IP: &str = "192.0.2.10";

fn auth_dir() -> PathBuf {
    fixture("auth")
}

fn config() -> PathBuf {
    auth_dir().join("config.toml")
}

/// A temporary directory removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "postern-checks-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub(crate) fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::File::create(&path).unwrap().write_all(content.as_bytes()).unwrap();
        path
    }

    /// A config like the fixture's, with `extra` appended and absolute paths.
    fn config(&self, dns: &str, extra: &str) -> PathBuf {
        let dir = auth_dir();
        self.file(
            "config.toml",
            &format!(
                "reply_domain = \"reply.example.test\"\n[limits]\ntext_max_bytes = 4096\n[dns]\n{dns}\n[directory]\nfile = \"{}\"\n{extra}",
                dir.join("workspaces.toml").display()
            ),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A message; `body` is its text/plain body.
pub(crate) fn message(from: &str, to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 02 Jan 2024 09:15:00 +0000\r\n\
         Message-ID: <{}@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        subject.len() * 7919 + body.len()
    )
}

/// Signs with the fixture key as `d=dkim.test; s=test`.
fn dkim_sign(raw: &str) -> String {
    use mail_auth::common::crypto::{RsaKey, Sha256};
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    let pem = std::fs::read_to_string(auth_dir().join("dkim-test.key")).unwrap();
    // The PEM loader is deprecated in favour of DER, but the fixture key is
    // kept readable as PEM.
    #[allow(deprecated)]
    let key = RsaKey::<Sha256>::from_rsa_pem(&pem).expect("test key");
    let signature = DkimSigner::from_key(key)
        .domain("dkim.test")
        .selector("test")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(raw.as_bytes())
        .expect("sign");
    format!("{}{raw}", signature.to_header())
}

struct Run<'a> {
    config: PathBuf,
    ip: &'a str,
    helo: &'a str,
    mail_from: Option<&'a str>,
    rcpt: &'a str,
    extra: Vec<&'a str>,
}

impl<'a> Run<'a> {
    fn new(rcpt: &'a str) -> Self {
        Run { config: config(), ip: GOOD_IP, helo: "mx.sender.test", mail_from: None, rcpt, extra: vec![] }
    }

    fn check(&self, files: &[&Path]) -> Vec<Value> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_postern"));
        cmd.arg("check").arg("--json").arg("--config").arg(&self.config);
        cmd.args(["--client-ip", self.ip, "--helo", self.helo, "--rcpt", self.rcpt]);
        if let Some(m) = self.mail_from {
            cmd.args(["--mail-from", m]);
        }
        cmd.args(&self.extra);
        cmd.args(files);
        let out = cmd.output().expect("run postern");
        assert!(out.status.success(), "postern failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
    }

    fn one(&self, raw: &str) -> Value {
        let s = Scratch::new();
        let file = s.file("m.eml", raw);
        self.check(&[&file]).remove(0)
    }
}

fn assert_code(v: &Value, code: &str, smtp: u64, enhanced: &str, text: &str) {
    assert_eq!(v["code"], code, "{v:#}");
    assert_eq!(v["smtp"]["code"], smtp, "{v:#}");
    assert_eq!(v["smtp"]["enhanced"], enhanced, "{v:#}");
    assert_eq!(v["smtp"]["text"], text, "{v:#}");
}

fn step<'v>(v: &'v Value, name: &str) -> &'v Value {
    v["trace"].as_array().unwrap().iter().find(|t| t["step"] == name).unwrap_or_else(|| panic!("no step {name}: {v:#}"))
}

const RCPT: &str = "help@support.acme.test";

fn good(subject: &str) -> String {
    message("Alice <alice@sender.test>", RCPT, subject, "Hello, could you look at my invoice please?")
}

#[test]
fn mail_that_passes_every_check_reaches_the_policies_and_is_accepted() {
    let v = Run::new(RCPT).one(&good("Invoice question"));
    assert_eq!(v["action"], "accept", "{v:#}");
    assert_eq!(v["route"]["conversation"], "new-conversation");
    let steps: Vec<_> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["step"].as_str().unwrap(), t["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("parse", "ok"),
            ("recipient", "pass"),
            ("headers", "pass"),
            ("text_size", "pass"),
            ("duplicate", "pass"),
            ("rate_limit", "pass"),
            ("mx", "pass"),
            ("auth", "pass"),
            ("dmarc", "pass"),
            ("score", "ok"),
            ("threshold", "deliver"),
            ("route", "ok"),
        ]
    );
    assert!(v["symbols"].as_array().unwrap().iter().any(|s| s["name"] == "SPF_PASS"), "policies saw SPF pass: {v:#}");
}

#[test]
fn a_reply_to_an_existing_session_is_accepted_into_it() {
    let v = Run::new("acme+s-0001@reply.example.test").one(&good("Re: your ticket"));
    assert_eq!(v["action"], "accept", "{v:#}");
    assert_eq!(
        (v["route"]["conversation"].as_str(), v["route"]["session"].as_str()),
        (Some("existing-session"), Some("s-0001"))
    );
}

#[test]
fn headers_missing() {
    let raw = "To: help@support.acme.test\r\nSubject: who\r\n\r\nno sender\r\n";
    assert_code(
        &Run::new(RCPT).one(raw),
        "headers_missing",
        550,
        "5.6.0",
        "Got invalid email headers (From + To required)",
    );
}

#[test]
fn headers_unacceptable() {
    let raw = message("alice-at-sender.test", RCPT, "x", "hello");
    assert_code(
        &Run::new(RCPT).one(&raw),
        "headers_unacceptable",
        550,
        "5.1.7",
        "Got invalid email headers (From or To not acceptable)",
    );
}

#[test]
fn session_address_invalid() {
    let rcpt = "acme-s-0001@reply.example.test";
    let v = Run::new(rcpt).one(&good("Re: x"));
    assert_code(
        &v,
        "session_address_invalid",
        550,
        "5.1.1",
        &format!("Crisp session in address local part not recognized: {rcpt} (invalid or does not exist)"),
    );
}

#[test]
fn text_oversized_exactly_past_the_limit() {
    // The limit is 4096 bytes of text; the body's line adds CRLF (2 bytes).
    let at_limit = message("alice@sender.test", RCPT, "big", &"a".repeat(4094));
    let over = message("alice@sender.test", RCPT, "bigger", &"b".repeat(4095));
    let s = Scratch::new();
    let v = Run::new(RCPT).check(&[&s.file("a.eml", &at_limit), &s.file("b.eml", &over)]);
    assert_eq!(step(&v[0], "text_size")["outcome"], "pass", "{:#}", v[0]);
    assert_code(&v[1], "text_oversized", 552, "5.3.4", "Email text content is oversized");
}

#[test]
fn duplicate_text_from_the_same_sender_to_the_same_workspace() {
    let s = Scratch::new();
    let a = s.file("a.eml", &message("alice@sender.test", RCPT, "one", "Same   words here."));
    let b = s.file("b.eml", &message("alice@sender.test", RCPT, "two", "same words HERE."));
    let other_sender = s.file("c.eml", &message("bob@sender.test", RCPT, "three", "Same words here."));
    let v = Run::new(RCPT).check(&[&a, &b, &other_sender]);
    assert_eq!(v[0]["action"], "accept", "{:#}", v[0]);
    assert_code(&v[1], "duplicate_text", 550, "5.7.1", "Email with same text already sent recently, please slow down");
    assert_eq!(v[2]["action"], "accept", "another sender is not a duplicate: {:#}", v[2]);
}

#[test]
fn rate_limited_exactly_after_the_allowed_count() {
    let s = Scratch::new();
    let cfg = s.config(
        &format!("zone_file = \"{}\"", auth_dir().join("zone.txt").display()),
        "[rate_limit]\nsender = { count = 3, per_seconds = 3600 }\n",
    );
    let files: Vec<PathBuf> = (0..4)
        .map(|i| {
            s.file(
                &format!("{i}.eml"),
                &message("alice@sender.test", RCPT, &format!("n{i}"), &format!("message number {i}")),
            )
        })
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let v = Run { config: cfg, ..Run::new(RCPT) }.check(&refs);
    for (i, verdict) in v.iter().take(3).enumerate() {
        assert_eq!(verdict["action"], "accept", "message {i}: {verdict:#}");
    }
    assert_eq!(v[3]["action"], "tempfail");
    assert_code(&v[3], "rate_limited", 450, "4.7.1", "Sending address is currently rate-limited, please slow down");
}

#[test]
fn workspace_flood_guard() {
    let s = Scratch::new();
    let cfg = s.config(
        &format!("zone_file = \"{}\"", auth_dir().join("zone.txt").display()),
        "[rate_limit]\nworkspace = { count = 2, per_seconds = 3600 }\n",
    );
    let senders = ["a@sender.test", "b@sender.test", "c@sender.test"];
    let files: Vec<PathBuf> = senders
        .iter()
        .enumerate()
        .map(|(i, f)| s.file(&format!("{i}.eml"), &message(f, RCPT, "x", &format!("text {i}"))))
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let v = Run { config: cfg, ..Run::new(RCPT) }.check(&refs);
    assert_eq!((v[0]["action"].as_str(), v[1]["action"].as_str()), (Some("accept"), Some("accept")));
    assert_eq!(v[2]["code"], "rate_limited");
}

#[test]
fn sender_no_mx_for_an_address_only_domain_and_a_null_mx() {
    for from in ["carol@nomx.test", "dave@nullmx.test"] {
        let v = Run::new(RCPT).one(&message(from, RCPT, "hi", "hello"));
        assert_code(&v, "sender_no_mx", 550, "5.1.8", &format!("From address does not exist or is invalid: {from}"));
    }
    let v = Run::new(RCPT).one(&message("erin@unknown-domain.test", RCPT, "hi", "hello"));
    assert_eq!(v["code"], "sender_no_mx", "NXDOMAIN: {v:#}");
}

#[test]
fn not_authenticated_when_neither_spf_nor_dkim_passes() {
    let run = Run { mail_from: Some("bob@noauth.test"), ..Run::new(RCPT) };
    let v = run.one(&message("bob@noauth.test", RCPT, "hi", "hello"));
    assert_code(
        &v,
        "not_authenticated",
        550,
        "5.7.26",
        "Email not authenticated. The sender must authenticate with at least one of SPF or DKIM: bob@noauth.test",
    );
}

#[test]
fn dkim_alone_authenticates_and_a_tampered_body_does_not() {
    let run = Run { ip: "198.51.100.99", mail_from: Some("news@dkim.test"), ..Run::new(RCPT) };
    let signed =
        dkim_sign(&message("news@dkim.test", RCPT, "Invoice question", "Hello, could you look at my invoice please?"));
    let v = run.one(&signed);
    assert_eq!(v["action"], "accept", "{v:#}");
    assert_eq!(step(&v, "dmarc")["outcome"], "pass", "DKIM is aligned with From: {v:#}");
    let tampered = signed.replace("my invoice", "my order");
    let v = run.one(&tampered);
    assert_eq!(v["code"], "not_authenticated", "{v:#}");
}

#[test]
fn dmarc_rejected_for_quarantine_and_reject_but_not_none() {
    let run = Run { mail_from: Some("bounce@bounce.test"), ..Run::new(RCPT) };
    for policy in ["quarantine", "reject"] {
        let from = format!("ceo@{policy}.test");
        let v = run.one(&message(&from, RCPT, policy, &format!("please wire money ({policy})")));
        assert_code(
            &v,
            "dmarc_rejected",
            550,
            "5.7.1",
            &format!(
                "Email origin could not be verified, you are possibly spoofing {from} (sender DMARC policy is set to {policy})"
            ),
        );
    }
    let v =
        run.one(&message("ceo@monitor.test", RCPT, "Invoice question", "Hello, could you look at my invoice please?"));
    assert_ne!(v["code"], "dmarc_rejected", "{v:#}");
    assert_eq!(step(&v, "dmarc")["outcome"], "pass", "p=none is not enforced: {v:#}");
    let symbols: Vec<_> = v["symbols"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(symbols.contains(&"DMARC_FAIL"), "but policies see the failure: {symbols:?}");
}

#[test]
fn spam_from_an_authenticated_sender_is_still_spam() {
    let raw = std::fs::read_to_string(fixture("spam-dirty.eml"))
        .unwrap()
        .replace("security@paypa1-alerts.test", "alice@sender.test");
    let v = Run::new(RCPT).one(&raw);
    assert_eq!(v["code"], "spam", "{v:#}");
    assert!(
        v["smtp"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Your email has been classified as spam, and we dislike spam (dirty), got score: ")
    );
}

#[test]
fn junk_is_delivered_to_a_workspace_whose_junk_filter_is_off() {
    let raw = std::fs::read_to_string(fixture("spam-junk.eml"))
        .unwrap()
        .replace("deals@promo-mailer.test", "alice@sender.test");
    assert_eq!(Run::new(RCPT).one(&raw)["code"], "spam");
    let v = Run::new("help@help.lenient.test").one(&raw);
    assert_eq!(v["action"], "accept", "{v:#}");
}

#[test]
fn session_missing() {
    let v = Run::new("acme+s-404@reply.example.test").one(&good("Re: x"));
    assert_code(&v, "session_missing", 550, "5.1.1", "Crisp session does not exist");
}

#[test]
fn workspace_blocked() {
    let v = Run::new("help@banned.test").one(&good("x"));
    assert_code(&v, "workspace_blocked", 550, "5.7.1", "Crisp website is blocked");
}

#[test]
fn workspace_missing() {
    let v = Run::new("deleted+s-orphan@reply.example.test").one(&good("Re: x"));
    assert_code(&v, "workspace_missing", 550, "5.1.1", "Crisp website does not exist: deleted for session: s-orphan");
}

#[test]
fn domain_unbound_for_unknown_domains_and_inactive_subscriptions() {
    for rcpt in ["help@nowhere.test", "help@lapsed.test"] {
        let v = Run::new(rcpt).one(&good("x"));
        assert_code(&v, "domain_unbound", 550, "5.1.2", "Domain not bound to any Crisp website");
    }
}

#[test]
fn plugin_disabled() {
    let v = Run::new("help@noplugin.test").one(&good("x"));
    assert_code(&v, "plugin_disabled", 550, "5.7.1", "Crisp email redirection plugin is disabled on Crisp website");
}

#[test]
fn the_brand_word_comes_from_the_config() {
    let s = Scratch::new();
    let cfg = s.config(&format!("zone_file = \"{}\"", auth_dir().join("zone.txt").display()), "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let cfg = s.file("branded.toml", &format!("brand = \"Acme Desk\"\n{text}"));
    let v = Run { config: cfg, ..Run::new("help@noplugin.test") }.one(&good("x"));
    assert_eq!(v["smtp"]["text"], "Acme Desk email redirection plugin is disabled on Acme Desk website");
}

/// A UDP and TCP "nameserver" on loopback that reads queries and never
/// answers.
pub(crate) fn silent_nameserver() -> (String, std::thread::JoinHandle<()>) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    let handle = std::thread::spawn(move || {
        tcp.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        let mut buf = [0u8; 1500];
        while udp.recv_from(&mut buf).is_ok() {
            while let Ok((conn, _)) = tcp.accept() {
                held.push(conn);
            }
        }
    });
    (addr.to_string(), handle)
}

/// A nameserver on loopback that answers SERVFAIL to every query.
fn servfail_nameserver() -> String {
    use hickory_server::proto::op::{Message, MessageType, ResponseCode};
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            let mut reply = Message::new(query.metadata.id, MessageType::Response, query.metadata.op_code);
            reply.metadata.response_code = ResponseCode::ServFail;
            reply.add_queries(query.queries.iter().cloned());
            if let Ok(bytes) = reply.to_vec() {
                let _ = udp.send_to(&bytes, peer);
            }
        }
    });
    addr.to_string()
}

#[test]
fn a_dns_timeout_is_a_temporary_failure_never_a_rejection() {
    let (ns, _server) = silent_nameserver();
    let s = Scratch::new();
    let cfg = s.config(&format!("nameserver = \"{ns}\"\ntimeout_ms = 300"), "");
    let v = Run { config: cfg, ..Run::new(RCPT) }.one(&good("x"));
    assert_eq!(v["action"], "tempfail", "{v:#}");
    assert_code(
        &v,
        "dns_tempfail",
        451,
        "4.4.3",
        "Temporary DNS failure while verifying the sender, please retry later",
    );
    assert_eq!(step(&v, "mx")["outcome"], "tempfail");
}

#[test]
fn a_servfail_is_a_temporary_failure() {
    let ns = servfail_nameserver();
    let s = Scratch::new();
    let cfg = s.config(&format!("nameserver = \"{ns}\"\ntimeout_ms = 1000"), "");
    let v = Run { config: cfg, ..Run::new(RCPT) }.one(&good("x"));
    assert_eq!((v["action"].as_str(), v["code"].as_str()), (Some("tempfail"), Some("dns_tempfail")), "{v:#}");
}

#[test]
fn skipped_checks_show_as_skipped_and_policies_see_not_checked() {
    // Saved mail whose DNS is long gone, to a domain no directory knows.
    let run = Run { extra: vec!["--skip", "recipient,mx,auth,dmarc"], ..Run::new("someone@elsewhere.test") };
    let v = run.one(&message("old@gone-domain.test", "someone@elsewhere.test", "old mail", "kept for years"));
    assert_eq!(v["action"], "accept", "{v:#}");
    for name in ["recipient", "mx", "auth", "dmarc"] {
        assert_eq!(step(&v, name)["outcome"], "skipped", "{name}");
    }
    let names: Vec<_> =
        v["symbols"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert!(
        !names.iter().any(|n| n == "NO_AUTH" || n.starts_with("SPF_")),
        "not-checked is never a failure: {names:?}"
    );
}

#[test]
fn command_line_overrides_and_config_errors() {
    // --dns-zone and --directory without a config file.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_postern"));
    let s = Scratch::new();
    let file = s.file("m.eml", &message("alice@sender.test", RCPT, "x", "hello"));
    let out = cmd
        .args(["check", "--json", "--client-ip", GOOD_IP, "--helo", "mx.sender.test"])
        .arg("--dns-zone")
        .arg(auth_dir().join("zone.txt"))
        .arg("--directory")
        .arg(auth_dir().join("workspaces.toml"))
        .arg(&file)
        .output()
        .unwrap();
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["action"], "accept", "{v:#}");
    assert_eq!(step(&v, "mx")["outcome"], "pass");

    let bad = s.file("bad.toml", "brand = \"x\"\n[dns]\nzonefile = \"zone.txt\"\n");
    let out =
        Command::new(env!("CARGO_BIN_EXE_postern")).arg("check").arg("--config").arg(&bad).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zonefile"), "names the unknown key");

    let out =
        Command::new(env!("CARGO_BIN_EXE_postern")).args(["check", "--skip", "spelling"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown check `spelling`"));
}
