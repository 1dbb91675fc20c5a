//! `coco validate [PATH…]`: check manifests, report every problem as file:line:column.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{GlobalArgs, context, output};
use crate::manifest::MANIFEST_FILE;
use crate::manifest::discover::{Discovery, has_manifest, load_projects, project_dirs};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A coco.yaml, a project folder or a home folder; default: the configured home.
    pub paths: Vec<PathBuf>,
    /// Print the result as JSON: valid projects and every problem with file, line, column.
    #[arg(long)]
    pub json: bool,
}

/// The project folders a PATH argument names.
fn project_dirs_of(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok(vec![dir.to_path_buf()])
    } else if has_manifest(path) {
        Ok(vec![path.to_path_buf()])
    } else if path.is_dir() {
        Ok(project_dirs(path)?)
    } else {
        anyhow::bail!("{}: no such file or folder", path.display())
    }
}

pub fn run(global: &GlobalArgs, args: &ValidateArgs) -> anyhow::Result<i32> {
    let dirs = if args.paths.is_empty() {
        let (config, _) = context::load_config(global)?;
        project_dirs(&config.home)?
    } else {
        let mut dirs = Vec::new();
        for path in &args.paths {
            dirs.extend(project_dirs_of(path)?);
        }
        dirs
    };
    let discovery = load_projects(&dirs);
    if args.json {
        output::json(&json(&discovery));
        return Ok(if discovery.is_valid() { 0 } else { 1 });
    }
    if !discovery.is_valid() {
        output::diagnostics(discovery.problems());
        return Ok(1);
    }
    if discovery.projects.is_empty() {
        output::text("ok: no projects found");
    }
    for project in discovery.projects.values() {
        output::text(&format!(
            "ok {} ({}: {} job{}, {} app{})",
            project.dir.join(MANIFEST_FILE).display(),
            project.name,
            project.jobs.len(),
            if project.jobs.len() == 1 { "" } else { "s" },
            project.apps.len(),
            if project.apps.len() == 1 { "" } else { "s" },
        ));
    }
    Ok(0)
}

/// The `--json` form of a validation.
fn json(discovery: &Discovery) -> serde_json::Value {
    let projects: Vec<serde_json::Value> = discovery
        .projects
        .values()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "file": p.dir.join(MANIFEST_FILE),
                "jobs": p.jobs.keys().collect::<Vec<_>>(),
                "apps": p.apps.keys().collect::<Vec<_>>(),
            })
        })
        .collect();
    let problems: Vec<serde_json::Value> = discovery
        .problems()
        .map(|d| {
            serde_json::json!({
                "file": d.file,
                "line": d.position.line,
                "column": d.position.column,
                "message": d.message,
                "suggestion": d.suggestion,
            })
        })
        .collect();
    serde_json::json!({"ok": discovery.is_valid(), "projects": projects, "problems": problems})
}
