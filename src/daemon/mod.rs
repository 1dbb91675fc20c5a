//! `coco daemon`: the process that makes "edit YAML and save" a deploy.
//!
//! One process per host runs, as tokio tasks:
//!
//! - the converger (this module's loop): a `converge` pass at start, then one per debounced
//!   file change (`watch`): manifests, project folders created or deleted, local.yaml;
//! - the [`Scheduler`], told to re-read the jobs after every pass that changed something;
//! - a [`Worker`] (the queue's, with its process guard);
//! - the app [`Supervisor`], told to look at the apps after every pass that changed something.
//!
//! Theory of operation: every part stops when the shared stop signal flips — on SIGINT or
//! SIGTERM, on `coco halt` (read from the store every `daemon.control_every`, and seen by the
//! worker itself), or when the worker ends for any reason. The worker then hands back or
//! finishes its runs within its grace period. Nothing is kept only in memory: a daemon killed
//! with SIGKILL is restarted and converges from the files and the store.
//!
//! A change of local.yaml is read again: a new `folder.home` is watched and converged at once;
//! what cannot change under a running daemon (the store, the state folder, the worker's
//! settings, the `daemon` timings) is reported as needing a restart.

pub(crate) mod converge;
pub mod error;
pub(crate) mod watch;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch as signal;

use error::ConvergeError;
pub use error::DaemonError;

use crate::config::{Config, Overrides};
use crate::process::guard;
use crate::scheduler::{Scheduler, SchedulerSettings};
use crate::store::Fleet;
use crate::store::{MemberKind, MemberRecord, Problems, Store};
use crate::supervisor::{Supervisor, app};
use crate::worker::{Summary, Worker, WorkerSettings};

/// Log records older than this are deleted from the store (`coco log`)...
pub const LOG_KEEP: chrono::TimeDelta = chrono::TimeDelta::days(30);
/// ... and settled schedule fires of instants older than this, at start-up and every
/// `daemon.prune_every` ([`crate::config::DaemonConfig`]).
pub const FIRES_KEEP: chrono::TimeDelta = chrono::TimeDelta::days(7);

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
    /// When the daemon said it started: a `coco halt` made after that stops it.
    pub started: chrono::DateTime<Utc>,
}

/// Why the daemon stopped, and what its parts did.
#[derive(Debug, Default)]
pub struct Stopped {
    pub halted: bool,
    pub passes: usize,
    pub worker: Option<Summary>,
}

