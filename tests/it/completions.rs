//! `coco completions SHELL` and `coco man` through the binary: a bash script bash accepts,
//! zsh and fish scripts, a roff manual page (or one per verb with --dir) — each naming the
//! verbs, none the hidden ones.

use crate::support::{Sandbox, stderr, stdout};

/// `coco ARGS` must succeed; its stdout.
fn generated(sandbox: &Sandbox, args: &[&str]) -> String {
    let output = sandbox.coco(args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        stderr(&output)
    );
    stdout(&output)
}

#[test]
fn bash_completions_are_a_script_bash_accepts() {
    let sandbox = Sandbox::new();
    let script = generated(&sandbox, &["completions", "bash"]);
    let file = sandbox.dir.path().join("coco.bash");
    std::fs::write(&file, &script).unwrap();
    #[allow(clippy::disallowed_methods)] // bash checks the script the way a shell loads it
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(script.contains("complete -F _coco"), "{script}");
    for verb in ["init", "enqueue", "daemon", "completions", "man"] {
        assert!(
            script.contains(&format!(" {verb} ")),
            "{verb} offered: {script}"
        );
    }
    assert!(!script.contains("__guard"), "no hidden verb: {script}");
    // The script loads and completes a verb.
    #[allow(clippy::disallowed_methods)]
    let completed = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(coco ini); COMP_CWORD=1; _coco coco ini coco; echo \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout).trim(),
        "init",
        "{}",
        String::from_utf8_lossy(&completed.stderr)
    );
}

#[test]
fn zsh_and_fish_completions_name_the_verbs() {
    let sandbox = Sandbox::new();
    let zsh = generated(&sandbox, &["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef coco"), "{zsh}");
    let fish = generated(&sandbox, &["completions", "fish"]);
    assert!(fish.contains("complete -c coco"), "{fish}");
    for script in [&zsh, &fish] {
        assert!(
            script.contains("init") && script.contains("releases"),
            "{script}"
        );
        assert!(!script.contains("__guard"), "no hidden verb: {script}");
    }
    let unknown = sandbox.coco(&["completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stdout(&unknown));
    assert!(stderr(&unknown).contains("bash"), "{}", stderr(&unknown));
}

#[test]
fn man_prints_a_roff_page() {
    let sandbox = Sandbox::new();
    let page = generated(&sandbox, &["man"]);
    assert!(page.contains("\n.TH coco 1 "), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "{section} in {page}");
    }
    assert!(page.contains("coco\\-init"), "the verbs are listed: {page}");
    assert!(!page.contains("guard"), "no hidden verb: {page}");
}

/// `coco man --dir DIR` (relative, as a user types it) writes coco.1 and a page per verb,
/// so the SEE ALSO-like list of coco-VERB(1) in coco.1 leads somewhere.
#[test]
fn man_dir_writes_a_page_per_verb() {
    let sandbox = Sandbox::new();
    let output = sandbox.coco(&["man", "--dir", "share/man/man1"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let dir = sandbox.dir.path().join("share/man/man1");
    for page in ["coco.1", "coco-init.1", "coco-completions.1", "coco-man.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(text.contains(".TH "), "{page}: {text}");
    }
    assert!(!dir.join("coco-__guard.1").exists());
}
