//! A project's environment as a process spec: the part every job run ([`crate::worker::env`])
//! and app process ([`crate::supervisor`]) of the project shares.

use std::path::{Path, PathBuf};

use crate::manifest::Project;
use crate::process::Spec;

/// `argv` in `project`'s environment: its working directory, PATH entries and variables (the
/// part every job run and app process of the project shares).
pub fn spec(project: &Project, argv: Vec<String>) -> Spec {
    let mut spec = Spec::new(argv, resolve(&project.dir, &project.environment.workdir));
    spec.path_prepend = project
        .environment
        .path
        .iter()
        .map(|entry| resolve(&project.dir, entry))
        .collect();
    spec.env.extend(project.environment.env.clone());
    spec
}

/// `entry` relative to `dir` (an absolute entry stays; an empty one is `dir`).
fn resolve(dir: &Path, entry: &str) -> PathBuf {
    if entry.is_empty() || entry == "." {
        dir.to_path_buf()
    } else {
        dir.join(entry)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::manifest::Environment;

    #[test]
    fn the_workdir_and_path_entries_are_resolved_against_the_project_folder() {
        let project = Project {
            name: "shop".into(),
            description: None,
            version: None,
            dir: PathBuf::from("/home/coco/shop"),
            environment: Environment {
                workdir: ".".into(),
                path: vec![".venv/bin".into(), "/opt/bin".into(), "".into()],
                env: BTreeMap::from([("MODE".into(), "prod".into())]),
            },
            jobs: BTreeMap::new(),
            apps: BTreeMap::new(),
        };
        let spec = spec(&project, vec!["serve".into()]);
        assert_eq!(spec.cwd, PathBuf::from("/home/coco/shop"));
        assert_eq!(
            spec.path_prepend,
            [
                PathBuf::from("/home/coco/shop/.venv/bin"),
                PathBuf::from("/opt/bin"),
                PathBuf::from("/home/coco/shop"),
            ]
        );
        assert_eq!(spec.env.get("MODE").map(String::as_str), Some("prod"));
    }
}
