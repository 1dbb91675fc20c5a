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

/// `ln -s ../elsewhere home/linked; coco init linked x`: the project folder is a symbolic
/// link out of the home, so init refuses before writing anything — with the configured home
/// and with a relative `--home`, with and without `--force`, the target folder empty or not.
#[test]
fn a_project_folder_that_is_a_symlink_out_of_the_home_is_refused() {
    let sandbox = Sandbox::new();
    let outside = sandbox.dir.path().join("elsewhere");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink("../elsewhere", sandbox.home().join("linked")).unwrap();
    let attempts: [&[&str]; 4] = [
        &["init", "linked", "x"],
        &["init", "linked", "x", "--force", "-t", "shell"],
        &["--home", "home", "init", "linked", "x"],
        &["--home", "home", "init", "linked", "x", "--force"],
    ];
    for (round, args) in attempts.iter().enumerate() {
        if round == 2 {
            // Something already in the folder the link leads to.
            std::fs::write(outside.join("mine.txt"), "keep").unwrap();
        }
        let before = tree(sandbox.dir.path());
        let output = sandbox.coco(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stdout(&output)
        );
        assert!(
            stderr(&output).contains("linked is a symbolic link to ../elsewhere")
                && stderr(&output).contains("nothing written"),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(
            tree(sandbox.dir.path()),
            before,
            "{args:?}: nothing written"
        );
    }
    assert_eq!(tree(&outside), vec!["mine.txt".to_owned()]);
    assert_eq!(
        std::fs::read_to_string(outside.join("mine.txt")).unwrap(),
        "keep"
    );
    let plan = sandbox.coco(&["plan"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "nothing applied: {}",
        stdout(&plan)
    );
}

/// One symbolic link in one user template (here two levels down) breaks only that template:
/// `--list` shows the others and names the broken one with the link's path, the other
/// templates (embedded and user) still work, and asking for the broken one says why.
#[test]
fn a_broken_user_template_is_reported_and_the_others_work() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.dir.path().join(".coco/local.yaml"),
        "logging:\n  stderr: WARNING\nfolder:\n  home: ~/home\n  state: ~/state\n  templates: ~/templates\n",
    )
    .unwrap();
    let templates = sandbox.dir.path().join("templates");
    for name in ["good", "bad"] {
        std::fs::create_dir_all(templates.join(name).join("lib/deep")).unwrap();
        std::fs::write(
            templates.join(name).join("coco.yaml"),
            "jobs:\n  hello:\n    command: [\"true\"]\n",
        )
        .unwrap();
    }
    std::fs::write(
        templates.join("good/lib/deep/{{name}}.txt"),
        "{{description}}",
    )
    .unwrap();
    let link = templates.join("bad/lib/deep/secrets");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();

    let list = sandbox.coco(&["init", "--list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let table = stdout(&list);
    let listed: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(listed, ["good", "python", "shell"], "{table}");
    let warning = format!(
        "template bad ({}) is broken and skipped: template file {} is not a regular file",
        templates.join("bad").display(),
        link.display()
    );
    assert!(stderr(&list).contains(&warning), "{}", stderr(&list));

    let shell = sandbox.coco(&["init", "tools", "-t", "shell", "--no-git"]);
    assert_eq!(shell.status.code(), Some(0), "{}", stderr(&shell));
    assert!(sandbox.home().join("tools/coco.yaml").is_file());
    assert!(stderr(&shell).contains(&warning), "{}", stderr(&shell));
    let good = sandbox.coco(&["init", "fine", "Fine", "-t", "good", "--no-git"]);
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));
    let deep = sandbox.home().join("fine/lib/deep/fine.txt");
    assert_eq!(std::fs::read_to_string(deep).unwrap(), "Fine");

    let bad = sandbox.coco(&["init", "worse", "-t", "bad", "--no-git"]);
    assert_eq!(bad.status.code(), Some(1), "{}", stdout(&bad));
    let refusal = format!(
        "coco: error: template bad ({}) cannot be used: template file {} is not a regular file",
        templates.join("bad").display(),
        link.display()
    );
    assert!(stderr(&bad).contains(&refusal), "{}", stderr(&bad));
    assert!(!sandbox.home().join("worse").exists());
}