/// Run the daemon until `shutdown` completes or a halt says so: converge the home, start the
/// parts, serve until a stop, then stop the parts and clear this daemon's traces.
pub async fn run(
    setup: DaemonSetup,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Stopped, DaemonError> {
    let DaemonSetup {
        config,
        overrides,
        config_files,
        store,
        parts,
        name,
        worker: mut worker_settings,
        guard,
        started,
    } = setup;
    worker_settings.run.guard = guard.clone();
    worker_settings.kind = MemberKind::Daemon;
    let mut daemon = Daemon {
        started,
        watch: watch::Watch::new(&config.home, &config_files).map_err(|source| {
            DaemonError::Watch {
                home: config.home.clone(),
                source,
            }
        })?,
        converger: converge::Converger::new(&config.home),
        config,
        overrides,
        store,
        name,
        outcome: Stopped::default(),
    };
    pass(
        &mut daemon.converger,
        None,
        daemon.store.as_ref(),
        &daemon.name,
        &mut daemon.outcome,
    )
    .await;
    let (stop_tx, stop_rx) = signal::channel(false);
    let mut running = daemon.start(parts, worker_settings, guard, &stop_rx);
    daemon.serve(&mut running, shutdown).await;
    tracing::info!(halted = daemon.outcome.halted, "daemon stopping");
    let _ = stop_tx.send(true);
    running.join(&mut daemon.outcome).await;
    daemon.leave().await;
    Ok(daemon.outcome)
}

/// What the converger loop works with.
struct Daemon {
    started: chrono::DateTime<Utc>,
    config: Config,
    overrides: Overrides,
    watch: watch::Watch,
    converger: converge::Converger,
    store: Arc<dyn Store>,
    name: String,
    outcome: Stopped,
}

/// The tasks of the parts that run, and how to tell them the applied state changed.
struct Running {
    worker: Option<tokio::task::JoinHandle<Summary>>,
    scheduler: Option<tokio::task::JoinHandle<crate::scheduler::FireCounts>>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    reloads: Vec<Arc<tokio::sync::Notify>>,
}

/// A future that completes when the stop signal `stop` flips.
fn stopped(stop: &signal::Receiver<bool>) -> impl std::future::Future<Output = ()> + use<> {
    let mut stop = stop.clone();
    async move {
        let _ = stop.wait_for(|stop| *stop).await;
    }
}

impl Daemon {
    /// Start the scheduler, the worker and the app supervisor as `parts` says, each stopping
    /// when `stop` flips.
    fn start(
        &self,
        parts: Parts,
        worker_settings: WorkerSettings,
        guard: Option<guard::Handle>,
        stop: &signal::Receiver<bool>,
    ) -> Running {
        let store = &self.store;
        let timings = &self.config.daemon;
        let mut reloads = Vec::new();
        let scheduler = parts.scheduler.then(|| {
            let scheduler = Scheduler::new(
                Arc::clone(store),
                SchedulerSettings {
                    state_dir: Some(self.config.state_dir.clone()),
                    ..SchedulerSettings::default()
                },
            );
            reloads.push(scheduler.reload());
            tokio::spawn(scheduler.run(stopped(stop)))
        });
        let tail_bytes = worker_settings.run.tail_bytes;
        let worker = parts.worker.then(|| {
            let worker = Worker::new(self.name.clone(), Arc::clone(store), worker_settings);
            tokio::spawn(worker.run(stopped(stop)))
        });
        let supervisor = parts.apps.then(|| {
            let supervisor = Supervisor::new(
                Arc::clone(store),
                app::Settings {
                    owner: self.name.clone(),
                    host: crate::host::name(),
                    owner_pid: std::process::id(),
                    status_every: timings.app_status_every,
                    stale_after: timings.app_stale_after,
                    grace: timings.app_grace,
                    output_every: timings.app_output_every,
                    tail_bytes,
                    guard,
                },
            );
            reloads.push(supervisor.reload());
            tokio::spawn(supervisor.run(stopped(stop)))
        });
        tracing::info!(
            home = %self.config.home.display(),
            store = %store.describe(),
            worker = parts.worker,
            scheduler = parts.scheduler,
            apps = parts.apps,
            "daemon started"
        );
        Running {
            worker,
            scheduler,
            supervisor,
            reloads,
        }
    }

    /// Converge on every change, read the halt switch and prune, until `shutdown`, a halt,
    /// the worker's end or the watcher's.
    async fn serve(
        &mut self,
        running: &mut Running,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut control = tokio::time::interval(self.config.daemon.control_every);
        let mut prune = tokio::time::interval(self.config.daemon.prune_every);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                summary = async { running.worker.as_mut().expect("guarded").await }, if running.worker.is_some() => {
                    running.worker = None;
                    match summary {
                        Ok(summary) => {
                            self.outcome.halted |= summary.halted;
                            self.outcome.worker = Some(summary);
                        }
                        Err(error) => tracing::error!("the worker task failed: {error}"),
                    }
                    break;
                }
                _ = control.tick() => {
                    if self.halted(running.worker.is_none()).await {
                        self.outcome.halted = true;
                        break;
                    }
                }
                _ = prune.tick() => housekeeping(self.store.as_ref()).await,
                change = self.watch.next_change() => {
                    let Some(change) = change else {
                        tracing::error!("the file watcher stopped; restart the daemon");
                        break;
                    };
                    if self.converge(change).await {
                        for reload in &running.reloads {
                            reload.notify_one();
                        }
                    }
                }
            }
        }
    }

    /// Whether `coco halt` says to stop; `announce_self`: record this daemon first (one without a
    /// worker, which would record itself).
    async fn halted(&self, announce_self: bool) -> bool {
        if announce_self {
            announce(
                self.store.as_ref(),
                &self.name,
                self.started,
                self.config.fleet.lease,
            )
            .await;
        }
        let began = std::time::Instant::now();
        match self.store.control().await {
            Ok(control) => {
                crate::store::outage::answered(began);
                control.halts(self.started)
            }
            Err(error) => {
                crate::store::outage::failed(&error, || {
                    tracing::warn!("cannot read the halt switch: {error}")
                });
                false
            }
        }
    }

    /// Converge after `change` (local.yaml read again first if it changed); true if the
    /// store changed.
    async fn converge(&mut self, change: watch::Changed) -> bool {
        let mut everything = change.folders;
        if change.config && reread_config(&mut self.config, &self.overrides, &mut self.watch) {
            self.converger.set_home(&self.config.home);
            everything = true;
        }
        let only = (!everything).then_some(&change.projects);
        if only.is_some_and(BTreeSet::is_empty) {
            return false;
        }
        pass(
            &mut self.converger,
            only,
            self.store.as_ref(),
            &self.name,
            &mut self.outcome,
        )
        .await
    }

    /// Remove this daemon's member record and clear its manifest problems.
    async fn leave(&self) {
        let _ = self.store.remove_member(&self.name).await;
        let cleared = Problems {
            source: self.name.clone(),
            at: Utc::now(),
            problems: Vec::new(),
        };
        if let Err(error) = self.store.put_problems(&cleared).await {
            tracing::warn!("cannot clear this daemon's manifest problems: {error}");
        }
    }
}

