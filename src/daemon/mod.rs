//! `coco daemon`: the process that makes "edit YAML and save" a deploy.
//!
//! One process per host runs, as tokio tasks:
//!
//! - the converger (this module's loop): a [`converge`] pass at start, then one per debounced
//!   file change ([`watch`]): manifests, project folders created or deleted, local.yaml;
//! - the [`Scheduler`], told to re-read the jobs after every pass that changed something;
//! - a [`Worker`] (the queue's, with its process guard);
//! - the app [`Supervisor`], told to look at the apps after every pass that changed something.
//!
//! Theory of operation: every part stops when the shared stop signal flips — on SIGINT or
//! SIGTERM, on `coco halt` (read from the store every [`CONTROL_EVERY`], and seen by the
//! worker itself), or when the worker ends for any reason. The worker then hands back or
//! finishes its runs within its grace period. Nothing is kept only in memory: a daemon killed
//! with SIGKILL is restarted and converges from the files and the store.
//!
//! A change of local.yaml is read again: a new `folder.home` is watched and converged at once;
//! what cannot change under a running daemon (the store, the state folder, the worker's
//! settings) is reported as needing a restart.

pub mod converge;
pub mod watch;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch as signal;

use crate::config::{Config, Overrides};
use crate::manifest::discover::HomeError;
use crate::process::guard;
use crate::scheduler::{Scheduler, SchedulerSettings};
use crate::store::{MemberKind, MemberRecord, Problems, Store};
use crate::supervisor::{Supervisor, app};
use crate::worker::{Summary, Worker, WorkerSettings};

/// How often the daemon reads `coco halt` from the store itself (the worker also does).
pub const CONTROL_EVERY: Duration = Duration::from_secs(1);

/// Log records older than this are deleted from the store (`coco log`)...
pub const LOG_KEEP: chrono::TimeDelta = chrono::TimeDelta::days(30);
/// ... and settled schedule fires of instants older than this ...
pub const FIRES_KEEP: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// ... at start-up and this often.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Which parts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub worker: bool,
    pub scheduler: bool,
    pub apps: bool,
}

/// Everything a daemon needs.
pub struct DaemonSetup {
    pub config: Config,
    /// The command-line overrides, to read local.yaml again as the daemon was started.
    pub overrides: Overrides,
    /// Files whose change re-reads the configuration (they need not exist).
    pub config_files: Vec<PathBuf>,
    pub store: Arc<dyn Store>,
    pub parts: Parts,
    /// The daemon's name (its worker's, and the owner of its apps) and the worker's settings
    /// (used if `parts.worker`).
    pub name: String,
    pub worker: WorkerSettings,
    /// The process guard of the jobs and apps this daemon starts.
    pub guard: Option<guard::Handle>,
}

/// Why the daemon stopped, and what its parts did.
#[derive(Debug, Default)]
pub struct Stopped {
    pub halted: bool,
    pub passes: usize,
    pub worker: Option<Summary>,
}

