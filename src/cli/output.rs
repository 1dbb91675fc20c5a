//! The only place that prints: text to stdout, problems to stderr, JSON for scripts.
//!
//! On a terminal, states in tables (the `STATE` and `LAST RUN` columns) and the `error:` of
//! error lines are coloured, as cargo and pm2 do; piped output and `NO_COLOR` get none
//! ([`colour_enabled`] decides, per stream, once; JSON is never coloured).

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use serde::Serialize;

use crate::yaml::Diagnostic;

/// Print text to stdout as is.
pub fn text(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    if !text.ends_with('\n') && !text.is_empty() {
        let _ = stdout.write_all(b"\n");
    }
}

/// Print text to stderr as is (a job's own stderr lines under `coco run`).
pub fn text_stderr(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    if !text.ends_with('\n') && !text.is_empty() {
        let _ = stderr.write_all(b"\n");
    }
}

/// Print a value as pretty JSON to stdout.
pub fn json<T: Serialize>(value: &T) {
    text(&serde_json::to_string_pretty(value).expect("output values serialize"));
}

/// Print an error line to stderr (`coco: error: ...`).
pub fn error(message: &str) {
    let label = paint("error:", Paint::Error, colours(Stream::Stderr));
    eprintln!("coco: {label} {message}");
}

/// Print a warning line to stderr (`coco: warning: ...`).
pub fn warning(message: &str) {
    let label = paint("warning:", Paint::Warning, colours(Stream::Stderr));
    eprintln!("coco: {label} {message}");
}

/// Print located problems to stderr, each with its source line and caret, and a count.
pub fn diagnostics<'a>(problems: impl IntoIterator<Item = &'a Diagnostic>) {
    let mut stderr = std::io::stderr().lock();
    let mut count = 0;
    for problem in problems {
        let _ = writeln!(stderr, "{problem}\n");
        count += 1;
    }
    let _ = writeln!(
        stderr,
        "coco: {count} problem{} found; nothing was changed",
        if count == 1 { "" } else { "s" }
    );
}

/// A table: header row and rows, columns padded to the widest cell; on a colour terminal
/// its states coloured.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    text(&format_table_painted(header, rows, colours(Stream::Stdout)));
}

/// Lay out a table as text (pure, for tests).
pub fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    format_table_painted(header, rows, false)
}

/// The columns whose cells start with a state [`state_paint`] colours.
const STATE_COLUMNS: &[&str] = &["STATE", "LAST RUN"];

/// Lay out a table as text, with its states coloured if `colour` (pure). Widths are those
/// of the text, so colours do not disturb the alignment.
pub fn format_table_painted(header: &[&str], rows: &[Vec<String>], colour: bool) -> String {
    let painted: Vec<bool> = header
        .iter()
        .map(|h| colour && STATE_COLUMNS.contains(h))
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>, paint_states: bool| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let shown = if paint_states && painted.get(i) == Some(&true) {
                paint_state_word(cell)
            } else {
                (*cell).to_owned()
            };
            out.push_str(&shown);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec(), false);
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect(), true));
    }
    out
}

/// `cell` with its leading state word (`complete`, `complete (3s ago)`) coloured (pure).
fn paint_state_word(cell: &str) -> String {
    let (word, rest) = cell
        .split_once(' ')
        .map_or((cell, ""), |(w, _)| (w, &cell[w.len()..]));
    match state_paint(word) {
        Some(style) => format!("{}{rest}", paint(word, style, true)),
        None => cell.to_owned(),
    }
}

/// A colour, by what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    /// Done as wanted (green).
    Good,
    /// Busy (cyan).
    Busy,
    /// Waiting to go on, or to be retried (yellow).
    Waiting,
    /// Went wrong (red).
    Bad,
    /// Out of the way (dim).
    Muted,
    /// The `error:` of an error line (bold red).
    Error,
    /// The `warning:` of a warning line (bold yellow).
    Warning,
}

impl Paint {
    /// Its ANSI select-graphic-rendition parameters.
    fn sgr(self) -> &'static str {
        match self {
            Paint::Good => "32",
            Paint::Busy => "36",
            Paint::Waiting => "33",
            Paint::Bad => "31",
            Paint::Muted => "2",
            Paint::Error => "1;31",
            Paint::Warning => "1;33",
        }
    }
}

/// The colour of a run's or an app's state (pure); `None` for states left plain.
pub fn state_paint(state: &str) -> Option<Paint> {
    match state {
        "complete" | "healthy" => Some(Paint::Good),
        "running" | "starting" => Some(Paint::Busy),
        "failed" | "deferred" | "backoff" => Some(Paint::Waiting),
        "error" | "killed" | "unhealthy" | "exited" => Some(Paint::Bad),
        "removed" | "stopped" | "inactive" => Some(Paint::Muted),
        _ => None,
    }
}

