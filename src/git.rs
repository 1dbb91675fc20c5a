//! git, as the project life cycle uses it (`coco init`, `build`, `release`, `install`,
//! `projects`): the `git` program run through [`crate::process::capture`], no prompts.
//!
//! [`init_flow`] makes a new project a git-flow repository: `master` with one commit, a
//! `develop` branch checked out, and — as core4 did without a remote — a bare repository in
//! the project's `.repos` folder as `origin`, both branches pushed, so `coco build` and
//! `coco release` can push.

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
    commit(project, &["-q", "-m", message], author).await?;
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

/// The checked-out branch; `None` when detached.
pub async fn current_branch(dir: &Path) -> Result<Option<String>, GitError> {
    let out = git(dir, &["branch", "--show-current"]).await?;
    let name = out.stdout.trim();
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// Is `dir` inside a git work tree?
pub async fn is_repository(dir: &Path) -> bool {
    run(dir, &["rev-parse", "--is-inside-work-tree"])
        .await
        .is_ok_and(|out| out.success() && out.stdout.trim() == "true")
}

/// Does the work tree have uncommitted changes (untracked files included)?
pub async fn is_dirty(dir: &Path) -> Result<bool, GitError> {
    Ok(!git(dir, &["status", "--porcelain"])
        .await?
        .stdout
        .trim()
        .is_empty())
}

/// Does ref `name` (e.g. `refs/heads/master`, `refs/tags/1.0.0`) exist?
pub async fn ref_exists(dir: &Path, name: &str) -> Result<bool, GitError> {
    Ok(run(dir, &["rev-parse", "--verify", "-q", name])
        .await?
        .success())
}

/// How many commits `range` (`a..b`) holds.
pub async fn count(dir: &Path, range: &str) -> Result<u64, GitError> {
    let out = git(dir, &["rev-list", "--count", range]).await?;
    Ok(out.stdout.trim().parse().unwrap_or(0))
}

/// Is commit `ancestor` contained in `descendant`?
pub async fn is_ancestor(dir: &Path, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
    Ok(
        run(dir, &["merge-base", "--is-ancestor", ancestor, descendant])
            .await?
            .success(),
    )
}

/// Local branches matching `pattern` (`release-*`).
pub async fn branches(dir: &Path, pattern: &str) -> Result<Vec<String>, GitError> {
    let out = git(
        dir,
        &["branch", "--list", pattern, "--format=%(refname:short)"],
    )
    .await?;
    Ok(out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Does the repository have a remote named `origin`?
pub async fn has_origin(dir: &Path) -> Result<bool, GitError> {
    Ok(git(dir, &["remote"])
        .await?
        .stdout
        .lines()
        .any(|remote| remote.trim() == "origin"))
}

/// The full hash of `rev`.
pub async fn rev_parse(dir: &Path, rev: &str) -> Result<String, GitError> {
    Ok(git(dir, &["rev-parse", rev])
        .await?
        .stdout
        .trim()
        .to_owned())
}

/// `git commit ARGS`, signed as `author` (and `coco@localhost`) where git has no identity.
pub async fn commit(dir: &Path, args: &[&str], author: &str) -> Result<(), GitError> {
    let mut all = vec!["commit"];
    all.extend_from_slice(args);
    signed(dir, &all, author).await
}

/// `git ARGS` for a command that records who did it (commit, annotated tag): signed as
/// `author` (and `coco@localhost`) where git has no identity configured.
pub async fn signed(dir: &Path, args: &[&str], author: &str) -> Result<(), GitError> {
    let mut argv: Vec<String> = Vec::new();
    if config_value(dir, "user.name").await.is_none() {
        argv.extend(["-c".into(), format!("user.name={author}")]);
    }
    if config_value(dir, "user.email").await.is_none() {
        argv.extend(["-c".into(), "user.email=coco@localhost".into()]);
    }
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    git(dir, &argv).await.map(|_| ())
}
