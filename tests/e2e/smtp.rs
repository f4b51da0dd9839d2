//! `postern serve` over real SMTP and LMTP conversations on loopback: each
//! check at its stage with the catalog's text, every limit, STARTTLS,
//! pipelining, chunking, durable delivery and what it stores.

use std::time::Duration;

use serde_json::Value;

use crate::checks::{message, silent_nameserver};
use crate::smtp_util::{Client, TestServer, dot_stuff, http, queued_id, rt, send_over_starttls};
use crate::util::fixture_bytes;

fn good(subject: &str) -> String {
    message(
        "Alice <alice@customer.test>",
        "help@support.acme.test",
        subject,
        &format!(
            "Hello, about \"{subject}\": the export to CSV fails since this morning. Could you have a look? Thanks, Alice"
        ),
    )
}

/// A fixture with its From and To rewritten.
fn fixture_from(name: &str, from_domain: &str) -> String {
    let raw = String::from_utf8(fixture_bytes(name)).unwrap();
    let from_line = raw.lines().find(|l| l.starts_with("From:")).unwrap().to_string();
    let domain = from_line.rsplit('@').next().unwrap().trim_end_matches(['>', '\r']).to_string();
    raw.replace(&domain, from_domain)
}

#[test]
fn accepted_mail_is_stored_with_its_verdict_before_the_250() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect();
    let ehlo = c.ehlo();
    for ext in ["PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"] {
        assert!(ehlo.lines.iter().any(|l| l == ext), "{ext} missing from {ehlo:?}");
    }
    let msg = good("Export fails");
    let reply = c.deliver("alice@customer.test", &["help@support.acme.test"], &msg);
    assert!(reply.text().starts_with("2.0.0 Message accepted for delivery as "), "{reply:?}");
    let id = queued_id(&reply);
    assert_eq!(c.cmd("QUIT").code, 221);

    // The 250 came after the message was stored: it is there now.
    let stored = std::fs::read_to_string(srv.spool.join("acme/new").join(&id)).expect("message in new/");
    assert!(stored.starts_with("Return-Path: <alice@customer.test>\r\nReceived: from client.test ([127.0.0.1])"));
    assert!(stored.contains("by mx.test (Postern) with ESMTP id "), "{stored}");
    assert!(stored.ends_with(&msg), "the message is stored byte for byte after the trace headers");
    assert!(std::fs::read_dir(srv.spool.join("acme/tmp")).unwrap().next().is_none(), "nothing left in tmp/");

    let verdict: Value = serde_json::from_str(
        &std::fs::read_to_string(srv.spool.join("acme/verdicts").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(verdict["action"], "accept");
    assert_eq!(verdict["envelope"]["mail_from"], "alice@customer.test");
    assert_eq!(verdict["envelope"]["rcpt_to"][0], "help@support.acme.test");
    assert_eq!(verdict["envelope"]["client_ip"], "127.0.0.1");
    assert!(verdict["route"]["inbox"].as_str().is_some(), "{verdict}");
    let names: Vec<&str> =
        verdict["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["spam-score", "junk-threshold", "route-default"]);
    assert!(verdict["policies"][0]["version"].as_str().is_some_and(|v| !v.is_empty()));
    let steps: Vec<&str> = verdict["trace"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    for step in ["parse", "recipient", "headers", "rate_limit", "mx", "auth", "dmarc", "score", "threshold", "route"] {
        assert!(steps.contains(&step), "{step} missing from {steps:?}");
    }
    assert!(verdict["symbols"].as_array().unwrap().iter().any(|s| s["name"] == "SPF_PASS"), "{verdict}");
}

#[test]
fn a_rust_smtp_client_delivers_over_starttls() {
    let srv = TestServer::start("", "");
    send_over_starttls(srv.smtp, &good("Over TLS"));
    let files = srv.delivered("acme");
    assert_eq!(files.len(), 1);
    assert!(std::fs::read_to_string(&files[0]).unwrap().contains("with ESMTPS id"), "TLS recorded in Received");
}

#[test]
fn recipient_refusals_happen_at_rcpt_with_the_catalog_text() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect();
    c.ehlo();
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    let cases = [
        ("someone@unbound.test", "550 5.1.2 Domain not bound to any Crisp website"),
        ("help@lapsed.test", "550 5.1.2 Domain not bound to any Crisp website"),
        ("help@noplugin.test", "550 5.7.1 Crisp email redirection plugin is disabled on Crisp website"),
        ("help@banned.test", "550 5.7.1 Crisp website is blocked"),
        ("acme+s-9999@reply.example.test", "550 5.1.1 Crisp session does not exist"),
        ("ghost+s-0001@reply.example.test", "550 5.1.1 Crisp website does not exist: ghost for session: s-0001"),
        (
            "not-a-session@reply.example.test",
            "550 5.1.1 Crisp session in address local part not recognized: not-a-session@reply.example.test (invalid or does not exist)",
        ),
    ];
    for (rcpt, expected) in cases {
        assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")).line(), expected, "{rcpt}");
    }
    // Refused recipients leave the transaction open for good ones.
    assert_eq!(c.cmd("RCPT TO:<acme+s-0001@reply.example.test>").code, 250);
    assert_eq!(c.data(&good("Reply")).code, 250);
}

#[test]
fn smtp_keeps_one_workspace_per_transaction() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect();
    c.ehlo();
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<help@support.acme.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<sales@support.acme.test>").code, 250, "same workspace, same transaction");
    let other = c.cmd("RCPT TO:<help@help.lenient.test>");
    assert_eq!(other.code, 452);
    assert!(other.text().starts_with("4.5.3 "), "{other:?}");
    assert_eq!(c.data(&good("Two of acme")).code, 250);
    assert_eq!(srv.delivered("acme").len(), 1, "one copy per workspace");
    // The sender's retry in its own transaction is accepted.
    assert_eq!(c.deliver("alice@customer.test", &["help@help.lenient.test"], &good("Lenient")).code, 250);
    assert_eq!(srv.delivered("lenient").len(), 1);
}

#[test]
fn message_refusals_happen_after_data_with_the_catalog_text() {
    let srv = TestServer::start("", "[limits]\ntext_max_bytes = 4096\n");
    let mut c = srv.connect();
    c.ehlo();
    let acme = ["help@support.acme.test"];
    let no_from = "To: help@support.acme.test\r\nSubject: x\r\n\r\nHello there\r\n";
    assert_eq!(
        c.deliver("alice@customer.test", &acme, no_from).line(),
        "550 5.6.0 Got invalid email headers (From + To required)"
    );
    let cases = [
        (
            "bob@nomx.test",
            message("bob@nomx.test", "help@support.acme.test", "No MX", "Where do replies go?"),
            "550 5.1.8 From address does not exist or is invalid: bob@nomx.test",
        ),
        (
            "bob@noauth.test",
            message("bob@noauth.test", "help@support.acme.test", "Unauthenticated", "Nobody vouches for me."),
            "550 5.7.26 Email not authenticated. The sender must authenticate with at least one of SPF or DKIM: bob@noauth.test",
        ),
        (
            "bounces@bounce.test",
            message("ceo@quarantine.test", "help@support.acme.test", "Spoof", "Please wire the money today."),
            "550 5.7.1 Email origin could not be verified, you are possibly spoofing ceo@quarantine.test (sender DMARC policy is set to quarantine)",
        ),
        (
            "alice@customer.test",
            message("alice@customer.test", "help@support.acme.test", "Big", &"words and more words ".repeat(300)),
            "552 5.3.4 Email text content is oversized",
        ),
    ];
    for (from, msg, expected) in cases {
        assert_eq!(c.deliver(from, &acme, &msg).line(), expected, "{from}");
    }
    let spam = fixture_from("spam-dirty.eml", "paypa1-alerts.test");
    let reply = c.deliver("security@paypa1-alerts.test", &acme, &spam);
    assert_eq!(reply.code, 550);
    assert!(reply.text().starts_with("5.7.1 Your email has been classified as spam, and we dislike spam"), "{reply:?}");
    let msg = good("Twice");
    assert_eq!(c.deliver("alice@customer.test", &acme, &msg).code, 250);
    assert_eq!(
        c.deliver("alice@customer.test", &acme, &msg).line(),
        "550 5.7.1 Email with same text already sent recently, please slow down"
    );
    assert_eq!(srv.delivered("acme").len(), 1, "only the accepted message is stored");
}

#[test]
fn sender_rate_limit_is_charged_once_per_transaction_at_rcpt() {
    let srv = TestServer::start("", "[rate_limit]\nsender = { count = 2, per_seconds = 3600 }\n");
    let mut c = srv.connect();
    c.ehlo();
    let two = ["help@support.acme.test", "sales@support.acme.test"];
    assert_eq!(c.deliver("alice@customer.test", &two, &good("One")).code, 250);
    assert_eq!(c.deliver("alice@customer.test", &two, &good("Two")).code, 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(
        c.cmd("RCPT TO:<help@support.acme.test>").line(),
        "450 4.7.1 Sending address is currently rate-limited, please slow down"
    );
    assert_eq!(c.cmd("RSET").code, 250);
    // Another sender is not affected.
    assert_eq!(
        c.deliver(
            "bob@customer.test",
            &["help@support.acme.test"],
            &message("bob@customer.test", "help@support.acme.test", "Bob", "Hi")
        )
        .code,
        250
    );
}

#[test]
fn a_dns_time_out_is_a_tempfail_and_nothing_is_stored() {
    let (ns, _keep) = silent_nameserver();
    let srv = TestServer::start_with_dns(Some(&format!("nameserver = \"{ns}\"\ntimeout_ms = 300")), "", "");
    let mut c = srv.connect();
    c.ehlo();
    let reply = c.deliver("alice@customer.test", &["help@support.acme.test"], &good("Slow DNS"));
    assert_eq!(reply.line(), "451 4.4.3 Temporary DNS failure while verifying the sender, please retry later");
    assert!(srv.delivered("acme").is_empty());
}

#[test]
fn a_storage_failure_answers_451_and_acknowledges_nothing() {
    let srv = TestServer::start("", "");
    std::fs::create_dir_all(&srv.spool).unwrap();
    // The workspace's Maildir cannot be created: a file is in the way.
    std::fs::write(srv.spool.join("acme"), b"not a directory").unwrap();
    let mut c = srv.connect();
    c.ehlo();
    let reply = c.deliver("alice@customer.test", &["help@support.acme.test"], &good("Disk trouble"));
    assert_eq!(reply.line(), "451 4.3.0 We could not process the email at that time due to an internal error");
    // Repaired, the sender's retry goes through and is not a duplicate.
    std::fs::remove_file(srv.spool.join("acme")).unwrap();
    let reply = c.deliver("alice@customer.test", &["help@support.acme.test"], &good("Disk trouble"));
    assert_eq!(reply.code, 250, "{reply:?}");
}

#[test]
fn message_size_limit_by_size_parameter_data_and_bdat() {
    let srv = TestServer::start("max_message_bytes = 2000", "");
    let mut c = srv.connect();
    let ehlo = c.ehlo();
    assert!(ehlo.lines.iter().any(|l| l == "SIZE 2000"), "{ehlo:?}");
    let r = c.cmd("MAIL FROM:<alice@customer.test> SIZE=5000");
    assert_eq!(r.line(), "552 5.3.4 Message size exceeds the limit of 2000 bytes");
    let big = message(
        "alice@customer.test",
        "help@support.acme.test",
        "Big",
        &"x".repeat(70).repeat(40).replace("xx", "x\r\n"),
    );
    assert!(big.len() > 2000);
    assert_eq!(
        c.deliver("alice@customer.test", &["help@support.acme.test"], &big).line(),
        "552 5.3.4 Message size exceeds the limit of 2000 bytes"
    );
    // The connection is still usable, and BDAT is held to the same limit.
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<help@support.acme.test>").code, 250);
    c.send(format!("BDAT {} LAST\r\n", big.len()).as_bytes());
    c.send(big.as_bytes());
    assert_eq!(c.reply().line(), "552 5.3.4 Message size exceeds the limit of 2000 bytes");
    assert_eq!(c.cmd("NOOP").code, 250);
    assert!(srv.delivered("acme").is_empty());
}

#[test]
fn recipients_per_transaction_are_capped() {
    let srv = TestServer::start("max_recipients = 2", "");
    let mut c = srv.connect();
    c.ehlo();
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<a@support.acme.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<b@support.acme.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<c@support.acme.test>").line(), "452 4.5.3 Too many recipients (limit 2 per message)");
    assert_eq!(c.data(&good("Capped")).code, 250);
}

#[test]
fn long_lines_are_refused_in_commands_and_in_messages() {
    let srv = TestServer::start("max_line_length = 600", "");
    let mut c = srv.connect();
    c.ehlo();
    let long = format!("NOOP {}", "y".repeat(700));
    assert_eq!(c.cmd(&long).line(), "500 5.5.2 Line too long (limit 600 bytes)");
    // A line longer than the limit that arrives in pieces is refused too.
    c.send("NOOP ".as_bytes());
    c.send("z".repeat(650).as_bytes());
    std::thread::sleep(Duration::from_millis(100));
    c.send(b"zz\r\n");
    assert_eq!(c.reply().line(), "500 5.5.2 Line too long (limit 600 bytes)");
    assert_eq!(c.cmd("NOOP").code, 250, "the session goes on");
    let msg = message("alice@customer.test", "help@support.acme.test", "Wide", &"w".repeat(700));
    assert_eq!(
        c.deliver("alice@customer.test", &["help@support.acme.test"], &msg).line(),
        "552 5.3.4 Message has a line over 600 bytes"
    );
}

#[test]
fn commands_per_connection_are_capped() {
    let srv = TestServer::start("max_commands = 4", "");
    let mut c = srv.connect();
    c.ehlo();
    for _ in 0..3 {
        assert_eq!(c.cmd("NOOP").code, 250);
    }
    assert_eq!(c.cmd("NOOP").line(), "421 4.7.0 Too many commands in one connection, closing");
    assert!(c.closed());
}

#[test]
fn bad_commands_are_counted_and_the_connection_closed() {
    let srv = TestServer::start("max_bad_commands = 3", "");
    let mut c = srv.connect();
    assert_eq!(c.cmd("MAIL FROM:<a@customer.test>").line(), "503 5.5.1 Say hello first (EHLO or HELO)");
    assert_eq!(c.cmd("FROB").line(), "500 5.5.1 Command not recognized");
    let last = c.cmd("RCPT TO:<x@support.acme.test>");
    assert_eq!(last.line(), "503 5.5.1 Sender first (MAIL FROM)");
    assert_eq!(c.reply().line(), "421 4.7.0 Too many errors, closing connection");
    assert!(c.closed());
}

#[test]
fn an_idle_client_is_disconnected() {
    let srv = TestServer::start("idle_timeout_secs = 1", "");
    let mut c = srv.connect();
    c.ehlo();
    let started = std::time::Instant::now();
    assert_eq!(c.reply().line(), "421 4.4.2 Idle for too long, closing");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(c.closed());
}

#[test]
fn a_connection_has_a_total_time_limit() {
    let srv = TestServer::start("session_timeout_secs = 2\nidle_timeout_secs = 60", "");
    let mut c = srv.connect();
    c.ehlo();
    let started = std::time::Instant::now();
    let last = loop {
        let r = c.cmd("NOOP");
        if r.code != 250 {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never cut off");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(last.line(), "421 4.4.2 Connection time limit exceeded, closing");
}

#[test]
fn connections_are_capped_in_total_and_per_client_ip() {
    let srv = TestServer::start("max_connections = 3\nmax_connections_per_ip = 2", "");
    let _a = srv.connect();
    let _b = srv.connect();
    let mut refused = Client::connect_raw(srv.smtp);
    assert_eq!(refused.reply().line(), "421 4.7.0 Too many connections from your address, try again later");
    // Another client address still gets in, up to the total.
    let addr = srv.smtp;
    let other = |source: &str| {
        let source: std::net::SocketAddr = source.parse().unwrap();
        rt().block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(source).unwrap();
            let mut stream = socket.connect(addr).await.unwrap();
            let mut buf = vec![0u8; 256];
            use tokio::io::AsyncReadExt;
            let n = stream.read(&mut buf).await.unwrap();
            (String::from_utf8_lossy(&buf[..n]).to_string(), stream)
        })
    };
    let (greeting, _c) = other("127.0.0.2:0");
    assert!(greeting.starts_with("220 "), "{greeting}");
    let (refusal, _d) = other("127.0.0.3:0");
    assert_eq!(refusal, "421 4.7.0 Too many connections, try again later\r\n");
}

#[test]
fn lmtp_answers_once_per_recipient_with_each_workspace_verdict() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect_lmtp();
    assert_eq!(c.cmd("EHLO client.test").code, 500, "LMTP wants LHLO");
    assert_eq!(c.cmd("LHLO client.test").code, 250);
    assert_eq!(c.cmd("MAIL FROM:<deals@promo-mailer.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<help@support.acme.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<help@help.lenient.test>").code, 250, "LMTP takes several workspaces");
    assert_eq!(c.cmd("RCPT TO:<help@unbound.test>").code, 550);
    assert_eq!(c.cmd("RCPT TO:<sales@support.acme.test>").code, 250);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(&dot_stuff(&fixture_from("spam-junk.eml", "promo-mailer.test")));
    // One reply per accepted recipient, in order: acme filters junk, the
    // lenient workspace's junk filter is off.
    let acme = c.reply();
    let lenient = c.reply();
    let acme_again = c.reply();
    assert_eq!(acme.code, 550, "{acme:?}");
    assert!(acme.text().starts_with("5.7.1 Your email has been classified as spam"), "{acme:?}");
    assert_eq!(lenient.code, 250, "{lenient:?}");
    assert_eq!(acme_again.line(), acme.line());
    assert!(srv.delivered("acme").is_empty());
    assert_eq!(srv.delivered("lenient").len(), 1);
    assert_eq!(c.cmd("QUIT").code, 221);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect();
    let ehlo = c.ehlo();
    assert!(ehlo.lines.iter().any(|l| l == "PIPELINING"));
    c.send(
        b"MAIL FROM:<alice@customer.test>\r\nRCPT TO:<help@support.acme.test>\r\nRCPT TO:<x@unbound.test>\r\nRCPT TO:<sales@support.acme.test>\r\nDATA\r\n",
    );
    let codes: Vec<u16> = (0..5).map(|_| c.reply().code).collect();
    assert_eq!(codes, [250, 250, 550, 250, 354]);
    c.send(&dot_stuff(&good("Pipelined")));
    let reply = c.reply();
    assert_eq!(reply.code, 250, "{reply:?}");
    // Two whole transactions in one write, as a pipelining client may send
    // after the first 354 is known.
    c.send(b"RSET\r\nNOOP\r\nQUIT\r\n");
    let codes: Vec<u16> = (0..3).map(|_| c.reply().code).collect();
    assert_eq!(codes, [250, 250, 221]);
}

#[test]
fn bdat_chunks_make_one_message() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect();
    c.ehlo();
    let msg = good("In chunks");
    let (a, b) = msg.split_at(msg.len() / 2);
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<help@support.acme.test>").code, 250);
    c.send(format!("BDAT {}\r\n{a}", a.len()).as_bytes());
    assert_eq!(c.reply().line(), format!("250 2.0.0 {} octets received", a.len()));
    c.send(format!("BDAT {} LAST\r\n{b}", b.len()).as_bytes());
    let id = queued_id(&c.reply());
    let stored = std::fs::read_to_string(srv.spool.join("acme/new").join(id)).unwrap();
    assert!(stored.ends_with(&msg));
    // A chunk without a transaction is read and refused.
    c.send(b"BDAT 5 LAST\r\nhello");
    assert_eq!(c.reply().line(), "503 5.5.1 Sender and recipients first");
    assert_eq!(c.cmd("NOOP").code, 250);
}

