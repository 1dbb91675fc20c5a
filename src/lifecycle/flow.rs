//! `coco build` and `coco release`: git-flow releases of one project.
//!
//! - [`build`], on `develop` with a clean tree and commits not on `master`: creates
//!   `release-X.Y.Z` (X.Y.Z higher than coco.yaml's `version`), writes the version into
//!   coco.yaml in place, commits "bump release-X.Y.Z" and pushes the branch if there is an
//!   `origin`.
//! - [`release`], on `master` once `release-X.Y.Z` is merged into `master` and `develop`:
//!   tags `X.Y.Z`, pushes `master`, `develop` and the tag, deletes the release branch (here
//!   and on `origin`); the caller records the release in the store.
//!
//! Every refused precondition is a [`FlowError::Refused`] with a one-line message.

use std::path::{Path, PathBuf};

use super::version::{Bump, Version, set_version};
use crate::git::{self, GitError, Signer};
use crate::manifest::parse::load_project;

/// Why a build or release did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Git(#[from] GitError),
}

fn refuse<T>(message: impl Into<String>) -> Result<T, FlowError> {
    Err(FlowError::Refused(message.into()))
}

/// The next version of a build: a part to raise, or an exact version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Bump(Bump),
    Exactly(Version),
}

/// What [`build`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub from: Version,
    pub version: Version,
    pub branch: String,
    pub pushed: bool,
    /// Who signed the version commit.
    pub signer: Signer,
}

/// The version coco.yaml of `project` declares (0.0.0 when none).
pub fn manifest_version(project: &Path) -> Result<Version, FlowError> {
    let manifest = match load_project(project) {
        Ok(manifest) => manifest,
        Err(problems) => {
            let first = problems
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            return refuse(format!("coco.yaml does not validate: {first}"));
        }
    };
    match manifest.version.as_deref() {
        None => Ok(Version::ZERO),
        Some(text) => Version::parse(text).or_else(|e| refuse(format!("coco.yaml's version: {e}"))),
    }
}

async fn repository_checks(project: &Path, branch: &str, verb: &str) -> Result<(), FlowError> {
    if !git::is_repository(project).await {
        return refuse(format!(
            "{} is not a git repository (coco init makes one)",
            project.display()
        ));
    }
    match git::current_branch(project).await?.as_deref() {
        Some(current) if current == branch => {}
        Some(current) => {
            return refuse(format!(
                "on branch {current}: coco {verb} runs on {branch} (git checkout {branch})"
            ));
        }
        None => {
            return refuse(format!(
                "no branch checked out: coco {verb} runs on {branch}"
            ));
        }
    }
    if git::is_dirty(project).await? {
        return refuse("the working tree has uncommitted changes: commit or stash them first");
    }
    Ok(())
}

/// Cut `release-X.Y.Z` from `develop` (see the module docs); `author` signs the commit if
/// git has no identity.
pub async fn build(project: &Path, next: Next, author: &str) -> Result<Built, FlowError> {
    repository_checks(project, "develop", "build").await?;
    if !git::ref_exists(project, "refs/heads/master").await? {
        return refuse("there is no master branch to release to");
    }
    if git::count(project, "master..develop").await? == 0 {
        return refuse("develop has no commits that are not on master: nothing to release");
    }
    if let Some(open) = git::branches(project, "release-*").await?.first() {
        return refuse(format!(
            "{open} is still open: merge it and run coco release, or delete it"
        ));
    }
    let from = manifest_version(project)?;
    let version = match next {
        Next::Bump(part) => from.bump(part),
        Next::Exactly(version) if version > from => version,
        Next::Exactly(version) => {
            return refuse(format!(
                "version {version} is not higher than {from}, the version in coco.yaml"
            ));
        }
    };
    let branch = format!("release-{version}");
    git::git(project, &["checkout", "-q", "-b", &branch]).await?;
    let file = project.join("coco.yaml");
    let text = std::fs::read_to_string(&file)
        .or_else(|e| refuse(format!("reading {}: {e}", file.display())))?;
    std::fs::write(&file, set_version(&text, &version.to_string()))
        .or_else(|e| refuse(format!("writing {}: {e}", file.display())))?;
    if manifest_version(project).ok() != Some(version) {
        // Leave things as they were.
        std::fs::write(&file, &text).ok();
        git::git(project, &["checkout", "-q", "develop"]).await?;
        git::git(project, &["branch", "-q", "-D", &branch]).await?;
        return refuse("could not write the version into coco.yaml");
    }
    let signer = git::commit(
        project,
        &["-q", "-a", "-m", &format!("bump {branch}")],
        author,
    )
    .await?;
    let pushed = git::has_origin(project).await?;
    if pushed {
        git::git(project, &["push", "-q", "-u", "origin", &branch]).await?;
    }
    Ok(Built {
        from,
        version,
        branch,
        pushed,
        signer,
    })
}

