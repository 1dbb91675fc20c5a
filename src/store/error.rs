//! What goes wrong talking to a store.

use std::path::PathBuf;

use super::embedded::file::FileProblem;

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
    /// The file is not one coco may use (another program's, or another schema version).
    #[error("embedded store {path}: {problem}")]
    Refused { path: PathBuf, problem: FileProblem },
    #[error("store record {what}: {message}")]
    Corrupt { what: String, message: String },
    #[error("{doing}: {message}")]
    Invalid { doing: String, message: String },
    #[error("embedded store {path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: String,
        #[source]
        source: std::io::Error,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;
