//! coco: a declarative, configuration-driven orchestrator.
//!
//! Files flow one way: `config` and `manifest` parse and validate what the operator wrote,
//! `reconcile` diffs it against the `store` and applies the plan; `cli` drives it all.
//! See `docs/ARCHITECTURE.md` for the map and its invariants.

pub mod access;
pub mod actions;
pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub(crate) mod fields;
pub mod git;
pub(crate) mod host;
pub mod lifecycle;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod process;
pub(crate) mod project_env;
pub mod queue;
pub mod reconcile;
pub mod redact;
pub mod scaffold;
pub mod schedule;
pub mod scheduler;
pub mod store;
pub mod supervisor;
pub(crate) mod tail;
pub mod views;
pub mod wake;
pub mod worker;
pub mod yaml;
