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
    /// A stored record coco cannot read back.
    #[error("store record {what}: {source}")]
    Corrupt {
        what: String,
        #[source]
        source: Cause,
    },
    /// What was asked cannot be stored (or done) as asked.
    #[error("{doing}: {source}")]
    Invalid {
        doing: String,
        #[source]
        source: Cause,
    },
    #[error("embedded store {path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: String,
        #[source]
        source: std::io::Error,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Why a record is [`StoreError::Corrupt`] or a request [`StoreError::Invalid`]: the error
/// underneath (a decoding error, …), or a message where there is none (`"…".into()`).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl StoreError {
    /// Record `what` cannot be read back, because of `source`.
    pub fn corrupt(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            source: source.into(),
        }
    }

    /// `doing` cannot be done, because of `source`.
    pub fn invalid(doing: impl Into<String>, source: impl Into<Cause>) -> Self {
        StoreError::Invalid {
            doing: doing.into(),
            source: source.into(),
        }
    }
}

/// A cause with a few words of context before it, shown as `{context}: {source}`.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct Context {
    context: String,
    #[source]
    source: Cause,
}

impl Context {
    pub fn new(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        Context {
            context: context.into(),
            source: source.into(),
        }
    }
}
