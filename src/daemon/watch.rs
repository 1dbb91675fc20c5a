//! The files the daemon watches, and notify's events turned into "converge now".
//!
//! Watched, each folder non-recursively (a project's `.venv` or `.git` never floods us): the
//! home (projects created, renamed or deleted), every direct sub-folder of the home (its
//! `coco.yaml` written, truncated, replaced by rename, deleted) and the folder of each
//! configuration file. Folders are watched rather than files because editors that save by
//! rename replace the file's inode. A home that does not exist yet is waited for in its
//! parent folder. inotify watches an inode, not a name: each real folder is
//! watched once, by its canonical path, whatever names (symbolic links to the home or to a
//! project folder) point at it, and its events are read back under every one of those names
//! — so removing a link never ends the watch of the folder it pointed at. After a relevant event, [`Watch::next_change`] waits
//! until nothing relevant happened for [`QUIET`] (at most [`MAX_DELAY`] in all), so a save
//! that touches the file several times converges once; it says which project folders'
//! manifests changed, or that the set of folders did (then every project is read again). A
//! changed manifest found empty is a file being written: the change waits for its content
//! up to [`EMPTY_WAIT`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::manifest::MANIFEST_FILE;

/// A change is complete once no relevant event came for this long.
pub const QUIET: Duration = Duration::from_millis(15);

/// ... or once this long passed since its first event (a file written without pause).
pub const MAX_DELAY: Duration = Duration::from_millis(200);

/// A changed manifest that is empty (0 bytes) is a file being written (truncated, then
/// written after a pause): the change waits up to this long after its latest event for the
/// content, and only then goes on (the empty manifest is then reported as a problem).
pub const EMPTY_WAIT: Duration = Duration::from_secs(1);

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changed {
    /// The set of project folders may have changed (a folder created, renamed or deleted in
    /// the home, or events were lost): every project must be read again.
    pub folders: bool,
    /// Project folders whose `coco.yaml` was written, replaced or deleted.
    pub projects: BTreeSet<PathBuf>,
    /// A configuration file.
    pub config: bool,
}

impl Changed {
    /// Everything: what a lost event means.
    fn everything() -> Changed {
        Changed {
            folders: true,
            projects: BTreeSet::new(),
            config: true,
        }
    }

    pub fn any(&self) -> bool {
        self.folders || self.config || !self.projects.is_empty()
    }

    fn merge(&mut self, other: Changed) {
        self.folders |= other.folders;
        self.config |= other.config;
        self.projects.extend(other.projects);
    }
}

/// Watches a home and the configuration files; see the module docs.
pub struct Watch {
    watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    home: PathBuf,
    config_files: Vec<PathBuf>,
    /// Each watched real folder (its canonical path, as given to notify) with the names we
    /// watch it under (the home, project folders, configuration folders).
    watched: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    /// The change being debounced, kept here (not in [`Watch::next_change`]'s future) so
    /// that dropping that future — it runs in a `select!` — loses nothing.
    pending: Changed,
    /// When the pending change's first and latest relevant events came.
    first_at: tokio::time::Instant,
    latest_at: tokio::time::Instant,
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
            watched: BTreeMap::new(),
            pending: Changed::default(),
            first_at: tokio::time::Instant::now(),
            latest_at: tokio::time::Instant::now(),
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
    ///
    /// Cancel-safe: the change gathered so far stays in `self`, and the only thing awaited
    /// is the channel (itself cancel-safe), so a call dropped in a `select!` loses nothing and
    /// the next call goes on where it stopped.
    pub async fn next_change(&mut self) -> Option<Changed> {
        loop {
            let received = if self.pending.any() {
                let quiet_until = (self.latest_at + QUIET).min(self.first_at + MAX_DELAY);
                let until = if quiet_until <= tokio::time::Instant::now()
                    && self.pending_manifest_is_empty()
                {
                    self.latest_at + EMPTY_WAIT
                } else {
                    quiet_until
                };
                match tokio::time::timeout_at(until, self.events.recv()).await {
                    Ok(received) => received,
                    Err(_)
                        if self.pending_manifest_is_empty()
                            && until < self.latest_at + EMPTY_WAIT =>
                    {
                        continue;
                    }
                    Err(_) => break,
                }
            } else {
                self.events.recv().await
            };
            let Some(event) = received else {
                if self.pending.any() {
                    break;
                }
                return None;
            };
            let changed = self.classify(event);
            if changed.any() {
                let now = tokio::time::Instant::now();
                if !self.pending.any() {
                    self.first_at = now;
                }
                self.latest_at = now;
                self.pending.merge(changed);
            }
        }
        let changed = std::mem::take(&mut self.pending);
        if changed.folders {
            self.sync();
        }
        Some(changed)
    }

    /// Whether a manifest of the pending change is an empty file: one being written.
    fn pending_manifest_is_empty(&self) -> bool {
        self.pending.projects.iter().any(|dir| {
            std::fs::metadata(dir.join(MANIFEST_FILE))
                .is_ok_and(|meta| meta.is_file() && meta.len() == 0)
        })
    }

