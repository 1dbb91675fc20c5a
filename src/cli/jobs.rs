//! `coco jobs [--project P] [--json]`: the applied jobs with their schedule, time zone, last
//! and next fire and the state of their latest run, with how long it has been in it (a
//! finished run: since it ended).

use chrono::{DateTime, Utc};
use clap::Args;

use super::list::human_duration;
use super::{GlobalArgs, JsonFlag, context, output};
pub use crate::views::JobLine;
use crate::views::job_lines;

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only this project's jobs.
    #[arg(long, value_name = "PROJECT")]
    pub project: Option<String>,
    #[command(flatten)]
    pub flags: JsonFlag,
}

pub async fn run(global: &GlobalArgs, args: &JobsArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store_to_read(&config).await?;
    let lines = job_lines(store.as_ref(), args.project.as_deref()).await?;
    if args.flags.json {
        output::json(&lines);
    } else if lines.is_empty() {
        output::text("No applied jobs (see `coco apply`, or run `coco daemon`).");
    } else {
        let now = Utc::now();
        let rows: Vec<Vec<String>> = lines.iter().map(|line| row(line, now)).collect();
        output::table(HEADER, &rows);
    }
    Ok(0)
}

/// The columns of [`row`].
pub const HEADER: &[&str] = &[
    "JOB",
    "SCHEDULE",
    "TZ",
    "LAST FIRE",
    "NEXT FIRE",
    "LAST RUN",
];

/// One table row (pure): times relative to `now`.
pub fn row(line: &JobLine, now: DateTime<Utc>) -> Vec<String> {
    let ago = |t: Option<DateTime<Utc>>| {
        t.map_or("-".to_owned(), |t| {
            format!("{} ago", human_duration(now - t))
        })
    };
    let next = line.next_fire.map_or("-".to_owned(), |t| {
        if t >= now {
            format!("in {}", human_duration(t - now))
        } else {
            format!("due {} ago", human_duration(now - t))
        }
    });
    let last_run = match (&line.last_state, line.last_changed.or(line.last_created)) {
        (Some(state), Some(since)) => format!("{state} ({} ago)", human_duration(now - since)),
        _ => "-".to_owned(),
    };
    vec![
        line.job.clone(),
        line.schedule.clone().unwrap_or_else(|| "-".to_owned()),
        line.timezone.clone(),
        ago(line.last_fire),
        next,
        last_run,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Job;
    use crate::queue::state::Outcome;
    use crate::queue::{NewRun, new_run};
    use crate::store::JobRecord;
    use crate::views::job_line as line;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_scheduled_job_shows_its_fires_relative_to_now() {
        let job = Job {
            schedule: Some("*/5 * * * *".into()),
            timezone: "Europe/Berlin".into(),
            ..Job::with_command(&["true"])
        };
        let record = JobRecord {
            id: "p.j".into(),
            project: "p".into(),
            name: "j".into(),
            definition: serde_json::to_value(&job).unwrap(),
            hash: "h".into(),
            active: true,
            next_fire: Some(at(120)),
            last_fire: Some(at(-180)),
            updated_at: at(-600),
        };
        let line = line(&record, None);
        assert_eq!(
            row(&line, at(0)),
            [
                "p.j",
                "*/5 * * * *",
                "Europe/Berlin",
                "3m ago",
                "in 2m",
                "-"
            ]
        );
    }

    #[test]
    fn the_latest_run_shows_how_long_ago_it_ended() {
        let job = Job::with_command(&["true"]);
        let record = JobRecord {
            id: "p.j".into(),
            project: "p".into(),
            name: "j".into(),
            definition: serde_json::to_value(&job).unwrap(),
            hash: "h".into(),
            active: true,
            next_fire: None,
            last_fire: None,
            updated_at: at(-600),
        };
        let run = new_run(
            &job,
            NewRun::new("p.j", "p", serde_json::json!({}), at(-44)),
        )
        .claimed("w", at(-43));
        assert_eq!(
            row(&line(&record, Some(&run)), at(0))[5],
            "running (43s ago)"
        );
        let end = run.end(Outcome::Exited(0), Some(0), at(-1));
        let done = run.ended(&end);
        assert_eq!(
            row(&line(&record, Some(&done)), at(0))[5],
            "complete (1s ago)"
        );
    }
}
