//! `coco kill ID…` and `coco remove ID…`: take runs out of the queue.
//!
//! - kill: a running run's try ends `killed`; its worker sees that at once on this host (a
//!   control wake-up), else at its next heartbeat, and ends the job's process group. A
//!   waiting run (pending, failed, deferred) becomes `killed` at once.
//! - remove: a waiting run becomes `removed` (kept, with its history, for `coco list` and
//!   `coco detail`); a running run must be killed instead.
//!
//! Each id may be a unique prefix ([`crate::store::run_id`]). Exit 1 if any id is unknown or
//! ambiguous, or its run in a state the verb does not apply to.

use chrono::Utc;
use clap::Args;

use super::{GlobalArgs, context, output};
use crate::queue::run::{Cancel, RunRecord};
use crate::queue::{self, state::RunState};
use crate::store::Cancelled;

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Ids of the runs (as `coco list` prints them, or a unique prefix of at least 4
    /// characters).
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
}

pub async fn run(global: &GlobalArgs, args: &CancelArgs, cancel: Cancel) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let mut status = 0;
    let mut killed_running = false;
    for typed in &args.ids {
        let Some(id) = context::find_run_id(store.as_ref(), typed).await? else {
            status = 1;
            continue;
        };
        match store.cancel_run(&id, cancel, Utc::now()).await? {
            Cancelled::Done(run) => {
                let was_running = previous_state(&run) == Some(RunState::Running);
                killed_running |= was_running;
                output::text(&done_message(&run, was_running));
            }
            Cancelled::Refused(run) => {
                output::error(&refusal(&run, cancel));
                status = 1;
            }
            Cancelled::Missing => {
                output::error(&format!("run {id} disappeared meanwhile"));
                status = 1;
            }
        }
    }
    if killed_running {
        // The workers of this host stop the process now rather than at their next heartbeat.
        queue::wake_control(&config.state_dir);
    }
    Ok(status)
}

/// The state a run was in before its latest change.
fn previous_state(run: &RunRecord) -> Option<RunState> {
    let n = run.history.len();
    (n >= 2).then(|| run.history[n - 2].state)
}

/// What was done (pure).
pub fn done_message(run: &RunRecord, was_running: bool) -> String {
    let verb = run.state.as_str();
    if was_running {
        let worker = run.worker.as_deref().unwrap_or("its worker");
        format!(
            "{verb} run {} of {} (attempt {}): {worker} ends its process group",
            run.id, run.job, run.attempt
        )
    } else if run.attempt == 0 {
        format!("{verb} run {} of {} before it started", run.id, run.job)
    } else {
        format!("{verb} run {} of {} before its next try", run.id, run.job)
    }
}

/// Why nothing was done (pure).
pub fn refusal(run: &RunRecord, cancel: Cancel) -> String {
    match (cancel, run.state) {
        (Cancel::Remove, RunState::Running) => format!(
            "run {} of {} is running: stop it with `coco kill {}`",
            run.id, run.job, run.id
        ),
        (_, state) => format!(
            "run {} of {} is {state} already: only {} runs can be {}",
            run.id,
            run.job,
            match cancel {
                Cancel::Kill => "pending, running, failed or deferred",
                Cancel::Remove => "pending, failed or deferred",
            },
            match cancel {
                Cancel::Kill => "killed",
                Cancel::Remove => "removed",
            }
        ),
    }
}
