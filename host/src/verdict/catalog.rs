//! The error catalog: every rejection or temporary failure has one stable
//! code, one SMTP reply and the seed article's text, word for word.

use serde::{Deserialize, Serialize};

/// A catalog code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// From or To header absent.
    HeadersMissing,
    /// From/To present but not a valid address.
    HeadersUnacceptable,
    /// Reply-to local part is not a well-formed session token.
    SessionAddressInvalid,
    /// Text content over the limit.
    TextOversized,
    /// Same text, sender and workspace within the window.
    DuplicateText,
    /// Sender (or workspace flood guard) over its rate.
    RateLimited,
    /// The From domain has no MX records.
    SenderNoMx,
    /// Neither SPF nor DKIM passes.
    NotAuthenticated,
    /// DMARC fails and the policy is quarantine/reject.
    DmarcRejected,
    /// The threshold stage says junk or dirty.
    Spam,
    /// Reply to a session that does not exist.
    SessionMissing,
    /// Workspace blocked by moderation.
    WorkspaceBlocked,
    /// The session's workspace does not exist.
    WorkspaceMissing,
    /// Recipient domain bound to no workspace, or subscription inactive.
    DomainUnbound,
    /// The workspace's email-redirect plugin is off.
    PluginDisabled,
    /// A DNS time-out or SERVFAIL during authentication: retry later.
    DnsTempfail,
    /// Anything unexpected in the host.
    InternalError,
}

/// Values substituted into a catalog text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    /// `EMAIL`.
    pub email: String,
    /// `WEBSITE`.
    pub website: String,
    /// `SESSION`.
    pub session: String,
    /// `POLICY` (DMARC policy).
    pub policy: String,
    /// `NOTE` (spam note).
    pub note: String,
    /// `SCORE` (spam score).
    pub score: f64,
}

impl Code {
    /// Every code, in catalog order.
    pub const ALL: [Code; 17] = [
        Code::HeadersMissing,
        Code::HeadersUnacceptable,
        Code::SessionAddressInvalid,
        Code::TextOversized,
        Code::DuplicateText,
        Code::RateLimited,
        Code::SenderNoMx,
        Code::NotAuthenticated,
        Code::DmarcRejected,
        Code::Spam,
        Code::SessionMissing,
        Code::WorkspaceBlocked,
        Code::WorkspaceMissing,
        Code::DomainUnbound,
        Code::PluginDisabled,
        Code::DnsTempfail,
        Code::InternalError,
    ];

    /// SMTP reply code and enhanced status code.
    pub fn reply(self) -> (u16, &'static str) {
        match self {
            Code::HeadersMissing => (550, "5.6.0"),
            Code::HeadersUnacceptable => (550, "5.1.7"),
            Code::SessionAddressInvalid => (550, "5.1.1"),
            Code::TextOversized => (552, "5.3.4"),
            Code::DuplicateText => (550, "5.7.1"),
            Code::RateLimited => (450, "4.7.1"),
            Code::SenderNoMx => (550, "5.1.8"),
            Code::NotAuthenticated => (550, "5.7.26"),
            Code::DmarcRejected => (550, "5.7.1"),
            Code::Spam => (550, "5.7.1"),
            Code::SessionMissing => (550, "5.1.1"),
            Code::WorkspaceBlocked => (550, "5.7.1"),
            Code::WorkspaceMissing => (550, "5.1.1"),
            Code::DomainUnbound => (550, "5.1.2"),
            Code::PluginDisabled => (550, "5.7.1"),
            Code::DnsTempfail => (451, "4.4.3"),
            Code::InternalError => (451, "4.3.0"),
        }
    }

    /// True for 4xx codes: the sender's MTA retries.
    pub fn is_temporary(self) -> bool {
        self.reply().0 < 500
    }

