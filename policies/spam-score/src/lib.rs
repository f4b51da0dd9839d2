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
pub mod scan;
mod text;

pub use rules::RULES;
pub use scan::SPAM_WORDS;

/// Scores one message.
#[score]
pub fn spam_score(input: &ScoreInput) -> Result<Vec<Symbol>, model::ModelError> {
    // One pass over the body feeds both the rules' statistics and, when
    // there is a model, its features. Only the header and the weights of
    // this message's features are read from the model file.
    let mut stats = scan::BodyStats::default();
    let has_model = input.config.data_at(&[]).is_some();
    let header = if has_model {
        let offsets: Vec<u32> = (0..model::HEADER_LEN as u32).collect();
        let bytes = input.config.data_at(&offsets).ok_or_else(|| model::ModelError("shorter than a header".into()))?;
        Some(bytes)
    } else {
        None
    };
    let features = match header {
        Some(_) => features::extract_with(&input.message, &input.auth, &mut stats),
        None => {
            stats.scan(input.message.primary_text());
            Vec::new()
        }
    };
    let mut symbols = heuristics(input, &stats);
    if let Some(header) = header {
        let header = model::Header::parse(&header)?;
        let stored = input
            .config
            .data_at(&header.offsets(&features))
            .ok_or_else(|| model::ModelError("the model file is shorter than its header says".into()))?;
        let (logit, why) = header.score(&features, &stored, 3);
        symbols.push(model_symbol(input, logit, &why));
    }
    Ok(symbols)
}

/// The model's verdict as one symbol, calibrated to the seed's tiers: on
/// its own the model puts a message at the junk limit (3) when p(spam)
/// reaches `model_junk_p` and just past the dirty limit (6) when it reaches
/// `model_dirty_p`, linear in log-odds in between, at most `model_max`; ham
/// evidence lowers the score by its log-odds × `model_weight`, at least
/// `model_min`.
pub fn model_symbol(input: &ScoreInput, logit: f32, why: &[model::Contribution]) -> Symbol {
    let c = &input.config;
    let logit_of = |p: f64| (p / (1.0 - p)).ln();
    let junk = logit_of(c.f64_or("model_junk_p", 0.85).clamp(0.51, 0.999_999));
    let dirty = logit_of(c.f64_or("model_dirty_p", 0.9995).clamp(0.51, 0.999_999)).max(junk + 0.1);
    let l = f64::from(logit);
    let score = if l <= 0.0 {
        (l * c.f64_or("model_weight", 1.0)).max(c.f64_or("model_min", -4.0))
    } else if l <= junk {
        3.0 * l / junk
    } else {
        (3.0 + 3.0 * (l - junk) / (dirty - junk)).min(c.f64_or("model_max", 8.0))
    };
    let p = 1.0 / (1.0 + (-l).exp());
    let drivers: Vec<String> = why.iter().map(|w| format!("{} ({:+.2})", w.token, w.weight)).collect();
    let name = if logit > 0.0 { "MODEL_SPAM" } else { "MODEL_HAM" };
    Symbol::new(
        name,
        (score * 100.0).round() / 100.0,
        format!("model p(spam)={p:.4}; driven by {}", drivers.join(", ")),
    )
}

/// The rule symbols; `stats` counts the message's primary text.
pub fn heuristics(input: &ScoreInput, stats: &scan::BodyStats) -> Vec<Symbol> {
    let mut hits = Vec::new();
    rules::authentication(&input.auth, &mut hits);
    rules::headers(&input.message, &input.envelope, &mut hits);
    rules::subject(&input.message, &mut hits);
    rules::body(&input.message, stats, &mut hits);
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
