//! `coco projects --json` and `GET /api/v1/projects`: the projects of a home with their
//! version, git branch or tag, manifest state (applied, changed, not applied, invalid) and
//! environment.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::git;
use crate::manifest::discover::Discovery;
use crate::reconcile::{Change, Plan};

/// One project of the home.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectLine {
    pub name: String,
    pub folder: PathBuf,
    pub version: Option<String>,
    /// `develop`, `tag 1.2.0`, `detached 1a2b3c4`, with ` *` when the tree has changes;
    /// `None` outside git.
    pub git: Option<String>,
    /// `applied`, `changed`, `not applied` or `invalid: FIRST PROBLEM`.
    pub manifest: String,
    /// `.venv`, `no .venv` (a requirements.txt but no environment) or `-`.
    pub environment: String,
}

/// The projects `discovery` found, valid and invalid, by name, with their state in `plan`.
pub async fn project_lines(discovery: &Discovery, plan: &Plan) -> Vec<ProjectLine> {
    let mut lines = Vec::new();
    for project in discovery.projects.values() {
        let state = plan
            .projects
            .iter()
            .find(|p| p.name == project.name)
            .map_or("applied", |p| match p.change {
                Change::Create => "not applied",
                _ if p.has_changes() => "changed",
                _ => "applied",
            });
        lines.push(ProjectLine {
            name: project.name.clone(),
            folder: project.dir.clone(),
            version: project.version.clone(),
            git: git_state(&project.dir).await,
            manifest: state.into(),
            environment: environment(&project.dir),
        });
    }
    for (dir, problems) in &discovery.invalid {
        lines.push(ProjectLine {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            folder: dir.clone(),
            version: None,
            git: git_state(dir).await,
            manifest: format!(
                "invalid: {}",
                problems
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            environment: environment(dir),
        });
    }
    lines.sort_by(|a, b| a.name.cmp(&b.name));
    lines
}

async fn git_state(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() || !git::is_repository(dir).await {
        return None;
    }
    let tag = git::run(dir, &["describe", "--tags", "--exact-match", "HEAD"])
        .await
        .ok()
        .filter(|out| out.success())
        .map(|out| out.stdout.trim().to_owned());
    let mut state = match (git::current_branch(dir).await.ok().flatten(), tag) {
        (Some(branch), Some(tag)) => format!("{branch}, tag {tag}"),
        (Some(branch), None) => branch,
        (None, Some(tag)) => format!("tag {tag}"),
        (None, None) => {
            let head = git::rev_parse(dir, "HEAD").await.unwrap_or_default();
            format!("detached {}", &head[..head.len().min(7)])
        }
    };
    if git::is_dirty(dir).await.unwrap_or(false) {
        state.push_str(" *");
    }
    Some(state)
}

fn environment(dir: &Path) -> String {
    if dir.join(".venv").is_dir() {
        ".venv".into()
    } else if dir.join("requirements.txt").is_file() {
        "no .venv".into()
    } else {
        "-".into()
    }
}
