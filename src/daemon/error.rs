//! Why the daemon could not start, or a convergence pass failed: thiserror types that keep
//! their causes as `source`s (shown as `what: cause: cause` by `{:#}` at the edge).

use std::path::PathBuf;

use crate::manifest::discover::HomeError;
use crate::store::StoreError;

/// Why [`super::run`] could not run the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The file watcher could not be set up on the home and the configuration's folders.
    #[error("watching the home {}", home.display())]
    Watch {
        home: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Why a convergence pass (`super::converge::Converger`) changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    /// The home's project folders could not be listed (the operator's to fix: `coco status`
    /// shows it).
    #[error(transparent)]
    Home(#[from] HomeError),
    /// Reading the stored state or applying the plan failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `error` and each of its causes, joined by `: ` (as anyhow's `{:#}` shows an error).
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_follow_the_error_it_wraps_once() {
        let store = StoreError::Io {
            path: "/s/coco.db".into(),
            doing: "opening".into(),
            source: std::io::Error::other("disk on fire"),
        };
        let error = ConvergeError::from(store);
        assert_eq!(
            with_causes(&error),
            "embedded store /s/coco.db: opening: disk on fire: disk on fire"
        );
        let home = ConvergeError::from(HomeError::Missing { home: "/h".into() });
        assert!(with_causes(&home).starts_with("the home folder /h does not exist"));
    }

    #[test]
    fn a_watch_failure_says_what_was_watched_and_keeps_its_cause() {
        let error = DaemonError::Watch {
            home: "/h".into(),
            source: notify::Error::generic("no inotify"),
        };
        assert_eq!(error.to_string(), "watching the home /h");
        assert_eq!(with_causes(&error), "watching the home /h: no inotify");
    }
}
