//! `coco logs ID [--follow] [--json]`: the output kept of a run's latest try, each line as
//! `HH:MM:SS.mmm out|err|log TEXT` (UTC). ID may be a unique prefix of a run id, or
//! `PROJECT.JOB` for that job's latest run. `coco logs PROJECT.APP [--follow]`: the same for
//! an app server (its tail across restarts; `--follow` until Ctrl-C). `--json` prints the
//! lines as `{"time", "stream", "text"}` objects (with `--follow`, one object per line).
//!
//! `--follow` prints new lines as the worker stores them (about every second) until the run
//! is no longer pending or running, then a line saying how it ended. The kept output is a
//! tail that the worker replaces as a whole, so [`Follower`] finds where it left off by the
//! last line it printed; a new try (or lines dropped from the tail) shows as a marker.

use std::fmt;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::{GlobalArgs, context, output};
use crate::queue::run::RunRecord;
use crate::queue::state::RunState;
use crate::store::Queue;
use crate::store::{RunFilter, Store};

/// How often `--follow` looks for new output.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Id of the run (or a unique prefix of at least 4 characters), `project.job` for the
    /// latest run of a job, or `project.app` for an app server.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Keep printing new output until the run is no longer pending or running (an app's:
    /// until Ctrl-C).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print JSON instead of text, for scripts (with --follow: one object per line).
    #[arg(long)]
    pub json: bool,
}

/// What a `coco logs` argument names.
enum Target {
    App(String),
    Run(Box<RunRecord>),
}

pub async fn run(global: &GlobalArgs, args: &LogsArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store_to_read(&config).await?;
    let Some(target) = target(store.as_ref(), &args.id).await? else {
        return Ok(1);
    };
    match (target, args.follow) {
        (Target::App(id), follow) => app_logs(store.as_ref(), &id, follow, args.json).await,
        (Target::Run(run), false) => {
            let text = store.get_output(&run.id).await?.unwrap_or_default();
            if args.json {
                output::json(&run_json(&run, &text));
            } else if text.is_empty() {
                output::text_stderr(&format!("(no output kept for run {} yet)", run.id));
            } else {
                output::text(&text);
            }
            Ok(0)
        }
        (Target::Run(run), true) => follow(store.as_ref(), *run, args.json).await,
    }
}

/// The app, the latest run of the job, or the run `typed` names; `None` after printing
/// that it names none. Run ids hold no dot, job and app ids always one.
async fn target(store: &dyn Store, typed: &str) -> anyhow::Result<Option<Target>> {
    if !typed.contains('.') {
        return Ok(context::find_run(store, typed)
            .await?
            .map(|run| Target::Run(Box::new(run))));
    }
    if store.get_app(typed).await?.is_some() {
        return Ok(Some(Target::App(typed.to_string())));
    }
    if store.get_job(typed).await?.is_none() {
        output::error(&format!(
            "no app or job `{typed}` in the {} (see `coco apps`, `coco jobs`)",
            store.describe()
        ));
        return Ok(None);
    }
    let latest = store
        .list_runs(&RunFilter {
            job: Some(typed.to_string()),
            limit: Some(1),
            ..RunFilter::default()
        })
        .await?;
    match latest.into_iter().next() {
        Some(run) => Ok(Some(Target::Run(Box::new(run)))),
        None => {
            output::error(&format!(
                "job {typed} has no runs yet (start one with `coco enqueue {typed}`)"
            ));
            Ok(None)
        }
    }
}

