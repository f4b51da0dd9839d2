//! Default threshold policy, with the seed's tiers: a score above the dirty
//! limit (6) is **dirty**; a score from the junk limit (3) up to the dirty
//! limit is **junk**, unless the workspace turned its junk filter off;
//! anything lower is delivered. Both limits come from the manifest's config
//! (`junk_from`, `dirty_above`).

use postern_policy_sdk::{Classification, ThresholdDecision, ThresholdInput, threshold};

/// Default junk limit (inclusive).
pub const JUNK_FROM: f64 = 3.0;
/// Default dirty limit (exclusive).
pub const DIRTY_ABOVE: f64 = 6.0;

/// Classifies the message by its total score.
#[threshold]
pub fn classify(input: &ThresholdInput) -> ThresholdDecision {
    let junk_from = input.config.f64_or("junk_from", JUNK_FROM);
    let dirty_above = input.config.f64_or("dirty_above", DIRTY_ABOVE);
    let score = input.score;
    let (classification, note) = if score > dirty_above {
        (Classification::Dirty, "(dirty)")
    } else if score >= junk_from && input.workspace.junk_filter {
        (Classification::Junk, "(junk)")
    } else if score >= junk_from {
        (Classification::Deliver, "(junk, but the workspace junk filter is off)")
    } else {
        (Classification::Deliver, "(clean)")
    };
    ThresholdDecision { classification, note: note.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_policy_sdk::{Config, Message, MessageData, Workspace};

    fn decide(score: f64, junk_filter: bool, config: &str) -> Classification {
        let input = ThresholdInput {
            message: Message::new(MessageData::default()),
            score,
            symbols: vec![],
            auth: Default::default(),
            workspace: Workspace { junk_filter, ..Default::default() },
            config: Config::from_json(config),
        };
        classify(&input).classification
    }

    #[test]
    fn seed_tiers_at_their_boundaries() {
        assert_eq!(decide(2.99, true, ""), Classification::Deliver);
        assert_eq!(decide(3.0, true, ""), Classification::Junk);
        assert_eq!(decide(6.0, true, ""), Classification::Junk);
        assert_eq!(decide(6.01, true, ""), Classification::Dirty);
        assert_eq!(decide(-4.0, true, ""), Classification::Deliver);
    }

    #[test]
    fn junk_filter_off_delivers_junk_but_never_dirty() {
        assert_eq!(decide(4.5, false, ""), Classification::Deliver);
        assert_eq!(decide(6.0, false, ""), Classification::Deliver);
        assert_eq!(decide(9.0, false, ""), Classification::Dirty);
    }

    #[test]
    fn limits_come_from_config() {
        let cfg = r#"{"junk_from": 5, "dirty_above": 8}"#;
        assert_eq!(decide(4.0, true, cfg), Classification::Deliver);
        assert_eq!(decide(7.5, true, cfg), Classification::Junk);
        assert_eq!(decide(8.5, true, cfg), Classification::Dirty);
    }
}