/// What [`release`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub version: Version,
    /// The tagged commit.
    pub commit: String,
    pub pushed: bool,
    /// Who released it: the tagger git recorded, `Name <email>`.
    pub by: String,
    /// Who signed the tag.
    pub signer: Signer,
}

/// Finish the open release (see the module docs); `author` signs the tag if git has no
/// identity.
pub async fn release(project: &Path, author: &str) -> Result<Released, FlowError> {
    repository_checks(project, "master", "release").await?;
    let open = git::branches(project, "release-*").await?;
    let branch = match open.as_slice() {
        [] => return refuse("no release branch: start one on develop with coco build"),
        [one] => one.clone(),
        many => {
            return refuse(format!(
                "several release branches are open ({}): keep one",
                many.join(", ")
            ));
        }
    };
    let Some(version) = branch
        .strip_prefix("release-")
        .and_then(|v| Version::parse(v).ok())
    else {
        return refuse(format!("{branch} does not name a version X.Y.Z"));
    };
    for target in ["master", "develop"] {
        if !git::is_ancestor(project, &branch, target).await? {
            return refuse(format!(
                "{branch} is not merged into {target} yet (git checkout {target} && git merge --no-ff {branch})"
            ));
        }
    }
    let tag = version.to_string();
    if git::ref_exists(project, &format!("refs/tags/{tag}")).await? {
        return refuse(format!("tag {tag} exists already"));
    }
    let declared = manifest_version(project)?;
    if declared != version {
        return refuse(format!(
            "coco.yaml on master says version {declared}, the release branch {version}"
        ));
    }
    let signer = git::signed(
        project,
        &["tag", "-a", &tag, "-m", &format!("release {tag}")],
        author,
    )
    .await?;
    let by = git::tagger(project, &tag).await?;
    let pushed = git::has_origin(project).await?;
    if pushed {
        git::git(
            project,
            &[
                "push",
                "-q",
                "origin",
                "master",
                "develop",
                &format!("refs/tags/{tag}"),
            ],
        )
        .await?;
        let remote = git::git(project, &["ls-remote", "--heads", "origin", &branch]).await?;
        if !remote.stdout.trim().is_empty() {
            git::git(project, &["push", "-q", "origin", "--delete", &branch]).await?;
        }
    }
    git::git(project, &["branch", "-q", "-d", &branch]).await?;
    Ok(Released {
        version,
        commit: git::rev_parse(project, "HEAD").await?,
        pushed,
        by,
        signer,
    })
}

/// The project folder for `coco build`/`release`: `name` in `home`, else the folder of the
/// current directory (or a parent) holding a coco.yaml.
pub fn locate(home: &Path, name: Option<&str>) -> Result<PathBuf, FlowError> {
    if let Some(name) = name {
        let dir = home.join(name);
        return if dir.join("coco.yaml").is_file() {
            Ok(dir)
        } else {
            refuse(format!("no project {name} in {}", home.display()))
        };
    }
    let cwd = std::env::current_dir()
        .or_else(|e| refuse(format!("cannot read the current directory: {e}")))?;
    cwd.ancestors()
        .find(|dir| dir.join("coco.yaml").is_file())
        .map(Path::to_path_buf)
        .map_or_else(
            || refuse("not in a project (no coco.yaml here or above): name the project"),
            Ok,
        )
}
