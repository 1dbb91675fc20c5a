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
use crate::actions::{cancel_done, cancel_refused, previous_state};
use crate::queue::run::Cancel;
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
                output::text(&cancel_done(&run, was_running));
            }
            Cancelled::Refused(run) => {
                output::error(&cancel_refused(&run, cancel));
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
