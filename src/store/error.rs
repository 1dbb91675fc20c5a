//! What goes wrong talking to a store.

use std::path::PathBuf;

use super::embedded::file::FileProblem;

/// What went wrong talking to the store, and while doing what.
///
/// [`StoreError::Corrupt`] and [`StoreError::Invalid`] show their cause in their message, as
/// the other variants do, and keep it ([`StoreError::cause`]); their `source()` is what is
/// behind the cause, so an error chain (`{:#}`) shows the cause once, not twice.
#[derive(Debug)]
pub enum StoreError {
    Sqlite {
        path: PathBuf,
        doing: String,
        source: rusqlite::Error,
    },
    Mongo {
        /// The URL with its password redacted.
        url: String,
        doing: String,
        source: Box<mongodb::error::Error>,
    },
    /// The file is not one coco may use (another program's, or another schema version).
    Refused { path: PathBuf, problem: FileProblem },
    /// A stored record coco cannot read back.
    Corrupt { what: String, cause: Cause },
    /// What was asked cannot be stored (or done) as asked.
    Invalid { doing: String, cause: Cause },
    Io {
        path: PathBuf,
        doing: String,
        source: std::io::Error,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sqlite {
                path,
                doing,
                source,
            } => write!(f, "embedded store {}: {doing}: {source}", path.display()),
            StoreError::Mongo { url, doing, source } => {
                write!(f, "MongoDB store {url}: {doing}: {source}")
            }
            StoreError::Refused { path, problem } => {
                write!(f, "embedded store {}: {problem}", path.display())
            }
            StoreError::Corrupt { what, cause } => write!(f, "store record {what}: {cause}"),
            StoreError::Invalid { doing, cause } => write!(f, "{doing}: {cause}"),
            StoreError::Io {
                path,
                doing,
                source,
            } => write!(f, "embedded store {}: {doing}: {source}", path.display()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Sqlite { source, .. } => Some(source),
            StoreError::Mongo { source, .. } => Some(source.as_ref()),
            StoreError::Io { source, .. } => Some(source),
            StoreError::Refused { .. } => None,
            // Already in the message: the chain goes on with what is behind it.
            StoreError::Corrupt { cause, .. } | StoreError::Invalid { cause, .. } => cause.source(),
        }
    }
}

impl StoreError {
    /// Did the store not answer at all (no server reachable, the connection broke), as
    /// opposed to answering with a refusal? What [`super::outage`] counts as an outage.
    pub fn is_unreachable(&self) -> bool {
        use mongodb::error::ErrorKind;
        match self {
            StoreError::Mongo { source, .. } => matches!(
                *source.kind,
                ErrorKind::ServerSelection { .. }
                    | ErrorKind::Io(_)
                    | ErrorKind::ConnectionPoolCleared { .. }
            ),
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Why a record is [`StoreError::Corrupt`] or a request [`StoreError::Invalid`]: the error
/// underneath (a decoding error, …), or a message where there is none (`"…".into()`).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl StoreError {
    /// Record `what` cannot be read back, because of `cause`.
    pub fn corrupt(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            cause: cause.into(),
        }
    }

    /// `doing` cannot be done, because of `cause`.
    pub fn invalid(doing: impl Into<String>, cause: impl Into<Cause>) -> Self {
        StoreError::Invalid {
            doing: doing.into(),
            cause: cause.into(),
        }
    }

    /// The cause of a [`StoreError::Corrupt`] or [`StoreError::Invalid`] (to downcast).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            StoreError::Corrupt { cause, .. } | StoreError::Invalid { cause, .. } => {
                Some(cause.as_ref())
            }
            _ => None,
        }
    }
}

/// A cause with a few words of context before it, shown as `{context}: {cause}`; like
/// [`StoreError`]'s own causes, its `source()` is what is behind the cause.
#[derive(Debug)]
pub struct Context {
    context: String,
    cause: Cause,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.context, self.cause)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}

impl Context {
    pub fn new(context: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Context {
            context: context.into(),
            cause: cause.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Context, StoreError};

    #[test]
    fn a_cause_is_kept_and_shown_once() {
        let shown = "store record job p.j: definition_json: expected value";
        let error = StoreError::corrupt(
            "job p.j",
            Context::new("definition_json", std::io::Error::other("expected value")),
        );
        assert_eq!(error.to_string(), shown);
        assert!(error.cause().is_some_and(|c| c.is::<Context>()));
        assert_eq!(format!("{:#}", anyhow::Error::from(error)), shown);
        let error = StoreError::invalid("finishing run r", "a try cannot end in state running");
        assert_eq!(
            error.to_string(),
            "finishing run r: a try cannot end in state running"
        );
        assert!(std::error::Error::source(&error).is_none());
    }
}
