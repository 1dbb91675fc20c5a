//! The only place that prints: text to stdout, problems to stderr, JSON for scripts.

use std::io::Write;

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
    eprintln!("coco: error: {message}");
}

/// Print a warning line to stderr (`coco: warning: ...`).
pub fn warning(message: &str) {
    eprintln!("coco: warning: {message}");
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

/// A table: header row and rows, columns padded to the widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    text(&format_table(header, rows));
}

/// Lay out a table as text (pure, for tests).
pub fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