/// The output kept of app `id` (stored under `app:<id>` by the daemon running it).
async fn app_logs(store: &dyn Queue, id: &str, follow: bool, json: bool) -> anyhow::Result<i32> {
    let key = format!("app:{id}");
    if !follow {
        let text = store.get_output(&key).await?.unwrap_or_default();
        if json {
            output::json(&json!({
                "app": id,
                "dropped": dropped_lines(&text),
                "lines": lines_json(&text),
            }));
        } else if text.is_empty() {
            output::text_stderr(&format!("(no output kept for app {id} yet)"));
        } else {
            output::text(&text);
        }
        return Ok(0);
    }
    let mut follower = Follower::default();
    loop {
        let text = store.get_output(&key).await?.unwrap_or_default();
        print(&follower.new_lines(0, &text), json);
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

async fn follow(store: &dyn Queue, mut run: RunRecord, json: bool) -> anyhow::Result<i32> {
    let mut follower = Follower::default();
    loop {
        let text = store.get_output(&run.id).await?.unwrap_or_default();
        print(&follower.new_lines(run.attempt, &text), json);
        if !matches!(run.state, RunState::Pending | RunState::Running) {
            // One more read: the worker stores the last lines as the try ends.
            let text = store.get_output(&run.id).await?.unwrap_or_default();
            print(&follower.new_lines(run.attempt, &text), json);
            if json {
                output::text(&ended_json(&run).to_string());
            } else {
                output::text_stderr(&ended(&run));
            }
            return Ok(0);
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
        match store.get_run(&run.id).await? {
            Some(now) => run = now,
            None => return Ok(1),
        }
    }
}

/// Print what a follower found: as text, or one JSON object per line.
fn print(found: &[Followed], json: bool) {
    if found.is_empty() {
        return;
    }
    let lines: Vec<String> = found
        .iter()
        .map(|item| {
            if json {
                item.json().to_string()
            } else {
                item.to_string()
            }
        })
        .collect();
    output::text(&lines.join("\n"));
}

/// How a followed run ended (pure).
pub fn ended(run: &RunRecord) -> String {
    let mut line = format!("-- run {} is {}", run.id, run.state);
    if let Some(code) = run.exit_code {
        line.push_str(&format!(", exit code {code}"));
    }
    if let Some(reason) = &run.reason {
        line.push_str(&format!(", reason {reason}"));
    }
    if matches!(run.state, RunState::Failed | RunState::Deferred) {
        line.push_str(&format!(
            "; next try from {} (attempt {} of {} spent)",
            run.not_before.format("%H:%M:%S"),
            run.attempt,
            run.attempts
        ));
    }
    line
}

/// [`ended`] for `--follow --json`: the last object printed (pure).
pub fn ended_json(run: &RunRecord) -> Value {
    let waiting = matches!(run.state, RunState::Failed | RunState::Deferred);
    json!({
        "run": run.id,
        "state": run.state,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "attempt": run.attempt,
        "attempts": run.attempts,
        "next_try": waiting.then_some(run.not_before),
    })
}

/// `coco logs ID --json`: the run and the lines kept of its latest try (pure).
pub fn run_json(run: &RunRecord, text: &str) -> Value {
    json!({
        "run": run.id,
        "job": run.job,
        "state": run.state,
        "attempt": run.attempt,
        "dropped": dropped_lines(text),
        "lines": lines_json(text),
    })
}

/// The kept lines of `text` as JSON objects (the header about dropped lines left out).
fn lines_json(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| dropped_header(line).is_none())
        .map(line_json)
        .collect()
}

/// One kept line, `HH:MM:SS.mmm out|err|log TEXT`, as `{"time", "stream", "text"}` (pure);
/// a line not in that form is all text.
pub fn line_json(line: &str) -> Value {
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(time), Some(stream), text) if is_time(time) => {
            json!({"time": time, "stream": stream, "text": text.unwrap_or("")})
        }
        _ => json!({"time": null, "stream": null, "text": line}),
    }
}

/// `HH:MM:SS.mmm`.
fn is_time(text: &str) -> bool {
    chrono::NaiveTime::parse_from_str(text, "%H:%M:%S%.3f").is_ok()
}

/// How many earlier lines were not kept (the tail's `[N earlier lines not kept]` header).
fn dropped_lines(text: &str) -> u64 {
    text.lines().next().and_then(dropped_header).unwrap_or(0)
}

/// N of a `[N earlier lines not kept]` line.
fn dropped_header(line: &str) -> Option<u64> {
    line.strip_prefix('[')?
        .strip_suffix(" earlier lines not kept]")?
        .parse()
        .ok()
}

/// What a [`Follower`] found new in a run's kept output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// A new try started.
    Attempt(u32),
    /// Lines were dropped from the tail before they were seen.
    Gap,
    Line(String),
}

impl fmt::Display for Followed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Followed::Attempt(attempt) => write!(f, "-- attempt {attempt}"),
            Followed::Gap => f.write_str("-- (earlier lines not kept)"),
            Followed::Line(line) => f.write_str(line),
        }
    }
}

impl Followed {
    /// One `--follow --json` object (pure).
    pub fn json(&self) -> Value {
        match self {
            Followed::Attempt(attempt) => json!({"attempt": attempt}),
            Followed::Gap => json!({"gap": "earlier lines not kept"}),
            Followed::Line(line) => line_json(line),
        }
    }
}

/// Works out which lines of a run's kept output are new since the last look.
#[derive(Debug, Default)]
pub struct Follower {
    attempt: Option<u32>,
    /// The last line printed (its time stamp makes it all but unique).
    last: Option<String>,
    /// A new try started and none of its lines were seen yet.
    new_try: bool,
}

