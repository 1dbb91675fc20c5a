//! The project life cycle with real git repositories: the seed walkthrough end to end (init,
//! enter the environment, run, enqueue, detail, commit on develop, build 0.0.1, merge,
//! release), every refusal of build and release, `coco releases`, `coco projects`, and
//! `coco install` from the released repository.

use std::path::Path;

use serde_json::Value;

use crate::support::{Sandbox, stderr, stdout};

fn refused(sandbox: &Sandbox, args: &[&str], says: &str) {
    let output = sandbox.coco(args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{args:?}: {}",
        stdout(&output)
    );
    let text = stderr(&output);
    assert!(text.contains(says), "{args:?}: expected {says:?} in {text}");
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
}

/// Merge `branch` into the branch checked out in `project`, with a merge commit.
fn merge(sandbox: &Sandbox, project: &Path, branch: &str) {
    let message = format!("merge {branch}");
    sandbox.git(project, &["merge", "-q", "--no-ff", "-m", &message, branch]);
}

fn json(sandbox: &Sandbox, args: &[&str]) -> Value {
    let output = sandbox.coco(args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_seed_walkthrough_runs_end_to_end() {
    let sandbox = Sandbox::new();
    let git = |dir: &Path, args: &[&str]| sandbox.git(dir, args);

    // coco --init mypro "My first core4 project"
    let init = sandbox.coco(&["--init", "mypro", "My first core4 project"]);
    assert_eq!(init.status.code(), Some(0), "{}", stderr(&init));
    let project = sandbox.home().join("mypro");

    // Enter the environment: its python is the project's.
    #[allow(clippy::disallowed_methods)]
    let entered = std::process::Command::new("bash")
        .args([
            "-c",
            "source enter_env && python -c 'import sys; print(sys.prefix)' && echo \"$PS1\"",
        ])
        .current_dir(&project)
        .output()
        .unwrap();
    let entered = String::from_utf8_lossy(&entered.stdout).into_owned();
    assert!(entered.contains("mypro/.venv"), "{entered}");
    assert!(entered.contains("(mypro)"), "{entered}");

    // Execute the job directly, enqueue it, let a worker run it, see its details, halt.
    let run = sandbox.coco(&["run", "mypro.hello"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let id = sandbox.enqueue(&["mypro.hello"]);
    let mut worker = sandbox.spawn(&["--worker", "--slots", "1"]);
    sandbox.wait_for_state(&id, "complete");
    let detail = sandbox.coco(&["--detail", &id]);
    assert_eq!(detail.status.code(), Some(0), "{}", stderr(&detail));
    assert!(stdout(&detail).contains("complete"), "{}", stdout(&detail));
    let halt = sandbox.coco(&["--halt"]);
    assert_eq!(halt.status.code(), Some(0), "{}", stderr(&halt));
    assert_eq!(worker.wait_exit(), Some(0), "{}", worker.log());

    // Nothing to release yet.
    refused(
        &sandbox,
        &["build", "mypro", "--patch"],
        "nothing to release",
    );

    // Commit on develop.
    let hello = project.join("mypro/hello.py");
    let text = std::fs::read_to_string(&hello).unwrap();
    std::fs::write(&hello, text.replace("hello from", "hi from")).unwrap();
    refused(
        &sandbox,
        &["build", "mypro", "--patch"],
        "uncommitted changes",
    );
    git(&project, &["commit", "-q", "-am", "say hi"]);

    // Build 0.0.1 (the core4 spelling, by name).
    refused(
        &sandbox,
        &["build", "mypro", "--to", "0.0.0"],
        "not higher than 0.0.0",
    );
    let build = sandbox.coco(&["--build", "mypro", "--patch"]);
    assert_eq!(build.status.code(), Some(0), "{}", stderr(&build));
    assert!(
        stdout(&build).contains("0.0.0 → 0.0.1"),
        "{}",
        stdout(&build)
    );
    assert_eq!(
        git(&project, &["branch", "--show-current"]).trim(),
        "release-0.0.1"
    );
    let manifest = std::fs::read_to_string(project.join("coco.yaml")).unwrap();
    assert!(manifest.contains("\nversion: 0.0.1\n"), "{manifest}");
    assert!(
        manifest.contains("# the project's virtual environment comes first on PATH"),
        "comments kept: {manifest}"
    );
    assert_eq!(
        git(&project, &["log", "-1", "--format=%s"]).trim(),
        "bump release-0.0.1"
    );
    let origin = project.join(".repos");
    assert!(
        git(&origin, &["branch", "--list", "release-0.0.1"]).contains("release-0.0.1"),
        "pushed"
    );
    // A second build while this one is open, and release before merging, are refused.
    git(&project, &["checkout", "-q", "develop"]);
    git(&project, &["commit", "-q", "--allow-empty", "-m", "more"]);
    refused(
        &sandbox,
        &["build", "mypro", "--minor"],
        "release-0.0.1 is still open",
    );
    refused(&sandbox, &["release", "mypro"], "runs on master");
    git(&project, &["checkout", "-q", "master"]);
    refused(&sandbox, &["release", "mypro"], "not merged into master");

    // Merge into master and develop, release on master.
    merge(&sandbox, &project, "release-0.0.1");
    refused(&sandbox, &["release", "mypro"], "not merged into develop");
    git(&project, &["checkout", "-q", "develop"]);
    merge(&sandbox, &project, "release-0.0.1");
    git(&project, &["checkout", "-q", "master"]);
    let release = sandbox.coco(&["--release", "mypro"]);
    assert_eq!(release.status.code(), Some(0), "{}", stderr(&release));
    assert!(
        stdout(&release).contains("released mypro 0.0.1"),
        "{}",
        stdout(&release)
    );
    let head = git(&project, &["rev-parse", "HEAD"]).trim().to_owned();
    assert_eq!(git(&project, &["rev-parse", "0.0.1^{commit}"]).trim(), head);
    assert!(
        git(&project, &["branch", "--list", "release-*"])
            .trim()
            .is_empty()
    );
    assert!(
        git(&origin, &["tag", "--list"]).contains("0.0.1"),
        "tag pushed"
    );
    assert!(
        git(&origin, &["branch", "--list", "release-*"])
            .trim()
            .is_empty(),
        "deleted on origin"
    );
    assert_eq!(
        git(&origin, &["rev-parse", "master"]).trim(),
        head,
        "master pushed"
    );
    refused(&sandbox, &["release", "mypro"], "no release branch");

    // Recorded in the store.
    let releases = json(&sandbox, &["releases", "--json"]);
    assert_eq!(releases[0]["project"], "mypro", "{releases:#}");
    assert_eq!(releases[0]["version"], "0.0.1");
    assert_eq!(releases[0]["commit"], head.as_str());
    let text = stdout(&sandbox.coco(&["releases", "mypro"]));
    assert!(
        text.contains("0.0.1") && text.contains(&head[..12]),
        "{text}"
    );

    // coco projects: the new version, the tag, the manifest not yet applied, the venv.
    let projects = json(&sandbox, &["projects", "--json"]);
    let mine = &projects[0];
    assert_eq!(mine["name"], "mypro", "{projects:#}");
    assert_eq!(mine["version"], "0.0.1");
    assert_eq!(mine["git"], "master, tag 0.0.1");
    assert_eq!(mine["manifest"], "changed", "0.0.0 is applied");
    assert_eq!(mine["environment"], ".venv");
    sandbox.apply();
    assert_eq!(
        json(&sandbox, &["projects", "--json"])[0]["manifest"],
        "applied"
    );

    // Install the release elsewhere from its repository.
    let other = Sandbox::new();
    let source = format!("{}@0.0.1", origin.display());
    let install = other.coco(&["install", "mypro", &source]);
    assert_eq!(install.status.code(), Some(0), "{}", stderr(&install));
    assert!(stdout(&install).contains("cloned"), "{}", stdout(&install));
    assert!(
        stdout(&install).contains("project mypro"),
        "plan: {}",
        stdout(&install)
    );
    let installed = other.home().join("mypro");
    assert!(
        installed.join(".venv/bin/python").exists(),
        "environment created"
    );
    let projects = json(&other, &["projects", "--json"]);
    assert_eq!(projects[0]["git"], "tag 0.0.1", "{projects:#}");
    assert_eq!(projects[0]["manifest"], "not applied");
    // Installing again updates: a branch this time.
    let again = other.coco(&["install", "mypro", &format!("{}@develop", origin.display())]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stdout(&again).contains("updated"), "{}", stdout(&again));
    assert_eq!(
        json(&other, &["projects", "--json"])[0]["git"],
        "develop",
        "on develop now"
    );
}

#[test]
fn install_refuses_what_it_cannot_do() {
    let sandbox = Sandbox::new();
    sandbox.file("taken/notes.txt", "mine\n", false);
    refused(
        &sandbox,
        &["install", "taken", "/nowhere.git"],
        "not a git repository",
    );
    refused(
        &sandbox,
        &["install", "../up", "/nowhere.git"],
        "project name",
    );
    let output = sandbox.coco(&["install", "fresh", "/nowhere/at/all.git"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stderr(&output).contains("git clone"), "{}", stderr(&output));
    assert!(!sandbox.home().join("fresh").exists());
}

#[test]
fn build_outside_a_repository_or_a_project_is_refused() {
    let sandbox = Sandbox::new();
    let init = sandbox.coco(&["init", "plain", "-t", "shell", "--no-git"]);
    assert_eq!(init.status.code(), Some(0), "{}", stderr(&init));
    refused(
        &sandbox,
        &["build", "plain", "--patch"],
        "not a git repository",
    );
    refused(
        &sandbox,
        &["build", "nothere", "--patch"],
        "no project nothere",
    );
    refused(&sandbox, &["build", "--patch"], "not in a project");
    // Without a terminal and without a version, build says which flags to give.
    let git_init = sandbox.coco(&["init", "flowing", "-t", "shell"]);
    assert_eq!(git_init.status.code(), Some(0), "{}", stderr(&git_init));
    refused(&sandbox, &["build", "flowing"], "--major, --minor, --patch");
}

#[test]
fn build_and_release_refuse_each_unmet_precondition() {
    let sandbox = Sandbox::new();
    let git = |dir: &Path, args: &[&str]| sandbox.git(dir, args);
    let init = sandbox.coco(&["init", "flow", "-t", "shell", "--no-venv"]);
    assert_eq!(init.status.code(), Some(0), "{}", stderr(&init));
    let project = sandbox.home().join("flow");
    git(&project, &["commit", "-q", "--allow-empty", "-m", "work"]);

    git(&project, &["checkout", "-q", "master"]);
    refused(&sandbox, &["build", "flow", "--patch"], "runs on develop");
    git(&project, &["checkout", "-q", "develop"]);
    let build = sandbox.coco(&["build", "flow", "--minor"]);
    assert_eq!(build.status.code(), Some(0), "{}", stderr(&build));
    assert!(
        stdout(&build).contains("0.0.0 → 0.1.0"),
        "{}",
        stdout(&build)
    );
    git(&project, &["checkout", "-q", "develop"]);
    merge(&sandbox, &project, "release-0.1.0");
    git(&project, &["checkout", "-q", "master"]);
    merge(&sandbox, &project, "release-0.1.0");

    // Two release branches.
    git(&project, &["branch", "release-9.9.9"]);
    refused(&sandbox, &["release", "flow"], "several release branches");
    git(&project, &["branch", "-q", "-D", "release-9.9.9"]);
    // The tag exists already.
    git(&project, &["tag", "0.1.0"]);
    refused(&sandbox, &["release", "flow"], "tag 0.1.0 exists already");
    git(&project, &["tag", "-d", "0.1.0"]);
    // coco.yaml on master disagrees with the branch.
    let manifest = project.join("coco.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("version: 0.1.0", "version: 0.2.0")).unwrap();
    git(&project, &["commit", "-q", "-am", "wrong version"]);
    refused(
        &sandbox,
        &["release", "flow"],
        "coco.yaml on master says version 0.2.0",
    );
    git(&project, &["reset", "-q", "--hard", "HEAD~1"]);

    let release = sandbox.coco(&["release", "flow"]);
    assert_eq!(release.status.code(), Some(0), "{}", stderr(&release));
    let releases = json(&sandbox, &["releases", "flow", "--json"]);
    assert_eq!(releases.as_array().map(Vec::len), Some(1), "{releases:#}");
    assert_eq!(releases[0]["version"], "0.1.0");
}

/// `coco releases` says who released: the git identity that tagged the release (the
/// developer's `~/.gitconfig`), not the login and host coco runs as.
#[test]
fn releases_show_the_git_author_of_the_release() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.dir.path().join(".gitconfig"),
        "[user]\n\tname = Ada Lovelace\n\temail = ada@example.org\n",
    )
    .unwrap();
    let git = |dir: &Path, args: &[&str]| sandbox.git(dir, args);
    let init = sandbox.coco(&["init", "flow", "-t", "shell"]);
    assert_eq!(init.status.code(), Some(0), "{}", stderr(&init));
    assert!(!stderr(&init).contains("warning"), "{}", stderr(&init));
    let project = sandbox.home().join("flow");
    git(&project, &["commit", "-q", "--allow-empty", "-m", "work"]);
    let build = sandbox.coco(&["build", "flow", "--patch"]);
    assert_eq!(build.status.code(), Some(0), "{}", stderr(&build));
    git(&project, &["checkout", "-q", "develop"]);
    merge(&sandbox, &project, "release-0.0.1");
    git(&project, &["checkout", "-q", "master"]);
    merge(&sandbox, &project, "release-0.0.1");
    let release = sandbox.coco(&["release", "flow"]);
    assert_eq!(release.status.code(), Some(0), "{}", stderr(&release));

    let author = "Ada Lovelace <ada@example.org>";
    let releases = json(&sandbox, &["releases", "--json"]);
    assert_eq!(releases[0]["by"], author, "{releases:#}");
    let table = stdout(&sandbox.coco(&["releases"]));
    let row = table.lines().find(|l| l.starts_with("flow")).unwrap_or("");
    assert!(row.ends_with(author), "{table}");
    assert_eq!(
        git(
            &project,
            &[
                "tag",
                "-l",
                "--format=%(taggername) %(taggeremail)",
                "0.0.1"
            ]
        )
        .trim(),
        author,
        "git's own identity signed the tag"
    );
}

/// `ln -s ../elsewhere home/linked; coco install linked URL` where `elsewhere` is a git
/// repository: refused, and nothing is fetched or checked out outside the home.
#[test]
fn install_refuses_a_project_folder_that_is_a_symlink() {
    let sandbox = Sandbox::new();
    let init = sandbox.coco(&["init", "source", "-t", "shell"]);
    assert_eq!(init.status.code(), Some(0), "{}", stderr(&init));
    let origin = sandbox.home().join("source/.repos");
    let elsewhere = sandbox.dir.path().join("elsewhere");
    sandbox.git(
        sandbox.dir.path(),
        &[
            "clone",
            "-q",
            "-b",
            "develop",
            origin.to_str().unwrap(),
            "elsewhere",
        ],
    );
    let head = sandbox.git(&elsewhere, &["rev-parse", "HEAD"]);
    std::os::unix::fs::symlink("../elsewhere", sandbox.home().join("linked")).unwrap();
    refused(
        &sandbox,
        &["install", "linked", &format!("{}@master", origin.display())],
        "linked is a symbolic link to ../elsewhere",
    );
    assert_eq!(sandbox.git(&elsewhere, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        sandbox
            .git(&elsewhere, &["branch", "--show-current"])
            .trim(),
        "develop"
    );
}