impl Running {
    /// Wait for every part to stop (the stop signal has flipped); the worker's summary goes
    /// into `outcome`.
    async fn join(self, outcome: &mut Stopped) {
        if let Some(worker) = self.worker {
            match worker.await {
                Ok(summary) => outcome.worker = Some(summary),
                Err(error) => tracing::error!("the worker task failed: {error}"),
            }
        }
        if let Some(scheduler) = self.scheduler {
            let _ = scheduler.await;
        }
        if let Some(supervisor) = self.supervisor {
            let _ = supervisor.await;
        }
    }
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
        Err(error) => {
            crate::store::outage::failed(&error, || tracing::warn!("cannot prune the log: {error}"))
        }
    }
    match store.prune_fires(now - FIRES_KEEP).await {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!("deleted {pruned} settled fires"),
        Err(error) => crate::store::outage::failed(&error, || {
            tracing::warn!("cannot prune the schedule fires: {error}")
        }),
    }
}

/// Record this daemon (one without a worker) for `coco alive` and `coco halt --wait`.
async fn announce(
    store: &dyn Fleet,
    name: &str,
    started: chrono::DateTime<Utc>,
    lease: std::time::Duration,
) {
    let member = MemberRecord {
        name: name.to_owned(),
        kind: MemberKind::Daemon,
        host: crate::host::name(),
        pid: std::process::id(),
        started,
        heartbeat: Utc::now(),
        slots: 0,
        running: Vec::new(),
        holding: None,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
        apps: Vec::new(),
    };
    if let Err(error) = store.put_member(&member).await {
        crate::store::outage::failed(&error, || {
            tracing::warn!("recording this daemon in the store: {error}")
        });
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
    crate::metrics::reconciled(started.elapsed());
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
            let took = crate::fields::duration(started.elapsed());
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
            tracing::error!("cannot converge: {}", error::with_causes(&error));
            // A home that is missing (or no folder) is the operator's to fix: `coco status`
            // shows it with the manifest problems until a pass succeeds.
            if let ConvergeError::Home(home) = &error {
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
    if fresh.daemon != config.daemon {
        restart.push("the daemon settings");
    }
    if fresh.logging != config.logging {
        restart.push("logging");
    }
    if fresh.api != config.api {
        restart.push("the API settings (api.*)");
    }
    if !restart.is_empty() {
        tracing::warn!(
            "local.yaml changed {}: restart the daemon for it to take effect",
            restart.join(", ")
        );
    }
    new_home
}