/// Run the daemon until `shutdown` completes or a halt says so.
pub async fn run(
    setup: DaemonSetup,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Stopped> {
    let DaemonSetup {
        mut config,
        overrides,
        config_files,
        store,
        parts,
        name,
        worker: mut worker_settings,
        guard,
    } = setup;
    worker_settings.run.guard = guard.clone();
    worker_settings.kind = MemberKind::Daemon;
    let started = Utc::now();
    let (stop_tx, stop_rx) = signal::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let mut watch = watch::Watch::new(&config.home, &config_files)?;
    let mut outcome = Stopped::default();
    let mut converger = converge::Converger::new(&config.home);
    pass(&mut converger, None, store.as_ref(), &name, &mut outcome).await;

    let scheduler = parts.scheduler.then(|| {
        Scheduler::new(
            Arc::clone(&store),
            SchedulerSettings {
                state_dir: Some(config.state_dir.clone()),
                ..SchedulerSettings::default()
            },
        )
    });
    let reload = scheduler.as_ref().map(Scheduler::reload);
    let scheduler = scheduler.map(|scheduler| tokio::spawn(scheduler.run(stopped())));
    let tail_bytes = worker_settings.run.tail_bytes;
    let mut worker = parts.worker.then(|| {
        let worker = Worker::new(name.clone(), Arc::clone(&store), worker_settings);
        tokio::spawn(worker.run(stopped()))
    });
    let supervisor = parts.apps.then(|| {
        Supervisor::new(
            Arc::clone(&store),
            app::Settings {
                owner: name.clone(),
                host: crate::worker::host_name(),
                owner_pid: std::process::id(),
                status_every: Duration::from_secs(1),
                stale_after: Duration::from_secs(10),
                grace: Duration::from_secs(5),
                output_every: Duration::from_secs(1),
                tail_bytes,
                guard,
            },
        )
    });
    let apps_reload = supervisor.as_ref().map(Supervisor::reload);
    let supervisor = supervisor.map(|supervisor| tokio::spawn(supervisor.run(stopped())));
    tracing::info!(
        home = %config.home.display(),
        store = %store.describe(),
        worker = parts.worker,
        scheduler = parts.scheduler,
        apps = parts.apps,
        "daemon started"
    );

    let mut shutdown = std::pin::pin!(shutdown);
    let mut control = tokio::time::interval(CONTROL_EVERY);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            summary = async { worker.as_mut().expect("guarded").await }, if worker.is_some() => {
                worker = None;
                match summary {
                    Ok(summary) => {
                        outcome.halted |= summary.halted;
                        outcome.worker = Some(summary);
                    }
                    Err(error) => tracing::error!("the worker task failed: {error}"),
                }
                break;
            }
            _ = control.tick() => {
                if worker.is_none() {
                    // The worker records itself; without one, the daemon does.
                    announce(store.as_ref(), &name, started).await;
                }
                match store.control().await {
                    Ok(control) if control.halts(started) => {
                        outcome.halted = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!("cannot read the halt switch: {error}"),
                }
            }
            _ = prune.tick() => housekeeping(store.as_ref()).await,
            change = watch.next_change() => {
                let Some(change) = change else {
                    tracing::error!("the file watcher stopped; restart the daemon");
                    break;
                };
                let mut everything = change.folders;
                if change.config && reread_config(&mut config, &overrides, &mut watch) {
                    converger.set_home(&config.home);
                    everything = true;
                }
                let only = (!everything).then_some(&change.projects);
                if only.is_some_and(BTreeSet::is_empty) {
                    continue;
                }
                if pass(&mut converger, only, store.as_ref(), &name, &mut outcome).await {
                    for reload in reload.iter().chain(apps_reload.iter()) {
                        reload.notify_one();
                    }
                }
            }
        }
    }

    tracing::info!(halted = outcome.halted, "daemon stopping");
    let _ = stop_tx.send(true);
    if let Some(worker) = worker {
        match worker.await {
            Ok(summary) => outcome.worker = Some(summary),
            Err(error) => tracing::error!("the worker task failed: {error}"),
        }
    }
    if let Some(scheduler) = scheduler {
        let _ = scheduler.await;
    }
    if let Some(supervisor) = supervisor {
        let _ = supervisor.await;
    }
    let _ = store.remove_member(&name).await;
    let cleared = Problems {
        source: name.clone(),
        at: Utc::now(),
        problems: Vec::new(),
    };
    if let Err(error) = store.put_problems(&cleared).await {
        tracing::warn!("cannot clear this daemon's manifest problems: {error}");
    }
    Ok(outcome)
}

/// Delete old log records and settled fires (every daemon does; deleting twice is harmless).
async fn housekeeping(store: &dyn Store) {
    let now = Utc::now();
    match store.prune_log(now - LOG_KEEP).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(
            "deleted {pruned} log records older than {} days",
            LOG_KEEP.num_days()
        ),
        Err(error) => tracing::warn!("cannot prune the log: {error}"),
    }
    match store.prune_fires(now - FIRES_KEEP).await {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!("deleted {pruned} settled fires"),
        Err(error) => tracing::warn!("cannot prune the schedule fires: {error}"),
    }
}

