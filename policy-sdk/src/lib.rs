//! # Postern policy SDK
//!
//! Write the policies of [Postern](https://example.invalid/postern), the
//! inbound-email gate, as WebAssembly components. A policy is a plain Rust
//! function with one attribute naming its stage:
//!
//! - [`score`]: return [`Symbol`]s that explain the message's spam score;
//! - [`threshold`]: map the total score to deliver / junk / dirty;
//! - [`route`]: say where an accepted message goes.
//!
//! The smallest scorer:
//!
//! ```
//! use postern_policy_sdk::{score, ScoreInput, Symbol};
//!
//! #[score]
//! fn shouting(input: &ScoreInput) -> Vec<Symbol> {
//!     match input.message.subject() {
//!         Some(s) if s.len() > 8 && s == s.to_uppercase() => {
//!             vec![Symbol::new("SUBJ_ALL_CAPS", 1.5, "subject is in capitals")]
//!         }
//!         _ => vec![],
//!     }
//! }
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` (crate type
//! `cdylib`): the result is a component the host loads. The same function
//! compiles natively, so its unit tests run with plain `cargo test`, building
//! the input with [`MessageData`] and the `Default` values of the other types.
//!
//! ## Layout
//! - [`wit`]: the contract's types, generated from `wit/postern.wit` (the one
//!   copy of the contract, package `postern:policy@0.1.0`).
//! - `message`: [`Message`], lazy access to the parsed message.
//! - `input`: what each stage receives ([`ScoreInput`], [`ThresholdInput`],
//!   [`RouteInput`]) and the policy's [`Config`].
//! - `output`: helpers to build results ([`Symbol::new`], [`IntoOutcome`]).
#![deny(missing_docs)]

mod defaults;
mod input;
mod message;
mod output;

#[doc(hidden)]
pub mod __private;

/// The contract's types, generated from the WIT (`wit/postern.wit`).
#[allow(missing_docs, clippy::all)]
#[allow(unsafe_code)]
pub mod wit {
    wit_bindgen::generate!({
        path: "wit",
        world: "types-only",
        additional_derives: [PartialEq],
    });
}

pub use input::{Config, RouteInput, ScoreInput, ThresholdInput};
pub use message::{Message, MessageData};
pub use output::IntoOutcome;
pub use postern_policy_macro::{route, score, threshold};
/// JSON values, as found in a policy's [`Config`].
pub use serde_json;
pub use wit::postern::policy::types::{
    Address, Attachment, AuthResult, Authentication, Classification, Conversation, DkimSignature, Dmarc, DmarcPolicy,
    Envelope, Header, Link, MailKind, Priority, RouteDecision, Setting, Spf, Symbol, ThresholdDecision, Workspace,
};

/// The version of the contract this SDK implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
