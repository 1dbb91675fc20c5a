//! `coco logs ID [--follow]`: the output kept of a run's latest try, each line as
//! `HH:MM:SS.mmm out|err|log TEXT` (UTC). `coco logs PROJECT.APP [--follow]`: the same for an
//! app server (its tail across restarts; `--follow` until Ctrl-C).
//!
//! `--follow` prints new lines as the worker stores them (about every second) until the run
//! is no longer pending or running, then a line saying how it ended. The kept output is a
//! tail that the worker replaces as a whole, so [`Follower`] finds where it left off by the
//! last line it printed; a new try (or lines dropped from the tail) shows as a marker.

use std::time::Duration;

use clap::Args;

use super::{GlobalArgs, context, output};
use crate::queue::state::RunState;
use crate::store::{RunRecord, Store};

/// How often `--follow` looks for new output.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Id of the run, or `project.app` for an app server.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Keep printing new output until the run is no longer pending or running (an app's:
    /// until Ctrl-C).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub async fn run(global: &GlobalArgs, args: &LogsArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store_to_read(&config).await?;
    if args.id.contains('.') && store.get_app(&args.id).await?.is_some() {
        return app_logs(store.as_ref(), &args.id, args.follow).await;
    }
    let Some(run) = context::find_run(store.as_ref(), &args.id).await? else {
        return Ok(1);
    };
    if !args.follow {
        match store.get_output(&run.id).await? {
            Some(text) if !text.is_empty() => output::text(&text),
            _ => output::text_stderr(&format!("(no output kept for run {} yet)", run.id)),
        }
        return Ok(0);
    }
    follow(store.as_ref(), run).await
}

/// The output kept of app `id` (stored under `app:<id>` by the daemon running it).
async fn app_logs(store: &dyn Store, id: &str, follow: bool) -> anyhow::Result<i32> {
    let key = format!("app:{id}");
    if !follow {
        match store.get_output(&key).await? {
            Some(text) if !text.is_empty() => output::text(&text),
            _ => output::text_stderr(&format!("(no output kept for app {id} yet)")),
        }
        return Ok(0);
    }
    let mut follower = Follower::default();
    loop {
        let text = store.get_output(&key).await?.unwrap_or_default();
        let lines = follower.new_lines(0, &text);
        if !lines.is_empty() {
            output::text(&lines.join("\n"));
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

async fn follow(store: &dyn Store, mut run: RunRecord) -> anyhow::Result<i32> {
    let mut follower = Follower::default();
    loop {
        let text = store.get_output(&run.id).await?.unwrap_or_default();
        let lines = follower.new_lines(run.attempt, &text);
        if !lines.is_empty() {
            output::text(&lines.join("\n"));
        }
        if !matches!(run.state, RunState::Pending | RunState::Running) {
            // One more read: the worker stores the last lines as the try ends.
            let text = store.get_output(&run.id).await?.unwrap_or_default();
            let lines = follower.new_lines(run.attempt, &text);
            if !lines.is_empty() {
                output::text(&lines.join("\n"));
            }
            output::text_stderr(&ended(&run));
            return Ok(0);
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
        match store.get_run(&run.id).await? {
            Some(now) => run = now,
            None => return Ok(1),
        }
    }
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
    pub fn new_lines(&mut self, attempt: u32, text: &str) -> Vec<String> {
        let lines: Vec<&str> = text
            .lines()
            // The "[N earlier lines not kept]" header changes as lines are dropped.
            .filter(|line| !line.starts_with('['))
            .collect();
        let mut new = Vec::new();
        // Until a new try stores its first lines, the previous try's are still kept: the
        // last line printed is then still found, and nothing is printed twice.
        if self.attempt.is_some_and(|seen| seen != attempt) {
            self.new_try = true;
            new.push(format!("-- attempt {attempt}"));
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
                    new.push("-- (earlier lines not kept)".to_string());
                    0
                }
            },
        };
        if start < lines.len() {
            self.new_try = false;
        }
        new.extend(lines[start..].iter().map(|line| line.to_string()));
        if let Some(last) = lines.last() {
            self.last = Some((*last).to_string());
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::Follower;

    #[test]
    fn only_new_lines_are_printed() {
        let mut f = Follower::default();
        assert_eq!(f.new_lines(1, ""), Vec::<String>::new());
        assert_eq!(f.new_lines(1, "a 1\nb 2\n"), ["a 1", "b 2"]);
        assert_eq!(f.new_lines(1, "a 1\nb 2\n"), Vec::<String>::new());
        assert_eq!(f.new_lines(1, "a 1\nb 2\nc 3\n"), ["c 3"]);
    }

    #[test]
    fn a_moving_tail_is_followed_by_its_last_line() {
        let mut f = Follower::default();
        f.new_lines(1, "a\nb\nc\n");
        assert_eq!(
            f.new_lines(1, "[1 earlier lines not kept]\nb\nc\nd\n"),
            ["d"]
        );
        assert_eq!(
            f.new_lines(1, "[4 earlier lines not kept]\ne\nf\n"),
            ["-- (earlier lines not kept)", "e", "f"]
        );
    }

    #[test]
    fn a_new_try_starts_over_with_a_marker() {
        let mut f = Follower::default();
        f.new_lines(1, "x 1\n");
        assert_eq!(
            f.new_lines(2, "x 1\n"),
            ["-- attempt 2"],
            "old output not again"
        );
        assert_eq!(f.new_lines(2, "y 1\n"), ["y 1"]);
        assert_eq!(
            f.new_lines(2, "[9 earlier lines not kept]\ny 9\n"),
            ["-- (earlier lines not kept)", "y 9"]
        );
        let mut f = Follower::default();
        f.new_lines(1, "x 1\n");
        assert_eq!(f.new_lines(2, "y 1\n"), ["-- attempt 2", "y 1"]);
        assert_eq!(f.new_lines(2, "y 1\ny 2\n"), ["y 2"]);
    }
}
