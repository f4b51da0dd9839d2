//! Prometheus metrics: verdicts, check and stage timings, policy failures,
//! deliveries and SMTP sessions, rendered in the text exposition format for
//! `GET /metrics`.

use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::checks::CheckName;
use crate::verdict::{Action, Verdict};

/// Buckets from 10µs to 5s (1-2.5-5 steps): a fixed check takes
/// microseconds, a DNS lookup or a slow policy up to seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0,
];

/// Buckets from 1ms to 30s: a delivery writes to storage or a remote API.
const DELIVERY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Trace steps timed by `postern_check_duration_seconds`: parsing, then the
/// fixed checks as [`CheckName::as_str`] names them.
const CHECK_STEPS: [&str; 1 + CheckName::ALL.len()] =
    ["parse", "recipient", "headers", "text_size", "duplicate", "rate_limit", "mx", "auth", "dmarc"];

/// Trace steps timed by `postern_stage_duration_seconds`: the policy stages.
const STAGE_STEPS: [&str; 3] = ["score", "threshold", "route"];

/// The metrics of one server, in their own registry.
pub struct Metrics {
    registry: Registry,
    messages: IntCounterVec,
    // Resolved once: observing a verdict then costs no label hashing.
    check_durations: [Histogram; CHECK_STEPS.len()],
    stage_durations: [Histogram; STAGE_STEPS.len()],
    message_duration: Histogram,
    policy_calls: IntCounterVec,
    policy_failures: IntCounterVec,
    shadow_differences: IntCounterVec,
    delivery_duration: Histogram,
    delivery_failures: IntCounter,
    smtp_connections: IntCounterVec,
    smtp_sessions: IntGauge,
    smtp_replies: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, all at zero.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // Registration only fails on a duplicate or malformed definition;
        // these are static and distinct.
        fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
            r.register(Box::new(m.clone())).expect("static metric definitions register");
            m
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"))
        };
        let histogram_vec = |name: &str, help: &str, label: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            reg(&registry, HistogramVec::new(opts, &[label]).expect("valid histogram"))
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            reg(&registry, Histogram::with_opts(opts).expect("valid histogram"))
        };

        let messages = counter_vec(
            "postern_messages_total",
            "Messages judged, by action and catalog code (`none` when accepted).",
            &["action", "code"],
        );
        let checks = histogram_vec(
            "postern_check_duration_seconds",
            "Time spent parsing and in each fixed check.",
            "check",
            LATENCY_BUCKETS,
        );
        let stages = histogram_vec(
            "postern_stage_duration_seconds",
            "Time spent in each policy stage that ran.",
            "stage",
            LATENCY_BUCKETS,
        );
        let message_duration =
            histogram("postern_message_duration_seconds", "Time spent judging a message, end to end.", LATENCY_BUCKETS);
        let policy_calls = counter_vec(
            "postern_policy_calls_total",
            "Policy calls, by policy, stage and outcome (`ok` or the failure kind).",
            &["policy", "stage", "outcome"],
        );
        let policy_failures = counter_vec(
            "postern_policy_failures_total",
            "Failed policy calls (traps, time-outs, bad output), by policy and kind.",
            &["policy", "kind"],
        );
        let shadow_differences = counter_vec(
            "postern_shadow_differences_total",
            "Messages where a shadow policy decided otherwise than the enforced one, by policy and stage.",
            &["policy", "stage"],
        );
        let delivery_duration = histogram(
            "postern_delivery_duration_seconds",
            "Time spent delivering an accepted message.",
            DELIVERY_BUCKETS,
        );
        let delivery_failures = reg(
            &registry,
            IntCounter::new("postern_delivery_failures_total", "Deliveries that failed.").expect("valid counter"),
        );
        let smtp_connections = counter_vec(
            "postern_smtp_connections_total",
            "SMTP connections, by listener and outcome (accepted, refused_total, refused_per_ip).",
            &["listener", "outcome"],
        );
        let smtp_sessions =
            reg(&registry, IntGauge::new("postern_smtp_sessions", "Open SMTP sessions.").expect("valid gauge"));
        let smtp_replies = counter_vec(
            "postern_smtp_replies_total",
            "SMTP replies sent, by listener and class (2xx, 3xx, 4xx, 5xx).",
            &["listener", "class"],
        );

        Metrics {
            check_durations: CHECK_STEPS.map(|c| checks.with_label_values(&[c])),
            stage_durations: STAGE_STEPS.map(|s| stages.with_label_values(&[s])),
            registry,
            messages,
            message_duration,
            policy_calls,
            policy_failures,
            shadow_differences,
            delivery_duration,
            delivery_failures,
            smtp_connections,
            smtp_sessions,
            smtp_replies,
        }
    }

    /// Records one verdict: its action and code, the time of each step and
    /// of the whole message, and each policy call.
    pub fn observe_verdict(&self, v: &Verdict) {
        let action = match v.action {
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::Tempfail => "tempfail",
        };
        let code = v.code.map_or("none", |c| c.as_str());
        self.messages.with_label_values(&[action, code]).inc();

        for step in &v.trace {
            let name = step.step.as_str();
            if name == "shadow" {
                if step.outcome == "differs" {
                    // The detail reads "NAME@VERSION (STAGE): …".
                    let policy = step.detail.split(['@', ' ']).next().unwrap_or("");
                    let stage =
                        step.detail.split_once(" (").and_then(|(_, r)| r.split_once(')')).map_or("", |(s, _)| s);
                    self.shadow_differences.with_label_values(&[policy, stage]).inc();
                }
                continue;
            }
            let histogram = match CHECK_STEPS.iter().position(|&c| c == name) {
                Some(i) => &self.check_durations[i],
                None => match STAGE_STEPS.iter().position(|&s| s == name) {
                    Some(i) => &self.stage_durations[i],
                    None => continue,
                },
            };
            histogram.observe(seconds(step.duration_us));
        }
        self.message_duration.observe(seconds(v.timings.total_us));

        for run in &v.policies {
            self.policy_calls.with_label_values(&[run.name.as_str(), run.stage, run.outcome.as_str()]).inc();
            if run.outcome != "ok" {
                self.policy_failures.with_label_values(&[run.name.as_str(), run.outcome.as_str()]).inc();
            }
        }
    }

    /// Records one delivery attempt.
    pub fn observe_delivery(&self, d: Duration, ok: bool) {
        self.delivery_duration.observe(d.as_secs_f64());
        if !ok {
            self.delivery_failures.inc();
        }
    }

    /// Records an SMTP connection on `listener`: `accepted`, `refused_total`
    /// or `refused_per_ip`.
    pub fn connection(&self, listener: &str, outcome: &str) {
        self.smtp_connections.with_label_values(&[listener, outcome]).inc();
    }

    /// An SMTP session opened.
    pub fn session_opened(&self) {
        self.smtp_sessions.inc();
    }

    /// An SMTP session closed.
    pub fn session_closed(&self) {
        self.smtp_sessions.dec();
    }

    /// Records an SMTP reply sent on `listener`, by class of its code.
    pub fn reply(&self, listener: &str, code: u16) {
        let class = match code / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            5 => "5xx",
            _ => "other",
        };
        self.smtp_replies.with_label_values(&[listener, class]).inc();
    }

    /// Every metric in the Prometheus text format (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_else(|e| {
            // Only an invalid metric family fails to encode; scrape what we can say.
            tracing::error!(error = %e, "encode metrics");
            String::new()
        })
    }
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Code, Params, PolicyRun, Timings, TraceStep};

    fn verdict(code: Option<Code>, policies: Vec<PolicyRun>) -> Verdict {
        let (action, smtp) = match code {
            None => (Action::Accept, Verdict::accepted_reply()),
            Some(c) => (Verdict::action_for(c), Verdict::reply_for(c, "Crisp", &Params::default())),
        };
        let step = |step: &str, us| TraceStep {
            step: step.into(),
            outcome: "ok".into(),
            detail: String::new(),
            duration_us: us,
        };
        Verdict {
            file: None,
            action,
            code,
            smtp,
            score: 0.0,
            classification: None,
            note: None,
            symbols: Vec::new(),
            route: None,
            policies,
            trace: vec![step("parse", 40), step("headers", 5), step("score", 800), step("threshold", 30)],
            timings: Timings { total_us: 900, ..Timings::default() },
        }
    }

    fn run(name: &str, outcome: &str) -> PolicyRun {
        PolicyRun {
            name: name.into(),
            version: "1.0.0".into(),
            sha256: "00".repeat(32),
            stage: "score",
            scope: "platform".into(),
            outcome: outcome.into(),
            error: (outcome != "ok").then(|| "boom".into()),
            on_error: (outcome != "ok").then_some("skip"),
            duration_us: 700,
        }
    }

    #[test]
    fn check_steps_name_every_fixed_check() {
        let names: Vec<&str> = CheckName::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(CHECK_STEPS[1..], names[..]);
    }

    #[test]
    fn counts_accepted_and_rejected_messages() {
        let m = Metrics::new();
        m.observe_verdict(&verdict(Some(Code::Spam), vec![run("spam-score", "ok")]));
        m.observe_verdict(&verdict(None, vec![run("spam-score", "ok")]));
        m.observe_verdict(&verdict(None, vec![]));
        let out = m.render();
        assert!(out.contains(r#"postern_messages_total{action="reject",code="spam"} 1"#), "{out}");
        assert!(out.contains(r#"postern_messages_total{action="accept",code="none"} 2"#), "{out}");
        assert!(
            out.contains(r#"postern_policy_calls_total{outcome="ok",policy="spam-score",stage="score"} 2"#),
            "{out}"
        );
        assert!(out.contains(r#"postern_check_duration_seconds_count{check="parse"} 3"#), "{out}");
        assert!(out.contains(r#"postern_check_duration_seconds_count{check="headers"} 3"#), "{out}");
        assert!(out.contains(r#"postern_check_duration_seconds_count{check="mx"} 0"#), "{out}");
        assert!(out.contains(r#"postern_stage_duration_seconds_count{stage="score"} 3"#), "{out}");
        assert!(out.contains(r#"postern_stage_duration_seconds_count{stage="route"} 0"#), "{out}");
        assert!(out.contains("postern_message_duration_seconds_count 3"), "{out}");
        assert!(!out.contains("postern_policy_failures_total{"), "{out}");
    }

    #[test]
    fn counts_shadow_differences() {
        let m = Metrics::new();
        let mut v = verdict(None, Vec::new());
        v.trace.push(TraceStep {
            step: "shadow".into(),
            outcome: "differs".into(),
            detail: "strict@0.9.0 (threshold): would be junk (junk), enforced deliver (clean)".into(),
            duration_us: 3,
        });
        v.trace.push(TraceStep {
            step: "shadow".into(),
            outcome: "same".into(),
            detail: "other@1 (route): …".into(),
            duration_us: 3,
        });
        m.observe_verdict(&v);
        let out = m.render();
        assert!(out.contains(r#"postern_shadow_differences_total{policy="strict",stage="threshold"} 1"#), "{out}");
        assert!(!out.contains(r#"policy="other""#), "{out}");
    }

    #[test]
    fn counts_policy_failures() {
        let m = Metrics::new();
        m.observe_verdict(&verdict(Some(Code::InternalError), vec![run("spam-score", "trap")]));
        m.observe_verdict(&verdict(None, vec![run("spam-score", "timeout"), run("extra", "ok")]));
        let out = m.render();
        assert!(out.contains(r#"postern_policy_failures_total{kind="trap",policy="spam-score"} 1"#), "{out}");
        assert!(out.contains(r#"postern_policy_failures_total{kind="timeout",policy="spam-score"} 1"#), "{out}");
        assert!(out.contains(r#"postern_policy_calls_total{outcome="trap",policy="spam-score",stage="score"} 1"#));
        assert!(out.contains(r#"postern_messages_total{action="tempfail",code="internal_error"} 1"#), "{out}");
    }

    #[test]
    fn counts_smtp_and_deliveries() {
        let m = Metrics::new();
        m.connection("mx", "accepted");
        m.connection("mx", "refused_per_ip");
        m.session_opened();
        m.session_opened();
        m.session_closed();
        m.reply("mx", 250);
        m.reply("mx", 550);
        m.reply("mx", 451);
        m.observe_delivery(Duration::from_millis(20), true);
        m.observe_delivery(Duration::from_millis(20), false);
        let out = m.render();
        assert!(out.contains(r#"postern_smtp_connections_total{listener="mx",outcome="accepted"} 1"#), "{out}");
        assert!(out.contains(r#"postern_smtp_connections_total{listener="mx",outcome="refused_per_ip"} 1"#));
        assert!(out.contains("postern_smtp_sessions 1"), "{out}");
        assert!(out.contains(r#"postern_smtp_replies_total{class="5xx",listener="mx"} 1"#), "{out}");
        assert!(out.contains(r#"postern_smtp_replies_total{class="4xx",listener="mx"} 1"#), "{out}");
        assert!(out.contains("postern_delivery_duration_seconds_count 2"), "{out}");
        assert!(out.contains("postern_delivery_failures_total 1"), "{out}");
    }
}
