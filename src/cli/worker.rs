//! `coco worker`: claim and run queued runs in the foreground until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::context::{self, default_name, shutdown_signal, start_guard};
use super::{GlobalArgs, output};
use crate::config::zombie_after_problem;
use crate::process::guard::Guard;
use crate::worker::Worker;

/// Arguments of `coco worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The name this host goes by in the store (default: fleet.host from local.yaml, else
    /// the hostname).
    #[arg(long, value_name = "NAME", value_parser = context::host_name)]
    pub host: Option<String>,
    /// Runs at once (default: worker.slots from local.yaml, else the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: Option<u32>,
    /// Name of this worker in the store (default: HOST-PID).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Take back a running run whose worker has been silent this long, e.g. 30s (default:
    /// worker.zombie_after from local.yaml, else 60s; at least 10s).
    #[arg(long, value_name = "DURATION", value_parser = zombie_after)]
    pub zombie_after: Option<Duration>,
}

/// A `--zombie-after` value: a duration of at least [`crate::config::MIN_ZOMBIE_AFTER`].
fn zombie_after(text: &str) -> Result<Duration, String> {
    let after = crate::manifest::raw::parse_duration(text)?;
    match zombie_after_problem(after) {
        Some(problem) => Err(problem),
        None => Ok(after),
    }
}

/// Run a worker until SIGINT/SIGTERM; running runs get a grace period, then are handed back.
pub async fn run(global: &GlobalArgs, args: &WorkerArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    context::choose_host(&config, args.host.as_deref());
    let store = context::open_store(&config).await?;
    let mut settings = context::worker_settings(&config, args.slots);
    if let Some(after) = args.zombie_after {
        settings = settings.with_zombie_after(after);
    }
    // Kept until the worker is done: dropping it lets the guard sweep what is left.
    let guard = start_guard(&config)?;
    settings.run.guard = guard.as_ref().map(Guard::handle);
    let name = args.name.clone().unwrap_or_else(default_name);
    context::ship_log(&store, &name);
    // Said once the worker is in the store: whoever reads the line can find it (`coco alive`).
    let started_line = format!(
        "worker {name}: {} slot{} on {} (stop with Ctrl-C)",
        settings.slots,
        if settings.slots == 1 { "" } else { "s" },
        store.describe()
    );
    let worker = Worker::new(name.clone(), Arc::clone(&store), settings);
    // On a runtime thread, not this one: the tasks the loop starts then run beside it, and
    // a run's end reaches the loop without waking another thread.
    let summary =
        tokio::spawn(worker.run_announced(shutdown_signal(), move || output::text(&started_line)))
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
    output::text(&format!(
        "worker {name} stopped{}: {} claimed, {} finished, {} handed back",
        if summary.halted { " (halted)" } else { "" },
        summary.claimed,
        summary.finished,
        summary.handed_back
    ));
    drop(guard);
    crate::logging::store::flush().await;
    Ok(0)
}
