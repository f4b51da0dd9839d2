//! The fixed checks every message must pass before any policy runs, in this
//! order; the first failure decides the verdict:
//!
//! 1. `recipient`: domain bound, subscription active, plugin on, not
//!    blocked; or a well-formed reply address naming an existing session of
//!    an existing workspace;
//! 2. `headers`: From and To present (`headers_missing`), acceptable
//!    (`headers_unacceptable`);
//! 3. `text_size`: text content within the limit (`text_oversized`);
//! 4. `duplicate`: not the same text from the same sender to the same
//!    workspace within the window (`duplicate_text`);
//! 5. `rate_limit`: sender address, then the workspace's flood guard
//!    (`rate_limited`);
//! 6. `mx`: the From domain has MX records (`sender_no_mx`);
//! 7. `auth`: SPF (MAIL FROM, HELO) or a DKIM signature passes
//!    (`not_authenticated`);
//! 8. `dmarc`: a failing DMARC with p=quarantine/reject refuses
//!    (`dmarc_rejected`); p=none is reported only.
//!
//! A DNS time-out or SERVFAIL in 6–8 is `dns_tempfail` (451 4.4.3).

pub mod auth;
pub mod content;
pub mod headers;
pub mod recipient;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::directory::{Directory, WorkspaceRecord};
use crate::dns::Dns;
use crate::message::ParsedMessage;
use crate::runtime::types::{Authentication, Envelope, MailKind, Setting, Workspace};
use crate::state::{RateLimit, StateStore};
use crate::verdict::{Code, Params, TraceStep};

/// The outcome of one fixed check.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    /// The message passes this check.
    Pass,
    /// The message is refused (or deferred) with this catalog code.
    Fail(Code, Params),
    /// The check was not run, and why.
    Skipped(String),
}

impl CheckOutcome {
    /// Trace label.
    pub fn label(&self) -> &'static str {
        match self {
            CheckOutcome::Pass => "pass",
            CheckOutcome::Fail(code, _) if code.is_temporary() => "tempfail",
            CheckOutcome::Fail(..) => "fail",
            CheckOutcome::Skipped(_) => "skipped",
        }
    }
}

/// The fixed checks, by name (`--skip` takes these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckName {
    /// Recipient and workspace state.
    Recipient,
    /// From/To present and acceptable.
    Headers,
    /// Text content size.
    TextSize,
    /// Duplicate text.
    Duplicate,
    /// Rate limits.
    RateLimit,
    /// Sender domain MX.
    Mx,
    /// SPF and DKIM.
    Auth,
    /// DMARC.
    Dmarc,
}

impl CheckName {
    /// Every check, in the order they run.
    pub const ALL: [CheckName; 8] = [
        CheckName::Recipient,
        CheckName::Headers,
        CheckName::TextSize,
        CheckName::Duplicate,
        CheckName::RateLimit,
        CheckName::Mx,
        CheckName::Auth,
        CheckName::Dmarc,
    ];

    /// The name in traces and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Recipient => "recipient",
            CheckName::Headers => "headers",
            CheckName::TextSize => "text_size",
            CheckName::Duplicate => "duplicate",
            CheckName::RateLimit => "rate_limit",
            CheckName::Mx => "mx",
            CheckName::Auth => "auth",
            CheckName::Dmarc => "dmarc",
        }
    }

    /// Parses a name (also accepts the catalog codes and common synonyms:
    /// `duplicates`, `rate`, `spf`, `dkim`, `size`, …).
    pub fn parse(name: &str) -> Result<Self, String> {
        let n = name.trim().to_ascii_lowercase().replace('-', "_");
        Ok(match n.as_str() {
            "recipient" | "workspace" | "rcpt" => CheckName::Recipient,
            "headers" | "headers_missing" | "headers_unacceptable" => CheckName::Headers,
            "text_size" | "size" | "text_oversized" => CheckName::TextSize,
            "duplicate" | "duplicates" | "duplicate_text" => CheckName::Duplicate,
            "rate_limit" | "rate" | "rate_limited" | "rate_limits" => CheckName::RateLimit,
            "mx" | "sender_no_mx" => CheckName::Mx,
            "auth" | "spf" | "dkim" | "not_authenticated" => CheckName::Auth,
            "dmarc" | "dmarc_rejected" => CheckName::Dmarc,
            _ => {
                let known: Vec<&str> = CheckName::ALL.iter().map(|c| c.as_str()).collect();
                return Err(format!("unknown check `{name}` (known: {})", known.join(", ")));
            }
        })
    }
}