#[test]
fn vrfy_is_disabled_helo_and_rset_work() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect();
    assert_eq!(c.cmd("HELO client.test").code, 250);
    assert_eq!(c.cmd("VRFY help@support.acme.test").code, 252);
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 503, "nested MAIL");
    assert_eq!(c.cmd("RSET").code, 250);
    assert_eq!(c.cmd("DATA").code, 503);
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(c.cmd("DATA").line(), "554 No valid recipients", "no enhanced codes after HELO");
}

#[test]
fn reload_swaps_config_and_directory_without_dropping_sessions() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect();
    c.ehlo();
    assert_eq!(c.cmd("MAIL FROM:<alice@customer.test>").code, 250);
    assert_eq!(c.cmd("RCPT TO:<x@unbound.test>").line(), "550 5.1.2 Domain not bound to any Crisp website");
    let text = std::fs::read_to_string(&srv.config).unwrap();
    std::fs::write(&srv.config, format!("brand = \"Acme Desk\"\n{text}")).unwrap();
    rt().block_on(srv.server().reload()).expect("reload");
    // The open session sees the new configuration at its next command.
    assert_eq!(c.cmd("RCPT TO:<x@unbound.test>").line(), "550 5.1.2 Domain not bound to any Acme Desk website");
    // A broken file keeps the running configuration.
    std::fs::write(&srv.config, "brand = [\n").unwrap();
    assert!(rt().block_on(srv.server().reload()).is_err());
    assert_eq!(c.cmd("RCPT TO:<x@unbound.test>").line(), "550 5.1.2 Domain not bound to any Acme Desk website");
    assert_eq!(c.cmd("RCPT TO:<help@support.acme.test>").code, 250);
    assert_eq!(c.data(&good("After reload")).code, 250);
}

