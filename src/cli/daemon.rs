//! `coco daemon` (watch, converge, schedule, work, serve the API) and `coco scheduler` (the
//! scheduler alone).

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
    /// Serve the HTTP API on this IP:PORT (default: api.listen from local.yaml, else
    /// 127.0.0.1:5001; `api.enabled: false` turns it off, this flag on again).
    #[arg(long, value_name = "IP:PORT", value_parser = crate::config::listen_address)]
    pub api_listen: Option<std::net::SocketAddr>,
    /// The name this host goes by in the store (default: fleet.host from local.yaml, else
    /// the hostname); hosts sharing one store need names of their own.
    #[arg(long, value_name = "NAME", value_parser = context::host_name)]
    pub host: Option<String>,
}

/// Run the daemon until SIGINT/SIGTERM or `coco halt`.
pub async fn run(global: &GlobalArgs, args: &DaemonArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    context::choose_host(&config, args.host.as_deref());
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
    // Bound before anything is said: a port taken by another daemon stops this one at once.
    let mut api_line = None;
    let api = match args.api_listen.or(config.api.listen) {
        Some(address) => match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => {
                let bound = listener.local_addr().unwrap_or(address);
                api_line = Some(format!("daemon: API on http://{bound}"));
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let serving = tokio::spawn(crate::api::serve(
                    listener,
                    Arc::clone(&store),
                    crate::api::Place {
                        state_dir: Some(config.state_dir.clone()),
                        home: Some(config.home.clone()),
                        open_metrics: config.api.open_metrics,
                    },
                    async {
                        let _ = stopped.await;
                    },
                ));
                Some((stop, serving))
            }
            Err(error) => {
                output::error(&format!(
                    "the API cannot listen on {address}: {error} (another daemon on that port? \
                     set api.listen or --api-listen, or api.enabled: false)"
                ));
                return Ok(1);
            }
        },
        None => None,
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
    if let Some(line) = api_line {
        output::text(&line);
    }
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
    .await;
    if let Some((stop, serving)) = api {
        let _ = stop.send(());
        match tokio::time::timeout(std::time::Duration::from_secs(5), serving).await {
            Ok(Ok(Err(error))) => output::warning(&format!("the API stopped with: {error}")),
            Ok(_) => {}
            Err(_) => output::warning("the API did not stop within 5s"),
        }
    }
    let stopped = stopped?;
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