/// Limits and switches of the fixed checks.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// The conversations' reply domain.
    pub reply_domain: Option<String>,
    /// Largest text content in bytes.
    pub text_max_bytes: u64,
    /// Per sender address.
    pub sender_rate: RateLimit,
    /// Per workspace.
    pub workspace_rate: RateLimit,
    /// Duplicate window in milliseconds.
    pub duplicate_window_ms: u64,
    /// Checks not to run.
    pub skip: HashSet<CheckName>,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            reply_domain: None,
            text_max_bytes: 1 << 20,
            sender_rate: RateLimit { count: 30, period_ms: 60_000 },
            workspace_rate: RateLimit { count: 2000, period_ms: 60_000 },
            duplicate_window_ms: 600_000,
            skip: HashSet::new(),
        }
    }
}

/// Milliseconds since the Unix epoch, injectable for tests.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The fixed checks with what they need.
#[derive(Clone)]
pub struct FixedChecks {
    /// Limits and switches.
    pub settings: CheckSettings,
    /// Workspace directory (`None`: recipient checks are skipped).
    pub directory: Option<Arc<dyn Directory>>,
    /// DNS (`None`: MX, SPF, DKIM and DMARC are skipped).
    pub dns: Option<Arc<Dns>>,
    /// Counters and fingerprints.
    pub state: Arc<dyn StateStore>,
    /// The clock.
    pub clock: Clock,
}

impl std::fmt::Debug for FixedChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedChecks").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// What the fixed checks produced for one message.
#[derive(Debug, Clone)]
pub struct CheckRun {
    /// One step per check.
    pub trace: Vec<TraceStep>,
    /// The workspace as policies see it.
    pub workspace: Workspace,
    /// Authentication results as policies see them.
    pub auth: Authentication,
    /// The first failure.
    pub failure: Option<(Code, Params)>,
    /// Fingerprint key to record once the verdict is final.
    pub duplicate_key: Option<String>,
}

impl FixedChecks {
    /// Checks with no directory, no DNS and in-memory state: what offline
    /// `check` runs without a config.
    pub fn offline() -> Self {
        FixedChecks {
            settings: CheckSettings::default(),
            directory: None,
            dns: None,
            state: Arc::new(crate::state::MemoryState::new()),
            clock: Arc::new(crate::state::now_ms),
        }
    }

    fn skipped(&self, name: CheckName) -> Option<String> {
        self.settings.skip.contains(&name).then(|| "skipped by configuration".to_string())
    }

