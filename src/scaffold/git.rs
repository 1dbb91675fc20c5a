//! git for `coco init`: a repository on `master` with one commit, a `develop` branch checked
//! out (git-flow), and — as core4 did without a remote — a bare repository in the project's
//! `.repos` folder as `origin`, both branches pushed, so `coco build` and `coco release` can
//! push. Runs the `git` program through [`crate::process::capture`].

use std::path::Path;
use std::time::Duration;

use crate::process::Spec;
use crate::process::capture::{Captured, capture};

/// How long one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A git command that failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0} (is git installed?)")]
    Spawn(#[from] crate::process::RunError),
    #[error("`git {args}` failed in {dir}: {complaint}")]
    Failed {
        args: String,
        dir: String,
        complaint: String,
    },
}

/// Run `git ARGS` in `dir` (no prompts); its output, failing on a non-zero exit.
pub async fn git(dir: &Path, args: &[&str]) -> Result<Captured, GitError> {
    let captured = run(dir, args).await?;
    if captured.success() {
        Ok(captured)
    } else {
        Err(GitError::Failed {
            args: args.join(" "),
            dir: dir.display().to_string(),
            complaint: captured.complaint().to_owned(),
        })
    }
}

/// Run `git ARGS` in `dir` whatever its exit status.
pub async fn run(dir: &Path, args: &[&str]) -> Result<Captured, GitError> {
    let mut argv = vec!["git"];
    argv.extend_from_slice(args);
    let spec = Spec::new(argv, dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C");
    Ok(capture(&spec, GIT_TIMEOUT).await?)
}

/// `git config KEY` as seen from `dir` (global and system settings included), if set.
pub async fn config_value(dir: &Path, key: &str) -> Option<String> {
    let captured = run(dir, &["config", "--get", key]).await.ok()?;
    let value = captured.stdout.trim();
    (captured.success() && !value.is_empty()).then(|| value.to_owned())
}

/// Make `project` a git-flow repository: everything committed on `master` as `message`,
/// `develop` created and checked out, a bare `.repos` as `origin` with both pushed.
/// `author` signs the commit when git has no identity configured.
pub async fn init_flow(project: &Path, message: &str, author: &str) -> Result<(), GitError> {
    git(project, &["init", "-q", "-b", "master"]).await?;
    // The bare origin lives inside the project: never part of it.
    let exclude = project.join(".git/info/exclude");
    let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
    if !text.lines().any(|line| line.trim() == "/.repos/") {
        text.push_str("/.repos/\n");
        let _ = std::fs::create_dir_all(project.join(".git/info"));
        let _ = std::fs::write(&exclude, text);
    }
    git(project, &["add", "-A"]).await?;
    let mut commit: Vec<String> = Vec::new();
    if config_value(project, "user.name").await.is_none() {
        commit.extend(["-c".into(), format!("user.name={author}")]);
    }
    if config_value(project, "user.email").await.is_none() {
        commit.extend(["-c".into(), "user.email=coco@localhost".into()]);
    }
    commit.extend(["commit", "-q", "-m", message].map(String::from));
    let commit: Vec<&str> = commit.iter().map(String::as_str).collect();
    git(project, &commit).await?;
    git(project, &["checkout", "-q", "-b", "develop"]).await?;
    git(project, &["init", "-q", "--bare", ".repos"]).await?;
    let origin = project.join(".repos");
    let origin = origin.to_str().unwrap_or(".repos");
    git(project, &["remote", "add", "origin", origin]).await?;
    git(
        project,
        &["push", "-q", "-u", "origin", "master", "develop"],
    )
    .await?;
    Ok(())
}
