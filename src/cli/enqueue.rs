//! `coco enqueue PROJECT.JOB [--arg k=v …] [--wait]`: add a pending run of an applied job and
//! print its id. Exit 1 for an unknown job or when the same job with the same arguments is
//! still pending, running, failed or deferred. `--wait` follows the run (see [`super::wait`]).
//! A warning on stderr says so when the run has no worker or daemon alive to run it, and
//! when an `--arg` is one the job's command never renders.

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;

use super::args::{self, RunArg};
use super::{GlobalArgs, alive, context, output, wait};
use crate::queue::{self, NewRun};
use crate::store::Catalog;
use crate::store::{Enqueued, JobRecord};

/// Said on stderr when a run is enqueued and no worker or daemon has a recent heartbeat.
const NO_WORKER: &str = "no worker is alive: start `coco worker` or `coco daemon` to run it \
                         (it waits in the queue until one does)";

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The job to run, as PROJECT.JOB (it must be applied: see `coco apply`).
    #[arg(value_name = "PROJECT.JOB")]
    pub job: String,
    /// A run argument, KEY=VALUE (repeatable). VALUE is JSON where it parses (`3`, `true`,
    /// `[1,2]`, `{"a":1}`), else a string; numbers keep their digits as typed. It overrides
    /// the job's default `args`.
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = args::parse_arg)]
    pub args: Vec<RunArg>,
    /// Priority of this run (higher is claimed first; default: the job's).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Claim the run even while its project or the whole queue is paused, or the host is
    /// past worker.max_cpu / worker.min_free_ram.
    #[arg(long)]
    pub force: bool,
    /// Follow the run to its end (retries included) with a progress bar, and exit with its
    /// exit status: the job's exit code, 124 for a timeout, 137 if killed.
    #[arg(long)]
    pub wait: bool,
}

pub async fn run(global: &GlobalArgs, args: &EnqueueArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let Some(record) = find_job(store.as_ref(), &args.job).await? else {
        return Ok(1);
    };
    let job = record
        .job()
        .with_context(|| format!("reading the stored definition of job {}", record.id))?;
    if let Some(warning) = args::unused_args_warning(&record.id, &job.command, &args.args) {
        output::warning(&warning);
    }
    let mut run = queue::new_run(
        &job,
        NewRun {
            force: args.force,
            ..NewRun::new(
                &record.id,
                &record.project,
                args::merge_args(&job.args, &args.args),
                Utc::now(),
            )
        },
    );
    if let Some(priority) = args.priority {
        run.priority = priority;
    }
    match store.enqueue(&run).await? {
        Enqueued::Queued(id) => {
            // Idle workers of this host start it now rather than at their next poll.
            let woken = queue::wake(&config.state_dir);
            tracing::debug!(run = %id, woken, "enqueued");
            output::text(&id);
            if !alive::any_worker_alive(&store.list_members().await?, Utc::now()) {
                output::warning(NO_WORKER);
            }
            if !args.wait {
                return Ok(0);
            }
            match wait::follow(store.as_ref(), &id).await? {
                Some(run) => Ok(wait::exit_status(&run)),
                None => {
                    output::error(&format!("run {id} disappeared from the store"));
                    Ok(1)
                }
            }
        }
        Enqueued::Duplicate(existing) => {
            let state = match store.get_run(&existing).await? {
                Some(run) => format!(" ({})", run.state),
                None => String::new(),
            };
            output::error(&format!(
                "not enqueued: run {existing}{state} of {} with the same arguments already exists; \
                 see `coco detail {existing}`",
                record.id
            ));
            Ok(1)
        }
    }
}

/// The active, applied job called `name`; `None` after printing why not and the close names.
pub async fn find_job(store: &dyn Catalog, name: &str) -> anyhow::Result<Option<JobRecord>> {
    if let Some(record) = store.get_job(name).await?
        && record.active
    {
        return Ok(Some(record));
    }
    let jobs = store.list_jobs(None).await?;
    let active: Vec<&str> = jobs
        .iter()
        .filter(|j| j.active)
        .map(|j| j.id.as_str())
        .collect();
    let removed = jobs.iter().any(|j| j.id == name && !j.active);
    let mut message = if removed {
        format!("job `{name}` was removed from its manifest (inactive); it cannot be enqueued")
    } else if args::split_job(name).is_none() {
        format!("unknown job `{name}`: name it as PROJECT.JOB")
    } else {
        format!("unknown job `{name}`: no applied job has that name")
    };
    let close = args::close_names(name, active.iter().copied(), 3);
    if !close.is_empty() {
        message.push_str(&format!(" (did you mean {}?)", close.join(", ")));
    } else if active.is_empty() {
        message.push_str("; no jobs are applied yet: run `coco apply`");
    } else if active.len() <= 10 {
        message.push_str(&format!("; applied jobs: {}", active.join(", ")));
    }
    output::error(&message);
    Ok(None)
}
