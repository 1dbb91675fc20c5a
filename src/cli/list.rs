//! `coco list [STATE]`: runs, newest first, as a table (id, job, state, progress, attempts, age,
//! runtime, worker) or as JSON. `failed` lists every run whose latest try failed: those
//! waiting for a retry (`failed`) and those out of attempts (`error`) — see
//! [`listed_states`].

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;

use super::{GlobalArgs, context, output};
use crate::queue::run::RunRecord;
use crate::queue::state::RunState;
use crate::store::RunFilter;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs in this state: pending, running, complete, deferred, killed, removed,
    /// error (failed, no attempts left), or failed (every failed run: waiting for a retry,
    /// and error).
    /// (`--state NAME` after `list` works too; elsewhere `--state` names the state folder.)
    #[arg(value_name = "STATE", value_parser = parse_state)]
    pub run_state: Option<RunState>,
    /// Only runs of this project.
    #[arg(long, value_name = "PROJECT")]
    pub project: Option<String>,
    /// Only runs of this job (`project.job`).
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// At most this many runs (the newest).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Print JSON instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

fn parse_state(text: &str) -> Result<RunState, String> {
    RunState::parse(&text.to_ascii_lowercase()).ok_or_else(|| {
        let names: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state `{text}` (one of {})", names.join(", "))
    })
}

pub async fn run(global: &GlobalArgs, args: &ListArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store_to_read(&config).await?;
    let mut runs = Vec::new();
    for state in args.run_state.map_or_else(|| vec![None], listed_states) {
        let filter = RunFilter {
            state,
            project: args.project.clone(),
            job: args.job.clone(),
            limit: args.limit,
            before: None,
        };
        runs.extend(store.list_runs(&filter).await?);
    }
    let runs = newest_first(runs, args.limit);
    if args.json {
        output::json(&runs);
    } else if runs.is_empty() {
        output::text(&nothing_listed(args.run_state));
    } else {
        let now = Utc::now();
        let rows: Vec<Vec<String>> = runs.iter().map(|run| row(run, now)).collect();
        output::table(
            &[
                "ID", "JOB", "STATE", "PROGRESS", "ATTEMPTS", "AGE", "RUNTIME", "WORKER",
            ],
            &rows,
        );
    }
    Ok(0)
}

/// The states `coco list STATE` shows (pure): `failed` means every run whose latest try
/// failed, so it takes in `error` (failed with no attempts left); any other state only
/// itself.
pub fn listed_states(state: RunState) -> Vec<Option<RunState>> {
    match state {
        RunState::Failed => vec![Some(RunState::Failed), Some(RunState::Error)],
        state => vec![Some(state)],
    }
}

/// `runs` (listed state by state) newest first, at most `limit` of them (pure).
pub fn newest_first(mut runs: Vec<RunRecord>, limit: Option<usize>) -> Vec<RunRecord> {
    runs.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
    if let Some(limit) = limit {
        runs.truncate(limit);
    }
    runs
}

/// What `coco list STATE` prints when no run is in `state` (pure).
pub fn nothing_listed(state: Option<RunState>) -> String {
    let Some(state) = state else {
        return "No runs.".to_owned();
    };
    let names: Vec<&str> = listed_states(state)
        .into_iter()
        .flatten()
        .map(RunState::as_str)
        .collect();
    format!("No runs in state {}.", names.join(" or "))
}

/// One table row of `run` as seen at `now` (pure).
pub fn row(run: &RunRecord, now: DateTime<Utc>) -> Vec<String> {
    vec![
        run.id.clone(),
        run.job.clone(),
        run.state.to_string(),
        progress(run.progress),
        format!("{}/{}", run.attempt, run.attempts),
        human_duration(now - run.created),
        runtime(run, now).map_or_else(|| "-".to_owned(), human_duration),
        run.worker.clone().unwrap_or_else(|| "-".to_owned()),
    ]
}

/// `42%`, or `-` without progress.
pub fn progress(fraction: Option<f64>) -> String {
    match fraction {
        Some(fraction) => format!("{:.0}%", (fraction * 100.0).clamp(0.0, 100.0).floor()),
        None => "-".to_owned(),
    }
}

