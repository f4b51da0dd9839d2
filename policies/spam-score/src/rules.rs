//! The rules, their default scores and what each means.

use postern_policy_sdk::{AuthResult, Authentication, Envelope, Message};

use crate::scan::{BodyStats, hides_text};
use crate::text::{caps_ratio, domain_in_text, domain_of, is_ip_literal, org_domain, words};

/// One rule: a symbol name, its default score and its meaning.
#[derive(Debug)]
pub struct Rule {
    /// Symbol name.
    pub name: &'static str,
    /// Default score.
    pub score: f64,
    /// What the symbol means.
    pub description: &'static str,
}

macro_rules! rules {
    ($($id:ident = $score:expr, $desc:expr;)*) => {
        $(
            #[doc = $desc]
            pub const $id: Rule = Rule { name: stringify!($id), score: $score, description: $desc };
        )*
        /// Every rule, for documentation and for listing.
        pub const RULES: &[Rule] = &[$($id),*];
    };
}

rules! {
    SPF_PASS = -0.5, "SPF passed for the MAIL FROM domain";
    SPF_FAIL = 2.0, "SPF failed for the MAIL FROM domain";
    SPF_SOFTFAIL = 1.0, "SPF soft-failed for the MAIL FROM domain";
    DKIM_VALID_ALIGNED = -1.0, "a valid DKIM signature aligned with From";
    DKIM_INVALID = 1.5, "a DKIM signature failed to verify";
    DMARC_FAIL = 2.5, "DMARC failed for the From domain";
    NO_AUTH = 1.5, "neither SPF nor DKIM passed";
    MISSING_DATE = 0.5, "no Date header";
    MISSING_MID = 0.5, "no Message-ID header";
    FROM_NAME_HAS_ADDRESS = 1.5, "the From display name contains a different address";
    REPLYTO_DIFFERS = 1.0, "Reply-To is at another organisation than From";
    ENVFROM_DIFFERS = 0.3, "MAIL FROM is at another organisation than From";
    MANY_RECIPIENTS = 1.0, "To and Cc list more than 15 addresses";
    SUBJ_MISSING = 0.5, "no Subject";
    SUBJ_ALL_CAPS = 1.5, "the subject is mostly capitals";
    SUBJ_MONEY = 1.5, "the subject promises money or prizes";
    SUBJ_EXCLAIM = 0.7, "the subject has several exclamation marks";
    BODY_EMPTY = 1.0, "no text in the body";
    BODY_SPAM_WORDS = 0.6, "words typical of spam, per distinct word (at most 5)";
    BODY_MONEY = 1.0, "the body is dense with money amounts";
    BODY_CAPS = 1.0, "the body text is mostly capitals";
    HTML_ONLY_TINY_TEXT = 1.0, "HTML body with almost no visible text";
    HIDDEN_TEXT = 1.5, "HTML hides text (display:none, zero font size)";
    URL_SHORTENER = 1.0, "a link through a URL shortener";
    URL_IP_LITERAL = 2.0, "a link to a bare IP address";
    URL_TEXT_MISMATCH = 2.5, "a link's text names another domain than its target";
    MANY_DOMAINS = 0.8, "links to more than 8 distinct domains";
    ATTACH_EXECUTABLE = 4.0, "an attachment type that carries executable code";
    ATTACH_DOUBLE_EXT = 2.0, "an attachment with a double extension";
}

/// A fired rule: how many times its score counts, and a detail for the
/// explanation (may be empty).
#[derive(Debug)]
pub struct Hit {
    /// The rule.
    pub rule: &'static Rule,
    /// Multiplier of the rule's score.
    pub times: f64,
    /// What triggered it.
    pub detail: String,
}

/// Fired rules.
pub type Hits = Vec<Hit>;

fn hit(hits: &mut Hits, rule: &'static Rule, detail: impl Into<String>) {
    hits.push(Hit { rule, times: 1.0, detail: detail.into() });
}

