//! The state store: the single source of truth every coco process shares.
//!
//! One trait per role ([`roles`]: [`Catalog`], [`Fires`], [`Queue`], [`Fleet`], [`Journal`],
//! [`Access`]),
//! [`Store`] all of them at once; callers take the narrowest. Two backends, each a folder
//! with a file per role, pass one conformance suite (`tests/it/conformance.rs`, run by
//! `tests/it/store.rs`):
//!
//! - [`embedded`]: SQLite in WAL mode under `folder.state` (default `~/.coco/`), zero setup,
//!   safe for several processes at once (the CLI and a running daemon).
//! - [`mongo`]: the official `mongodb` driver; many hosts share one database. Only widely
//!   implemented operations are used (CRUD, find-and-modify, unique indexes), so it also runs
//!   on MongoDB-compatible servers such as FerretDB.
//!
//! Records are plain data ([`ProjectRecord`], [`JobRecord`], [`AppRecord`], and runs:
//! [`crate::queue::run::RunRecord`], whose transitions the queue owns: this module depends on
//! `queue`, never the reverse); states and outcomes are enums kept as their text (`states`);
//! the decisions both backends share (the claim's pause and slot rule, the app take-over)
//! are pure functions in `rules`, each backend only carries them out;
//! definitions and arguments are kept as JSON documents so the store never needs to know the
//! manifest's Rust types.
//!
//! The queue methods ([`Queue::enqueue`], [`Queue::claim_run`], [`Queue::heartbeat`],
//! [`Queue::finish_run`], [`Queue::take_back_zombies`]) are the atomic steps of a run's life
//! (see [`crate::queue::state`] for the states): each happens exactly once however many
//! processes and hosts share the store. The embedded store does each in one `BEGIN
//! IMMEDIATE` transaction; the MongoDB store wins each by inserting a unique marker document
//! (see `mongo/queue.rs`).
//! Collections (tables): `projects`, `jobs`, `apps`, `queue`, `workers` (every live worker and
//! daemon, for `coco alive`), `log`, `locks`, `fires`, `outputs` (the output tail of each
//! run's latest try), `control` (pauses and halt requests), `tokens` (the API's tokens, by the
//! SHA-256 of their secret);
//! [`Store::ensure_schema`] creates them and their indexes idempotently.

pub mod embedded;
mod error;
pub mod mongo;
pub mod outage;
mod records;
mod roles;
mod rules;
pub mod run_id;
mod states;

pub(crate) use error::Context;
pub use error::{Cause, StoreError, StoreResult};
pub use records::*;
pub use roles::{Access, Catalog, Fires, Fleet, Journal, Queue, Store};
pub use states::{AppState, FireOutcome, MemberKind, Skipped, UnknownText};

use std::path::PathBuf;
use std::sync::Arc;

/// Names of every collection (MongoDB) / table (SQLite) coco keeps.
pub const COLLECTIONS: &[&str] = &[
    "projects",
    "jobs",
    "apps",
    "app_status",
    "queue",
    "workers",
    "log",
    "locks",
    "fires",
    "outputs",
    "control",
    "problems",
    "releases",
    "tokens",
];

/// The first string after every string that starts with `prefix`, for a range query
/// `prefix <= id < prefix_end(prefix)` (pure). Ids are ASCII, so appending the largest
/// character is enough.
pub fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Where the state lives, as resolved from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    /// SQLite file (`<folder.state>/coco.db`).
    Embedded { path: PathBuf },
    /// MongoDB server and database.
    Mongo { url: String, database: String },
}

/// Open the store at `location` for a command that only reads: nothing is created,
/// initialised or migrated (the embedded store opens its file read-only, a missing file reads
/// as empty: see [`embedded::EmbeddedStore::open_to_read`]; MongoDB reads what is there).
pub async fn open_to_read(location: &StoreLocation) -> StoreResult<Arc<dyn Store>> {
    Ok(match location {
        StoreLocation::Embedded { path } => {
            Arc::new(embedded::EmbeddedStore::open_to_read(path).await?)
        }
        StoreLocation::Mongo { url, database } => {
            Arc::new(mongo::MongoStore::connect(url, database).await?)
        }
    })
}

/// Open (and prepare: create, initialise or migrate the schema) the store at `location`.
pub async fn open(location: &StoreLocation) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match location {
        StoreLocation::Embedded { path } => Arc::new(embedded::EmbeddedStore::open(path).await?),
        StoreLocation::Mongo { url, database } => {
            Arc::new(mongo::MongoStore::connect(url, database).await?)
        }
    };
    store.ensure_schema().await?;
    Ok(store)
}
