//! Writing rendered files into a project folder: never outside it, never over a file.
//!
//! Every path was checked by [`super::render::inside`]; here the project folder itself and
//! each folder on the way are also checked not to be a symbolic link (which could lead
//! outside the home: `home/linked -> /elsewhere`), and files are created with `create_new`,
//! so an existing file is reported as skipped and left as it is.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::render::Planned;

/// What [`write`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    /// Created, relative to the project folder.
    pub created: Vec<PathBuf>,
    /// Already there (kept as they were).
    pub skipped: Vec<PathBuf>,
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is a symbolic link: refusing to write through it", path.display())]
    Symlink { path: PathBuf },
    #[error(
        "{} is a symbolic link to {}: a project is created only in a real folder of the home; nothing written",
        path.display(),
        target.display()
    )]
    ProjectSymlink { path: PathBuf, target: PathBuf },
}

/// Refuse a project folder that is a symbolic link (it could lead anywhere, outside the
/// home too); a missing folder is fine.
pub fn check_project_folder(project: &Path) -> Result<(), WriteError> {
    match std::fs::symlink_metadata(project) {
        Ok(meta) if meta.file_type().is_symlink() => Err(WriteError::ProjectSymlink {
            path: project.to_owned(),
            target: std::fs::read_link(project).unwrap_or_default(),
        }),
        _ => Ok(()),
    }
}

/// The project folder, created if missing (its parent, the home, too), and checked to be a
/// real folder once it is there.
fn make_project_folder(project: &Path) -> Result<(), WriteError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError::Io { path, source }
    };
    check_project_folder(project)?;
    if let Some(home) = project.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(home).map_err(io(home))?;
    }
    match std::fs::create_dir(project) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(project)(e)),
    }
    // Made a link between the check and here: still refused.
    check_project_folder(project)
}

/// Write `files` under `project` (created if missing).
pub fn write(project: &Path, files: &[Planned]) -> Result<Written, WriteError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError::Io { path, source }
    };
    make_project_folder(project)?;
    let mut written = Written::default();
    for file in files {
        let target = project.join(&file.path);
        // Each folder between the project and the file: a real folder, created if missing.
        let mut dir = project.to_path_buf();
        if let Some(parent) = file.path.parent() {
            for part in parent.components() {
                dir.push(part);
                match std::fs::symlink_metadata(&dir) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        return Err(WriteError::Symlink { path: dir });
                    }
                    Ok(_) => {}
                    Err(_) => std::fs::create_dir(&dir).map_err(io(&dir))?,
                }
            }
        }
        if std::fs::symlink_metadata(&target).is_ok() {
            written.skipped.push(file.path.clone());
            continue;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if file.executable { 0o755 } else { 0o644 });
        }
        match options.open(&target) {
            Ok(mut out) => {
                out.write_all(&file.contents).map_err(io(&target))?;
                written.created.push(file.path.clone());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                written.skipped.push(file.path.clone());
            }
            Err(e) => return Err(io(&target)(e)),
        }
    }
    Ok(written)
}
