//! What a run executes, worked out without I/O: the applied project and job definition plus
//! the run record become a [`process::Spec`].
//!
//! - cwd: the project folder joined with `environment.workdir` (an absolute workdir stays);
//! - `PATH` prepend: each `environment.path` entry resolved against the project folder;
//! - environment: the base set of the worker's own ([`crate::process::BASE_ENV`]: `PATH`,
//!   `HOME`, `USER`, `LANG`, `LC_*`, `TZ`, …, applied by the process builder; nothing else the
//!   worker was started with, its `COCO_…` configuration least of all), the project's `env`,
//!   then the job's `env`, then coco's own variables
//!   (`COCO_RUN_ID`, `COCO_JOB`, `COCO_PROJECT`, `COCO_ARGS`, `COCO_ATTEMPT`, and
//!   `COCO_PARENT_RUN` when the run was enqueued by another run);
//! - argv: every command element rendered on its own as a Handlebars template by
//!   [`super::argv`] (strict: an unknown `{{args.x}}` is an error, never an empty string;
//!   values exactly as given), with the context `{args, run_id, job, project, attempt}`.
//!   Nothing is HTML-escaped and nothing is ever joined into a shell string.
//!
//! Arguments are the job's default `args` overlaid with the run's arguments.

use serde::Deserialize as _;
use serde_json::{Map, Value, json};

use super::argv::Renderer;
use crate::manifest::{Job, Project};
use crate::process::Spec;
use crate::queue::run::RunRecord;
use crate::store::{JobRecord, ProjectRecord};

/// Why a run's command could not be worked out; the message becomes the run's note.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("run {run}: project {project} is not in the store (apply it first)")]
    ProjectMissing { run: String, project: String },
    #[error("run {run}: job {job} is not in the store (apply it first)")]
    JobMissing { run: String, job: String },
    #[error("run {run}: stored {what} cannot be read: {message}")]
    Corrupt {
        run: String,
        what: String,
        message: String,
    },
    #[error("run {run}: command element {index} `{element}`: {message}")]
    Template {
        run: String,
        index: usize,
        element: String,
        message: String,
    },
    #[error("run {run}: the job's command is empty")]
    EmptyCommand { run: String },
}

/// Decode the stored project manifest and job definition of `run`.
pub fn decode(
    run: &RunRecord,
    project: Option<&ProjectRecord>,
    job: Option<&JobRecord>,
) -> Result<(Project, Job), EnvError> {
    let project = project.ok_or_else(|| EnvError::ProjectMissing {
        run: run.id.clone(),
        project: run.project.clone(),
    })?;
    let job = job.ok_or_else(|| EnvError::JobMissing {
        run: run.id.clone(),
        job: run.job.clone(),
    })?;
    let corrupt = |what: &str| {
        let (run, what) = (run.id.clone(), what.to_string());
        move |e: serde_json::Error| EnvError::Corrupt {
            run,
            what,
            message: e.to_string(),
        }
    };
    // From the stored value itself, not a copy of it (a claim reads it once per run).
    let project = Project::deserialize(&project.manifest)
        .map_err(corrupt(&format!("manifest of project {}", project.name)))?;
    let job: Job = job
        .job()
        .map_err(corrupt(&format!("definition of job {}", job.id)))?;
    Ok((project, job))
}

