//! `coco status [--json]`: one screen — daemons and workers, apps, schedules, queue counts,
//! the current manifest problems and the operator switches.

use chrono::{DateTime, Utc};

use super::apps;
use super::jobs;
use super::list::human_duration;
use super::{GlobalArgs, JsonFlag, alive, context, output};
use crate::store::Problems;

pub use crate::views::status::Status;

pub async fn run(global: &GlobalArgs, flags: JsonFlag) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store_to_read(&config).await?;
    let status = crate::views::status::status(store.as_ref(), Some(&config.home)).await?;
    if flags.json {
        output::json(&status);
    } else {
        output::text(&render(&status, Utc::now()));
    }
    Ok(0)
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