/// Authentication outcomes (skipped when the host did not check).
pub fn authentication(auth: &Authentication, hits: &mut Hits) {
    match auth.spf_mail_from.result {
        AuthResult::Pass => hit(hits, &SPF_PASS, auth.spf_mail_from.domain.clone()),
        AuthResult::Fail => hit(hits, &SPF_FAIL, auth.spf_mail_from.domain.clone()),
        AuthResult::Softfail => hit(hits, &SPF_SOFTFAIL, auth.spf_mail_from.domain.clone()),
        _ => {}
    }
    if auth.dkim.iter().any(|d| d.result == AuthResult::Pass) && auth.dmarc.dkim_aligned {
        hit(hits, &DKIM_VALID_ALIGNED, String::new());
    }
    if let Some(bad) = auth.dkim.iter().find(|d| matches!(d.result, AuthResult::Fail | AuthResult::Permerror)) {
        hit(hits, &DKIM_INVALID, bad.domain.clone());
    }
    if auth.dmarc.result == AuthResult::Fail {
        hit(hits, &DMARC_FAIL, String::new());
    }
    let checked = auth.spf_mail_from.result != AuthResult::NotChecked
        || auth.dkim.iter().any(|d| d.result != AuthResult::NotChecked);
    let passed = auth.spf_mail_from.result == AuthResult::Pass
        || auth.spf_helo.result == AuthResult::Pass
        || auth.dkim.iter().any(|d| d.result == AuthResult::Pass);
    if checked && !passed {
        hit(hits, &NO_AUTH, String::new());
    }
}

/// Header shapes.
pub fn headers(msg: &Message, envelope: &Envelope, hits: &mut Hits) {
    if msg.header("Date").is_empty() {
        hit(hits, &MISSING_DATE, String::new());
    }
    if msg.message_id().is_none() {
        hit(hits, &MISSING_MID, String::new());
    }
    let Some(from) = msg.from().first() else { return };
    let from_domain = domain_of(&from.address);
    if let Some(name) = &from.name
        && name.contains('@')
        && !name.to_ascii_lowercase().contains(&from.address.to_ascii_lowercase())
    {
        hit(hits, &FROM_NAME_HAS_ADDRESS, name.clone());
    }
    if let Some(reply_to) = msg.reply_to().first() {
        let rt = domain_of(&reply_to.address);
        if !rt.is_empty() && org_domain(&rt) != org_domain(&from_domain) {
            hit(hits, &REPLYTO_DIFFERS, rt);
        }
    }
    let env = domain_of(&envelope.mail_from);
    if !env.is_empty() && !from_domain.is_empty() && org_domain(&env) != org_domain(&from_domain) {
        hit(hits, &ENVFROM_DIFFERS, env);
    }
    if msg.to().len() + msg.cc().len() > 15 {
        hit(hits, &MANY_RECIPIENTS, String::new());
    }
}

/// Subject shapes and wording.
pub fn subject(msg: &Message, hits: &mut Hits) {
    let Some(subject) = msg.subject().filter(|s| !s.trim().is_empty()) else {
        hit(hits, &SUBJ_MISSING, String::new());
        return;
    };
    if caps_ratio(subject, 8) > 0.8 {
        hit(hits, &SUBJ_ALL_CAPS, String::new());
    }
    if subject.matches('!').count() >= 2 {
        hit(hits, &SUBJ_EXCLAIM, String::new());
    }
    let money = subject.contains('$')
        || words(subject).any(|w| {
            matches!(
                w.to_lowercase().as_str(),
                "free"
                    | "winner"
                    | "won"
                    | "prize"
                    | "cash"
                    | "million"
                    | "earn"
                    | "income"
                    | "loan"
                    | "credit"
                    | "debt"
                    | "profit"
                    | "rich"
            )
        });
    if money {
        hit(hits, &SUBJ_MONEY, String::new());
    }
}

