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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

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

/// A run's project and job, decoded from their stored documents.
#[derive(Debug)]
pub struct Definitions {
    pub project: Project,
    pub job: Job,
}

/// The stored identity of a [`Definitions`]: project name and hash, job id and hash (an
/// apply that changes a document changes its hash).
type DefinitionsKey = (String, String, String, String);

/// Decoded definitions by the hashes they were decoded at: a busy worker runs the same jobs
/// again and again, and decoding both documents for every run was a twentieth of its own
/// work per run. Only a cache (the store's documents stay the truth), of at most
/// [`DECODED_CAP`] entries (emptied when full).
static DECODED: Mutex<Option<HashMap<DefinitionsKey, Arc<Definitions>>>> = Mutex::new(None);

/// At most this many decoded definitions are kept.
const DECODED_CAP: usize = 256;

/// Decode the stored project manifest and job definition of `run` (or take them as decoded
/// before at the same hashes).
pub fn decode(
    run: &RunRecord,
    project: Option<&ProjectRecord>,
    job: Option<&JobRecord>,
) -> Result<Arc<Definitions>, EnvError> {
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
    let key = (
        project.name.clone(),
        project.hash.clone(),
        job.id.clone(),
        job.hash.clone(),
    );
    let decoded = || DECODED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = decoded().as_ref().and_then(|memo| memo.get(&key)) {
        return Ok(Arc::clone(known));
    }
    // From the stored value itself, not a copy of it (a claim reads it once per run).
    let definitions = Arc::new(Definitions {
        project: Project::deserialize(&project.manifest)
            .map_err(corrupt(&format!("manifest of project {}", project.name)))?,
        job: job
            .job()
            .map_err(corrupt(&format!("definition of job {}", job.id)))?,
    });
    let mut memo = decoded();
    let memo = memo.get_or_insert_with(HashMap::new);
    if memo.len() >= DECODED_CAP {
        memo.clear();
    }
    memo.insert(key, Arc::clone(&definitions));
    Ok(definitions)
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

    fn records(job: &Job, hash: &str) -> (ProjectRecord, JobRecord) {
        let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let project = ProjectRecord {
            name: "shop".into(),
            hash: "p1".into(),
            manifest: serde_json::to_value(project()).unwrap(),
            source: "/home/coco/shop/coco.yaml".into(),
            active: true,
            applied_at: now,
        };
        let job = JobRecord {
            id: "shop.export".into(),
            project: "shop".into(),
            name: "export".into(),
            definition: serde_json::to_value(job).unwrap(),
            hash: hash.into(),
            active: true,
            next_fire: None,
            last_fire: None,
            updated_at: now,
        };
        (project, job)
    }

    #[test]
    fn definitions_are_decoded_once_per_hash() {
        let first = job(&["echo", "one"]);
        let run = run(&first, json!({}), None);
        let (project_record, job_record) = records(&first, "decode-test-1");
        let decoded = decode(&run, Some(&project_record), Some(&job_record)).unwrap();
        assert_eq!(decoded.job.command, ["echo", "one"]);
        assert_eq!(decoded.project.environment.workdir, "src");
        let again = decode(&run, Some(&project_record), Some(&job_record)).unwrap();
        assert!(
            Arc::ptr_eq(&decoded, &again),
            "the same hashes: decoded once"
        );
        // A new apply of the job: a new hash, decoded anew.
        let (_, changed) = records(&job(&["echo", "two"]), "decode-test-2");
        let anew = decode(&run, Some(&project_record), Some(&changed)).unwrap();
        assert_eq!(anew.job.command, ["echo", "two"]);
        // A document that does not decode is reported, and not kept.
        let broken = JobRecord {
            definition: json!({"command": 7}),
            hash: "decode-test-3".into(),
            ..changed
        };
        for _ in 0..2 {
            assert!(matches!(
                decode(&run, Some(&project_record), Some(&broken)),
                Err(EnvError::Corrupt { .. })
            ));
        }
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
