//! One SMTP or LMTP conversation. `smtp-proto` parses the commands and
//! un-stuffs DATA; this module holds the state, enforces the limits and
//! decides where each check runs: recipient, workspace and sender rate at
//! RCPT, everything else after the message (through the pipeline), then
//! durable delivery before the `250`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, RequestReceiver};
use smtp_proto::{EhloResponse, Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::checks::CheckOutcome;
use crate::delivery::Spool;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, Submission};
use crate::runtime::types::Envelope;
use crate::verdict::{Action, Code, Params, SmtpReply, Verdict};

/// SMTP (one verdict per transaction) or LMTP (one reply per recipient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 5321.
    Smtp,
    /// RFC 2033.
    Lmtp,
}

impl Protocol {
    /// Metric and log label.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
        }
    }
}

/// Limits of one conversation (`[server]` in the config).
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Largest message.
    pub max_message_bytes: usize,
    /// Recipients per transaction.
    pub max_recipients: usize,
    /// Longest line, CRLF included.
    pub max_line_length: usize,
    /// Commands per connection.
    pub max_commands: u32,
    /// Bad commands per connection.
    pub max_bad_commands: u32,
    /// Silence allowed.
    pub idle_timeout: Duration,
    /// Whole connection.
    pub session_timeout: Duration,
}

impl SessionLimits {
    /// The limits of a `[server]` section.
    pub fn from_config(c: &crate::config::ServerConfig) -> Self {
        SessionLimits {
            max_message_bytes: usize::try_from(c.max_message_bytes).unwrap_or(usize::MAX),
            max_recipients: c.max_recipients,
            max_line_length: c.max_line_length,
            max_commands: c.max_commands,
            max_bad_commands: c.max_bad_commands,
            idle_timeout: Duration::from_secs(c.idle_timeout_secs),
            session_timeout: Duration::from_secs(c.session_timeout_secs),
        }
    }
}

/// What every session shares.
pub struct Shared {
    /// The current pipeline (swapped on reload).
    pub pipeline: Arc<arc_swap::ArcSwap<Pipeline>>,
    /// Where accepted mail goes.
    pub spool: Spool,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Our name in replies and Received headers.
    pub hostname: String,
    /// Conversation limits.
    pub limits: SessionLimits,
    /// STARTTLS, when offered.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Turns true when the server drains.
    pub shutdown: watch::Receiver<bool>,
}

/// How a conversation on one stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Closed (QUIT, limit, time-out, shutdown or the client left).
    Closed,
    /// The client asked for TLS: hand the stream to the TLS acceptor, then
    /// call [`Session::run`] again on the encrypted stream.
    StartTls,
}

#[derive(Debug, Default)]
struct Transaction {
    mail_from: String,
    sender_charged: bool,
    /// (address, workspace id) in RCPT order.
    rcpts: Vec<(String, String)>,
    body: Vec<u8>,
    oversized: bool,
    bdat_started: bool,
}

impl Transaction {
    /// Past `max` bytes the message is refused at its end: keep reading to
    /// that end, but hold nothing.
    fn hold_at_most(&mut self, max: usize) {
        if self.body.len() > max {
            self.oversized = true;
            self.body.clear();
        }
    }
}

enum Phase {
    Command,
    /// A line over the limit: skip to its end.
    SkipLine,
    Data(DataReceiver),
    /// `None` receiver: the chunk is read and thrown away (no transaction).
    Bdat {
        rx: BdatReceiver,
        size: usize,
        last: bool,
        discard: bool,
    },
}

/// What processing the buffered input asks for next.
enum Step {
    NeedInput,
    Close,
    StartTls,
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// One client conversation.
pub struct Session {
    shared: Arc<Shared>,
    protocol: Protocol,
    peer: SocketAddr,
    id: u64,
    started: Instant,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    txn: Option<Transaction>,
    transactions: u64,
    commands: u32,
    bad: u32,
    phase: Phase,
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
    receiver: RequestReceiver,
}

impl Session {
    /// A new conversation with `peer`.
    pub fn new(shared: Arc<Shared>, protocol: Protocol, peer: SocketAddr) -> Self {
        Session {
            shared,
            protocol,
            peer,
            id: CONNECTIONS.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
            helo: None,
            esmtp: false,
            tls: false,
            txn: None,
            transactions: 0,
            commands: 0,
            bad: 0,
            phase: Phase::Command,
            input: Vec::with_capacity(16 * 1024),
            pos: 0,
            output: Vec::with_capacity(1024),
            receiver: RequestReceiver::default(),
        }
    }

