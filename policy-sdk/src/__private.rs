//! Glue called by the code that the stage macros generate. Not a public API.

pub use wit_bindgen;

#[cfg(target_arch = "wasm32")]
mod glue {
    use crate::wit::postern::policy::types as t;
    use crate::{Config, IntoOutcome, Message, RouteInput, ScoreInput, ThresholdInput};

    /// Runs a score function on the host's arguments.
    pub fn score<R: IntoOutcome<Vec<t::Symbol>>>(
        f: impl Fn(&ScoreInput<'_>) -> R,
        msg: &t::Message,
        envelope: t::Envelope,
        auth: t::Authentication,
        workspace: t::Workspace,
        config: String,
    ) -> Result<Vec<t::Symbol>, String> {
        let input = ScoreInput {
            message: Message::from_host(msg),
            envelope,
            auth,
            workspace,
            config: Config::from_json(config),
        };
        f(&input).into_outcome()
    }

    /// Runs a threshold function on the host's arguments.
    pub fn threshold<R: IntoOutcome<t::ThresholdDecision>>(
        f: impl Fn(&ThresholdInput<'_>) -> R,
        msg: &t::Message,
        score: f64,
        symbols: Vec<t::Symbol>,
        auth: t::Authentication,
        workspace: t::Workspace,
        config: String,
    ) -> Result<t::ThresholdDecision, String> {
        let input = ThresholdInput {
            message: Message::from_host(msg),
            score,
            symbols,
            auth,
            workspace,
            config: Config::from_json(config),
        };
        f(&input).into_outcome()
    }

    /// Runs a route function on the host's arguments.
    pub fn route<R: IntoOutcome<t::RouteDecision>>(
        f: impl Fn(&RouteInput<'_>) -> R,
        msg: &t::Message,
        envelope: t::Envelope,
        workspace: t::Workspace,
        score: f64,
        symbols: Vec<t::Symbol>,
        config: String,
    ) -> Result<t::RouteDecision, String> {
        let input = RouteInput {
            message: Message::from_host(msg),
            envelope,
            workspace,
            score,
            symbols,
            config: Config::from_json(config),
        };
        f(&input).into_outcome()
    }
}

#[cfg(target_arch = "wasm32")]
pub use glue::*;
