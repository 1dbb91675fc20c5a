//! What most verbs need first: the configuration, the projects of the home, the store.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;

use super::{GlobalArgs, output, run_id};
use crate::config::{self, Config, Overrides, Setting};
use crate::manifest::discover::{Discovery, discover};
use crate::queue::run::RunRecord;
use crate::reconcile::{self, Plan, Stored};
use crate::store::{self, Store};

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
pub fn load_config(global: &GlobalArgs) -> anyhow::Result<(Config, Vec<Setting>)> {
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

/// Discover and validate the projects of the configured home.
pub fn discover_home(config: &Config) -> anyhow::Result<Discovery> {
    Ok(discover(&config.home)?)
}

/// The plan from the store's state to the home's projects (the stored state of invalid
/// projects is kept as it is), and that stored state.
pub async fn plan_home(discovery: &Discovery, store: &dyn Store) -> anyhow::Result<(Plan, Stored)> {
    let stored = reconcile::load_stored(store).await?;
    let invalid: BTreeSet<PathBuf> = discovery.invalid.keys().cloned().collect();
    let plan = reconcile::diff(&discovery.projects, &stored, &invalid, Utc::now());
    Ok((plan, stored))
}

/// Open the configured store (creating its schema if needed) for a command that writes.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(store::open(&config.store).await?)
}

/// Open the configured store for a command that only reads: it creates, initialises and
/// migrates nothing (see [`store::open_to_read`]).
pub async fn open_store_to_read(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(store::open_to_read(&config.store).await?)
}

/// What a command does with the store, for helpers that verbs of both kinds share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads: [`open_store_to_read`].
    Read,
    /// Writes: [`open_store`].
    Write,
}

/// Open the configured store for `access`.
pub async fn open_store_for(config: &Config, access: Access) -> anyhow::Result<Arc<dyn Store>> {
    match access {
        Access::Read => open_store_to_read(config).await,
        Access::Write => open_store(config).await,
    }
}

/// The run `typed` names (its id or a unique prefix of it, any case: see
/// [`super::run_id`]); `None` after printing why there is none.
pub async fn find_run(store: &dyn Store, typed: &str) -> anyhow::Result<Option<RunRecord>> {
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
pub async fn find_run_id(store: &dyn Store, typed: &str) -> anyhow::Result<Option<String>> {
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