    /// What `event` means for us (pure apart from `self`'s paths).
    fn classify(&self, event: notify::Result<notify::Event>) -> Changed {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                // Overflow or a watch lost: re-read everything to be safe.
                tracing::warn!("file watch: {error}; re-reading everything");
                return Changed::everything();
            }
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return Changed::default();
        }
        let mut changed = Changed::default();
        if event.need_rescan() {
            return Changed::everything();
        }
        for path in event.paths.iter().flat_map(|path| self.names_of(path)) {
            let path = &path;
            if self.config_files.iter().any(|file| file == path) {
                changed.config = true;
            }
            let parent = path.parent();
            let in_home = parent == Some(self.home.as_path());
            if (in_home && !is_hidden(path)) || path == &self.home {
                changed.folders = true;
            }
            let is_manifest = path.file_name().is_some_and(|name| name == MANIFEST_FILE)
                && parent.and_then(Path::parent) == Some(self.home.as_path());
            if let (true, Some(project)) = (is_manifest, parent) {
                changed.projects.insert(project.to_path_buf());
            }
        }
        changed
    }

    /// The names `path` (from notify: under a watched real folder) has for us: the same
    /// entry under every name of its folder, or of itself if it is a watched folder.
    fn names_of(&self, path: &Path) -> Vec<PathBuf> {
        if let Some(names) = self.watched.get(path) {
            return names.iter().cloned().collect();
        }
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => match self.watched.get(parent) {
                Some(names) => names.iter().map(|folder| folder.join(name)).collect(),
                None => vec![path.to_path_buf()],
            },
            _ => vec![path.to_path_buf()],
        }
    }

    /// Watch exactly the home, its current sub-folders and the configuration folders, each
    /// real folder once (see the module docs).
    fn sync(&mut self) {
        let mut names: Vec<PathBuf> = self
            .config_files
            .iter()
            .filter_map(|file| file.parent().map(Path::to_path_buf))
            .collect();
        if !self.home.is_dir() {
            // A missing home: its parent says when it is created.
            names.extend(self.home.parent().map(Path::to_path_buf));
        } else {
            names.push(self.home.clone());
            if let Ok(entries) = std::fs::read_dir(&self.home) {
                names.extend(
                    entries
                        .flatten()
                        .map(|entry| entry.path())
                        .filter(|path| !is_hidden(path)),
                );
            }
        }
        let mut wanted: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
        for name in names {
            if let Ok(real) = std::fs::canonicalize(&name)
                && real.is_dir()
            {
                wanted.entry(real).or_default().insert(name);
            }
        }
        let gone: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|real| !wanted.contains_key(*real))
            .cloned()
            .collect();
        for real in gone {
            // Not found when notify dropped it already (the folder was deleted): fine.
            let _ = self.watcher.unwatch(&real);
            self.watched.remove(&real);
        }
        for (real, names) in wanted {
            if !self.watched.contains_key(&real)
                && let Err(error) = self.watcher.watch(&real, RecursiveMode::NonRecursive)
            {
                tracing::warn!("cannot watch {}: {error}", real.display());
                continue;
            }
            self.watched.insert(real, names);
        }
    }
}

/// A dot-file or dot-folder (`.git`, an editor's `.coco.yaml.swp`).
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `select!` that drops the wait in the middle of its debounce (as the daemon's ticks
    /// do) loses nothing: the next call returns the change.
    #[tokio::test]
    async fn a_change_survives_a_dropped_wait() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("p")).unwrap();
        std::fs::write(home.join("p").join(MANIFEST_FILE), "jobs: {}\n").unwrap();
        let mut watch = Watch::new(&home, &[]).unwrap();
        std::fs::write(
            home.join("p").join(MANIFEST_FILE),
            "jobs: {a: {command: [x]}}\n",
        )
        .unwrap();
        let mut dropped = 0;
        let change = loop {
            tokio::select! {
                change = watch.next_change() => break change,
                () = tokio::time::sleep(QUIET / 3) => {
                    dropped += 1;
                    assert!(dropped < 1000, "the change was lost");
                }
            }
        };
        let change = change.expect("watching");
        assert!(dropped > 0, "the wait was dropped at least once");
        assert_eq!(change.projects, BTreeSet::from([home.join("p")]));
        assert!(!change.folders && !change.config, "{change:?}");
    }

    /// A project folder linked under a second name is watched once, and a save is read
    /// back under both names.
    #[tokio::test]
    async fn a_linked_folder_is_watched_once_under_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("p")).unwrap();
        std::fs::write(home.join("p").join(MANIFEST_FILE), "jobs: {}\n").unwrap();
        std::os::unix::fs::symlink("p", home.join("link")).unwrap();
        let mut watch = Watch::new(&home, &[]).unwrap();
        let real_home = std::fs::canonicalize(&home).unwrap();
        assert_eq!(
            watch.watched.keys().cloned().collect::<Vec<_>>(),
            [real_home.clone(), real_home.join("p")]
        );
        std::fs::write(
            home.join("p").join(MANIFEST_FILE),
            "jobs: {a: {command: [x]}}\n",
        )
        .unwrap();
        let change = watch.next_change().await.expect("watching");
        assert_eq!(
            change.projects,
            BTreeSet::from([home.join("link"), home.join("p")])
        );
    }
}
