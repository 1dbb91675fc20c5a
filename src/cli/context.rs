//! What most verbs need first: the configuration, the projects of the home, the store.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;

use super::{GlobalArgs, output};
use crate::config::{self, Config, Overrides, Setting};
use crate::manifest::discover::{Discovery, discover};
use crate::reconcile::{self, Plan, Stored};
use crate::store::{self, RunRecord, Store};

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
    tracing::debug!(files = ?config.files, store = %crate::redact::redact(&format!("{:?}", config.store)), "configuration loaded");
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

/// Open the configured store (creating its schema if needed).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(store::open(&config.store).await?)
}

/// The run `id` (any case, as `coco list` prints it); `None` after printing that there is
/// none.
pub async fn find_run(store: &dyn Store, id: &str) -> anyhow::Result<Option<RunRecord>> {
    let normalized = id.trim().to_ascii_uppercase();
    let run = store.get_run(&normalized).await?;
    if run.is_none() {
        output::error(&format!(
            "no run with id `{id}` in the {} (see `coco list`)",
            store.describe()
        ));
    }
    Ok(run)
}
