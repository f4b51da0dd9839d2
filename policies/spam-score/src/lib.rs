//! Default spam scorer: explainable heuristics over authentication results,
//! header shapes, the subject, the body text and the links, plus a trained
//! model (logistic regression over hashed features) shipped as the policy's
//! data file. Every rule that fires is one symbol with its score and a
//! description; the model adds `MODEL_SPAM` or `MODEL_HAM` naming the tokens
//! that drove it. Rule weights are documented in `rules.rs`;
//! `config.weights` may override any of them by symbol name (for example
//! `{"weights": {"SUBJ_ALL_CAPS": 0.5}}`), and `model_weight`, `model_min`,
//! `model_max` scale and bound the model's symbol, without rebuilding the
//! component.

use postern_policy_sdk::{ScoreInput, Symbol, score};

pub mod features;
pub mod model;
mod rules;
mod scan;
mod text;

pub use rules::RULES;
pub use scan::SPAM_WORDS;

/// Scores one message.
#[score]
pub fn spam_score(input: &ScoreInput) -> Result<Vec<Symbol>, model::ModelError> {
    let mut symbols = heuristics(input);
    if let Some(data) = input.config.data() {
        let model = model::Model::from_bytes(data)?;
        symbols.push(model_symbol(input, &model));
    }
    Ok(symbols)
}

/// The model's verdict as one symbol: its log-odds, scaled and bounded.
pub fn model_symbol(input: &ScoreInput, model: &model::Model) -> Symbol {
    let features = features::extract(&input.message, &input.auth);
    let (logit, why) = model.score(&features, 3);
    let c = &input.config;
    let score = (f64::from(logit) * c.f64_or("model_weight", 1.0))
        .clamp(c.f64_or("model_min", -4.0), c.f64_or("model_max", 8.0));
    let p = 1.0 / (1.0 + (-f64::from(logit)).exp());
    let drivers: Vec<String> = why.iter().map(|w| format!("{} ({:+.2})", w.token, w.weight)).collect();
    let name = if logit > 0.0 { "MODEL_SPAM" } else { "MODEL_HAM" };
    Symbol::new(
        name,
        (score * 100.0).round() / 100.0,
        format!("model p(spam)={p:.3}; driven by {}", drivers.join(", ")),
    )
}

/// The rule symbols.
pub fn heuristics(input: &ScoreInput) -> Vec<Symbol> {
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