/// Record this daemon (one without a worker) for `coco alive` and `coco halt --wait`.
async fn announce(store: &dyn Store, name: &str, started: chrono::DateTime<Utc>) {
    let member = MemberRecord {
        name: name.to_owned(),
        kind: MemberKind::Daemon,
        host: crate::worker::host_name(),
        pid: std::process::id(),
        started,
        heartbeat: Utc::now(),
        slots: 0,
        running: Vec::new(),
        holding: None,
    };
    if let Err(error) = store.put_member(&member).await {
        tracing::warn!("recording this daemon in the store: {error}");
    }
}

/// One convergence pass — over the project folders `only`, else the whole home — logged,
/// its problems recorded under `name` for `coco status`; true if it changed the store.
async fn pass(
    converger: &mut converge::Converger,
    only: Option<&BTreeSet<PathBuf>>,
    store: &dyn Store,
    name: &str,
    outcome: &mut Stopped,
) -> bool {
    outcome.passes += 1;
    let started = std::time::Instant::now();
    let now = Utc::now();
    let result = match only {
        Some(dirs) => converger.folders(dirs, store, now).await,
        None => converger.everything(store, now).await,
    };
    match result {
        Ok(pass) => {
            for problem in &pass.problems {
                // The project in a span, so that it is written before the message: the
                // message ends with its snippet's caret line.
                match converger.project_of(&problem.file) {
                    Some(project) => tracing::error_span!("manifest", %project)
                        .in_scope(|| tracing::error!("{problem}")),
                    None => tracing::error!("{problem}"),
                }
            }
            let problems = Problems {
                source: name.to_owned(),
                at: Utc::now(),
                problems: pass.problems.iter().map(ToString::to_string).collect(),
            };
            if let Err(error) = store.put_problems(&problems).await {
                tracing::warn!("cannot record the manifest problems: {error}");
            }
            let took = crate::logging::fields::duration(started.elapsed());
            if pass.changed() {
                tracing::info!(%took, "applied: {}", converge::summary(&pass.plan));
                for (project, line) in crate::reconcile::render::updates(&pass.plan) {
                    tracing::info!(%project, "{line}");
                }
            } else {
                tracing::debug!(%took, "no changes");
            }
            pass.changed()
        }
        Err(error) => {
            tracing::error!("cannot converge: {error:#}");
            // A home that is missing (or no folder) is the operator's to fix: `coco status`
            // shows it with the manifest problems until a pass succeeds.
            if let Some(home) = error.downcast_ref::<HomeError>() {
                let problems = Problems {
                    source: name.to_owned(),
                    at: Utc::now(),
                    problems: vec![home.to_string()],
                };
                if let Err(error) = store.put_problems(&problems).await {
                    tracing::warn!("cannot record the manifest problems: {error}");
                }
            }
            false
        }
    }
}

/// Read the configuration again after local.yaml changed: take a new home at once, say what
/// needs a restart. A configuration that does not load is reported and ignored. True if the
/// home changed.
fn reread_config(config: &mut Config, overrides: &Overrides, watch: &mut watch::Watch) -> bool {
    let fresh = match crate::config::load_from_process(overrides) {
        Ok((fresh, _)) => fresh,
        Err(error) => {
            tracing::error!("configuration not reloaded: {error}");
            return false;
        }
    };
    let new_home = fresh.home != config.home;
    if new_home {
        tracing::info!(
            from = %config.home.display(),
            to = %fresh.home.display(),
            "folder.home changed: watching the new home"
        );
        watch.set_home(&fresh.home);
        config.home = fresh.home.clone();
    }
    let mut restart = Vec::new();
    if fresh.store != config.store {
        restart.push("the store (DEFAULT.mongo_url / mongo_database)");
    }
    if fresh.state_dir != config.state_dir {
        restart.push("folder.state");
    }
    if fresh.worker != config.worker {
        restart.push("the worker settings");
    }
    if fresh.logging != config.logging {
        restart.push("logging");
    }
    if !restart.is_empty() {
        tracing::warn!(
            "local.yaml changed {}: restart the daemon for it to take effect",
            restart.join(", ")
        );
    }
    new_home
}
