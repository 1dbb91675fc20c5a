//! `coco enqueue --wait`: follow a run to its end with a progress bar on stderr (indicatif;
//! plain state lines when stderr is not a terminal), and the exit status it ended with.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::output;
use crate::queue::run::RunRecord;
use crate::queue::state::{Reason, RunState};
use crate::store::Queue;
use crate::store::StoreResult;

/// How often the run is read while waiting.
const WAIT_EVERY: Duration = Duration::from_millis(200);

/// Exit status for a run that timed out (as `timeout(1)`).
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status for a run killed by an operator (128 + SIGKILL, as a shell reports it).
pub const EXIT_KILLED: i32 = 137;

/// Follow run `id` until it is final (complete, error, killed, removed): retries are waited
/// for. Returns the final run, or `None` if it disappeared.
pub async fn follow(store: &dyn Queue, id: &str) -> StoreResult<Option<RunRecord>> {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {percent:>3}% {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let plain = bar.is_hidden();
    let mut last_state = None;
    loop {
        let Some(run) = store.get_run(id).await? else {
            bar.finish_and_clear();
            return Ok(None);
        };
        let changed = last_state != Some((run.state, run.attempt));
        if changed && plain {
            output::text_stderr(&status_line(&run));
        }
        last_state = Some((run.state, run.attempt));
        bar.set_prefix(format!("{} {}", run.job, run.state));
        bar.set_position((run.progress.unwrap_or(0.0).clamp(0.0, 1.0) * 1000.0) as u64);
        bar.set_message(run.progress_message.clone().unwrap_or_default());
        if run.state.is_final() {
            bar.finish_and_clear();
            if !plain {
                output::text_stderr(&status_line(&run));
            }
            return Ok(Some(run));
        }
        tokio::time::sleep(WAIT_EVERY).await;
    }
}

/// One line about where the run is (pure).
pub fn status_line(run: &RunRecord) -> String {
    let mut line = format!(
        "run {} {}: attempt {}/{}",
        run.id, run.state, run.attempt, run.attempts
    );
    if let Some(code) = run.exit_code {
        line.push_str(&format!(", exit code {code}"));
    }
    if let Some(reason) = &run.reason {
        line.push_str(&format!(", reason {reason}"));
    }
    line
}

/// The exit status `coco enqueue --wait` ends with (pure): 0 for complete; the job's last
/// exit code; 124 for a timeout; 137 killed; 1 for anything else (removed, a signal, a lost
/// worker, a command that could not start without a code).
pub fn exit_status(run: &RunRecord) -> i32 {
    match (run.state, run.reason, run.exit_code) {
        (RunState::Complete, _, _) => 0,
        (_, Some(Reason::Timeout), _) => EXIT_TIMEOUT,
        (RunState::Killed, _, _) => EXIT_KILLED,
        (_, _, Some(code)) if code != 0 => code,
        _ => 1,
    }
}
