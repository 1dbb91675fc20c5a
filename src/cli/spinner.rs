//! A sign of life on stderr while a slow step runs (`coco init`, `coco install` creating a
//! `.venv`): an indicatif spinner with the step's name, only when stderr is a terminal —
//! piped or redirected, nothing is drawn. Cleared when it is dropped.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::scaffold::init::Step;

/// How often the spinner turns.
const TICK: Duration = Duration::from_millis(100);

/// A spinner on a terminal's stderr, or nothing.
pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    /// A spinner, drawn only if stderr is a terminal (it shows once a step starts).
    pub fn on_terminal() -> Spinner {
        Spinner {
            bar: std::io::stderr().is_terminal().then(|| {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {wide_msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar
            }),
        }
    }

    /// Show `step` as the step under way.
    pub fn step(&self, step: Step) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{step} …"));
            bar.reset_elapsed();
            bar.enable_steady_tick(TICK);
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
