//! Layers import one way only (docs/ARCHITECTURE.md, "Layers"): a module of `src/` may name
//! only modules of lower layers. The source is read as text: a `crate::X` path in code
//! (comments left out) is a use of module `X`, whether in a `use` line or inline.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// From the bottom up. A module may use modules of the layers below its own, never its own
/// layer's others nor any above.
const LAYERS: &[&[&str]] = &[
    &[
        "yaml", "redact", "host", "wake", "fields", "access", "metrics",
    ],
    &["process", "schedule"],
    &["git", "tail", "manifest"],
    &["queue", "project_env", "scaffold"],
    &["store", "lifecycle"],
    &["config", "reconcile"],
    &["views", "actions"],
    &["logging"],
    &["scheduler", "worker", "supervisor", "api"],
    &["daemon"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The modules `code` names as `crate::X`, comments left out (pure).
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for (at, _) in line.match_indices("crate::") {
            if line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue; // `coco_crate::`, not ours
            }
            let name: String = line[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

#[test]
fn the_scanner_sees_use_lines_and_inline_paths_but_not_comments() {
    let code = "use crate::store::Queue;\nlet x = crate::wake::dir(); // crate::cli\n/// [`crate::daemon`]\n";
    let found: Vec<String> = used_modules(code).into_iter().collect();
    assert_eq!(found, ["store", "wake"]);
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a name")
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            problems.push(format!(
                "{}: module `{top}` is in no layer",
                relative.display()
            ));
            continue;
        };
        let code = std::fs::read_to_string(&file).expect("read");
        for used in used_modules(&code) {
            if used == top {
                continue;
            }
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                Some(_) => problems.push(format!(
                    "{}: `{top}` uses `{used}`, which is not in a layer below it",
                    relative.display()
                )),
                None => problems.push(format!(
                    "{}: `{top}` uses `{used}`, which is in no layer",
                    relative.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
