//! `coco restart ID`: enqueue a new run of the same job with the same arguments, linked to
//! the old one (`restart_of`), with the job's current definition.
//!
//! A finished run (complete, error, killed, removed) is left as it is. A failed or deferred
//! run (waiting for its next try) is killed first, so the new run takes its place. A pending
//! or running run has nothing to restart. Prints the new run's id; exit 1 when nothing was
//! enqueued.
//!
//! `coco restart PROJECT.APP` asks the daemon that runs the app to replace its process (at its
//! next status write; rolling when the app has no port), on whichever host it runs.

use chrono::Utc;
use clap::Args;

use super::{GlobalArgs, context, output};
use crate::actions::{self, Restarted};
use crate::queue;

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Id of the run to restart (or a unique prefix of at least 4 characters), or an app
    /// as `PROJECT.APP`.
    #[arg(value_name = "ID")]
    pub id: String,
}

pub async fn run(global: &GlobalArgs, args: &RestartArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    if crate::manifest::JobId::split(&args.id).is_some() {
        return restart_app(store.as_ref(), &args.id).await;
    }
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

/// Ask for a restart of app `id`; exit 1 if there is no such applied app.
async fn restart_app(store: &dyn crate::store::Store, id: &str) -> anyhow::Result<i32> {
    if !store.get_app(id).await?.is_some_and(|app| app.active) {
        output::error(&format!("no applied app `{id}` (coco apps lists them)"));
        return Ok(1);
    }
    store.request_app_restart(id, Utc::now()).await?;
    output::text(&format!(
        "restart of {id} asked for: its daemon replaces the process within a few seconds"
    ));
    Ok(0)
}