/// The job's default arguments overlaid with the run's (a run's non-object args are kept as
/// they are).
pub fn effective_args(job: &Job, run: &RunRecord) -> Value {
    match &run.args {
        Value::Object(given) => {
            let mut args: Map<String, Value> = job
                .args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            args.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
            Value::Object(args)
        }
        Value::Null => Value::Object(
            job.args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Build the process spec of `run` (see the module documentation).
pub fn build_spec(project: &Project, job: &Job, run: &RunRecord) -> Result<Spec, EnvError> {
    let args = effective_args(job, run);
    let context = json!({
        "args": args,
        "run_id": run.id,
        "job": run.job,
        "project": run.project,
        "attempt": run.attempt,
    });
    // Made only for a command with a template in it: most have none.
    let mut renderer: Option<Renderer> = None;
    let mut argv = Vec::with_capacity(job.command.len());
    for (index, element) in job.command.iter().enumerate() {
        if !element.contains("{{") {
            argv.push(element.clone());
            continue;
        }
        let rendered = renderer
            .get_or_insert_with(Renderer::new)
            .render(element, &context)
            .map_err(|message| EnvError::Template {
                run: run.id.clone(),
                index,
                element: element.clone(),
                message,
            })?;
        argv.push(rendered);
    }
    if argv.is_empty() {
        return Err(EnvError::EmptyCommand {
            run: run.id.clone(),
        });
    }

    let mut spec = crate::project_env::spec(project, argv);
    spec.env.extend(job.env.clone());
    spec = spec
        .env("COCO_RUN_ID", &run.id)
        .env("COCO_JOB", &run.job)
        .env("COCO_PROJECT", &run.project)
        .env("COCO_ARGS", args.to_string())
        .env("COCO_ATTEMPT", run.attempt.to_string());
    if let Some(parent) = &run.parent {
        spec = spec.env("COCO_PARENT_RUN", parent);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::manifest::{Environment, HumanDuration};
    use crate::queue::{NewRun, new_run};

    fn project() -> Project {
        Project {
            name: "shop".into(),
            description: None,
            version: None,
            dir: PathBuf::from("/home/coco/shop"),
            environment: Environment {
                workdir: "src".into(),
                path: vec![".venv/bin".into(), "/opt/tools/bin".into()],
                env: BTreeMap::from([
                    ("MODE".into(), "prod".into()),
                    ("SHARED".into(), "project".into()),
                ]),
            },
            jobs: BTreeMap::new(),
            apps: BTreeMap::new(),
        }
    }

    fn job(command: &[&str]) -> Job {
        Job {
            retry_delay: HumanDuration(Duration::from_secs(1)),
            args: BTreeMap::from([("day".into(), json!("monday")), ("n".into(), json!(1))]),
            env: BTreeMap::from([("SHARED".into(), "job".into())]),
            ..Job::with_command(command)
        }
    }

    fn run(job: &Job, args: serde_json::Value, parent: Option<&str>) -> RunRecord {
        let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let mut run = new_run(
            job,
            NewRun {
                parent: parent.map(str::to_string),
                ..NewRun::new("shop.export", "shop", args, now)
            },
        );
        run.attempt = 2;
        run
    }

    #[test]
    fn cwd_path_and_env_layers() {
        let job = job(&["python3", "export.py"]);
        let run = run(&job, json!({"n": 5}), Some("01PARENT"));
        let spec = build_spec(&project(), &job, &run).unwrap();
        assert_eq!(spec.program_and_args, ["python3", "export.py"]);
        assert_eq!(spec.cwd, PathBuf::from("/home/coco/shop/src"));
        assert_eq!(
            spec.path_prepend,
            [
                PathBuf::from("/home/coco/shop/.venv/bin"),
                PathBuf::from("/opt/tools/bin")
            ]
        );
        let env = |k: &str| spec.env.get(k).map(String::as_str);
        assert_eq!(env("MODE"), Some("prod"));
        assert_eq!(env("SHARED"), Some("job"), "the job's env wins");
        assert_eq!(env("COCO_RUN_ID"), Some(run.id.as_str()));
        assert_eq!(env("COCO_JOB"), Some("shop.export"));
        assert_eq!(env("COCO_PROJECT"), Some("shop"));
        assert_eq!(env("COCO_ATTEMPT"), Some("2"));
        assert_eq!(env("COCO_PARENT_RUN"), Some("01PARENT"));
        let args: serde_json::Value = serde_json::from_str(env("COCO_ARGS").unwrap()).unwrap();
        assert_eq!(args, json!({"day": "monday", "n": 5}));
    }

    #[test]
    fn no_parent_no_variable_and_empty_workdir_is_the_project() {
        let job = job(&["true"]);
        let mut project = project();
        project.environment.workdir = String::new();
        let spec = build_spec(&project, &job, &run(&job, json!({}), None)).unwrap();
        assert!(!spec.env.contains_key("COCO_PARENT_RUN"));
        assert_eq!(spec.cwd, PathBuf::from("/home/coco/shop"));
    }

    #[test]
    fn each_element_is_rendered_on_its_own_without_escaping() {
        let job = job(&[
            "echo",
            "{{args.n}}",
            "--day={{args.day}} & <x>",
            "{{job}}/{{project}}/{{attempt}}",
            "{{run_id}}",
        ]);
        let run = run(&job, json!({"day": "it's \"friday\""}), None);
        let spec = build_spec(&project(), &job, &run).unwrap();
        assert_eq!(
            spec.program_and_args,
            [
                "echo".to_string(),
                "1".into(),
                "--day=it's \"friday\" & <x>".into(),
                "shop.export/shop/2".into(),
                run.id.clone(),
            ]
        );
    }

    #[test]
    fn an_unknown_argument_is_an_error_naming_the_element() {
        let job = job(&["echo", "{{args.missing}}"]);
        let run = run(&job, json!({}), None);
        match build_spec(&project(), &job, &run) {
            Err(EnvError::Template { index, element, .. }) => {
                assert_eq!((index, element.as_str()), (1, "{{args.missing}}"));
            }
            other => panic!("expected a template error, got {other:?}"),
        }
        let job = self::job(&["echo", "{{#if}}"]);
        assert!(matches!(
            build_spec(&project(), &job, &run),
            Err(EnvError::Template { .. })
        ));
    }

    #[test]
    fn decode_reports_what_is_missing() {
        let job = job(&["true"]);
        let run = run(&job, json!({}), None);
        assert!(matches!(
            decode(&run, None, None),
            Err(EnvError::ProjectMissing { .. })
        ));
    }
}
