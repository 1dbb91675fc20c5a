//! `coco apps [--json]`: every applied app with its state, host, pid, uptime, restarts and
//! latest health check, as the daemon running it reports them.

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;

use super::list::human_duration;
use super::{GlobalArgs, JsonFlag, context, output};
pub use crate::views::AppLine;
use crate::views::app_lines;

/// A status older than this says its daemon is probably gone.
const LOST_AFTER: TimeDelta = TimeDelta::seconds(10);

#[derive(Debug, Args)]
pub struct AppsArgs {
    #[command(flatten)]
    pub flags: JsonFlag,
}

pub async fn run(global: &GlobalArgs, args: &AppsArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store_to_read(&config).await?;
    let lines = app_lines(store.as_ref(), None).await?;
    if args.flags.json {
        output::json(&lines);
    } else if lines.is_empty() {
        output::text("No applied apps.");
    } else {
        let now = Utc::now();
        let rows: Vec<Vec<String>> = lines.iter().map(|line| row(line, now)).collect();
        output::table(HEADER, &rows);
    }
    Ok(0)
}

/// The columns of [`row`].
pub const HEADER: &[&str] = &[
    "APP", "STATE", "HOST", "PID", "UPTIME", "RESTARTS", "HEALTH",
];

/// One table row (pure).
pub fn row(line: &AppLine, now: DateTime<Utc>) -> Vec<String> {
    let Some(status) = &line.status else {
        return vec![
            line.app.clone(),
            "not running (no daemon holds it)".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    };
    let state = if now - status.heartbeat > LOST_AFTER {
        format!("{}, lost? (daemon silent)", status.state)
    } else {
        status.state.to_string()
    };
    let health = match (&status.health, status.checked) {
        (Some(text), Some(at)) => format!("{text} ({} ago)", human_duration(now - at)),
        (Some(text), None) => text.clone(),
        _ => "-".into(),
    };
    vec![
        line.app.clone(),
        state,
        status.host.clone(),
        status.pid.map_or("-".into(), |pid| pid.to_string()),
        status
            .started
            .map_or("-".into(), |started| human_duration(now - started)),
        status.restarts.to_string(),
        health,
    ]
}
