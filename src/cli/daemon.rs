//! `coco daemon` (watch, converge, schedule, work) and `coco scheduler` (the scheduler alone).

use std::sync::Arc;

use clap::Args;

use super::context::{self, default_name, ship_log, shutdown_signal, start_guard};
use super::{GlobalArgs, output};
use crate::daemon::{self, DaemonSetup, Parts};
use crate::process::guard::Guard;
use crate::scheduler::{Scheduler, SchedulerSettings};

/// Arguments of `coco daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Run no worker (another process or host runs the queue).
    #[arg(long)]
    pub no_worker: bool,
    /// Run no scheduler (another daemon fires the schedules; running several is safe too).
    #[arg(long)]
    pub no_scheduler: bool,
    /// Supervise no app servers.
    #[arg(long)]
    pub no_apps: bool,
    /// Worker slots (default: worker.slots from local.yaml, else the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: Option<u32>,
    /// Name of this daemon's worker in the store (default: HOST-PID).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// Run the daemon until SIGINT/SIGTERM or `coco halt`.
pub async fn run(global: &GlobalArgs, args: &DaemonArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let parts = Parts {
        worker: !args.no_worker,
        scheduler: !args.no_scheduler,
        apps: !args.no_apps,
    };
    let settings = context::worker_settings(&config, args.slots);
    // Kept until the daemon is done: dropping it lets the guard sweep what is left.
    let guard = if parts.worker || parts.apps {
        start_guard(&config)?
    } else {
        None
    };
    // Absolute, as every path of the configuration, so the watcher's events match them.
    let config_files = config.source_files.clone();
    let overrides = global.overrides();
    // Before the line: whoever sees it and runs `coco halt` halts this daemon.
    let started = chrono::Utc::now();
    output::text(&format!(
        "daemon: home {} on {} (stop with Ctrl-C)",
        config.home.display(),
        store.describe()
    ));
    let name = args.name.clone().unwrap_or_else(default_name);
    ship_log(&store, &name);
    let stopped = daemon::run(
        DaemonSetup {
            config,
            overrides,
            config_files,
            store,
            parts,
            name,
            worker: settings,
            guard: guard.as_ref().map(Guard::handle),
            started,
        },
        shutdown_signal(),
    )
    .await?;
    output::text(&format!(
        "daemon stopped{}: {} convergence passes{}",
        if stopped.halted { " (halted)" } else { "" },
        stopped.passes,
        stopped
            .worker
            .map(|w| format!(
                "; worker: {} claimed, {} finished, {} handed back",
                w.claimed, w.finished, w.handed_back
            ))
            .unwrap_or_default()
    ));
    drop(guard);
    crate::logging::store::flush().await;
    Ok(0)
}

/// `coco scheduler`: fire the store's schedules until SIGINT/SIGTERM.
pub async fn scheduler(global: &GlobalArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    output::text(&format!(
        "scheduler on {} (stop with Ctrl-C)",
        store.describe()
    ));
    ship_log(&store, &default_name());
    let scheduler = Scheduler::new(
        Arc::clone(&store),
        SchedulerSettings {
            state_dir: Some(config.state_dir.clone()),
            ..SchedulerSettings::default()
        },
    );
    let counts = scheduler.run(shutdown_signal()).await;
    output::text(&format!(
        "scheduler stopped: {} enqueued, {} skipped while active, {} replaced, {} missed, {} fired elsewhere, {} taken over",
        counts.enqueued,
        counts.forbidden,
        counts.replaced,
        counts.missed,
        counts.lost,
        counts.recovered
    ));
    crate::logging::store::flush().await;
    Ok(0)
}