    /// The text with its placeholders filled in; `brand` replaces "Crisp".
    pub fn text(self, brand: &str, p: &Params) -> String {
        match self {
            Code::HeadersMissing => "Got invalid email headers (From + To required)".into(),
            Code::HeadersUnacceptable => "Got invalid email headers (From or To not acceptable)".into(),
            Code::SessionAddressInvalid => {
                format!("{brand} session in address local part not recognized: {} (invalid or does not exist)", p.email)
            }
            Code::TextOversized => "Email text content is oversized".into(),
            Code::DuplicateText => "Email with same text already sent recently, please slow down".into(),
            Code::RateLimited => "Sending address is currently rate-limited, please slow down".into(),
            Code::SenderNoMx => format!("From address does not exist or is invalid: {}", p.email),
            Code::NotAuthenticated => format!(
                "Email not authenticated. The sender must authenticate with at least one of SPF or DKIM: {}",
                p.email
            ),
            Code::DmarcRejected => format!(
                "Email origin could not be verified, you are possibly spoofing {} (sender DMARC policy is set to {})",
                p.email, p.policy
            ),
            Code::Spam => format!(
                "Your email has been classified as spam, and we dislike spam {}, got score: {}",
                p.note,
                format_score(p.score)
            ),
            Code::SessionMissing => format!("{brand} session does not exist"),
            Code::WorkspaceBlocked => format!("{brand} website is blocked"),
            Code::WorkspaceMissing => {
                format!("{brand} website does not exist: {} for session: {}", p.website, p.session)
            }
            Code::DomainUnbound => format!("Domain not bound to any {brand} website"),
            Code::PluginDisabled => format!("{brand} email redirection plugin is disabled on {brand} website"),
            Code::DnsTempfail => "Temporary DNS failure while verifying the sender, please retry later".into(),
            Code::InternalError => "We could not process the email at that time due to an internal error".into(),
        }
    }

    /// The code's stable name (`spam`, `headers_missing`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::HeadersMissing => "headers_missing",
            Code::HeadersUnacceptable => "headers_unacceptable",
            Code::SessionAddressInvalid => "session_address_invalid",
            Code::TextOversized => "text_oversized",
            Code::DuplicateText => "duplicate_text",
            Code::RateLimited => "rate_limited",
            Code::SenderNoMx => "sender_no_mx",
            Code::NotAuthenticated => "not_authenticated",
            Code::DmarcRejected => "dmarc_rejected",
            Code::Spam => "spam",
            Code::SessionMissing => "session_missing",
            Code::WorkspaceBlocked => "workspace_blocked",
            Code::WorkspaceMissing => "workspace_missing",
            Code::DomainUnbound => "domain_unbound",
            Code::PluginDisabled => "plugin_disabled",
            Code::DnsTempfail => "dns_tempfail",
            Code::InternalError => "internal_error",
        }
    }
}

/// A score as it appears in the spam text: two decimals at most, no
/// trailing zeros (`7.25`, `4.5`, `12`).
pub fn format_score(score: f64) -> String {
    let s = format!("{score:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_word_for_word_with_brand_and_params() {
        let p = Params {
            email: "a@b.test".into(),
            website: "acme".into(),
            session: "s-1".into(),
            policy: "reject".into(),
            note: "(dirty)".into(),
            score: 7.25,
        };
        assert_eq!(
            Code::Spam.text("Crisp", &p),
            "Your email has been classified as spam, and we dislike spam (dirty), got score: 7.25"
        );
        assert_eq!(Code::PluginDisabled.text("Acme", &p), "Acme email redirection plugin is disabled on Acme website");
        assert_eq!(Code::WorkspaceMissing.text("Crisp", &p), "Crisp website does not exist: acme for session: s-1");
        assert_eq!(
            Code::DmarcRejected.text("Crisp", &p),
            "Email origin could not be verified, you are possibly spoofing a@b.test (sender DMARC policy is set to reject)"
        );
        assert_eq!(Code::RateLimited.reply(), (450, "4.7.1"));
        assert!(Code::RateLimited.is_temporary() && !Code::Spam.is_temporary());
    }

    #[test]
    fn names_match_serde() {
        for code in Code::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::Value::String(code.as_str().into()));
        }
    }

    #[test]
    fn score_formatting() {
        assert_eq!(format_score(7.0), "7");
        assert_eq!(format_score(4.5), "4.5");
        assert_eq!(format_score(6.129), "6.13");
        assert_eq!(format_score(-0.001), "0");
    }
}
