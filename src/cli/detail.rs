//! `coco detail ID`: everything about one run — its fields, the history of its states with
//! their times, and the output kept of its latest try.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use clap::Args;

use super::list::{human_duration, progress, runtime};
use super::{GlobalArgs, context, output};
use crate::store::RunRecord;

#[derive(Debug, Args)]
pub struct DetailArgs {
    /// The run's id (as `coco enqueue` and `coco list` print it, or a unique prefix of at
    /// least 4 characters).
    pub id: String,
    /// Print JSON instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &GlobalArgs, args: &DetailArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let Some(run) = context::find_run(store.as_ref(), &args.id).await? else {
        return Ok(1);
    };
    let tail = store.get_output(&run.id).await?;
    if args.json {
        output::json(&serde_json::json!({ "run": run, "output": tail }));
    } else {
        let mut text = render(&run, Utc::now());
        if let Some(tail) = tail.filter(|t| !t.is_empty()) {
            text.push_str("output (latest try, tail):\n");
            for line in tail.lines() {
                text.push_str(&format!("  {line}\n"));
            }
        }
        output::text(&text);
    }
    Ok(0)
}

/// The text form of `run` as seen at `now` (pure).
pub fn render(run: &RunRecord, now: DateTime<Utc>) -> String {
    let time = |t: Option<DateTime<Utc>>| match t {
        Some(t) => format!(
            "{} ({} ago)",
            t.to_rfc3339_opts(SecondsFormat::Millis, true),
            human_duration(now - t)
        ),
        None => "-".to_owned(),
    };
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let ms = |ms: u64| {
        human_duration(TimeDelta::milliseconds(
            i64::try_from(ms).unwrap_or(i64::MAX),
        ))
    };
    let progress = match (&run.progress, &run.progress_message) {
        (None, None) => "-".to_owned(),
        (fraction, None) => progress(*fraction),
        (fraction, Some(message)) => format!("{} {message}", progress(*fraction)),
    };
    let fields: Vec<(&str, String)> = vec![
        ("id", run.id.clone()),
        ("job", run.job.clone()),
        ("project", run.project.clone()),
        ("state", run.state.to_string()),
        ("args", run.args.to_string()),
        ("priority", run.priority.to_string()),
        ("attempt", format!("{}/{}", run.attempt, run.attempts)),
        ("max_parallel", run.max_parallel.to_string()),
        ("retry_delay", ms(run.retry_delay_ms)),
        ("timeout", or_dash(run.timeout_ms.map(ms))),
        ("force", run.force.to_string()),
        ("parent", or_dash(run.parent.clone())),
        ("restart_of", or_dash(run.restart_of.clone())),
        ("created", time(Some(run.created))),
        ("not_before", time(Some(run.not_before))),
        ("started", time(run.started)),
        ("finished", time(run.finished)),
        ("runtime", or_dash(runtime(run, now).map(human_duration))),
        ("worker", or_dash(run.worker.clone())),
        ("pid", or_dash(run.pid.map(|p| p.to_string()))),
        ("heartbeat", time(run.heartbeat)),
        ("progress", progress),
        ("exit_code", or_dash(run.exit_code.map(|c| c.to_string()))),
        ("reason", or_dash(run.reason.clone())),
        ("dedupe", run.dedupe.clone()),
    ];
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in fields {
        out.push_str(&format!("{:<width$} {value}\n", format!("{key}:")));
    }
    out.push_str("history:\n");
    for change in &run.history {
        let line = format!(
            "  {}  {:<8}  {}",
            change.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            change.state.as_str(),
            change.note.as_deref().unwrap_or("")
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::manifest::{HumanDuration, Job};
    use crate::queue::{NewRun, new_run};

    #[test]
    fn detail_shows_fields_and_history() {
        let job = Job {
            attempts: 2,
            retry_delay: HumanDuration(Duration::from_secs(30)),
            timeout: Some(HumanDuration(Duration::from_secs(120))),
            priority: 5,
            ..Job::with_command(&["true"])
        };
        let created = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let run = new_run(&job, NewRun::new("p.j", "p", json!({"n": 3}), created))
            .claimed("host-1", created + TimeDelta::seconds(2));
        let text = render(&run, created + TimeDelta::seconds(62));
        assert!(text.contains("state:        running\n"), "{text}");
        assert!(text.contains("args:         {\"n\":3}\n"), "{text}");
        assert!(text.contains("attempt:      1/2\n"), "{text}");
        assert!(text.contains("retry_delay:  30s\n"), "{text}");
        assert!(text.contains("timeout:      2m\n"), "{text}");
        assert!(
            text.contains("created:      2023-11-14T22:13:20.000Z (1m ago)\n"),
            "{text}"
        );
        assert!(text.contains("runtime:      1m\n"), "{text}");
        assert!(text.contains("worker:       host-1\n"), "{text}");
        assert!(
            text.ends_with(
                "history:\n  2023-11-14T22:13:20.000Z  pending\n  2023-11-14T22:13:22.000Z  running   attempt 1 on host-1\n"
            ),
            "{text}"
        );
    }
}
