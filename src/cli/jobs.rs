//! `coco jobs [--project P] [--json]`: the applied jobs with their schedule, time zone, last
//! and next fire and the state of their latest run, with how long it has been in it (a
//! finished run: since it ended).

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use super::list::human_duration;
use super::{GlobalArgs, JsonFlag, context, output};
use crate::queue::run::RunRecord;
use crate::store::{JobRecord, RunFilter};

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only this project's jobs.
    #[arg(long, value_name = "PROJECT")]
    pub project: Option<String>,
    #[command(flatten)]
    pub flags: JsonFlag,
}

/// One job as `coco jobs` shows it.
#[derive(Debug, Serialize)]
pub struct JobLine {
    pub job: String,
    pub schedule: Option<String>,
    pub timezone: String,
    pub last_fire: Option<DateTime<Utc>>,
    pub next_fire: Option<DateTime<Utc>>,
    /// The latest run: its id and state.
    pub last_run: Option<String>,
    pub last_state: Option<String>,
    pub last_created: Option<DateTime<Utc>>,
    /// When the latest run entered its state (for a finished run: when it ended).
    pub last_changed: Option<DateTime<Utc>>,
}

pub async fn run(global: &GlobalArgs, args: &JobsArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store_to_read(&config).await?;
    let jobs = store.list_jobs(args.project.as_deref()).await?;
    let mut lines = Vec::new();
    for record in jobs.iter().filter(|record| record.active) {
        let latest = store
            .list_runs(&RunFilter {
                job: Some(record.id.clone()),
                limit: Some(1),
                ..RunFilter::default()
            })
            .await?;
        lines.push(line(record, latest.first()));
    }
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

/// The line of `record` with its latest run (pure).
pub fn line(record: &JobRecord, latest: Option<&RunRecord>) -> JobLine {
    let job = record.job().ok();
    JobLine {
        job: record.id.clone(),
        schedule: job.as_ref().and_then(|job| job.schedule.clone()),
        timezone: job.map(|job| job.timezone).unwrap_or_default(),
        last_fire: record.last_fire,
        next_fire: record.next_fire,
        last_run: latest.map(|run| run.id.clone()),
        last_state: latest.map(|run| run.state.as_str().to_owned()),
        last_created: latest.map(|run| run.created),
        last_changed: latest.map(state_since),
    }
}

/// When `run` entered its current state: its latest history entry (pure).
pub fn state_since(run: &RunRecord) -> DateTime<Utc> {
    run.history.last().map_or(run.created, |change| change.at)
}

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
