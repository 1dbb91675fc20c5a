//! `coco detail ID`: everything about one run — its fields, the history of its states with
//! their times (the first and the latest entries: a line says how many were folded away
//! between them), and the output kept of its latest try.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use clap::Args;

use super::list::{human_duration, progress, runtime};
use super::{GlobalArgs, context, output};
use crate::queue::history;
use crate::queue::run::RunRecord;
use crate::views::RunDetail;

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
    let store = context::open_store_to_read(&config).await?;
    let Some(run) = context::find_run(store.as_ref(), &args.id).await? else {
        return Ok(1);
    };
    let RunDetail { run, output: tail } = RunDetail::of(store.as_ref(), run).await?;
    if args.json {
        output::json(&RunDetail { run, output: tail });
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

/// `3 times in a row` (since a time, if given), or `-` for none.
fn in_a_row(times: u32, since: Option<DateTime<Utc>>) -> String {
    match (times, since) {
        (0, _) => "-".to_owned(),
        (times, None) => format!("{times} times in a row"),
        (times, Some(since)) => format!(
            "{times} times in a row since {}",
            since.to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
    }
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
        ("defer_delay", ms(run.defer_delay_ms)),
        ("defer_max", ms(run.defer_max_ms)),
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
        ("reason", or_dash(run.reason.map(String::from))),
        ("lost", in_a_row(run.lost, None)),
        ("deferred", in_a_row(run.deferrals, run.deferred_since)),
        ("dedupe", run.dedupe.clone()),
    ];
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in fields {
        out.push_str(&format!("{:<width$} {value}\n", format!("{key}:")));
    }
    out.push_str("history:\n");
    for (index, change) in run.history.iter().enumerate() {
        if index == history::HEAD && run.history_folded > 0 {
            out.push_str(&format!(
                "  … {} more entries folded away …\n",
                run.history_folded
            ));
        }
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
        assert!(text.contains("lost:         -\n"), "{text}");
        assert!(text.contains("defer_delay:  10s\n"), "{text}");
    }

    #[test]
    fn detail_says_how_much_history_was_folded_and_where() {
        let created = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let job = Job {
            attempts: 100,
            ..Job::with_command(&["true"])
        };
        let mut run = new_run(&job, NewRun::new("p.j", "p", json!({}), created));
        for i in 0..30 {
            let at = created + TimeDelta::seconds(i);
            let claimed = run.claimed("w", at);
            let end = claimed.end(crate::queue::state::Outcome::Exited(1), Some(1), at);
            run = claimed.ended(&end);
        }
        assert_eq!(run.history_folded, 11);
        let text = render(&run, created);
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|line| *line != "history:")
            .collect();
        assert_eq!(lines.len(), 1 + history::MAX + 1, "{text}");
        assert!(lines[4].ends_with("attempt 2 on w"), "{text}");
        assert_eq!(lines[6], "  … 11 more entries folded away …", "{text}");
    }
}
