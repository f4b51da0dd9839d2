//! Example custom filter, as a customer writes one for their workspace: a
//! scorer that adds a symbol for each configured phrase found in the
//! subject or text, and one for a sender domain the workspace blocks or
//! trusts. Everything comes from the manifest's `[config]`:
//!
//! ```toml
//! [config]
//! phrases = { "wire transfer" = 2.5, "gift card" = 3.0 }
//! blocked_domains = ["promo-mailer.test"]
//! trusted_domains = ["customer.test"]
//! ```

use postern_policy_sdk::{ScoreInput, Symbol, score};

/// Score of a blocked sender domain (dirty on its own: over the platform's
/// limit of 6).
const BLOCKED: f64 = 10.0;
/// Score of a trusted sender domain.
const TRUSTED: f64 = -3.0;

/// Scores the configured phrases and sender domains.
#[score]
pub fn keyword_filter(input: &ScoreInput) -> Vec<Symbol> {
    let mut symbols = Vec::new();
    let text = format!("{}\n{}", input.message.subject().unwrap_or(""), input.message.primary_text()).to_lowercase();
    if let Some(phrases) = input.config.get("phrases").and_then(|p| p.as_object()) {
        let mut hits: Vec<(&String, f64)> = phrases
            .iter()
            .filter_map(|(phrase, score)| Some((phrase, score.as_f64()?)))
            .filter(|(phrase, _)| !phrase.is_empty() && text.contains(&phrase.to_lowercase()))
            .collect();
        hits.sort_by(|a, b| a.0.cmp(b.0));
        for (phrase, score) in hits {
            symbols.push(Symbol::new(
                format!("KEYWORD_{}", symbol_part(phrase)),
                score,
                format!("the message mentions \"{phrase}\""),
            ));
        }
    }
    let domain = input
        .message
        .from()
        .first()
        .and_then(|a| a.address.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let listed = |key: &str| {
        input
            .config
            .get(key)
            .and_then(|v| v.as_array())
            .is_some_and(|list| list.iter().any(|d| d.as_str().is_some_and(|d| d.eq_ignore_ascii_case(&domain))))
    };
    if !domain.is_empty() && listed("blocked_domains") {
        symbols.push(Symbol::new("SENDER_BLOCKED", BLOCKED, format!("{domain} is blocked by this workspace")));
    } else if !domain.is_empty() && listed("trusted_domains") {
        symbols.push(Symbol::new("SENDER_TRUSTED", TRUSTED, format!("{domain} is trusted by this workspace")));
    }
    symbols
}

/// `wire transfer` → `WIRE_TRANSFER`: a symbol name part.
fn symbol_part(phrase: &str) -> String {
    let mut out: String =
        phrase.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).take(40).collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    out.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_policy_sdk::{Address, Config, Message, MessageData};

    fn input(from: &str, subject: &str, text: &str, config: &str) -> ScoreInput<'static> {
        ScoreInput {
            message: Message::new(MessageData {
                from: vec![Address { name: None, address: from.into() }],
                subject: Some(subject.into()),
                text_body: text.into(),
                ..Default::default()
            }),
            envelope: Default::default(),
            auth: Default::default(),
            workspace: Default::default(),
            config: Config::from_json(config),
        }
    }

    const CONFIG: &str = r#"{"phrases": {"wire transfer": 2.5, "gift card": 3.0},
        "blocked_domains": ["promo-mailer.test"], "trusted_domains": ["customer.test"]}"#;

    #[test]
    fn phrases_score_once_each_in_subject_or_text() {
        let s =
            keyword_filter(&input("a@x.test", "Gift Card offer", "Send a WIRE transfer today, wire transfer!", CONFIG));
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["KEYWORD_GIFT_CARD", "KEYWORD_WIRE_TRANSFER"]);
        assert_eq!(s.iter().map(|s| s.score).sum::<f64>(), 5.5);
    }

    #[test]
    fn blocked_and_trusted_sender_domains() {
        let blocked = keyword_filter(&input("deals@Promo-Mailer.test", "Hi", "hello", CONFIG));
        assert_eq!(blocked[0].name, "SENDER_BLOCKED");
        assert!(blocked[0].score > 6.0);
        let trusted = keyword_filter(&input("alice@customer.test", "Hi", "hello", CONFIG));
        assert_eq!(trusted[0].name, "SENDER_TRUSTED");
        assert!(keyword_filter(&input("bob@else.test", "Hi", "hello", CONFIG)).is_empty());
    }

    #[test]
    fn no_config_no_symbols() {
        assert!(keyword_filter(&input("deals@promo-mailer.test", "gift card", "wire transfer", "")).is_empty());
    }
}
