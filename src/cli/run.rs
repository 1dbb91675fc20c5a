//! `coco run PROJECT.JOB [--arg k=v …]`: run a job in the foreground, in its project's
//! environment, without the queue (core4's "execute the job directly").
//!
//! The project is read from its manifest on disk (not from the store: what you edit is what
//! runs). Output lines are printed as they come (stdout to stdout, stderr to stderr),
//! `::progress::` lines as `[42%] message`, `::log::` lines as `[LEVEL] message` on stderr.
//! The exit status is the job's: its exit code, 128 + the signal that killed it, 124 when its
//! `timeout` ran out, 130 when interrupted (Ctrl-C stops its whole process group).

use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;

use super::args::{self, RunArg};
use super::{GlobalArgs, context, output};
use crate::manifest::{self, JobId, Project};
use crate::process::{self, Event, LineKind, Stream};
use crate::queue::{self, NewRun};
use crate::worker;

/// How long a stopped job gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// Exit status when the job's timeout ran out (as timeout(1)).
const EXIT_TIMEOUT: i32 = 124;

/// Exit status when interrupted with Ctrl-C.
const EXIT_INTERRUPTED: i32 = 130;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job to run, as PROJECT.JOB (read from `<home>/PROJECT/coco.yaml`).
    #[arg(value_name = "PROJECT.JOB")]
    pub job: String,
    /// A run argument, KEY=VALUE (repeatable). VALUE is JSON where it parses (`3`, `true`,
    /// `[1,2]`, `{"a":1}`), else a string; numbers keep their digits as typed. It overrides
    /// the job's default `args`.
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = args::parse_arg)]
    pub args: Vec<RunArg>,
}

pub async fn run(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let Some((project_name, job_name)) = args::split_job(&args.job) else {
        output::error(&format!("`{}`: name the job as PROJECT.JOB", args.job));
        return Ok(1);
    };
    let Some(project) = load_project(&config.home, project_name)? else {
        return Ok(1);
    };
    let Some(job) = project.jobs.get(job_name) else {
        let names: Vec<String> = project
            .jobs
            .keys()
            .map(|j| JobId::new(&project.name, j).into_string())
            .collect();
        let close = args::close_names(&args.job, names.iter().map(String::as_str), 3);
        let hint = if !close.is_empty() {
            format!(" (did you mean {}?)", close.join(", "))
        } else if names.is_empty() {
            " (it has no jobs)".to_owned()
        } else {
            format!("; its jobs: {}", names.join(", "))
        };
        output::error(&format!(
            "unknown job `{}`: project {} has no job `{job_name}`{hint}",
            args.job, project.name
        ));
        return Ok(1);
    };

    // A run record that never reaches the store: it carries the id, arguments and attempt
    // the environment is built from, exactly as for a queued run.
    let job_id = JobId::new(&project.name, job_name);
    if let Some(warning) = args::unused_args_warning(job_id.as_str(), &job.command, &args.args) {
        output::warning(&warning);
    }
    let mut run = queue::new_run(
        job,
        NewRun::new(
            job_id.as_str(),
            &project.name,
            args::merge_args(&job.args, &args.args),
            Utc::now(),
        ),
    );
    run.attempt = 1;
    // The same cwd, PATH, environment and argv rendering as a queued run gets.
    let spec = match worker::env::build_spec(&project, job, &run) {
        Ok(spec) => spec,
        Err(error) => {
            output::error(&format!("{job_id}: {error}"));
            return Ok(1);
        }
    };
    tracing::debug!(job = %job_id, run = %run.id, argv = %spec.program_and_args.join(" "), cwd = %spec.cwd.display(), "running in the foreground");

    let timeout = job.timeout.map(|t| t.0);
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let outcome = process::run_to_end(&spec, timeout, GRACE, interrupted, print_event)
        .await
        .with_context(|| format!("running {job_id}"))?;

    if outcome.timed_out {
        let after = humantime::format_duration(timeout.unwrap_or_default());
        output::error(&format!("{job_id}: timed out after {after}; stopped"));
        return Ok(EXIT_TIMEOUT);
    }
    if outcome.cancelled {
        output::error(&format!("{job_id}: interrupted; stopped"));
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(exit_status(outcome.exit))
}

/// The shell-style exit status of a job's exit: its code, or 128 + the signal.
pub fn exit_status(exit: process::Exit) -> i32 {
    match (exit.code, exit.signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// Print one line of the job's output as it comes.
fn print_event(event: Event) {
    match (event.kind, event.stream) {
        (LineKind::Output(line), Stream::Stdout) => output::text(&format!("{line}\n")),
        (LineKind::Output(line), Stream::Stderr) => output::text_stderr(&format!("{line}\n")),
        (LineKind::Progress { fraction, message }, _) => {
            output::text(&progress_line(fraction, message.as_deref()))
        }
        (LineKind::Log { level, message }, _) => {
            output::text_stderr(&format!("[{level}] {message}\n"));
        }
    }
}

/// `[42%] message` (pure).
pub fn progress_line(fraction: f64, message: Option<&str>) -> String {
    let percent = super::list::progress(Some(fraction));
    match message {
        Some(message) => format!("[{percent}] {message}\n"),
        None => format!("[{percent}]\n"),
    }
}

/// The project called `name`: `<home>/<name>`, else the project of the home with that
/// name. `None` after printing why not.
fn load_project(home: &std::path::Path, name: &str) -> anyhow::Result<Option<Project>> {
    let dir = home.join(name);
    if dir.join(manifest::MANIFEST_FILE).is_file() {
        return match manifest::parse::load_project(&dir) {
            Ok(project) if project.name == name => Ok(Some(project)),
            Ok(_) => find_in_home(home, name),
            Err(problems) => {
                output::diagnostics(&problems);
                Ok(None)
            }
        };
    }
    find_in_home(home, name)
}

fn find_in_home(home: &std::path::Path, name: &str) -> anyhow::Result<Option<Project>> {
    let discovery = manifest::discover::discover(home)?;
    if let Some(project) = discovery.projects.get(name) {
        return Ok(Some(project.clone()));
    }
    let close = args::close_names(name, discovery.projects.keys().map(String::as_str), 3);
    let hint = if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.join(", "))
    };
    output::error(&format!(
        "unknown project `{name}`: no valid project of that name in {}{hint}",
        home.display()
    ));
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_is_shell_style() {
        let exit = |code, signal| exit_status(process::Exit { code, signal });
        assert_eq!(exit(Some(0), None), 0);
        assert_eq!(exit(Some(3), None), 3);
        assert_eq!(exit(None, Some(9)), 137);
        assert_eq!(exit(None, Some(15)), 143);
        assert_eq!(exit(None, None), 1);
    }

    #[test]
    fn progress_lines_show_a_percentage() {
        assert_eq!(progress_line(0.42, Some("half way")), "[42%] half way\n");
        assert_eq!(progress_line(1.0, None), "[100%]\n");
    }
}
