//! Short tool runs whose output coco reads (`git`, `python3 -m venv`, `pip`): run to the
//! end through [`super::run_to_end`] (same builder, own process group, timeout) and return
//! the exit code with stdout and stderr as text.

use std::time::Duration;

use super::{Inherit, LineKind, RunError, Spec, Stream, run_to_end};

/// How a tool run ended and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The exit code; `None` if a signal ended it or the timeout ran out.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last non-empty line of stderr (else stdout): what a failed tool said.
    pub fn complaint(&self) -> &str {
        [&self.stderr, &self.stdout]
            .into_iter()
            .find_map(|text| text.lines().rev().find(|line| !line.trim().is_empty()))
            .unwrap_or("")
            .trim()
    }
}

/// Run `spec` to its end (at most `timeout`), capturing its output. A tool runs for the
/// operator, in coco's whole environment ([`Inherit::All`]: its agent sockets, proxies).
pub async fn capture(spec: &Spec, timeout: Duration) -> Result<Captured, RunError> {
    let spec = Spec {
        inherit: Inherit::All,
        ..spec.clone()
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let outcome = run_to_end(
        &spec,
        Some(timeout),
        Duration::from_secs(2),
        std::future::pending(),
        |event| {
            let text = match event.kind {
                LineKind::Output(line) => line,
                LineKind::Log { level, message } => format!("::log:: {level} {message}"),
                LineKind::Progress { .. } => return,
            };
            let out = match event.stream {
                Stream::Stdout => &mut stdout,
                Stream::Stderr => &mut stderr,
            };
            out.push_str(&text);
            out.push('\n');
        },
    )
    .await?;
    let code = if outcome.timed_out {
        None
    } else {
        outcome.exit.code
    };
    Ok(Captured {
        code,
        stdout,
        stderr,
    })
}
