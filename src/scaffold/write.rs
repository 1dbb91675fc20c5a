//! Writing rendered files into a project folder: never outside it, never over a file.
//!
//! Every path was checked by [`super::render::inside`]; here each folder on the way is also
//! checked not to be a symbolic link (which could lead outside), and files are created with
//! `create_new`, so an existing file is reported as skipped and left as it is.

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
}

/// Write `files` under `project` (created if missing).
pub fn write(project: &Path, files: &[Planned]) -> Result<Written, WriteError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError::Io { path, source }
    };
    std::fs::create_dir_all(project).map_err(io(project))?;
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
