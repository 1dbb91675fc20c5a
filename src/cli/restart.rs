//! `coco restart ID`: enqueue a new run of the same job with the same arguments, linked to
//! the old one (`restart_of`), with the job's current definition.
//!
//! A finished run (complete, error, killed, removed) is left as it is. A failed or deferred
//! run (waiting for its next try) is killed first, so the new run takes its place. A pending
//! or running run has nothing to restart. Prints the new run's id; exit 1 when nothing was
//! enqueued.

use chrono::Utc;
use clap::Args;

use super::{GlobalArgs, context, output};
use crate::actions::{self, Restarted};
use crate::queue;

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
    match actions::restart(store.as_ref(), &old, Utc::now()).await? {
        Restarted::Queued(id) => {
            queue::wake(&config.state_dir);
            output::text(&id);
            Ok(0)
        }
        Restarted::Refused(message) | Restarted::Duplicate { message, .. } => {
            output::error(&message);
            Ok(1)
        }
    }
}
