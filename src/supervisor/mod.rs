//! App servers: each app of each project is a supervised child process.
//!
//! - [`backoff`] (pure): restart policy and exponential backoff.
//! - [`health`]: `http` and `tcp` checks on 127.0.0.1.
//! - [`app`]: the task that owns one app's process.
//! - This module: the [`Supervisor`], which decides which apps this daemon runs.
//!
//! Theory of operation: on start, whenever [`Supervisor::reload`] is notified (the daemon
//! does after each apply) and every [`SYNC_EVERY`], the supervisor reads the active apps and
//! projects and the app statuses. An app this host may run (`hosts:` empty or naming it) and
//! that no live daemon holds is claimed in the store ([`crate::store::Fleet::claim_app`]); the
//! winner starts an [`app`] task for it. A holder is live while its heartbeat is younger than
//! `stale_after`, or — on this host — while its process exists, so a daemon restarted after a
//! SIGKILL takes its apps back at once. A holder's silence counts only once this daemon has
//! itself read the store without a failure for `stale_after`: after a store outage every hold
//! looks stale, and the holders renew before anyone takes over. A changed plan (definition or
//! project environment) is sent to the app's task; an app gone from its manifest (or from this
//! host's list) is stopped and released. On shutdown every app is stopped.

pub mod app;
pub mod backoff;
pub mod health;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::manifest::{App, Project, content_hash};
use crate::store::{AppState, AppStatus, Store, StoreResult};
use app::{Order, Plan, Settings};

/// The supervisor looks at the store at least this often (apps applied elsewhere, holders
/// gone silent).
pub const SYNC_EVERY: Duration = Duration::from_secs(2);

/// One app task.
struct Task {
    orders: mpsc::Sender<Order>,
    hash: String,
    handle: JoinHandle<()>,
}

/// Runs this daemon's share of the apps; see the module docs.
pub struct Supervisor {
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    reload: Arc<Notify>,
    tasks: BTreeMap<String, Task>,
    /// Since when every read of the store has been answered (`None`: the latest was not).
    /// A holder's silence counts only while this daemon could see the store: after an
    /// outage every hold looks stale, and taking them all would restart every app at once.
    reachable_since: Option<tokio::time::Instant>,
}

impl Supervisor {
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Supervisor {
        Supervisor {
            store,
            settings: Arc::new(settings),
            reload: Arc::new(Notify::new()),
            tasks: BTreeMap::new(),
            reachable_since: None,
        }
    }

    /// Notify this to make the supervisor look at the apps now.
    pub fn reload(&self) -> Arc<Notify> {
        Arc::clone(&self.reload)
    }