/// `text` in `style` if `on` (pure).
pub fn paint(text: &str, style: Paint, on: bool) -> String {
    if on {
        format!("\x1b[{}m{text}\x1b[0m", style.sgr())
    } else {
        text.to_owned()
    }
}

/// Where output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What the environment says about colours (the conventions of no-color.org and
/// bixense.com/clicolors, as cargo follows them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColourEnv {
    /// `NO_COLOR` set and not empty: never.
    pub no_color: bool,
    /// `CLICOLOR_FORCE` set, not empty and not `0`: always, even when piped.
    pub force: bool,
    /// `CLICOLOR=0`: never.
    pub clicolor_off: bool,
    /// `TERM=dumb`: a terminal that shows no colours.
    pub dumb_terminal: bool,
}

impl ColourEnv {
    /// Read from this process's environment.
    pub fn from_process() -> ColourEnv {
        let var = |name| std::env::var_os(name).filter(|value| !value.is_empty());
        ColourEnv {
            no_color: var("NO_COLOR").is_some(),
            force: var("CLICOLOR_FORCE").is_some_and(|value| value != "0"),
            clicolor_off: var("CLICOLOR").is_some_and(|value| value == "0"),
            dumb_terminal: var("TERM").is_some_and(|value| value == "dumb"),
        }
    }
}

/// Whether to colour a stream that is (or is not) a terminal, in environment `env` (pure).
pub fn colour_enabled(is_terminal: bool, env: &ColourEnv) -> bool {
    if env.no_color {
        false
    } else if env.force {
        true
    } else {
        is_terminal && !env.clicolor_off && !env.dumb_terminal
    }
}

/// Whether this process colours `stream` (decided once per stream).
fn colours(stream: Stream) -> bool {
    static STDOUT: OnceLock<bool> = OnceLock::new();
    static STDERR: OnceLock<bool> = OnceLock::new();
    let (cell, is_terminal): (_, fn() -> bool) = match stream {
        Stream::Stdout => (&STDOUT, || std::io::stdout().is_terminal()),
        Stream::Stderr => (&STDERR, || std::io::stderr().is_terminal()),
    };
    *cell.get_or_init(|| colour_enabled(is_terminal(), &ColourEnv::from_process()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_and_never_with_no_color() {
        let env = ColourEnv::default();
        assert!(colour_enabled(true, &env));
        assert!(!colour_enabled(false, &env), "piped");
        let no_color = ColourEnv {
            no_color: true,
            ..ColourEnv::default()
        };
        assert!(!colour_enabled(true, &no_color));
        let forced = ColourEnv {
            force: true,
            ..ColourEnv::default()
        };
        assert!(colour_enabled(false, &forced));
        assert!(
            !colour_enabled(
                false,
                &ColourEnv {
                    no_color: true,
                    ..forced
                }
            ),
            "NO_COLOR wins"
        );
        for off in [
            ColourEnv {
                clicolor_off: true,
                ..ColourEnv::default()
            },
            ColourEnv {
                dumb_terminal: true,
                ..ColourEnv::default()
            },
        ] {
            assert!(!colour_enabled(true, &off), "{off:?}");
        }
    }

    #[test]
    fn states_are_coloured_without_moving_the_columns() {
        let header = ["ID", "STATE", "LAST RUN", "NOTE"];
        let rows = vec![
            vec![
                "1".into(),
                "complete".into(),
                "error (3s ago)".into(),
                "failed".into(),
            ],
            vec!["22".into(), "pending".into(), "-".into(), "x".into()],
        ];
        let plain = format_table(&header, &rows);
        assert_eq!(
            plain,
            "ID  STATE     LAST RUN        NOTE\n\
             1   complete  error (3s ago)  failed\n\
             22  pending   -               x\n"
        );
        let painted = format_table_painted(&header, &rows, true);
        assert_eq!(
            painted,
            "ID  STATE     LAST RUN        NOTE\n\
             1   \x1b[32mcomplete\x1b[0m  \x1b[31merror\x1b[0m (3s ago)  failed\n\
             22  pending   -               x\n",
            "only state columns, only known states"
        );
        assert_eq!(format_table_painted(&header, &rows, false), plain);
    }

    #[test]
    fn paint_wraps_in_ansi_only_when_on() {
        assert_eq!(
            paint("error:", Paint::Error, true),
            "\x1b[1;31merror:\x1b[0m"
        );
        assert_eq!(paint("error:", Paint::Error, false), "error:");
        assert_eq!(state_paint("running"), Some(Paint::Busy));
        assert_eq!(state_paint("pending"), None);
    }
}
