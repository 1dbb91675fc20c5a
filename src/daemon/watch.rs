//! The files the daemon watches, and notify's events turned into "converge now".
//!
//! Watched, each folder non-recursively (a project's `.venv` or `.git` never floods us): the
//! home (projects created, renamed or deleted), every direct sub-folder of the home (its
//! `coco.yaml` written, truncated, replaced by rename, deleted) and the folder of each
//! configuration file. Folders are watched rather than files because editors that save by
//! rename replace the file's inode. After a relevant event, [`Watch::next_change`] waits
//! until nothing relevant happened for [`QUIET`] (at most [`MAX_DELAY`] in all), so a save
//! that touches the file several times converges once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::manifest::MANIFEST_FILE;

/// A change is complete once no relevant event came for this long.
pub const QUIET: Duration = Duration::from_millis(15);

/// ... or once this long passed since its first event (a file written without pause).
pub const MAX_DELAY: Duration = Duration::from_millis(200);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changed {
    /// A manifest, or the set of project folders.
    pub home: bool,
    /// A configuration file.
    pub config: bool,
}

impl Changed {
    fn any(self) -> bool {
        self.home || self.config
    }

    fn merge(&mut self, other: Changed) {
        self.home |= other.home;
        self.config |= other.config;
    }
}

/// Watches a home and the configuration files; see the module docs.
pub struct Watch {
    watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    home: PathBuf,
    config_files: Vec<PathBuf>,
    watched: BTreeSet<PathBuf>,
}

impl Watch {
    /// Start watching `home` and `config_files` (which need not exist).
    pub fn new(home: &Path, config_files: &[PathBuf]) -> notify::Result<Watch> {
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })?;
        let mut watch = Watch {
            watcher,
            events,
            home: home.to_path_buf(),
            config_files: config_files.to_vec(),
            watched: BTreeSet::new(),
        };
        watch.sync();
        Ok(watch)
    }

    /// Watch `home` instead of the current one.
    pub fn set_home(&mut self, home: &Path) {
        self.home = home.to_path_buf();
        self.sync();
    }

    /// Wait for the next change (debounced); `None` if the watcher is gone.
    pub async fn next_change(&mut self) -> Option<Changed> {
        let mut changed = Changed::default();
        while !changed.any() {
            let event = self.events.recv().await?;
            changed.merge(self.classify(event));
        }
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        loop {
            let quiet_until = (tokio::time::Instant::now() + QUIET).min(deadline);
            match tokio::time::timeout_at(quiet_until, self.events.recv()).await {
                Ok(Some(event)) => changed.merge(self.classify(event)),
                Ok(None) | Err(_) => break,
            }
        }
        if changed.home {
            self.sync();
        }
        Some(changed)
    }

    /// What `event` means for us (pure apart from `self`'s paths).
    fn classify(&self, event: notify::Result<notify::Event>) -> Changed {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                // Overflow or a watch lost: re-read everything to be safe.
                tracing::warn!("file watch: {error}; re-reading everything");
                return Changed {
                    home: true,
                    config: true,
                };
            }
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return Changed::default();
        }
        let mut changed = Changed::default();
        for path in &event.paths {
            if self.config_files.iter().any(|file| file == path) {
                changed.config = true;
            }
            let parent = path.parent();
            let in_home = parent == Some(self.home.as_path());
            let is_manifest = path.file_name().is_some_and(|name| name == MANIFEST_FILE)
                && parent.and_then(Path::parent) == Some(self.home.as_path());
            if (in_home && !is_hidden(path)) || is_manifest || path == &self.home {
                changed.home = true;
            }
        }
        changed
    }

    /// Watch exactly the home, its current sub-folders and the configuration folders.
    fn sync(&mut self) {
        let mut wanted: BTreeSet<PathBuf> = self
            .config_files
            .iter()
            .filter_map(|file| file.parent().map(Path::to_path_buf))
            .filter(|dir| dir.is_dir())
            .collect();
        if self.home.is_dir() {
            wanted.insert(self.home.clone());
            if let Ok(entries) = std::fs::read_dir(&self.home) {
                wanted.extend(
                    entries
                        .flatten()
                        .map(|entry| entry.path())
                        .filter(|path| path.is_dir() && !is_hidden(path)),
                );
            }
        }
        for gone in self
            .watched
            .difference(&wanted)
            .cloned()
            .collect::<Vec<_>>()
        {
            let _ = self.watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for new in wanted
            .difference(&self.watched)
            .cloned()
            .collect::<Vec<_>>()
        {
            match self.watcher.watch(&new, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(new);
                }
                Err(error) => tracing::warn!("cannot watch {}: {error}", new.display()),
            }
        }
    }
}

/// A dot-file or dot-folder (`.git`, an editor's `.coco.yaml.swp`).
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.'))
}
