//! The state store: the single source of truth every coco process shares.
//!
//! One [`Store`] trait, two backends that pass one conformance suite
//! (`conformance.rs`, run by `tests/it/store.rs`):
//!
//! - [`embedded`]: SQLite in WAL mode under `folder.state` (default `~/.coco/`), zero setup,
//!   safe for several processes at once (the CLI and a running daemon).
//! - [`mongo`]: the official `mongodb` driver; many hosts share one database. Only widely
//!   implemented operations are used (CRUD, find-and-modify, unique indexes), so it also runs
//!   on MongoDB-compatible servers such as FerretDB.
//!
//! Records are plain data ([`ProjectRecord`], [`JobRecord`], [`AppRecord`]); definitions are
//! kept as JSON documents so the store never needs to know the manifest's Rust types.
//! Collections (tables): `projects`, `jobs`, `apps`, `queue`, `workers`, `log`, `locks`, `fires`;
//! [`Store::ensure_schema`] creates them and their indexes idempotently.

pub mod conformance;
pub mod embedded;
pub mod mongo;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Names of every collection (MongoDB) / table (SQLite) coco keeps.
pub const COLLECTIONS: &[&str] = &[
    "projects", "jobs", "apps", "queue", "workers", "log", "locks", "fires",
];

/// The applied manifest of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// Project name (unique key).
    pub name: String,
    /// Hash of the applied, resolved manifest (see `manifest::Project::hash`).
    pub hash: String,
    /// The resolved manifest as applied, as a JSON document.
    pub manifest: serde_json::Value,
    /// The `coco.yaml` it was read from.
    pub source: String,
    /// False once the project's folder or manifest disappeared from the home.
    pub active: bool,
    pub applied_at: DateTime<Utc>,
}

/// The stored definition of one job (`project.job`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `project.job` (unique key).
    pub id: String,
    pub project: String,
    pub name: String,
    /// The resolved job definition as a JSON document.
    pub definition: serde_json::Value,
    /// Hash of `definition`.
    pub hash: String,
    /// False once the job was removed from its manifest; its run history is kept.
    pub active: bool,
    /// Next cron instant to fire, for scheduled active jobs.
    pub next_fire: Option<DateTime<Utc>>,
    /// Last instant fired.
    pub last_fire: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// The stored (desired) definition of one app server (`project.app`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    /// `project.app` (unique key).
    pub id: String,
    pub project: String,
    pub name: String,
    pub definition: serde_json::Value,
    pub hash: String,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

/// What went wrong talking to the store, and while doing what.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("embedded store {path}: {doing}: {source}")]
    Sqlite {
        path: PathBuf,
        doing: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("MongoDB store {url}: {doing}: {source}")]
    Mongo {
        /// The URL with its password redacted.
        url: String,
        doing: String,
        #[source]
        source: Box<mongodb::error::Error>,
    },
    #[error("store record {what}: {message}")]
    Corrupt { what: String, message: String },
    #[error("embedded store {path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: String,
        #[source]
        source: std::io::Error,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The state store. Every method is one short, self-contained operation; none keeps
/// state in memory between calls.
#[async_trait]
pub trait Store: Send + Sync {
    /// `"embedded"` or `"mongodb"`, and where: for messages (never contains a password).
    fn describe(&self) -> String;

    /// Create every collection/table and index coco needs. Idempotent: safe on every start
    /// and from several processes at once.
    async fn ensure_schema(&self) -> StoreResult<()>;

    /// All projects, active or not, sorted by name.
    async fn list_projects(&self) -> StoreResult<Vec<ProjectRecord>>;
    async fn get_project(&self, name: &str) -> StoreResult<Option<ProjectRecord>>;
    /// Insert or replace the project with this name.
    async fn put_project(&self, record: &ProjectRecord) -> StoreResult<()>;

    /// Jobs (active or not) sorted by id, optionally only those of one project.
    async fn list_jobs(&self, project: Option<&str>) -> StoreResult<Vec<JobRecord>>;
    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>>;
    /// Insert or replace the job with this id.
    async fn put_job(&self, record: &JobRecord) -> StoreResult<()>;

    /// Apps (active or not) sorted by id, optionally only those of one project.
    async fn list_apps(&self, project: Option<&str>) -> StoreResult<Vec<AppRecord>>;
    async fn get_app(&self, id: &str) -> StoreResult<Option<AppRecord>>;
    /// Insert or replace the app with this id.
    async fn put_app(&self, record: &AppRecord) -> StoreResult<()>;

    /// Record that `job` fired for `instant`. Returns true for the first caller only, across
    /// every process and host sharing the store (a unique key on `(job, instant)`).
    async fn record_fire(&self, job: &str, instant: DateTime<Utc>) -> StoreResult<bool>;
}

/// Where the state lives, as resolved from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    /// SQLite file (`<folder.state>/coco.db`).
    Embedded { path: PathBuf },
    /// MongoDB server and database.
    Mongo { url: String, database: String },
}

/// Open (and prepare) the store at `location`.
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