    /// Sends the greeting.
    pub async fn greet<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<()> {
        let service = if self.protocol == Protocol::Lmtp { "LMTP" } else { "ESMTP" };
        self.reply(220, "", &format!("{} {service} Postern ready", self.shared.hostname));
        self.flush(io).await
    }

    /// After the TLS handshake: everything learnt before is forgotten
    /// (RFC 3207 §4.2), the client must greet again.
    pub fn tls_established(&mut self) {
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.txn = None;
        self.input.clear();
        self.pos = 0;
        self.phase = Phase::Command;
    }

    /// Converses on `io` until the client leaves, a limit closes the
    /// connection, or it asks for TLS.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<Ending> {
        let deadline = tokio::time::Instant::from_std(self.started + self.shared.limits.session_timeout);
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            match self.process(io).await? {
                Step::Close => {
                    self.flush(io).await?;
                    return Ok(Ending::Closed);
                }
                Step::StartTls => {
                    self.flush(io).await?;
                    return Ok(Ending::StartTls);
                }
                Step::NeedInput => {}
            }
            self.flush(io).await?;
            // Compact: keep only what is not consumed yet.
            if self.pos > 0 {
                self.input.drain(..self.pos);
                self.pos = 0;
            }
            let idle = matches!(self.phase, Phase::Command) && self.txn.is_none();
            if idle && *shutdown.borrow() {
                return self.close(io, 421, "4.3.2", "Service shutting down, please try again later").await;
            }
            if self.input.capacity() - self.input.len() < 4096 {
                self.input.reserve(16 * 1024);
            }
            let read = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + self.shared.limits.idle_timeout),
                io.read_buf(&mut self.input),
            );
            let result = tokio::select! {
                r = read => r,
                _ = shutdown.changed(), if idle => {
                    return self.close(io, 421, "4.3.2", "Service shutting down, please try again later").await;
                }
            };
            match result {
                Ok(Ok(0)) => return Ok(Ending::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return self.close(io, 421, "4.4.2", "Connection time limit exceeded, closing").await;
                }
                Err(_) => return self.close(io, 421, "4.4.2", "Idle for too long, closing").await,
            }
        }
    }

    async fn close<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        code: u16,
        esc: &str,
        text: &str,
    ) -> std::io::Result<Ending> {
        self.reply(code, esc, text);
        self.flush(io).await?;
        let _ = io.shutdown().await;
        Ok(Ending::Closed)
    }

    /// Consumes as much buffered input as possible.
    async fn process<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<Step> {
        loop {
            let rest = &self.input[self.pos..];
            if rest.is_empty() {
                return Ok(Step::NeedInput);
            }
            match &mut self.phase {
                Phase::SkipLine => match memchr(rest, b'\n') {
                    Some(at) => {
                        self.pos += at + 1;
                        self.phase = Phase::Command;
                    }
                    None => {
                        self.pos = self.input.len();
                        return Ok(Step::NeedInput);
                    }
                },
                Phase::Data(rx) => {
                    let txn = self.txn.get_or_insert_with(Transaction::default);
                    let mut it = rest.iter();
                    let done = rx.ingest(&mut it, &mut txn.body);
                    self.pos = self.input.len() - it.as_slice().len();
                    txn.hold_at_most(self.shared.limits.max_message_bytes);
                    if done {
                        self.phase = Phase::Command;
                        self.end_of_message(io).await?;
                    }
                }
                Phase::Bdat { rx, size, last, discard } => {
                    let (size, last, discard) = (*size, *last, *discard);
                    let mut scratch = Vec::new();
                    let txn = self.txn.get_or_insert_with(Transaction::default);
                    let sink = if discard { &mut scratch } else { &mut txn.body };
                    let mut it = rest.iter();
                    let done = rx.ingest(&mut it, sink);
                    self.pos = self.input.len() - it.as_slice().len();
                    txn.hold_at_most(self.shared.limits.max_message_bytes);
                    if done {
                        self.phase = Phase::Command;
                        if let Some(step) = self.end_of_chunk(io, size, last, discard).await? {
                            return Ok(step);
                        }
                    }
                }
                Phase::Command => {
                    let Some(at) = memchr(rest, b'\n') else {
                        if rest.len() > self.shared.limits.max_line_length {
                            self.pos = self.input.len();
                            self.phase = Phase::SkipLine;
                            if let Some(step) = self.bad_line() {
                                return Ok(step);
                            }
                        }
                        return Ok(Step::NeedInput);
                    };
                    let end = self.pos + at + 1;
                    let too_long = at + 1 > self.shared.limits.max_line_length;
                    let line = self.input[self.pos..end].to_vec();
                    self.pos = end;
                    if too_long {
                        if let Some(step) = self.bad_line() {
                            return Ok(step);
                        }
                        continue;
                    }
                    self.commands += 1;
                    if self.commands > self.shared.limits.max_commands {
                        self.reply(421, "4.7.0", "Too many commands in one connection, closing");
                        return Ok(Step::Close);
                    }
                    if let Some(step) = self.command(&line) {
                        if matches!(step, Step::StartTls) && self.pos < self.input.len() {
                            // Commands pipelined after STARTTLS were sent in
                            // the clear: they must not be acted on (CVE-2011-0411).
                            self.input.truncate(self.pos);
                        }
                        return Ok(step);
                    }
                }
            }
        }
    }

    fn bad_line(&mut self) -> Option<Step> {
        let max = self.shared.limits.max_line_length;
        self.reply(500, "5.5.2", &format!("Line too long (limit {max} bytes)"));
        self.bad_command()
    }

    /// Counts a bad command; closes once there are too many.
    fn bad_command(&mut self) -> Option<Step> {
        self.bad += 1;
        if self.bad >= self.shared.limits.max_bad_commands {
            self.reply(421, "4.7.0", "Too many errors, closing connection");
            return Some(Step::Close);
        }
        None
    }

    /// Handles one command line; `Some` ends the loop.
    fn command(&mut self, line: &[u8]) -> Option<Step> {
        let mut it = line.iter();
        let request = match self.receiver.ingest(&mut it) {
            Ok(r) => r.into_owned(),
            Err(e) => {
                let (code, esc, text) = match e {
                    ProtoError::UnknownCommand => (500, "5.5.1", "Command not recognized".to_string()),
                    ProtoError::SyntaxError { syntax } => (501, "5.5.4", format!("Syntax: {syntax}")),
                    ProtoError::InvalidSenderAddress => (501, "5.1.7", "Invalid sender address".to_string()),
                    ProtoError::InvalidRecipientAddress => (501, "5.1.3", "Invalid recipient address".to_string()),
                    ProtoError::InvalidParameter { param } => (501, "5.5.4", format!("Invalid parameter {param}")),
                    ProtoError::UnsupportedParameter { param } => {
                        (555, "5.5.4", format!("Unsupported parameter {param}"))
                    }
                    ProtoError::ResponseTooLong => (500, "5.5.2", "Line too long".to_string()),
                    ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
                        (500, "5.5.2", "Syntax error".to_string())
                    }
                };
                self.reply(code, esc, &text);
                return self.bad_command();
            }
        };
        let lmtp = self.protocol == Protocol::Lmtp;
        match request {
            Request::Ehlo { host } if !lmtp => self.ehlo(host, true),
            Request::Helo { host } if !lmtp => self.ehlo(host, false),
            Request::Lhlo { host } if lmtp => self.ehlo(host, true),
            Request::Ehlo { .. } | Request::Helo { .. } => {
                self.reply(500, "5.5.1", "This is an LMTP server: use LHLO");
                return self.bad_command();
            }
            Request::Lhlo { .. } => {
                self.reply(500, "5.5.1", "This is an SMTP server: use EHLO or HELO");
                return self.bad_command();
            }
            Request::Mail { from } => return self.mail(from),
            Request::Rcpt { to } => return self.rcpt(&to.address),
            Request::Data => return self.data(),
            Request::Bdat { chunk_size, is_last } => return self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.txn = None;
                self.reply(250, "2.0.0", "Reset OK");
            }
            Request::Noop { .. } => self.reply(250, "2.0.0", "OK"),
            Request::Quit => {
                self.reply(221, "2.0.0", &format!("{} closing connection", self.shared.hostname));
                return Some(Step::Close);
            }
            Request::Vrfy { .. } => {
                self.reply(252, "2.5.0", "VRFY is disabled; send the message and delivery will be attempted")
            }
            Request::Expn { .. } => self.reply(502, "5.5.1", "EXPN is disabled"),
            Request::Help { .. } => {
                self.reply(214, "2.0.0", "See RFC 5321; this server offers ESMTP with PIPELINING and CHUNKING")
            }
            Request::StartTls => return self.starttls(),
            Request::Auth { .. } => {
                self.reply(502, "5.5.1", "Authentication is not offered: this server only receives mail");
                return self.bad_command();
            }
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.reply(502, "5.5.1", "Command not implemented");
                return self.bad_command();
            }
        }
        None
    }

    fn ehlo(&mut self, host: String, esmtp: bool) {
        self.helo = Some(host);
        self.esmtp = esmtp;
        self.txn = None;
        if !esmtp {
            self.reply(250, "", &format!("{} greets you", self.shared.hostname));
            return;
        }
        let mut ehlo = EhloResponse::new(self.shared.hostname.as_str());
        ehlo.capabilities = smtp_proto::EXT_PIPELINING
            | smtp_proto::EXT_SIZE
            | smtp_proto::EXT_8BIT_MIME
            | smtp_proto::EXT_SMTP_UTF8
            | smtp_proto::EXT_ENHANCED_STATUS_CODES
            | smtp_proto::EXT_CHUNKING;
        if self.shared.tls.is_some() && !self.tls && self.protocol == Protocol::Smtp {
            ehlo.capabilities |= smtp_proto::EXT_START_TLS;
        }
        ehlo.size = self.shared.limits.max_message_bytes;
        // Writing to a Vec cannot fail.
        let _ = ehlo.write(&mut self.output);
        self.shared.metrics.reply(self.protocol.label(), 250);
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Option<Step> {
        if self.helo.is_none() {
            self.reply(503, "5.5.1", "Say hello first (EHLO or HELO)");
            return self.bad_command();
        }
        if self.txn.is_some() {
            self.reply(503, "5.5.1", "Sender already given (RSET to start over)");
            return self.bad_command();
        }
        let max = self.shared.limits.max_message_bytes;
        if from.size > max {
            self.reply(552, "5.3.4", &format!("Message size exceeds the limit of {max} bytes"));
            return None;
        }
        self.txn = Some(Transaction { mail_from: from.address.to_ascii_lowercase(), ..Transaction::default() });
        self.reply(250, "2.1.0", "Sender OK");
        None
    }

    fn rcpt(&mut self, address: &str) -> Option<Step> {
        let pipeline = self.shared.pipeline.load();
        let Some(txn) = self.txn.as_mut() else {
            self.reply(503, "5.5.1", "Sender first (MAIL FROM)");
            return self.bad_command();
        };
        let max = self.shared.limits.max_recipients;
        if txn.rcpts.len() >= max {
            self.reply(452, "4.5.3", &format!("Too many recipients (limit {max} per message)"));
            return None;
        }
        let workspace = match pipeline.checks().recipient_at_rcpt(address) {
            Ok(Some(resolved)) => resolved.workspace.id.clone(),
            Ok(None) => crate::checks::default_workspace().id,
            Err((code, params)) => {
                let reply = Verdict::reply_for(code, &pipeline.settings().brand, &params);
                tracing::info!(conn = self.id, rcpt = address, code = code.as_str(), "recipient refused");
                self.reply_with(&reply);
                return None;
            }
        };
        if self.protocol == Protocol::Smtp
            && let Some((_, first)) = txn.rcpts.first()
            && *first != workspace
        {
            self.reply(452, "4.5.3", "Recipients of another workspace: please send them in a separate transaction");
            return None;
        }
        if !txn.sender_charged && !txn.mail_from.is_empty() {
            match pipeline.checks().sender_rate_at_rcpt(&txn.mail_from) {
                CheckOutcome::Pass => txn.sender_charged = true,
                CheckOutcome::Fail(code, params) => {
                    let reply = Verdict::reply_for(code, &pipeline.settings().brand, &params);
                    tracing::info!(conn = self.id, sender = %txn.mail_from, code = code.as_str(), "sender refused");
                    self.reply_with(&reply);
                    return None;
                }
                CheckOutcome::Skipped(_) => {}
            }
        }
        let txn = self.txn.as_mut().expect("checked above");
        txn.rcpts.push((address.to_string(), workspace));
        self.reply(250, "2.1.5", "Recipient OK");
        None
    }

    fn data(&mut self) -> Option<Step> {
        match &self.txn {
            None => {
                self.reply(503, "5.5.1", "Sender and recipients first");
                self.bad_command()
            }
            Some(t) if t.rcpts.is_empty() => {
                self.reply(554, "5.5.1", "No valid recipients");
                self.bad_command()
            }
            Some(t) if t.bdat_started => {
                self.reply(503, "5.5.1", "DATA cannot follow BDAT in one transaction");
                self.bad_command()
            }
            Some(_) => {
                self.reply(354, "", "Start mail input; end with <CRLF>.<CRLF>");
                if let Some(t) = self.txn.as_mut() {
                    // Most mail is tens of KB: skip the first doublings.
                    t.body.reserve(32 * 1024);
                }
                self.phase = Phase::Data(DataReceiver::new());
                None
            }
        }
    }

    fn bdat(&mut self, size: usize, last: bool) -> Option<Step> {
        // The chunk follows the command whatever we answer: read it, and
        // throw it away when there is no transaction to put it in.
        let ready = self.txn.as_ref().is_some_and(|t| !t.rcpts.is_empty());
        if let Some(t) = self.txn.as_mut().filter(|_| ready) {
            t.bdat_started = true;
        }
        self.phase = Phase::Bdat { rx: BdatReceiver::new(size, last), size, last, discard: !ready };
        None
    }

    async fn end_of_chunk<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        size: usize,
        last: bool,
        discard: bool,
    ) -> std::io::Result<Option<Step>> {
        if discard {
            self.reply(503, "5.5.1", "Sender and recipients first");
            return Ok(self.bad_command());
        }
        let oversized = self.txn.as_ref().is_some_and(|t| t.oversized);
        if oversized {
            let max = self.shared.limits.max_message_bytes;
            self.txn = None;
            self.reply(552, "5.3.4", &format!("Message size exceeds the limit of {max} bytes"));
            return Ok(None);
        }
        if !last {
            self.reply(250, "2.0.0", &format!("{size} octets received"));
            return Ok(None);
        }
        self.end_of_message(io).await?;
        Ok(None)
    }

    fn starttls(&mut self) -> Option<Step> {
        if self.tls {
            self.reply(503, "5.5.1", "TLS already active");
            return self.bad_command();
        }
        if self.shared.tls.is_none() || self.protocol == Protocol::Lmtp {
            self.reply(502, "5.5.1", "STARTTLS not offered");
            return self.bad_command();
        }
        self.reply(220, "2.0.0", "Ready to start TLS");
        Some(Step::StartTls)
    }

    /// The whole message is in: judge it, store it, answer.
    async fn end_of_message<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<()> {
        let Some(mut txn) = self.txn.take() else { return Ok(()) };
        self.transactions += 1;
        let limits = &self.shared.limits;
        if txn.oversized {
            let max = limits.max_message_bytes;
            self.reply(552, "5.3.4", &format!("Message size exceeds the limit of {max} bytes"));
            return Ok(());
        }
        if longest_line(&txn.body) > limits.max_line_length {
            let max = limits.max_line_length;
            self.reply(552, "5.3.4", &format!("Message has a line over {max} bytes"));
            return Ok(());
        }
        // Replies so far (354, BDAT acks) go out before the slow part.
        self.flush(io).await?;
        let body = std::mem::take(&mut txn.body);
        // Recipients grouped by workspace, in order of first appearance: one
        // verdict and one stored copy per workspace.
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for (rcpt, ws) in &txn.rcpts {
            match groups.iter_mut().find(|(w, _)| w == ws) {
                Some((_, list)) => list.push(rcpt.clone()),
                None => groups.push((ws.clone(), vec![rcpt.clone()])),
            }
        }
        let mut replies: Vec<(String, SmtpReply)> = Vec::new();
        for (workspace, rcpts) in groups {
            let reply = self.judge_and_store(&txn, &body, &workspace, &rcpts).await;
            replies.extend(rcpts.into_iter().map(|r| (r, reply.clone())));
        }
        match self.protocol {
            // One verdict: a transaction holds one workspace.
            Protocol::Smtp => {
                if let Some((_, reply)) = replies.first() {
                    let reply = reply.clone();
                    self.reply_with(&reply);
                }
            }
            // One reply per accepted RCPT, in RCPT order (RFC 2033 §4.2).
            Protocol::Lmtp => {
                for (rcpt, _) in &txn.rcpts {
                    if let Some((_, reply)) = replies.iter().find(|(r, _)| r == rcpt) {
                        let reply = reply.clone();
                        self.reply_with(&reply);
                    }
                }
            }
        }
        Ok(())
    }

    async fn judge_and_store(&self, txn: &Transaction, body: &[u8], workspace: &str, rcpts: &[String]) -> SmtpReply {
        let pipeline = self.shared.pipeline.load_full();
        let envelope = Envelope {
            client_ip: self.peer.ip().to_string(),
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: txn.mail_from.clone(),
            rcpt_to: rcpts.to_vec(),
        };
        let (verdict, pending) =
            pipeline.judge(&Submission { raw: body, envelope: envelope.clone() }, txn.sender_charged).await;
        self.shared.metrics.observe_verdict(&verdict);
        let mut reply = verdict.smtp.clone();
        let mut stored = None;
        if verdict.action == Action::Accept {
            let t = Instant::now();
            let message = self.with_trace_headers(&txn.mail_from, body);
            let record = serde_json::to_vec(&Stored {
                protocol: self.protocol.label(),
                envelope: StoredEnvelope {
                    client_ip: &envelope.client_ip,
                    helo: &envelope.helo,
                    mail_from: &envelope.mail_from,
                    rcpt_to: &envelope.rcpt_to,
                },
                verdict: &verdict,
            });
            let spool = self.shared.spool.clone();
            let ws = workspace.to_string();
            let result = match record {
                Ok(json) => tokio::task::spawn_blocking(move || spool.deliver(&ws, message, json))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string())),
                Err(e) => Err(e.to_string()),
            };
            self.shared.metrics.observe_delivery(t.elapsed(), result.is_ok());
            match result {
                Ok(delivered) => {
                    reply.text = format!("{} as {}", reply.text, delivered.id);
                    stored = Some(delivered.id);
                }
                Err(e) => {
                    // Nothing is acknowledged that is not on disk.
                    tracing::error!(conn = self.id, error = %e, "delivery failed; answering 451");
                    reply = Verdict::reply_for(Code::InternalError, &pipeline.settings().brand, &Params::default());
                }
            }
        }
        // Final unless a 4xx went out (policy tempfail, storage failure).
        pipeline.commit(pending, reply.code < 400 || reply.code >= 500);
        tracing::info!(
            target: "postern::verdict",
            conn = self.id,
            protocol = self.protocol.label(),
            client_ip = %envelope.client_ip,
            helo = %envelope.helo,
            mail_from = %envelope.mail_from,
            rcpt = %envelope.rcpt_to.join(","),
            workspace,
            action = ?verdict.action,
            code = verdict.code.map(|c| c.as_str()).unwrap_or("none"),
            reply = reply.code,
            score = verdict.score,
            symbols = %verdict.symbols.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(","),
            policies = %verdict.policies.iter().map(|p| format!("{}@{}", p.name, p.version)).collect::<Vec<_>>().join(","),
            stored = stored.as_deref().unwrap_or(""),
            total_us = verdict.timings.total_us,
            "verdict"
        );
        reply
    }

    /// The message as stored: Return-Path and our Received header first.
    fn with_trace_headers(&self, mail_from: &str, body: &[u8]) -> Vec<u8> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let date = mail_parser::DateTime::from_timestamp(now.as_secs() as i64).to_rfc822();
        let with = match (self.protocol, self.esmtp, self.tls) {
            (Protocol::Lmtp, ..) => "LMTP",
            (_, true, true) => "ESMTPS",
            (_, true, false) => "ESMTP",
            (_, false, _) => "SMTP",
        };
        let helo: String = self.helo.as_deref().unwrap_or("unknown").chars().filter(|c| c.is_ascii_graphic()).collect();
        let head = format!(
            "Return-Path: <{mail_from}>\r\nReceived: from {helo} ([{ip}])\r\n\tby {host} (Postern) with {with} id {conn}.{n};\r\n\t{date}\r\n",
            ip = self.peer.ip(),
            host = self.shared.hostname,
            conn = self.id,
            n = self.transactions,
        );
        let mut out = Vec::with_capacity(head.len() + body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(body);
        out
    }

    fn reply_with(&mut self, reply: &SmtpReply) {
        let code = reply.code;
        let esc = reply.enhanced.clone();
        self.reply(code, &esc, &reply.text);
    }

    /// Queues a reply (flushed before the next read).
    fn reply(&mut self, code: u16, esc: &str, text: &str) {
        self.shared.metrics.reply(self.protocol.label(), code);
        use std::io::Write;
        // Writing to a Vec cannot fail; texts never hold CR or LF.
        let text = text.replace(['\r', '\n'], " ");
        let _ = if esc.is_empty() || !self.esmtp_codes() {
            write!(self.output, "{code} {text}\r\n")
        } else {
            write!(self.output, "{code} {esc} {text}\r\n")
        };
    }

    /// Enhanced status codes are announced in EHLO/LHLO; before any
    /// greeting they are sent anyway (harmless, and clearer in logs).
    fn esmtp_codes(&self) -> bool {
        self.esmtp || self.helo.is_none()
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<()> {
        if !self.output.is_empty() {
            io.write_all(&self.output).await?;
            io.flush().await?;
            self.output.clear();
        }
        Ok(())
    }
}

/// What is stored beside an accepted message: the verdict, plus how the
/// message came in.
#[derive(serde::Serialize)]
struct Stored<'a> {
    protocol: &'a str,
    envelope: StoredEnvelope<'a>,
    #[serde(flatten)]
    verdict: &'a Verdict,
}

#[derive(serde::Serialize)]
struct StoredEnvelope<'a> {
    client_ip: &'a str,
    helo: &'a str,
    mail_from: &'a str,
    rcpt_to: &'a [String],
}

fn memchr(haystack: &[u8], needle: u8) -> Option<usize> {
    memchr::memchr(needle, haystack)
}

/// Length of the longest line, line ending included.
fn longest_line(body: &[u8]) -> usize {
    let mut longest = 0;
    let mut start = 0;
    for at in memchr::memchr_iter(b'\n', body) {
        longest = longest.max(at + 1 - start);
        start = at + 1;
    }
    longest.max(body.len() - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_line_counts_the_line_ending() {
        assert_eq!(longest_line(b"ab\r\ncdef\r\n"), 6);
        assert_eq!(longest_line(b"abc"), 3);
        assert_eq!(longest_line(b""), 0);
    }
}
