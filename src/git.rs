//! git, as the project life cycle uses it (`coco init`, `build`, `release`, `install`,
//! `projects`): the `git` program run through [`crate::process::capture`], no prompts.
//!
//! [`init_flow`] makes a new project a git-flow repository: `master` with one commit, a
//! `develop` branch checked out, and — as core4 did without a remote — a bare repository in
//! the project's `.repos` folder as `origin`, both branches pushed, so `coco build` and
//! `coco release` can push.
//!
//! Commits and tags are signed by git's own identity; where git has none, by a stand-in
//! ([`Signer::StandIn`]) so the step still works, and the caller warns about it.

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
/// `author` signs the commit when git has no identity; whom it was signed as.
pub async fn init_flow(project: &Path, message: &str, author: &str) -> Result<Signer, GitError> {
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
    let signer = commit(project, &["-q", "-m", message], author).await?;
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
    Ok(signer)
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

/// Who git records as the author and committer of what coco commits or tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The identity git has (its config or its environment variables).
    Own,
    /// git has none: coco signed as this stand-in. The user's own `git commit` fails until
    /// they set one (`git config --global user.name/user.email`).
    StandIn { name: String, email: String },
}

impl Signer {
    /// For a stand-in: the warning that `what` (e.g. "the first commit") was signed by it,
    /// with the two commands that give git an identity (pure).
    pub fn warning(&self, what: &str) -> Option<String> {
        let Signer::StandIn { name, email } = self else {
            return None;
        };
        Some(format!(
            "git has no identity (user.name, user.email): {what} was signed as \"{name} <{email}>\". \
             Your own `git commit` fails until you tell git who you are:\n  \
             git config --global user.name \"Your Name\"\n  \
             git config --global user.email you@example.com"
        ))
    }
}

/// The stand-in e-mail address when git has none.
pub const STAND_IN_EMAIL: &str = "coco@localhost";

/// Whom git would sign as in `dir`: its own identity when it has a complete one (what a
/// `git commit` needs: `git var` checks it as strictly), else a stand-in of `author` (or
/// git's `user.name`) and `user.email` (or [`STAND_IN_EMAIL`]).
pub async fn signer(dir: &Path, author: &str) -> Signer {
    let mut complete = true;
    for ident in ["GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"] {
        complete &= run(dir, &["var", ident])
            .await
            .is_ok_and(|out| out.success());
    }
    if complete {
        return Signer::Own;
    }
    Signer::StandIn {
        name: config_value(dir, "user.name")
            .await
            .unwrap_or_else(|| author.to_owned()),
        email: config_value(dir, "user.email")
            .await
            .unwrap_or_else(|| STAND_IN_EMAIL.to_owned()),
    }
}

/// `git commit ARGS`, signed as `author` (and [`STAND_IN_EMAIL`]) where git has no identity;
/// whom it was signed as.
pub async fn commit(dir: &Path, args: &[&str], author: &str) -> Result<Signer, GitError> {
    let mut all = vec!["commit"];
    all.extend_from_slice(args);
    signed(dir, &all, author).await
}

/// `git ARGS` for a command that records who did it (commit, annotated tag): signed as
/// `author` (and [`STAND_IN_EMAIL`]) where git has no identity; whom it was signed as.
pub async fn signed(dir: &Path, args: &[&str], author: &str) -> Result<Signer, GitError> {
    let signer = signer(dir, author).await;
    let mut argv: Vec<String> = Vec::new();
    if let Signer::StandIn { name, email } = &signer {
        argv.extend(["-c".into(), format!("user.name={name}")]);
        argv.extend(["-c".into(), format!("user.email={email}")]);
    }
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    git(dir, &argv).await?;
    Ok(signer)
}

/// Who tagged annotated tag `tag`, as git recorded it: `Name <email>`.
pub async fn tagger(dir: &Path, tag: &str) -> Result<String, GitError> {
    let out = git(
        dir,
        &[
            "for-each-ref",
            "--format=%(taggername) %(taggeremail)",
            &format!("refs/tags/{tag}"),
        ],
    )
    .await?;
    Ok(out.stdout.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::Signer;

    #[test]
    fn only_a_stand_in_is_warned_about_with_both_commands() {
        assert_eq!(Signer::Own.warning("the tag"), None);
        let warning = Signer::StandIn {
            name: "ada".into(),
            email: super::STAND_IN_EMAIL.into(),
        }
        .warning("the tag")
        .unwrap();
        assert!(warning.contains("the tag was signed as \"ada <coco@localhost>\""));
        assert!(warning.contains("git config --global user.name \"Your Name\""));
        assert!(warning.contains("git config --global user.email you@example.com"));
    }
}
