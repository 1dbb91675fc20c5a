//! `coco restart ID`: enqueue a new run of the same job with the same arguments, linked to
//! the old one (`restart_of`), with the job's current definition.
//!
//! A finished run (complete, error, killed, removed) is left as it is. A failed or deferred
//! run (waiting for its next try) is killed first, so the new run takes its place. A pending
//! or running run has nothing to restart. Prints the new run's id; exit 1 when nothing was
//! enqueued.

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;

use super::{GlobalArgs, context, output};
use crate::queue::run::Cancel;
use crate::queue::{self, NewRun, state::RunState};
use crate::store::{Cancelled, Enqueued};

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Id of the run to restart (or a unique prefix of at least 4 characters).
    #[arg(value_name = "ID")]
    pub id: String,
}

pub async fn run(global: &GlobalArgs, args: &RestartArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let Some(old) = context::find_run(store.as_ref(), &args.id).await? else {
        return Ok(1);
    };
    if matches!(old.state, RunState::Pending | RunState::Running) {
        output::error(&format!(
            "run {} of {} is {}: nothing to restart (kill it first with `coco kill {}`)",
            old.id, old.job, old.state, old.id
        ));
        return Ok(1);
    }
    let record = match store.get_job(&old.job).await? {
        Some(record) if record.active => record,
        _ => {
            output::error(&format!(
                "job {} is no longer applied (removed from its manifest): run {} cannot be restarted",
                old.job, old.id
            ));
            return Ok(1);
        }
    };
    let job = record
        .job()
        .with_context(|| format!("reading the stored definition of job {}", record.id))?;
    if old.state.blocks_duplicate() {
        // Failed or deferred: it would run again by itself; the restart replaces it.
        match store.cancel_run(&old.id, Cancel::Kill, Utc::now()).await? {
            Cancelled::Done(_) => {}
            Cancelled::Refused(now) => {
                output::error(&format!(
                    "run {} changed to {} meanwhile; look again with `coco detail {}`",
                    old.id, now.state, old.id
                ));
                return Ok(1);
            }
            Cancelled::Missing => {
                output::error(&format!("run {} disappeared meanwhile", old.id));
                return Ok(1);
            }
        }
    }
    let mut new = queue::new_run(
        &job,
        NewRun {
            restart_of: Some(old.id.clone()),
            force: old.force,
            ..NewRun::new(&record.id, &record.project, old.args.clone(), Utc::now())
        },
    );
    new.priority = old.priority;
    match store.enqueue(&new).await? {
        Enqueued::Queued(id) => {
            queue::wake(&config.state_dir);
            output::text(&id);
            Ok(0)
        }
        Enqueued::Duplicate(existing) => {
            output::error(&format!(
                "not restarted: run {existing} of {} with the same arguments is already waiting or running; see `coco detail {existing}`",
                old.job
            ));
            Ok(1)
        }
    }
}