/// How long the latest try ran (still running: until `now`); `None` before the first try.
pub fn runtime(run: &RunRecord, now: DateTime<Utc>) -> Option<TimeDelta> {
    let started = run.started?;
    let end = match (run.state, run.finished) {
        (RunState::Running, _) | (_, None) => now,
        (_, Some(finished)) => finished,
    };
    Some(end - started)
}

/// A duration in its largest whole unit: `3s`, `2m`, `1h`, `4d` (negative is `0s`); under a
/// minute below 10 s keeps a tenth (`1.5s`) when it has one, and under a second it is `ms`.
pub fn human_duration(delta: TimeDelta) -> String {
    let ms = delta.num_milliseconds().max(0);
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..10_000 if ms % 1_000 >= 100 => format!("{:.1}s", (ms / 100) as f64 / 10.0),
        1_000..60_000 => format!("{}s", ms / 1_000),
        60_000..3_600_000 => format!("{}m", ms / 60_000),
        3_600_000..86_400_000 => format!("{}h", ms / 3_600_000),
        _ => format!("{}d", ms / 86_400_000),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::manifest::{HumanDuration, Job};
    use crate::queue::{NewRun, new_run};

    #[test]
    fn durations_are_short_and_human() {
        let d = |ms| human_duration(TimeDelta::milliseconds(ms));
        assert_eq!(d(-5), "0ms");
        assert_eq!(d(250), "250ms");
        assert_eq!(d(1_500), "1.5s");
        assert_eq!(d(3_000), "3s");
        assert_eq!(d(3_040), "3s");
        assert_eq!(d(59_999), "59s");
        assert_eq!(d(120_000), "2m");
        assert_eq!(d(3_599_000), "59m");
        assert_eq!(d(3_600_000), "1h");
        assert_eq!(d(86_400_000 * 3), "3d");
    }

    #[test]
    fn failed_takes_in_error_and_says_so() {
        assert_eq!(
            listed_states(RunState::Failed),
            [Some(RunState::Failed), Some(RunState::Error)]
        );
        assert_eq!(listed_states(RunState::Error), [Some(RunState::Error)]);
        assert_eq!(nothing_listed(None), "No runs.");
        assert_eq!(
            nothing_listed(Some(RunState::Failed)),
            "No runs in state failed or error."
        );
        assert_eq!(
            nothing_listed(Some(RunState::Killed)),
            "No runs in state killed."
        );
    }

    #[test]
    fn runs_of_several_states_merge_newest_first() {
        let job = Job::with_command(&["true"]);
        let at = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let run = |s| new_run(&job, NewRun::new("p.j", "p", json!({}), at(s)));
        let (old, mid, new) = (run(0), run(5), run(9));
        let merged = newest_first(vec![mid.clone(), new.clone(), old.clone()], Some(2));
        assert_eq!(merged, [new, mid]);
    }

    #[test]
    fn progress_is_a_percentage() {
        assert_eq!(progress(None), "-");
        assert_eq!(progress(Some(0.42)), "42%");
        assert_eq!(progress(Some(1.0)), "100%");
        assert_eq!(progress(Some(0.999)), "99%");
    }

    #[test]
    fn rows_show_attempts_age_runtime_and_worker() {
        let job = Job {
            attempts: 3,
            retry_delay: HumanDuration(Duration::from_secs(1)),
            ..Job::with_command(&["true"])
        };
        let created = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let run = new_run(&job, NewRun::new("p.j", "p", json!({}), created));
        let now = created + TimeDelta::seconds(125);
        let pending = row(&run, now);
        assert_eq!(
            pending[1..],
            ["p.j", "pending", "-", "0/3", "2m", "-", "-"].map(String::from)
        );
        let mut running = run
            .clone()
            .claimed("host-1", created + TimeDelta::seconds(5));
        running.progress = Some(0.5);
        assert_eq!(
            row(&running, now)[2..],
            ["running", "50%", "1/3", "2m", "2m", "host-1"].map(String::from)
        );
        running.state = RunState::Complete;
        running.finished = Some(created + TimeDelta::seconds(8));
        assert_eq!(row(&running, now)[6], "3s");
    }
}
