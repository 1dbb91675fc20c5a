//! `coco halt [--wait]`: every worker and daemon started before now finishes its running
//! runs (or hands them back after its grace period) and exits. Workers started later are
//! not affected. On this host they hear it at once (a control wake-up), elsewhere within
//! about a second.

use std::time::Duration;

use chrono::Utc;
use clap::Args;

use super::{GlobalArgs, context, output};
use crate::queue;
use crate::store::MemberRecord;

/// A member silent for this long is taken as gone by `--wait` (killed without saying so).
const SILENT_AFTER: Duration = Duration::from_secs(15);

#[derive(Debug, Args)]
pub struct HaltArgs {
    /// Wait until every worker and daemon asked has stopped.
    #[arg(long)]
    pub wait: bool,
}

pub async fn run(global: &GlobalArgs, args: &HaltArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let now = Utc::now();
    store.halt(now).await?;
    queue::wake_control(&config.state_dir);
    let asked: Vec<MemberRecord> = store
        .list_members()
        .await?
        .into_iter()
        .filter(|m| m.started < now)
        .collect();
    if asked.is_empty() {
        output::text("halt recorded: no worker or daemon is running");
        return Ok(0);
    }
    let names: Vec<&str> = asked.iter().map(|m| m.name.as_str()).collect();
    output::text(&format!(
        "halt recorded: asked {} to stop: {}",
        plural(asked.len(), "worker or daemon", "workers and daemons"),
        names.join(", ")
    ));
    if !args.wait {
        return Ok(0);
    }
    loop {
        let members = store.list_members().await?;
        let left: Vec<&MemberRecord> = members
            .iter()
            .filter(|m| names.contains(&m.name.as_str()))
            .filter(|m| (Utc::now() - m.heartbeat).to_std().unwrap_or_default() < SILENT_AFTER)
            .collect();
        if left.is_empty() {
            output::text("all stopped");
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
