//! `coco init` end to end on temporary homes: the python template with its `.venv`, git-flow
//! repository and immediate apply; the shell template; every refusal (names that are paths,
//! a non-empty folder, hostile template file names); `--force` never overwriting; local.yaml
//! created only when missing; other projects left as they are.

use std::path::Path;

use crate::support::{Sandbox, stderr, stdout};

/// Every path under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn python_project_is_created_applied_and_runs() {
    let sandbox = Sandbox::new();
    let local_before =
        std::fs::read_to_string(sandbox.dir.path().join(".coco/local.yaml")).unwrap();
    let output = sandbox.coco(&["--init", "mypro", "My first core4 project"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let project = sandbox.home().join("mypro");
    for file in [
        "README.md",
        "enter_env",
        "requirements.txt",
        "mypro/__init__.py",
        "mypro/hello.py",
        "tests/test_hello.py",
        ".gitignore",
        "coco.yaml",
        ".venv/bin/python3",
    ] {
        assert!(
            project.join(file).exists(),
            "{file} in {:?}",
            tree(&project)
        );
    }
    let manifest = std::fs::read_to_string(project.join("coco.yaml")).unwrap();
    assert!(manifest.contains("project: mypro"), "{manifest}");
    assert!(
        manifest.contains("\"My first core4 project\""),
        "{manifest}"
    );
    assert!(
        manifest.contains("\"{{args.times}}\""),
        "job templates kept: {manifest}"
    );
    assert!(manifest.contains(".venv/bin"), "{manifest}");
    assert_eq!(
        std::fs::read_to_string(sandbox.dir.path().join(".coco/local.yaml")).unwrap(),
        local_before,
        "an existing local.yaml is never modified"
    );

    // git-flow: master with the first commit, develop checked out, both on origin (.repos).
    assert_eq!(
        sandbox.git(&project, &["branch", "--show-current"]).trim(),
        "develop"
    );
    let branches = sandbox.git(&project, &["branch", "-a", "--format=%(refname:short)"]);
    for branch in ["master", "develop", "origin/master", "origin/develop"] {
        assert!(
            branches.lines().any(|b| b == branch),
            "{branch} in {branches}"
        );
    }
    let origin = sandbox.git(&project, &["remote", "get-url", "origin"]);
    assert!(origin.trim().ends_with("mypro/.repos"), "{origin}");
    assert!(
        sandbox.git(&project, &["status", "--porcelain"]).is_empty(),
        "all committed"
    );

    // Valid, applied at once, and its sample job runs.
    let validate = sandbox.coco(&["validate"]);
    assert_eq!(validate.status.code(), Some(0), "{}", stderr(&validate));
    let plan = sandbox.coco(&["plan"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "nothing left to apply: {}",
        stdout(&plan)
    );
    let id = sandbox.enqueue(&["mypro.hello"]);
    assert_eq!(id.len(), 26);
    let run = sandbox.coco(&["run", "mypro.hello"]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    assert!(
        stdout(&run).contains("hello from mypro (3/3)"),
        "{}",
        stdout(&run)
    );
    // The template's own tests pass in its environment.
    #[allow(clippy::disallowed_methods)]
    let tests = std::process::Command::new(project.join(".venv/bin/python"))
        .args(["-m", "unittest", "-q"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(
        tests.status.success(),
        "{}",
        String::from_utf8_lossy(&tests.stderr)
    );
}

#[test]
fn names_that_are_paths_or_invalid_are_refused() {
    let sandbox = Sandbox::new();
    for name in ["../x", "/tmp/x", "a/b", "MyPro", "2x", "my pro"] {
        let output = sandbox.coco(&["init", name, "--no-git", "--no-venv"]);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("project name"),
            "{name}: {}",
            stderr(&output)
        );
    }
    assert!(
        tree(&sandbox.home()).is_empty(),
        "{:?}",
        tree(&sandbox.home())
    );
    assert!(!sandbox.dir.path().join("x").exists());
    assert!(!Path::new("/tmp/x/coco.yaml").exists());
}

#[test]
fn a_non_empty_folder_needs_force_and_keeps_its_files() {
    let sandbox = Sandbox::new();
    sandbox.file("mine/README.md", "my own readme\n", false);
    let refused = sandbox.coco(&["init", "mine", "--template", "shell", "--no-git"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("not empty") && stderr(&refused).contains("--force"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(tree(&sandbox.home().join("mine")), ["README.md"]);

    let forced = sandbox.coco(&["init", "mine", "--template", "shell", "--no-git", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert!(stdout(&forced).contains("coco.yaml"), "{}", stdout(&forced));
    assert_eq!(
        std::fs::read_to_string(sandbox.home().join("mine/README.md")).unwrap(),
        "my own readme\n"
    );
    assert!(sandbox.home().join("mine/hello.sh").exists());
    // Again: every file exists now, each reported as kept.
    let again = sandbox.coco(&["init", "mine", "--template", "shell", "--no-git", "--force"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("(exists: kept)"),
        "{}",
        stdout(&again)
    );
    assert!(!stdout(&again).contains("  + "), "{}", stdout(&again));
}

#[test]
fn shell_template_without_git_runs() {
    let sandbox = Sandbox::new();
    let output = sandbox.coco(&["init", "tools", "Little tools", "-t", "shell", "--no-git"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let project = sandbox.home().join("tools");
    assert!(!project.join(".git").exists());
    assert!(!project.join(".venv").exists());
    let run = sandbox.coco(&["run", "tools.hello"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        stdout(&run).contains("hello from tools"),
        "{}",
        stdout(&run)
    );
}

/// A template file's name is a template: one whose rendered name climbs out of the project
/// (`{{description}}` with a description `../../escape`, the same as a file named
/// `{{name}}/../../escape`) or is absolute (`{{home}}`) is refused before anything is written.
#[test]
fn hostile_user_templates_write_nothing_outside() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.dir.path().join(".coco/local.yaml"),
        "logging:\n  stderr: WARNING\nfolder:\n  home: ~/home\n  state: ~/state\n  templates: ~/templates\n",
    )
    .unwrap();
    let templates = sandbox.dir.path().join("templates");
    for (template, file) in [("climb", "{{description}}"), ("absolute", "{{home}}")] {
        let dir = templates.join(template);
        std::fs::create_dir_all(dir.join("{{name}}")).unwrap();
        std::fs::write(dir.join("coco.yaml"), "jobs: {}\n").unwrap();
        std::fs::write(dir.join("{{name}}").join(file), "x").unwrap();
    }

    let list = sandbox.coco(&["init", "--list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    for name in ["python", "shell", "climb", "absolute"] {
        assert!(stdout(&list).contains(name), "{}", stdout(&list));
    }

    let before = tree(sandbox.dir.path());
    for (template, description) in [("climb", "../../../escape"), ("absolute", "x")] {
        let output = sandbox.coco(&[
            "init",
            "victim",
            description,
            "-t",
            template,
            "--no-git",
            "--no-venv",
        ]);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        assert!(
            stderr(&output).contains("not a path inside the project"),
            "{}",
            stderr(&output)
        );
        assert_eq!(tree(sandbox.dir.path()), before, "nothing written anywhere");
    }
    assert!(!sandbox.dir.path().join("escape").exists());
}

#[test]
fn local_yaml_is_created_when_missing() {
    let sandbox = Sandbox::new();
    std::fs::remove_file(sandbox.dir.path().join(".coco/local.yaml")).unwrap();
    let output = sandbox.coco(&["init", "first", "--no-git", "--no-venv", "-t", "shell"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let local = std::fs::read_to_string(sandbox.dir.path().join(".coco/local.yaml")).unwrap();
    assert!(local.contains("# DEFAULT:\n#   mongo_url:"), "{local}");
    assert!(local.contains("mongodb: INFO"), "{local}");
    // No folder.home anywhere: the default home of every verb, `~/coco.home`, and
    // local.yaml says so; nothing is created in the current directory.
    let home = sandbox.dir.path().join("coco.home");
    assert!(
        local.contains(&format!("home: \"{}\"", home.display())),
        "{local}"
    );
    assert!(home.join("first/coco.yaml").exists());
    assert!(!sandbox.dir.path().join("first").exists());
    let plan = sandbox.coco(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "applied: {}", stdout(&plan));
    let config = sandbox.coco(&["config"]);
    assert_eq!(config.status.code(), Some(0), "{}", stderr(&config));
    assert!(
        stdout(&config).contains(".coco/local.yaml"),
        "the written file is read: {}",
        stdout(&config)
    );
}

/// With no configuration at all, `coco init` creates the project in the home `coco config`
/// reports and the other verbs use: `~/coco.home`.
#[test]
fn init_uses_the_home_every_verb_uses() {
    let sandbox = Sandbox::new();
    std::fs::remove_file(sandbox.dir.path().join(".coco/local.yaml")).unwrap();
    let config = sandbox.coco(&["config", "--json"]);
    assert_eq!(config.status.code(), Some(0), "{}", stderr(&config));
    let default_home = sandbox.dir.path().join("coco.home");
    assert!(
        stdout(&config).contains(&format!("{}", default_home.display())),
        "coco config reports the default home: {}",
        stdout(&config)
    );
    let output = sandbox.coco(&["init", "first", "--no-git", "--no-venv", "-t", "shell"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(default_home.join("first/coco.yaml").exists());
    let validate = sandbox.coco(&["validate"]);
    assert_eq!(validate.status.code(), Some(0), "{}", stderr(&validate));
    assert!(stdout(&validate).contains("first"), "{}", stdout(&validate));
}

#[test]
fn other_projects_are_left_as_they_are() {
    let sandbox = Sandbox::new();
    sandbox.project("other", "jobs:\n  a:\n    command: [\"true\"]\n");
    sandbox.apply();
    // An unapplied edit of another project ...
    sandbox.project(
        "other",
        "jobs:\n  a:\n    command: [\"true\"]\n  b:\n    command: [\"true\"]\n",
    );
    let output = sandbox.coco(&["init", "fresh", "--no-git", "--no-venv", "-t", "shell"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // ... is still unapplied, while the new project is.
    let plan = sandbox.coco(&["plan"]);
    assert_eq!(plan.status.code(), Some(2), "{}", stdout(&plan));
    assert!(
        stdout(&plan).contains("project other") && stdout(&plan).contains("+ job b"),
        "{}",
        stdout(&plan)
    );
    assert!(!stdout(&plan).contains("fresh"), "{}", stdout(&plan));
}
