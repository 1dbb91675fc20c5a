//! Read one project's `coco.yaml` into a validated [`Project`], or every located problem.
//!
//! The outline is read first with raw values for jobs, apps and the environment, then each
//! entry on its own, so a typo in one job does not hide an error in another. A file over
//! [`limits::MAX_MANIFEST_BYTES`] is refused unread, and a project over [`limits::MAX_JOBS`]
//! jobs or [`limits::MAX_APPS`] apps before its entries are read.
//!
//! A manifest that cannot be read (a folder, a symbolic link in a loop, no permission) and an
//! empty one (nothing but white space: a file caught while an editor truncates and rewrites
//! it) are located problems, never a project with nothing in it: its project keeps its last
//! applied state. To remove a project, delete its `coco.yaml`.

use std::path::Path;

use super::raw::{RawApp, RawEnvironment, RawJob, RawManifest};
use super::{MANIFEST_FILE, Project, limits, validate};
use crate::yaml::{Diagnostic, Document, Value, text};

/// Read and validate `<dir>/coco.yaml`.
pub fn load_project(dir: &Path) -> Result<Project, Vec<Diagnostic>> {
    // Absolute, so that the stored project folder does not depend on where coco ran.
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = dir.as_path();
    let file = dir.join(MANIFEST_FILE);
    match text::read_at_most(&file, limits::MAX_MANIFEST_BYTES) {
        Ok(bytes) => {
            if let Some(problem) =
                text::too_large(&file, bytes.len(), limits::MAX_MANIFEST_BYTES, "a manifest")
            {
                return Err(vec![problem]);
            }
            let text = text::decode(&file, bytes).map_err(|d| vec![d])?;
            parse_project(dir, &file, &text)
        }
        Err(error) => Err(vec![problem_at_start(&file, unreadable(&file, &error))]),
    }
}

/// Why `file` could not be read, in words.
fn unreadable(file: &Path, error: &std::io::Error) -> String {
    if file.is_dir() {
        "cannot read: it is a folder, not a file".to_owned()
    } else {
        format!("cannot read: {error}")
    }
}

fn problem_at_start(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        position: crate::yaml::Position { line: 1, column: 1 },
        message,
        suggestion: None,
        source_line: None,
    }
}

/// Validate the manifest `text` of the project in `dir` (read from `file`).
pub fn parse_project(dir: &Path, file: &Path, text: &str) -> Result<Project, Vec<Diagnostic>> {
    if text.trim().is_empty() {
        return Err(vec![problem_at_start(
            file,
            "the manifest is empty (a file still being written?): write at least `project: NAME`; \
             to remove a project, delete its coco.yaml"
                .to_owned(),
        )]);
    }
    let doc = Document::parse(file, text).map_err(|d| vec![d])?;
    // Bounded before any entry is read: a million jobs would take minutes and gigabytes.
    let too_many = |key: &str, max: usize| {
        let count = doc
            .get(&[key.to_owned()])
            .and_then(Value::as_mapping)
            .map_or(0, |entries| entries.len());
        (count > max).then(|| {
            doc.at_key(
                &[key.to_owned()],
                format!("a project may have at most {max} {key}; this one has {count} (split it into several projects)"),
            )
        })
    };
    let over: Vec<Diagnostic> = [
        too_many("jobs", limits::MAX_JOBS),
        too_many("apps", limits::MAX_APPS),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !over.is_empty() {
        return Err(over);
    }
    let mut problems = Vec::new();
    let top = match &doc.value {
        Value::Null => Value::Mapping(Default::default()),
        other => other.clone(),
    };
    let (outline, found) = doc.deserialize_all::<RawManifest<Value, Value, Value>>(&[], &top);
    problems.extend(found);
    // Go on with what can be read, to report the jobs' and apps' errors too.
    let outline = outline.unwrap_or_else(|| lenient_outline(&top));

    let folder_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match &outline.project {
        Some(name) => {
            if !super::is_valid_name(name) {
                problems.push(doc.at(
                    &["project".to_owned()],
                    format!("project name `{name}` is not valid: use lower-case letters, digits, `_` and `-`, starting with a letter"),
                ));
            }
            name.clone()
        }
        None => {
            if !super::is_valid_name(&folder_name) {
                problems.push(doc.at(
                    &[],
                    format!("folder name `{folder_name}` is not a valid project name: set `project:` to one ([a-z][a-z0-9_-]*)"),
                ));
            }
            folder_name
        }
    };

    let environment = outline.environment.as_ref().and_then(|raw| {
        let (environment, found) =
            doc.deserialize_all::<RawEnvironment>(&["environment".to_owned()], raw);
        problems.extend(found);
        environment
    });
    let environment = validate::environment(&doc, environment, &mut problems);

    let mut jobs = std::collections::BTreeMap::new();
    for (job_name, raw) in &outline.jobs {
        let path = vec!["jobs".to_owned(), job_name.clone()];
        validate::check_name(&doc, &path, "job", job_name, &mut problems);
        let (raw, found) = doc.deserialize_all::<RawJob>(&path, raw);
        problems.extend(found);
        if let Some(raw) = raw {
            jobs.insert(
                job_name.clone(),
                validate::job(&doc, job_name, raw, &mut problems),
            );
        }
    }
    validate::chains(&doc, &jobs, &mut problems);
    let mut apps = std::collections::BTreeMap::new();
    for (app_name, raw) in &outline.apps {
        let path = vec!["apps".to_owned(), app_name.clone()];
        validate::check_name(&doc, &path, "app", app_name, &mut problems);
        let (raw, found) = doc.deserialize_all::<RawApp>(&path, raw);
        problems.extend(found);
        if let Some(raw) = raw {
            apps.insert(
                app_name.clone(),
                validate::app(&doc, app_name, raw, &mut problems),
            );
        }
    }

    if !problems.is_empty() {
        problems.sort_by_key(|d| d.position);
        problems.dedup();
        return Err(problems);
    }
    Ok(Project {
        name,
        description: outline.description,
        version: outline.version.map(|v| v.0),
        dir: dir.to_path_buf(),
        environment,
        jobs,
        apps,
    })
}

/// The parts of a top-level mapping that have the expected shape, ignoring the rest.
fn lenient_outline(top: &Value) -> RawManifest<Value, Value, Value> {
    let get = |key: &str| top.as_mapping().and_then(|m| m.get(key));
    let entries = |key: &str| {
        get(key)
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    RawManifest {
        project: get("project").and_then(Value::as_str).map(str::to_owned),
        description: None,
        version: None,
        environment: get("environment").cloned(),
        jobs: entries("jobs"),
        apps: entries("apps"),
    }
}