/// With a fresh HOME git has no identity: init still makes its first commit (signed by a
/// stand-in) and warns, with the two `git config` commands that make the user's own commits
/// work. With an identity, the commit is the user's and nothing is said.
#[test]
fn init_without_a_git_identity_warns_with_the_commands_to_set_one() {
    let sandbox = Sandbox::new();
    let output = sandbox.coco(&["init", "first", "-t", "shell"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let warning = stderr(&output);
    for expected in [
        "coco: warning: git has no identity (user.name, user.email): the first commit was signed as",
        "<coco@localhost>",
        "\n  git config --global user.name \"Your Name\"\n",
        "\n  git config --global user.email you@example.com",
    ] {
        assert!(warning.contains(expected), "{expected:?} in {warning}");
    }
    let project = sandbox.home().join("first");
    assert!(
        sandbox
            .git(&project, &["log", "-1", "--format=%ae", "master"])
            .contains("coco@localhost"),
        "the commit is made"
    );

    std::fs::write(
        sandbox.dir.path().join(".gitconfig"),
        "[user]\n\tname = Ada Lovelace\n\temail = ada@example.org\n",
    )
    .unwrap();
    let output = sandbox.coco(&["init", "second", "-t", "shell"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    let project = sandbox.home().join("second");
    assert_eq!(
        sandbox
            .git(&project, &["log", "-1", "--format=%an <%ae>", "master"])
            .trim(),
        "Ada Lovelace <ada@example.org>"
    );
}

/// `coco ARGS` on a terminal (a pseudo-terminal from util-linux `script`), as the sandbox's
/// user; everything the terminal showed.
fn on_terminal(sandbox: &Sandbox, args: &[&str]) -> String {
    let mut line = vec![env!("CARGO_BIN_EXE_coco")];
    line.extend_from_slice(args);
    #[allow(clippy::disallowed_methods)] // runs the coco binary under test on a terminal
    let mut command = std::process::Command::new("script");
    command
        .args(["-qec", &shell_words::join(line), "/dev/null"])
        .env("HOME", sandbox.dir.path())
        .current_dir(sandbox.dir.path())
        .stdin(std::process::Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("COCO_") {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("util-linux `script` runs");
    assert!(
        output.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Creating `.venv` takes seconds: on a terminal `coco init` and `coco install` show a
/// spinner naming the step; piped, they print nothing of it.
#[test]
fn creating_the_venv_shows_a_spinner_on_a_terminal_only() {
    let sandbox = Sandbox::new();
    let spinning = "creating the virtual environment .venv (python3 -m venv) …";
    let shown = on_terminal(&sandbox, &["init", "shown", "--no-git"]);
    assert!(shown.contains(spinning), "{shown}");
    assert!(shown.contains("\u{1b}[2K"), "redrawn in place: {shown:?}");
    assert!(sandbox.home().join("shown/.venv/bin/python3").exists());

    let piped = sandbox.coco(&["init", "piped"]);
    assert_eq!(piped.status.code(), Some(0), "{}", stderr(&piped));
    assert!(sandbox.home().join("piped/.venv/bin/python3").exists());
    for text in [stdout(&piped), stderr(&piped)] {
        assert!(!text.contains("creating the virtual environment"), "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    }

    // A clone has no .venv (it is not committed): install creates one, spinning.
    let origin = sandbox.home().join("piped/.repos");
    let installed = on_terminal(
        &sandbox,
        &["install", "copy", &format!("{}@master", origin.display())],
    );
    assert!(installed.contains(spinning), "{installed}");
    assert!(sandbox.home().join("copy/.venv/bin/python3").exists());
}

/// What the README says init writes, and nothing else: with a fresh HOME and a relative
/// `--home`, the project folder (with its git repository), `~/.coco/local.yaml` naming the
/// home by its absolute path, and the embedded store `~/.coco/coco.db`. `coco install` takes
/// a relative `--home` as well.
#[test]
fn init_writes_the_project_local_yaml_and_the_store_only() {
    let sandbox = Sandbox::new();
    std::fs::remove_dir_all(sandbox.dir.path().join(".coco")).unwrap();
    std::fs::remove_dir_all(sandbox.home()).unwrap();
    let output = sandbox.coco(&["--home", "projects", "init", "mypro", "x", "-t", "shell"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let outside: Vec<String> = tree(sandbox.dir.path())
        .into_iter()
        .filter(|path| !path.starts_with("projects/mypro/"))
        .map(|path| match path.strip_prefix(".coco/coco.db") {
            Some(_) => ".coco/coco.db".to_owned(), // with -wal/-shm while open
            None => path,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        outside,
        [
            ".coco",
            ".coco/coco.db",
            ".coco/local.yaml",
            "projects",
            "projects/mypro"
        ],
        "{}",
        stdout(&output)
    );
    let project = sandbox.dir.path().join("projects/mypro");
    assert!(project.join(".git").is_dir() && project.join(".repos").is_dir());
    let local = std::fs::read_to_string(sandbox.dir.path().join(".coco/local.yaml")).unwrap();
    let home = sandbox.dir.path().join("projects");
    assert!(
        local.contains(&format!("home: \"{}\"", home.display())),
        "{local}"
    );
    // The written local.yaml is read: the project is in the home and applied.
    let plan = sandbox.coco(&["plan"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}{}",
        stdout(&plan),
        stderr(&plan)
    );

    let origin = project.join(".repos");
    let install = sandbox.coco(&[
        "--home",
        "projects",
        "install",
        "copy",
        &format!("{}@master", origin.display()),
    ]);
    assert_eq!(install.status.code(), Some(0), "{}", stderr(&install));
    assert!(home.join("copy/coco.yaml").is_file());
}
