//! `coco worker`: claim and run queued runs in the foreground until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{GlobalArgs, context, output};
use crate::config::Config;
use crate::process::guard::{Guard, StartError};
use crate::worker::load::Limits;
use crate::worker::{Worker, WorkerSettings, wake, zombie_after_problem};

/// Arguments of `coco worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
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

/// A `--zombie-after` value: a duration of at least [`crate::worker::MIN_ZOMBIE_AFTER`].
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
    let store = context::open_store(&config).await?;
    let mut settings = settings(&config, args.slots);
    if let Some(after) = args.zombie_after {
        settings = settings.with_zombie_after(after);
    }
    // Kept until the worker is done: dropping it lets the guard sweep what is left.
    let guard = start_guard(&config)?;
    settings.run.guard = guard.as_ref().map(Guard::handle);
    let name = args.name.clone().unwrap_or_else(default_name);
    super::daemon::ship_log(&store, &name);
    output::text(&format!(
        "worker {name}: {} slot{} on {} (stop with Ctrl-C)",
        settings.slots,
        if settings.slots == 1 { "" } else { "s" },
        store.describe()
    ));
    let worker = Worker::new(name.clone(), Arc::clone(&store), settings);
    let summary = worker.run(shutdown_signal()).await;
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

/// The worker settings local.yaml gives, with `slots` (a flag) winning over `worker.slots`.
pub fn settings(config: &Config, slots: Option<u32>) -> WorkerSettings {
    let mut settings = WorkerSettings {
        wake_dir: Some(wake::dir(&config.state_dir)),
        limits: Limits {
            max_cpu: config.worker.max_cpu,
            min_free_ram_mib: config.worker.min_free_ram,
        },
        ..WorkerSettings::default()
    };
    if let Some(bytes) = config.worker.max_output {
        settings.run.tail_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    }
    if let Some(max_lost) = config.worker.max_lost {
        settings.max_lost = max_lost;
    }
    if let Some(slots) = slots.or(config.worker.slots) {
        settings.slots = usize::try_from(slots).unwrap_or(1).max(1);
    }
    match config.worker.zombie_after {
        Some(after) => settings.with_zombie_after(after),
        None => settings,
    }
}

/// The process guard of this worker's jobs with its containment (`worker.containment`), or
/// `None` (with a warning: jobs then get the death signal, which costs a full fork per run
/// and misses what a job starts). An error: the containment asked for is not available.
pub fn start_guard(config: &Config) -> anyhow::Result<Option<Guard>> {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            tracing::warn!("cannot start the process guard: {error}");
            return Ok(None);
        }
    };
    match Guard::start(exe, config.worker.containment) {
        Ok(guard) => Ok(Some(guard)),
        Err(StartError::Spawn(error)) => {
            tracing::warn!("cannot start the process guard: {error}");
            Ok(None)
        }
        Err(error @ StartError::Contain(_)) => Err(error.into()),
    }
}

/// `HOST-PID`.
pub fn default_name() -> String {
    format!("{}-{}", crate::worker::host_name(), std::process::id())
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers, Ctrl-C kills the process: its runs become zombies that
        // another worker takes back.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