/// Body text: emptiness, vocabulary, money density, shouting, hidden text.
/// `stats` counts the primary text (the longer of the plain and HTML
/// bodies), scanned once by the caller.
pub fn body(msg: &Message, stats: &BodyStats, hits: &mut Hits) {
    if msg.primary_text().trim().is_empty() {
        hit(hits, &BODY_EMPTY, String::new());
        return;
    }
    if !stats.spam_words.is_empty() {
        hits.push(Hit {
            rule: &BODY_SPAM_WORDS,
            times: stats.spam_words.len() as f64,
            detail: stats.spam_words.join(", "),
        });
    }
    if stats.words > 0 && stats.money_signs >= 3 && stats.money_signs * 40 >= stats.words {
        hit(hits, &BODY_MONEY, format!("{} amounts", stats.money_signs));
    }
    if stats.letters >= 200 && stats.capitals * 10 > stats.letters * 6 {
        hit(hits, &BODY_CAPS, String::new());
    }
    let html = msg.html_body();
    if !html.is_empty() {
        if msg.text_body().trim().is_empty() && msg.html_text().split_whitespace().nth(4).is_none() {
            hit(hits, &HTML_ONLY_TINY_TEXT, String::new());
        }
        if hides_text(html) {
            hit(hits, &HIDDEN_TEXT, String::new());
        }
    }
}

const SHORTENERS: &[&str] = &[
    "bit.ly",
    "tinyurl.com",
    "goo.gl",
    "t.co",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "tiny.cc",
    "rb.gy",
];

/// Links: shorteners, IP literals, deceptive anchors, domain spread.
pub fn links(msg: &Message, hits: &mut Hits) {
    let links = msg.links();
    let mut domains: Vec<&str> = Vec::new();
    let (mut shortener, mut ip, mut mismatch) = (None, None, None);
    for link in links {
        let host = link.domain.as_str();
        if host.is_empty() {
            continue;
        }
        if !domains.contains(&host) {
            domains.push(host);
        }
        if shortener.is_none() && SHORTENERS.contains(&host) {
            shortener = Some(host.to_string());
        }
        if ip.is_none() && is_ip_literal(host) {
            ip = Some(host.to_string());
        }
        if mismatch.is_none()
            && let Some(shown) = link.text.as_deref().and_then(domain_in_text)
            && org_domain(&shown) != org_domain(host)
        {
            mismatch = Some(format!("{shown} -> {host}"));
        }
    }
    if let Some(d) = shortener {
        hit(hits, &URL_SHORTENER, d);
    }
    if let Some(d) = ip {
        hit(hits, &URL_IP_LITERAL, d);
    }
    if let Some(d) = mismatch {
        hit(hits, &URL_TEXT_MISMATCH, d);
    }
    if domains.len() > 8 {
        hit(hits, &MANY_DOMAINS, format!("{} domains", domains.len()));
    }
}

const EXECUTABLE_EXT: &[&str] = &[
    "exe", "scr", "com", "bat", "cmd", "pif", "vbs", "vbe", "js", "jse", "wsf", "hta", "msi", "jar", "ps1", "lnk",
    "iso", "img",
];

/// Attachments that carry code.
pub fn attachments(msg: &Message, hits: &mut Hits) {
    for a in msg.attachments() {
        let name = a.filename.as_deref().unwrap_or("").to_ascii_lowercase();
        let mut parts = name.rsplit('.');
        let ext = parts.next().unwrap_or("");
        let exec = EXECUTABLE_EXT.contains(&ext)
            || matches!(
                a.content_type.as_str(),
                "application/x-msdownload" | "application/x-msdos-program" | "application/x-executable"
            );
        if exec {
            hit(hits, &ATTACH_EXECUTABLE, name.clone());
            if name.matches('.').count() >= 2
                && parts.next().is_some_and(|e| matches!(e, "pdf" | "doc" | "docx" | "jpg" | "png" | "txt" | "xls"))
            {
                hit(hits, &ATTACH_DOUBLE_EXT, name.clone());
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests;
