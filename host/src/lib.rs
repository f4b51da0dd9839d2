//! # Postern
//!
//! An inbound-email gate: fixed checks every message must pass, then
//! hot-reloadable WebAssembly policies for spam scoring, junk thresholds and
//! routing. Every verdict carries its explanation: the symbols, each check's
//! outcome and the versions of the policies that made it.
//!
//! ## Layout, in the order a message flows
//! - [`ingress`]: the SMTP and LMTP listeners (one session per
//!   conversation, connection limits, STARTTLS), the HTTP check API and the
//!   admin API;
//! - [`message`]: parse the raw bytes once (mail-parser) into the model that
//!   checks and policies read;
//! - [`checks`]: the fixed checks, first failure wins, using
//!   [`directory`] (workspaces, domains, sessions), [`dns`] (mail-auth's
//!   resolver, caches, the offline zone server) and [`state`] (rate
//!   counters, text fingerprints);
//! - [`stages`]: the policy stages, score → threshold → route;
//! - [`verdict`]: accept / reject / tempfail, the error catalog, the trace;
//! - [`delivery`]: the durable spool (Maildir per workspace, fsync before
//!   the 250, group commit);
//! - [`pipeline`]: parse → checks → stages → verdict, one call per message;
//! - [`policy`]: manifests, loaded policies, the embedded defaults, and the
//!   live deployment directory (registry, artifact cache, kept versions,
//!   status);
//! - [`metrics`]: the Prometheus counters and histograms;
//! - [`server`]: `postern serve` assembled: listeners, reload, drain;
//! - [`runtime`]: the sandboxed wasmtime runtime the stages call;
//! - [`config`] and [`setup`]: the configuration file and assembling a
//!   pipeline from it;
//! - [`cli`]: the `postern` command line.

pub mod checks;
pub mod cli;
pub mod config;
pub mod corpus;
pub mod delivery;
pub mod directory;
pub mod dns;
pub mod ingress;
pub mod message;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod runtime;
pub mod server;
pub mod setup;
pub mod stages;
pub mod state;
pub mod verdict;
