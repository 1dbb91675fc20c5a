//! `coco status [--json]`: one screen — daemons and workers, apps, schedules, queue counts,
//! the current manifest problems and the operator switches.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::apps::{self, AppLine};
use super::jobs::{self, JobLine};
use super::list::human_duration;
use super::{GlobalArgs, JsonFlag, alive, context, output, pause};
use crate::queue::state::RunState;
use crate::store::{MemberRecord, Problems, RunFilter, Store};

/// The states whose runs are counted (finished ones pile up; `coco list` shows them).
const COUNTED: [RunState; 6] = [
    RunState::Pending,
    RunState::Running,
    RunState::Failed,
    RunState::Deferred,
    RunState::Error,
    RunState::Killed,
];

/// Everything `coco status` shows.
#[derive(Debug, Serialize)]
pub struct Status {
    pub members: Vec<MemberRecord>,
    pub apps: Vec<AppLine>,
    pub schedules: Vec<JobLine>,
    /// Runs per state.
    pub queue: Vec<(String, u64)>,
    pub problems: Vec<Problems>,
    /// What is wrong with this host's home (`folder.home`), if anything: missing, no folder.
    pub home_problem: Option<String>,
    pub mode: String,
}

pub async fn run(global: &GlobalArgs, flags: JsonFlag) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store_to_read(&config).await?;
    let mut status = gather(store.as_ref()).await?;
    status.home_problem = crate::manifest::discover::project_dirs(&config.home)
        .err()
        .map(|error| error.to_string());
    if flags.json {
        output::json(&status);
    } else {
        output::text(&render(&status, Utc::now()));
    }
    Ok(0)
}

async fn gather(store: &dyn Store) -> anyhow::Result<Status> {
    let apps = crate::views::app_lines(store, None).await?;
    let schedules: Vec<JobLine> =
        crate::views::job_lines_where(store, None, |line| line.schedule.is_some()).await?;
    let mut queue = Vec::new();
    for state in COUNTED {
        let runs = store
            .count_runs(&RunFilter {
                state: Some(state),
                ..RunFilter::default()
            })
            .await?;
        queue.push((state.as_str().to_owned(), runs));
    }
    let members = alive::members_as_they_run(store).await?;
    Ok(Status {
        members,
        apps,
        schedules,
        queue,
        problems: store.list_problems().await?,
        home_problem: None,
        mode: pause::describe(&store.control().await?),
    })
}

/// The screen (pure).
pub fn render(status: &Status, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    out.push_str("Daemons and workers\n");
    if status.members.is_empty() {
        out.push_str("  none running\n");
    } else {
        let rows: Vec<Vec<String>> = status.members.iter().map(|m| alive::row(m, now)).collect();
        out.push_str(&indent(&output::format_table(alive::HEADER, &rows)));
    }
    out.push_str("\nApps\n");
    if status.apps.is_empty() {
        out.push_str("  none applied\n");
    } else {
        let rows: Vec<Vec<String>> = status.apps.iter().map(|a| apps::row(a, now)).collect();
        out.push_str(&indent(&output::format_table(apps::HEADER, &rows)));
    }
    out.push_str("\nSchedules\n");
    if status.schedules.is_empty() {
        out.push_str("  no scheduled jobs\n");
    } else {
        let rows: Vec<Vec<String>> = status.schedules.iter().map(|j| jobs::row(j, now)).collect();
        out.push_str(&indent(&output::format_table(jobs::HEADER, &rows)));
    }
    out.push_str("\nQueue\n  ");
    let counts: Vec<String> = status
        .queue
        .iter()
        .map(|(state, n)| format!("{state} {n}"))
        .collect();
    out.push_str(&counts.join(" · "));
    out.push('\n');
    out.push_str("\nManifest problems\n");
    let problems: Vec<&Problems> = status
        .problems
        .iter()
        .filter(|p| !p.problems.is_empty())
        .collect();
    if let Some(problem) = &status.home_problem {
        out.push_str(&format!("  here: {problem}\n"));
    }
    if problems.is_empty() && status.home_problem.is_none() {
        out.push_str("  none\n");
    }
    for source in problems {
        out.push_str(&format!(
            "  seen by {} {} ago:\n",
            source.source,
            human_duration(now - source.at)
        ));
        for problem in &source.problems {
            // Every line of it (a snippet with its caret follows the headline) indented.
            for line in problem.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out.push_str(&format!("\nMode\n  {}\n", status.mode));
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_store_reads_as_such() {
        let status = Status {
            members: Vec::new(),
            apps: Vec::new(),
            schedules: Vec::new(),
            queue: vec![("pending".into(), 0), ("running".into(), 2)],
            problems: vec![Problems {
                source: "vm-1".into(),
                at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
                problems: vec![
                    "/h/p/coco.yaml:3:1: did not find expected ','\n  |\n3 | a: [b\n  | ^".into(),
                ],
            }],
            home_problem: None,
            mode: "Running: nothing is paused.".into(),
        };
        let now = DateTime::from_timestamp(1_800_000_005, 0).unwrap();
        let text = render(&status, now);
        assert!(
            text.contains("Daemons and workers\n  none running"),
            "{text}"
        );
        assert!(text.contains("Queue\n  pending 0 · running 2"), "{text}");
        assert!(
            text.contains("seen by vm-1 5s ago:\n    /h/p/coco.yaml:3:1: did not find"),
            "{text}"
        );
        assert!(
            text.contains("expected ','\n      |\n    3 | a: [b\n      | ^\n"),
            "the snippet is indented with its headline: {text}"
        );
    }
}
