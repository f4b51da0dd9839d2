//! Default spam scorer: explainable heuristics over authentication results,
//! header shapes, the subject, the body text and the links. Every rule that
//! fires is one symbol with its score and a description; the total is their
//! sum. Rule weights are documented in `rules.rs`; `config.weights` may
//! override any of them by symbol name (for example `{"weights":
//! {"SUBJ_ALL_CAPS": 0.5}}`) without rebuilding the component.

use postern_policy_sdk::{ScoreInput, Symbol, score};

mod rules;
mod scan;
mod text;

pub use rules::RULES;
pub use scan::SPAM_WORDS;

/// Scores one message.
#[score]
pub fn spam_score(input: &ScoreInput) -> Vec<Symbol> {
    let mut hits = Vec::new();
    rules::authentication(&input.auth, &mut hits);
    rules::headers(&input.message, &input.envelope, &mut hits);
    rules::subject(&input.message, &mut hits);
    rules::body(&input.message, &mut hits);
    rules::links(&input.message, &mut hits);
    rules::attachments(&input.message, &mut hits);
    let weights = input.config.get("weights");
    hits.into_iter()
        .map(|rules::Hit { rule, times, detail }| {
            let weight = weights.and_then(|w| w.get(rule.name)).and_then(|v| v.as_f64()).unwrap_or(rule.score);
            let score = weight * times;
            let description = if detail.is_empty() {
                rule.description.to_string()
            } else {
                format!("{}: {detail}", rule.description)
            };
            Symbol::new(rule.name, score, description)
        })
        .collect()
}
