//! `coco install NAME GIT-URL[@REF]`: put a project from a git remote into the home — clone
//! it (or, when it is already there, fetch and check out), create its environment as
//! `coco init` would (a `.venv` when it has a requirements.txt) and validate its manifest.
//! Applying is the daemon's (it sees the new folder) or `coco apply`'s.

use std::path::{Path, PathBuf};

use crate::git::{self, GitError};
use crate::scaffold::check_name;
use crate::scaffold::init::{InitError, OnStep, create_venv};
use crate::scaffold::write::check_project_folder;

/// A git URL and the ref to check out (pure): the part after the last `@` is a ref when it
/// holds no `/` or `:` (so `git@host:x/y.git` and `https://user@host/r.git` are URLs
/// without one).
pub fn split_ref(source: &str) -> (&str, Option<&str>) {
    match source.rsplit_once('@') {
        Some((url, reference))
            if !url.is_empty()
                && !reference.is_empty()
                && !reference.contains('/')
                && !reference.contains(':') =>
        {
            (url, Some(reference))
        }
        _ => (source, None),
    }
}

/// Why an install failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Venv(#[from] InitError),
}

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub dir: PathBuf,
    /// Cloned now (else updated).
    pub cloned: bool,
    pub reference: Option<String>,
    /// The checked-out commit.
    pub commit: String,
    pub venv: bool,
}

/// Clone or update project `name` from `source` (`URL[@REF]`) into `home`; `on_step` is
/// told the slow steps of creating its environment as they start.
pub async fn install(
    home: &Path,
    name: &str,
    source: &str,
    on_step: OnStep<'_>,
) -> Result<Installed, InstallError> {
    check_name(name).map_err(InstallError::Refused)?;
    let (url, reference) = split_ref(source);
    // A relative home is taken from the current directory, once: git runs in it by its
    // absolute path.
    let home = &std::path::absolute(home).map_err(|e| {
        InstallError::Refused(format!("cannot resolve the home {}: {e}", home.display()))
    })?;
    let dir = home.join(name);
    // Not through a symbolic link (`home/linked -> /elsewhere`): that would fetch and check
    // out outside the home.
    check_project_folder(&dir).map_err(|e| InstallError::Refused(e.to_string()))?;
    std::fs::create_dir_all(home).map_err(|e| {
        InstallError::Refused(format!("cannot create the home {}: {e}", home.display()))
    })?;
    let cloned = if dir.exists() {
        if !git::is_repository(&dir).await || !dir.join(".git").exists() {
            return Err(InstallError::Refused(format!(
                "{} exists and is not a git repository: move it away first",
                dir.display()
            )));
        }
        if git::is_dirty(&dir).await? {
            return Err(InstallError::Refused(format!(
                "{} has uncommitted changes: commit or stash them first",
                dir.display()
            )));
        }
        if !git::has_origin(&dir).await? {
            git::git(&dir, &["remote", "add", "origin", url]).await?;
        }
        git::git(&dir, &["fetch", "-q", "--tags", "origin"]).await?;
        false
    } else {
        let target = dir.to_str().unwrap_or_default();
        git::git(home, &["clone", "-q", url, target]).await?;
        true
    };
    if let Some(reference) = reference {
        git::git(&dir, &["checkout", "-q", reference]).await?;
    }
    // On a branch that follows origin, take what origin has (fast-forward only).
    if !cloned && git::current_branch(&dir).await?.is_some() {
        let upstream = git::run(&dir, &["rev-parse", "-q", "--verify", "@{upstream}"]).await?;
        if upstream.success() {
            git::git(&dir, &["merge", "-q", "--ff-only", "@{upstream}"]).await?;
        }
    }
    let requirements = dir.join("requirements.txt");
    let venv = requirements.is_file() && !dir.join(".venv").exists();
    if venv {
        create_venv(&dir, &requirements, on_step).await?;
    }
    Ok(Installed {
        commit: git::rev_parse(&dir, "HEAD").await?,
        dir,
        cloned,
        reference: reference.map(str::to_owned),
        venv,
    })
}

#[cfg(test)]
mod tests {
    use super::split_ref;

    #[test]
    fn a_ref_follows_the_last_at() {
        assert_eq!(split_ref("/srv/x.git@1.0.0"), ("/srv/x.git", Some("1.0.0")));
        assert_eq!(
            split_ref("git@host:team/x.git@develop"),
            ("git@host:team/x.git", Some("develop"))
        );
        assert_eq!(
            split_ref("git@host:team/x.git"),
            ("git@host:team/x.git", None)
        );
        assert_eq!(
            split_ref("https://ada@host/x.git"),
            ("https://ada@host/x.git", None)
        );
        assert_eq!(split_ref("/srv/x.git"), ("/srv/x.git", None));
        assert_eq!(split_ref("/srv/x.git@"), ("/srv/x.git@", None));
    }
}