#[test]
fn http_api_checks_reports_health_metrics_and_policies() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect();
    c.ehlo();
    assert_eq!(c.deliver("alice@customer.test", &["help@support.acme.test"], &good("Counted")).code, 250);

    let msg = good("Over HTTP");
    let request = format!(
        "POST /v1/check HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIP: 127.0.0.1\r\nHelo: client.test\r\n\
         From: alice@customer.test\r\nRcpt: help@support.acme.test\r\nContent-Length: {}\r\n\r\n{msg}",
        msg.len()
    );
    let (status, body) = http(srv.http, request.as_bytes());
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["action"], "accept", "{v}");
    assert!(v["trace"].as_array().unwrap().iter().any(|s| s["step"] == "auth" && s["outcome"] == "pass"), "{v}");

    let (status, body) = http(srv.http, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(srv.http, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body.contains("postern_messages_total{action=\"accept\",code=\"none\"} 2"), "{body}");
    assert!(body.contains("postern_check_duration_seconds_bucket{check=\"auth\""), "{body}");
    assert!(body.contains("postern_stage_duration_seconds_bucket{stage=\"score\""), "{body}");
    let (status, body) = http(srv.http, b"GET /v1/policies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body.contains("spam-score") && body.contains("route-default"), "{body}");
}

#[test]
fn commands_pipelined_after_starttls_are_not_acted_on_in_the_clear() {
    let srv = TestServer::start("", "");
    let mut c = srv.connect();
    c.ehlo();
    // An attacker in the path appends a command to the client's STARTTLS.
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@customer.test>\r\n");
    assert_eq!(c.reply().line(), "220 2.0.0 Ready to start TLS");
    // The server now waits for a TLS handshake: the injected command got no
    // plaintext answer.
    assert!(c.nothing_within(Duration::from_millis(400)), "a plaintext reply followed STARTTLS");
}

#[test]
fn starttls_uses_the_configured_certificate() {
    let scratch = crate::checks::Scratch::new();
    let generated = rcgen::generate_simple_self_signed(vec!["mx.test".to_string()]).unwrap();
    let cert = scratch.file("cert.pem", &generated.cert.pem());
    let key = scratch.file("key.pem", &generated.signing_key.serialize_pem());
    let srv = TestServer::start(&format!("tls_cert = \"{}\"\ntls_key = \"{}\"", cert.display(), key.display()), "");
    send_over_starttls(srv.smtp, &good("Configured certificate"));
    assert_eq!(srv.delivered("acme").len(), 1);
    // A broken certificate file is refused at start, naming the file.
    let bad = scratch.file("bad.pem", "not a certificate");
    let config = scratch.file(
        "bad.toml",
        &crate::smtp_util::config_text(
            None,
            &format!("tls_cert = \"{}\"\ntls_key = \"{}\"", bad.display(), key.display()),
            "",
        ),
    );
    let options = postern::server::ServeOptions { config: Some(config), ..Default::default() };
    let err = rt()
        .block_on(postern::server::Server::start_with(options, crate::util::runtime(), crate::util::defaults()))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.pem"), "{err}");
}