impl Follower {
    /// The lines of `text` (the output kept for try `attempt`) not printed yet, with a
    /// marker line where a new try starts or earlier lines were dropped.
    pub fn new_lines(&mut self, attempt: u32, text: &str) -> Vec<Followed> {
        let lines: Vec<&str> = text
            .lines()
            // The "[N earlier lines not kept]" header changes as lines are dropped.
            .filter(|line| dropped_header(line).is_none())
            .collect();
        let mut new = Vec::new();
        // Until a new try stores its first lines, the previous try's are still kept: the
        // last line printed is then still found, and nothing is printed twice.
        if self.attempt.is_some_and(|seen| seen != attempt) {
            self.new_try = true;
            new.push(Followed::Attempt(attempt));
        }
        self.attempt = Some(attempt);
        let start = match &self.last {
            None => 0,
            Some(last) => match lines.iter().rposition(|line| line == last) {
                Some(at) => at + 1,
                // The text no longer holds it: a new try's output, or it was dropped from
                // the tail.
                None if lines.is_empty() || self.new_try => 0,
                None => {
                    new.push(Followed::Gap);
                    0
                }
            },
        };
        if start < lines.len() {
            self.new_try = false;
        }
        new.extend(
            lines[start..]
                .iter()
                .map(|line| Followed::Line(line.to_string())),
        );
        if let Some(last) = lines.last() {
            self.last = Some((*last).to_string());
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The follower's findings as `coco logs --follow` prints them.
    fn new(f: &mut Follower, attempt: u32, text: &str) -> Vec<String> {
        f.new_lines(attempt, text)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn only_new_lines_are_printed() {
        let mut f = Follower::default();
        assert_eq!(new(&mut f, 1, ""), Vec::<String>::new());
        assert_eq!(new(&mut f, 1, "a 1\nb 2\n"), ["a 1", "b 2"]);
        assert_eq!(new(&mut f, 1, "a 1\nb 2\n"), Vec::<String>::new());
        assert_eq!(new(&mut f, 1, "a 1\nb 2\nc 3\n"), ["c 3"]);
    }

    #[test]
    fn a_moving_tail_is_followed_by_its_last_line() {
        let mut f = Follower::default();
        new(&mut f, 1, "a\nb\nc\n");
        assert_eq!(
            new(&mut f, 1, "[1 earlier lines not kept]\nb\nc\nd\n"),
            ["d"]
        );
        assert_eq!(
            new(&mut f, 1, "[4 earlier lines not kept]\ne\nf\n"),
            ["-- (earlier lines not kept)", "e", "f"]
        );
    }

    #[test]
    fn a_new_try_starts_over_with_a_marker() {
        let mut f = Follower::default();
        new(&mut f, 1, "x 1\n");
        assert_eq!(
            new(&mut f, 2, "x 1\n"),
            ["-- attempt 2"],
            "old output not again"
        );
        assert_eq!(new(&mut f, 2, "y 1\n"), ["y 1"]);
        assert_eq!(
            new(&mut f, 2, "[9 earlier lines not kept]\ny 9\n"),
            ["-- (earlier lines not kept)", "y 9"]
        );
        let mut f = Follower::default();
        new(&mut f, 1, "x 1\n");
        assert_eq!(new(&mut f, 2, "y 1\n"), ["-- attempt 2", "y 1"]);
        assert_eq!(new(&mut f, 2, "y 1\ny 2\n"), ["y 2"]);
    }

    #[test]
    fn kept_lines_become_json_objects() {
        assert_eq!(
            line_json("08:52:29.794 out exported 1200 orders"),
            json!({"time": "08:52:29.794", "stream": "out", "text": "exported 1200 orders"})
        );
        assert_eq!(
            line_json("08:52:29.794 err"),
            json!({"time": "08:52:29.794", "stream": "err", "text": ""})
        );
        assert_eq!(
            line_json("not a kept line"),
            json!({"time": null, "stream": null, "text": "not a kept line"})
        );
        let text = "[3 earlier lines not kept]\n08:00:00.000 out a\n08:00:00.001 log INFO b\n";
        assert_eq!(dropped_lines(text), 3);
        assert_eq!(lines_json(text).len(), 2);
        assert_eq!(lines_json(text)[1]["text"], "INFO b");
        assert_eq!(dropped_lines("08:00:00.000 out [a]"), 0);
    }

    #[test]
    fn follow_json_has_one_object_per_finding() {
        assert_eq!(Followed::Attempt(2).json(), json!({"attempt": 2}));
        assert_eq!(
            Followed::Line("08:00:00.000 out a".into()).json()["text"],
            "a"
        );
    }
}
