//! `coco worker`: claim and run queued runs in the foreground until SIGINT or SIGTERM.

use std::sync::Arc;

use clap::Args;

use super::{GlobalArgs, context, output};
use crate::worker::{Worker, WorkerSettings, wake};

/// Arguments of `coco worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Runs at once (default: worker.slots from local.yaml, else the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: Option<u32>,
    /// Name of this worker in the store (default: HOST-PID).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// Run a worker until SIGINT/SIGTERM; running runs get a grace period, then are handed back.
pub async fn run(global: &GlobalArgs, args: &WorkerArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let mut settings = WorkerSettings {
        wake_dir: Some(wake::dir(&config.state_dir)),
        ..WorkerSettings::default()
    };
    if let Some(slots) = args.slots.or(config.worker.slots) {
        settings.slots = usize::try_from(slots).unwrap_or(1).max(1);
    }
    let name = args.name.clone().unwrap_or_else(default_name);
    output::text(&format!(
        "worker {name}: {} slot{} on {} (stop with Ctrl-C)",
        settings.slots,
        if settings.slots == 1 { "" } else { "s" },
        store.describe()
    ));
    let worker = Worker::new(name.clone(), Arc::clone(&store), settings);
    let summary = worker.run(shutdown_signal()).await;
    output::text(&format!(
        "worker {name} stopped: {} claimed, {} finished, {} handed back",
        summary.claimed, summary.finished, summary.handed_back
    ));
    Ok(0)
}

/// `HOST-PID`.
fn default_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_string()
    };
    format!("{host}-{}", std::process::id())
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
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