    /// RCPT time (SMTP/LMTP): the recipient's workspace, or the catalog
    /// refusal. `Ok(None)` when there is no directory or the check is
    /// skipped: any recipient is then taken.
    #[allow(clippy::result_large_err)] // once per recipient
    pub fn recipient_at_rcpt(&self, rcpt: &str) -> Result<Option<recipient::Resolved>, (Code, Params)> {
        match (&self.directory, self.skipped(CheckName::Recipient)) {
            (Some(dir), None) => {
                recipient::resolve(rcpt, self.settings.reply_domain.as_deref(), dir.as_ref()).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// RCPT time: charges the envelope sender's rate, once per transaction.
    /// The checks after DATA are then told (`sender_charged`) not to charge
    /// it again.
    pub fn sender_rate_at_rcpt(&self, sender: &str) -> CheckOutcome {
        if let Some(why) = self.skipped(CheckName::RateLimit) {
            return CheckOutcome::Skipped(why);
        }
        let key = format!("rate:sender:{}", sender.to_ascii_lowercase());
        match self.state.rate_allow(&key, self.settings.sender_rate, (self.clock)()) {
            Ok(true) => CheckOutcome::Pass,
            Ok(false) => CheckOutcome::Fail(Code::RateLimited, Params::default()),
            Err(e) => state_failure(e),
        }
    }

    /// Runs the checks in order until one fails.
    pub async fn run(&self, msg: &ParsedMessage, raw: &[u8], env: &Envelope) -> CheckRun {
        self.run_with(msg, raw, env, false).await
    }

    /// [`FixedChecks::run`], told whether the sender's rate was already
    /// charged at RCPT time.
    pub async fn run_with(&self, msg: &ParsedMessage, raw: &[u8], env: &Envelope, sender_charged: bool) -> CheckRun {
        let mut run = CheckRun {
            trace: Vec::new(),
            workspace: default_workspace(),
            auth: auth::not_checked(),
            failure: None,
            duplicate_key: None,
        };
        let rcpt = env.rcpt_to.first().map(String::as_str).unwrap_or("");
        let from = msg.from.first().map(|a| a.address.clone()).unwrap_or_default();
        let sender =
            if env.mail_from.is_empty() { from.to_ascii_lowercase() } else { env.mail_from.to_ascii_lowercase() };
        let now = (self.clock)();

        // 1. recipient
        let t = Instant::now();
        let outcome = match (&self.directory, self.skipped(CheckName::Recipient)) {
            (_, Some(why)) => CheckOutcome::Skipped(why),
            (None, None) => CheckOutcome::Skipped("no workspace directory configured".into()),
            (Some(dir), None) => match recipient::resolve(rcpt, self.settings.reply_domain.as_deref(), dir.as_ref()) {
                Ok(resolved) => {
                    run.workspace = workspace_view(&resolved.workspace, resolved.kind);
                    CheckOutcome::Pass
                }
                Err((code, params)) => CheckOutcome::Fail(code, params),
            },
        };
        if self.step(&mut run, CheckName::Recipient, outcome, t) {
            return run;
        }

        // 2. headers
        let t = Instant::now();
        let outcome = match self.skipped(CheckName::Headers) {
            Some(why) => CheckOutcome::Skipped(why),
            None => headers::check_headers(msg),
        };
        if self.step(&mut run, CheckName::Headers, outcome, t) {
            return run;
        }

        // 3. text size
        let t = Instant::now();
        let outcome = match self.skipped(CheckName::TextSize) {
            Some(why) => CheckOutcome::Skipped(why),
            None if content::text_oversized(msg, self.settings.text_max_bytes) => {
                CheckOutcome::Fail(Code::TextOversized, Params::default())
            }
            None => CheckOutcome::Pass,
        };
        if self.step(&mut run, CheckName::TextSize, outcome, t) {
            return run;
        }

        // 4. duplicates
        let t = Instant::now();
        let outcome = match (self.skipped(CheckName::Duplicate), content::text_fingerprint(msg)) {
            (Some(why), _) => CheckOutcome::Skipped(why),
            (None, None) => CheckOutcome::Pass,
            (None, Some(fp)) => {
                let key = format!("dup:{}:{}:{fp}", run.workspace.id, sender);
                match self.state.seen_within(&key, self.settings.duplicate_window_ms, now) {
                    Ok(true) => CheckOutcome::Fail(Code::DuplicateText, Params::default()),
                    Ok(false) => {
                        run.duplicate_key = Some(key);
                        CheckOutcome::Pass
                    }
                    Err(e) => state_failure(e),
                }
            }
        };
        if self.step(&mut run, CheckName::Duplicate, outcome, t) {
            return run;
        }

        // 5. rate limits: sender, then the workspace's flood guard
        let t = Instant::now();
        let outcome = match self.skipped(CheckName::RateLimit) {
            Some(why) => CheckOutcome::Skipped(why),
            None => self.rate_limits((!sender_charged).then_some(sender.as_str()), &run.workspace.id, now),
        };
        if self.step(&mut run, CheckName::RateLimit, outcome, t) {
            return run;
        }

        // 6-8. DNS checks
        let Some(dns) = self.dns.clone() else {
            for name in [CheckName::Mx, CheckName::Auth, CheckName::Dmarc] {
                let why = self.skipped(name).unwrap_or_else(|| "no DNS configured".into());
                self.step(&mut run, name, CheckOutcome::Skipped(why), Instant::now());
            }
            return run;
        };
        let from_domain = from.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
        let t = Instant::now();
        let outcome = match self.skipped(CheckName::Mx) {
            Some(why) => CheckOutcome::Skipped(why),
            None => match auth::check_mx(&dns, &from_domain).await {
                auth::MxOutcome::Found => CheckOutcome::Pass,
                auth::MxOutcome::None => {
                    CheckOutcome::Fail(Code::SenderNoMx, Params { email: from.clone(), ..Params::default() })
                }
                auth::MxOutcome::TempFail(why) => dns_tempfail(why),
            },
        };
        if self.step(&mut run, CheckName::Mx, outcome, t) {
            return run;
        }

        let (skip_auth, skip_dmarc) = (self.skipped(CheckName::Auth), self.skipped(CheckName::Dmarc));
        if skip_auth.is_some() && skip_dmarc.is_some() {
            self.step(&mut run, CheckName::Auth, CheckOutcome::Skipped(skip_auth.unwrap_or_default()), Instant::now());
            self.step(
                &mut run,
                CheckName::Dmarc,
                CheckOutcome::Skipped(skip_dmarc.unwrap_or_default()),
                Instant::now(),
            );
            return run;
        }
        let t = Instant::now();
        let ip: IpAddr = env.client_ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let report = auth::authenticate(&dns, raw, ip, &env.helo, &env.mail_from, skip_dmarc.is_none()).await;
        run.auth = report.auth.clone();
        if skip_auth.is_some() {
            // Reported to policies, but not enforced.
            run.auth.spf_mail_from.result = crate::runtime::types::AuthResult::NotChecked;
            run.auth.spf_helo.result = crate::runtime::types::AuthResult::NotChecked;
            run.auth.dkim.clear();
        }
        let outcome = match skip_auth {
            Some(why) => CheckOutcome::Skipped(why),
            None if report.spf_pass || report.dkim_pass => CheckOutcome::Pass,
            None => match &report.temp_error {
                Some(why) => dns_tempfail(why.clone()),
                None => CheckOutcome::Fail(Code::NotAuthenticated, Params { email: from.clone(), ..Params::default() }),
            },
        };
        if self.step(&mut run, CheckName::Auth, outcome, t) {
            return run;
        }
        let t = Instant::now();
        let outcome = match (skip_dmarc, report.dmarc_reject) {
            (Some(why), _) => CheckOutcome::Skipped(why),
            (None, _) if report.dmarc_temp_error => dns_tempfail("DMARC: temporary DNS failure".into()),
            (None, Some(policy)) => CheckOutcome::Fail(
                Code::DmarcRejected,
                Params { email: from.clone(), policy: policy.to_string(), ..Params::default() },
            ),
            (None, None) => CheckOutcome::Pass,
        };
        self.step(&mut run, CheckName::Dmarc, outcome, t);
        run
    }

    fn rate_limits(&self, sender: Option<&str>, workspace: &str, now: u64) -> CheckOutcome {
        let s = &self.settings;
        let sender = sender.map(|sender| (format!("rate:sender:{sender}"), s.sender_rate));
        let checks = sender.into_iter().chain([(format!("rate:ws:{workspace}"), s.workspace_rate)]);
        for (key, limit) in checks {
            match self.state.rate_allow(&key, limit, now) {
                Ok(true) => {}
                Ok(false) => return CheckOutcome::Fail(Code::RateLimited, Params::default()),
                Err(e) => return state_failure(e),
            }
        }
        CheckOutcome::Pass
    }

    /// Records one step; true when it ends the checks.
    fn step(&self, run: &mut CheckRun, name: CheckName, outcome: CheckOutcome, since: Instant) -> bool {
        let detail = match &outcome {
            CheckOutcome::Skipped(why) => why.clone(),
            CheckOutcome::Fail(code, _) => code.as_str().to_string(),
            CheckOutcome::Pass => String::new(),
        };
        run.trace.push(TraceStep {
            step: name.as_str().into(),
            outcome: outcome.label().into(),
            detail,
            duration_us: since.elapsed().as_micros() as u64,
        });
        if let CheckOutcome::Fail(code, params) = outcome {
            run.failure = Some((code, params));
            return true;
        }
        false
    }

    /// Records the message's fingerprint once its verdict is final (never on
    /// a temporary failure: the sender's retry must not count as a
    /// duplicate).
    pub fn commit(&self, run: &CheckRun, final_verdict: bool) {
        if let (true, Some(key)) = (final_verdict, &run.duplicate_key)
            && let Err(e) = self.state.record_seen(key, self.settings.duplicate_window_ms, (self.clock)())
        {
            tracing::warn!(error = %e, "duplicate fingerprint not recorded");
        }
    }
}

fn dns_tempfail(why: String) -> CheckOutcome {
    tracing::warn!(%why, "DNS temporary failure");
    CheckOutcome::Fail(Code::DnsTempfail, Params::default())
}

fn state_failure(e: crate::state::StateError) -> CheckOutcome {
    tracing::error!(error = %e, "state backend failed");
    CheckOutcome::Fail(Code::InternalError, Params::default())
}

/// The workspace context when no directory resolved one.
pub fn default_workspace() -> Workspace {
    Workspace { id: "default".into(), junk_filter: true, kind: MailKind::NewMail, settings: vec![] }
}

/// The workspace as policies see it.
pub fn workspace_view(ws: &WorkspaceRecord, kind: MailKind) -> Workspace {
    Workspace {
        id: ws.id.clone(),
        junk_filter: ws.junk_filter,
        kind,
        settings: ws.settings_json.iter().map(|(k, v)| Setting { key: k.clone(), value: v.clone() }).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_parse_with_synonyms() {
        assert_eq!(CheckName::parse("recipient"), Ok(CheckName::Recipient));
        assert_eq!(CheckName::parse("DKIM"), Ok(CheckName::Auth));
        assert_eq!(CheckName::parse("duplicates"), Ok(CheckName::Duplicate));
        assert_eq!(CheckName::parse("rate-limit"), Ok(CheckName::RateLimit));
        let err = CheckName::parse("bogus").unwrap_err();
        assert!(err.contains("bogus") && err.contains("recipient, headers"), "{err}");
        for c in CheckName::ALL {
            assert_eq!(CheckName::parse(c.as_str()), Ok(c));
        }
    }
}
