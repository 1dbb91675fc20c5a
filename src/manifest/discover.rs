//! Find the projects of a home: every direct sub-folder holding a `coco.yaml`.
//!
//! A folder is a project folder when it holds an entry named `coco.yaml` of any kind: a
//! manifest that cannot be read (a folder of that name, a symbolic link in a loop, no
//! permission) is a problem of its project, which keeps its last applied state, never a
//! project gone. Only a folder with no `coco.yaml` at all holds no project.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::parse::load_project;
use super::{MANIFEST_FILE, Project};
use crate::yaml::Diagnostic;

/// What a home holds: valid projects and the problems of the invalid ones.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Valid projects, by name.
    pub projects: BTreeMap<String, Project>,
    /// Problems, by the project folder they were found in.
    pub invalid: BTreeMap<PathBuf, Vec<Diagnostic>>,
}

impl Discovery {
    pub fn is_valid(&self) -> bool {
        self.invalid.is_empty()
    }

    /// Every problem, in folder order.
    pub fn problems(&self) -> impl Iterator<Item = &Diagnostic> {
        self.invalid.values().flatten()
    }
}

/// Why the projects of a home could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// The home does not exist: most often a `folder.home` or `--home` pointing elsewhere.
    #[error(
        "the home folder {} does not exist: create it, or point `--home` or `folder.home` in \
         local.yaml at the folder of your projects (`coco config` shows where it is set)",
        home.display()
    )]
    Missing { home: PathBuf },
    #[error(
        "the home folder {} is not a folder: point `--home` or `folder.home` in local.yaml at \
         the folder of your projects (`coco config` shows where it is set)",
        home.display()
    )]
    NotAFolder { home: PathBuf },
    #[error("reading the home folder {}: {source}", home.display())]
    Read {
        home: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The project folders of `home` (sorted), i.e. its sub-folders with a `coco.yaml`.
pub fn project_dirs(home: &Path) -> Result<Vec<PathBuf>, HomeError> {
    let entries = std::fs::read_dir(home).map_err(|source| {
        let home = home.to_path_buf();
        match source.kind() {
            std::io::ErrorKind::NotFound => HomeError::Missing { home },
            std::io::ErrorKind::NotADirectory => HomeError::NotAFolder { home },
            _ => HomeError::Read { home, source },
        }
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| has_manifest(path))
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Whether `dir` holds a `coco.yaml`, readable or not (see the module docs): anything but
/// "there is none" (or "`dir` is no folder") says yes, so an unreadable manifest is reported
/// rather than taken for a deleted one.
pub fn has_manifest(dir: &Path) -> bool {
    match std::fs::symlink_metadata(dir.join(MANIFEST_FILE)) {
        Ok(_) => true,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ),
    }
}

/// Load and validate the projects in `dirs`, checking that no two share a name.
pub fn load_projects(dirs: &[PathBuf]) -> Discovery {
    load_projects_keeping(dirs, &BTreeMap::new())
}

/// [`load_projects`], where two folders name the same project: the folder `holders` gives
/// for that name keeps it (the one whose manifest is applied), else the first in `dirs`.
/// The other folder's manifest is a problem. `holders` and `dirs` are compared as given.
pub fn load_projects_keeping(dirs: &[PathBuf], holders: &BTreeMap<String, PathBuf>) -> Discovery {
    let mut discovery = Discovery::default();
    for dir in dirs {
        match load_project(dir) {
            Ok(project) => {
                let name = project.name.clone();
                let Some(first) = discovery.projects.get(&name) else {
                    discovery.projects.insert(name, project);
                    continue;
                };
                let (kept, loser) = if holders.get(&name) == Some(dir) {
                    let first = first.dir.clone();
                    discovery.projects.insert(name.clone(), project);
                    (dir.clone(), first)
                } else {
                    (first.dir.clone(), dir.clone())
                };
                let diagnostic = name_taken(&loser, &name, &kept);
                discovery.invalid.insert(loser, vec![diagnostic]);
            }
            Err(problems) => {
                discovery.invalid.insert(dir.clone(), problems);
            }
        }
    }
    discovery
}

/// The problem of the project in `dir` whose name `name` the project in `first` has already,
/// located at its `project:` key.
pub fn name_taken(dir: &Path, name: &str, first: &Path) -> Diagnostic {
    let file = dir.join(MANIFEST_FILE);
    // Read as `load_project` read it a moment ago: bounded, never blocking.
    let text = crate::yaml::text::read_at_most(&file, super::limits::MAX_MANIFEST_BYTES)
        .ok()
        .and_then(|bytes| crate::yaml::text::decode(&file, bytes).ok())
        .unwrap_or_default();
    let doc = crate::yaml::Document::parse(&file, &text).ok();
    let message = format!(
        "project name `{name}` is already used by {}",
        first.join(MANIFEST_FILE).display()
    );
    match doc {
        Some(doc) => doc.at(&["project".to_owned()], message),
        None => Diagnostic::new(
            &file,
            &text,
            crate::yaml::Position { line: 1, column: 1 },
            message,
        ),
    }
}

/// Load every project of `home`.
pub fn discover(home: &Path) -> Result<Discovery, HomeError> {
    Ok(load_projects(&project_dirs(home)?))
}
