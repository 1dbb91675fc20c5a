//! What most verbs need first: the configuration, the projects of the home, the store; and
//! what the long-running verbs (`worker`, `daemon`, `scheduler`) share: the worker's
//! settings, the process guard, the name, the stop signal, the log shipped to the store.

use std::sync::Arc;

use chrono::Utc;

use super::{GlobalArgs, output};
use crate::config::{self, Config, Overrides, Setting};
use crate::manifest::discover::{Discovery, discover};
use crate::process::guard::{Guard, StartError};
use crate::queue::run::RunRecord;
use crate::reconcile::{Plan, Stored};
use crate::store::run_id;
use crate::store::{self, Store};
use crate::worker::WorkerSettings;
use crate::worker::load::Limits;

impl GlobalArgs {
    /// The command-line overrides of the configuration.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            home: self.home.clone(),
            state: self.state.clone(),
            mongo_url: self.mongo_url.clone(),
            mongo_database: self.mongo_database.clone(),
        }
    }
}

/// Load the configuration (files, COCO_* variables, flags) and start logging as it says.
pub(crate) fn load_config(global: &GlobalArgs) -> anyhow::Result<(Config, Vec<Setting>)> {
    let (config, settings) = config::load_from_process(&global.overrides())?;
    crate::logging::init(&config.logging);
    let files: Vec<String> = config
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let store = match &config.store {
        store::StoreLocation::Embedded { path } => format!("embedded {}", path.display()),
        store::StoreLocation::Mongo { url, database } => {
            format!("mongodb {} database {database}", crate::redact::redact(url))
        }
    };
    tracing::debug!(files = %files.join(", "), %store, "configuration loaded");
    Ok((config, settings))
}

/// `--host NAME` as clap reads it: a name [`crate::host::name_problem`] finds nothing wrong
/// with.
pub(crate) fn host_name(text: &str) -> Result<String, String> {
    match crate::host::name_problem(text) {
        None => Ok(text.to_owned()),
        Some(problem) => Err(problem),
    }
}

/// This process goes by `flag` (`--host`), else `fleet.host`, else its hostname: chosen
/// before anything names the host (members, app owners, log records).
pub(crate) fn choose_host(config: &Config, flag: Option<&str>) {
    if let Some(name) = flag.or(config.host.as_deref()) {
        crate::host::choose(name);
    }
}

/// Discover and validate the projects of the configured home.
pub(crate) fn discover_home(config: &Config) -> anyhow::Result<Discovery> {
    Ok(discover(&config.home)?)
}

/// The plan from the store's state to the home's projects (the stored state of invalid
/// projects is kept as it is), and that stored state.
pub(crate) async fn plan_home(
    discovery: &Discovery,
    store: &dyn Store,
) -> anyhow::Result<(Plan, Stored)> {
    Ok(crate::views::plan::plan_home(discovery, store, Utc::now()).await?)
}

/// Open the configured store (creating its schema if needed) for a command that writes.
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(store::open(&config.store).await?)
}

/// Open the configured store for a command that only reads: it creates, initialises and
/// migrates nothing (see [`store::open_to_read`]).
pub(crate) async fn open_store_to_read(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(store::open_to_read(&config.store).await?)
}

/// What a command does with the store, for helpers that verbs of both kinds share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Only reads: [`open_store_to_read`].
    Read,
    /// Writes: [`open_store`].
    Write,
}

/// Open the configured store for `access`.
pub(crate) async fn open_store_for(
    config: &Config,
    access: Access,
) -> anyhow::Result<Arc<dyn Store>> {
    match access {
        Access::Read => open_store_to_read(config).await,
        Access::Write => open_store(config).await,
    }
}

/// The run `typed` names (its id or a unique prefix of it, any case: see
/// [`crate::store::run_id`]); `None` after printing why there is none.
pub(crate) async fn find_run(store: &dyn Store, typed: &str) -> anyhow::Result<Option<RunRecord>> {
    let Some(id) = find_run_id(store, typed).await? else {
        return Ok(None);
    };
    let run = store.get_run(&id).await?;
    if run.is_none() {
        output::error(&format!("run {id} disappeared meanwhile"));
    }
    Ok(run)
}

/// The whole id of the run `typed` names; `None` after printing why there is none.
pub(crate) async fn find_run_id(store: &dyn Store, typed: &str) -> anyhow::Result<Option<String>> {
    match run_id::resolve(store, typed).await? {
        Ok(id) => Ok(Some(id)),
        Err(problem @ run_id::RunIdProblem::Unknown { .. }) => {
            output::error(&format!(
                "{problem} in the {} (see `coco list`)",
                store.describe()
            ));
            Ok(None)
        }
        Err(problem) => {
            output::error(&problem.to_string());
            Ok(None)
        }
    }
}

/// The worker settings local.yaml gives, with `slots` (a flag) winning over `worker.slots`.
pub fn worker_settings(config: &Config, slots: Option<u32>) -> WorkerSettings {
    let mut settings = WorkerSettings {
        wake_dir: Some(crate::wake::dir(&config.state_dir)),
        heartbeat_every: config.fleet.renew_every,
        lease: config.fleet.lease,
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
pub(crate) fn start_guard(config: &Config) -> anyhow::Result<Option<Guard>> {
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
pub(crate) fn default_name() -> String {
    format!("{}-{}", crate::host::name(), std::process::id())
}

/// Completes on the first SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
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

/// Keep this process's log records in the store too (`logging.mongodb`, `coco log`).
pub(crate) fn ship_log(store: &Arc<dyn Store>, name: &str) {
    crate::logging::store::ship_to_store(store.clone(), name, &crate::host::name());
}