    /// Supervise until `shutdown` completes; then stop every app.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let began = std::time::Instant::now();
            match self.sync().await {
                Ok(()) => crate::store::outage::answered(began),
                Err(error) => {
                    self.reachable_since = None;
                    crate::store::outage::failed(&error, || {
                        tracing::warn!("cannot read the apps: {error}");
                    });
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.reload.notified() => {}
                () = tokio::time::sleep(SYNC_EVERY) => {}
            }
        }
        for (_, task) in std::mem::take(&mut self.tasks) {
            let _ = task.orders.send(Order::Stop).await;
            let _ = task.handle.await;
        }
    }

    /// Start, update and stop app tasks to match the store.
    async fn sync(&mut self) -> StoreResult<()> {
        let began = tokio::time::Instant::now();
        let projects: BTreeMap<String, Project> = self
            .store
            .list_projects()
            .await?
            .into_iter()
            .filter(|record| record.active)
            .filter_map(|record| serde_json::from_value(record.manifest).ok())
            .map(|project: Project| (project.name.clone(), project))
            .collect();
        let statuses: BTreeMap<String, AppStatus> = self
            .store
            .list_app_status()
            .await?
            .into_iter()
            .map(|status| (status.id.clone(), status))
            .collect();
        self.reachable_since.get_or_insert(began);
        let mut wanted = BTreeMap::new();
        for record in self.store.list_apps(None).await? {
            if !record.active {
                continue;
            }
            let Some(project) = projects.get(&record.project) else {
                continue;
            };
            let Ok(app) = serde_json::from_value::<App>(record.definition.clone()) else {
                tracing::warn!(app = %record.id, "stored definition unreadable");
                continue;
            };
            if !app.hosts.is_empty() && !app.hosts.contains(&self.settings.host) {
                continue;
            }
            wanted.insert(record.id.clone(), plan(&record.id, project, app));
        }

        // Tasks that ended (the app was taken over) or are no longer wanted.
        let ended: Vec<String> = self
            .tasks
            .iter()
            .filter(|(id, task)| task.handle.is_finished() || !wanted.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            if let Some(task) = self.tasks.remove(&id) {
                if !task.handle.is_finished() {
                    tracing::info!(app = %id, "app removed: stopping it");
                }
                let _ = task.orders.send(Order::Stop).await;
                let _ = task.handle.await;
            }
        }

        for (id, plan) in wanted {
            if let Some(task) = self.tasks.get_mut(&id) {
                if task.hash != plan.hash {
                    task.hash = plan.hash.clone();
                    let _ = task.orders.send(Order::Run(Box::new(plan))).await;
                }
                continue;
            }
            let Some(stale_before) = self.may_take(statuses.get(&id)) else {
                continue;
            };
            let Some(token) = self.claim(&plan, stale_before).await? else {
                continue;
            };
            let (orders, receiver) = mpsc::channel(8);
            let hash = plan.hash.clone();
            let span = tracing::info_span!("app", app = %id);
            let handle = tokio::spawn(
                app::supervise(
                    Arc::clone(&self.store),
                    Arc::clone(&self.settings),
                    plan,
                    token,
                    receiver,
                )
                .instrument(span),
            );
            self.tasks.insert(
                id,
                Task {
                    orders,
                    hash,
                    handle,
                },
            );
        }
        Ok(())
    }

    /// May this daemon take an app held as `status` says? If so, the `stale_before` of its
    /// claim: the holder it saw may be replaced only if it has not renewed since (another
    /// daemon that took the app meanwhile is left alone).
    fn may_take(&self, status: Option<&AppStatus>) -> Option<DateTime<Utc>> {
        let Some(status) = status else {
            // Free when read: take it only if still free (no holder is ever stale to it).
            return Some(DateTime::<Utc>::MIN_UTC);
        };
        let silent = Utc::now() - status.heartbeat;
        let stale_after = self.settings.stale_after;
        // Silent for the lease while this daemon saw the store all along: not an outage
        // that kept the holder from renewing too.
        let seen_silent = self
            .reachable_since
            .is_some_and(|since| since.elapsed() >= stale_after);
        let replaceable = status.owner == self.settings.owner
            || (seen_silent && silent > TimeDelta::from_std(stale_after).unwrap_or(TimeDelta::MAX))
            || (status.host == self.settings.host && !process_exists(status.owner_pid));
        replaceable.then(|| status.heartbeat + TimeDelta::milliseconds(1))
    }

    /// Record this daemon as the app's holder: its fencing token, or `None` if another
    /// daemon was faster.
    async fn claim(&self, plan: &Plan, stale_before: DateTime<Utc>) -> StoreResult<Option<u64>> {
        let now = Utc::now();
        let status = AppStatus {
            id: plan.id.clone(),
            owner: self.settings.owner.clone(),
            host: self.settings.host.clone(),
            owner_pid: self.settings.owner_pid,
            state: AppState::Starting,
            hash: plan.hash.clone(),
            pid: None,
            started: None,
            restarts: 0,
            health: None,
            healthy: None,
            checked: None,
            heartbeat: now,
            token: 0,
        };
        self.store.claim_app(&status, stale_before).await
    }
}

/// The plan of app `id` of `project`.
pub fn plan(id: &str, project: &Project, app: App) -> Plan {
    let mut spec = crate::project_env::spec(project, app.command.clone());
    spec.env.extend(app.env.clone());
    let (project_name, app_name) = id.split_once('.').unwrap_or((id, ""));
    spec = spec
        .env("COCO_PROJECT", project_name)
        .env("COCO_APP", app_name);
    if let Some(port) = app.port {
        spec.env.entry("PORT".into()).or_insert(port.to_string());
    }
    let hash = content_hash(&(&app, &project.dir, &project.environment));
    Plan {
        id: id.to_owned(),
        app,
        spec,
        hash,
    }
}

/// Does a process with this pid exist on this host?
fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
