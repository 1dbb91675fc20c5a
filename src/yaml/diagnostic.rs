//! A located problem in a file: `path:line:column: message`, with the offending line and a
//! caret under it (as rustc and cargo show it), and a "did you mean" where one is obvious.

use std::fmt;
use std::path::{Path, PathBuf};

use super::positions::Position;

/// One problem in one file, at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub position: Position,
    pub message: String,
    /// A close, valid alternative for what was written.
    pub suggestion: Option<String>,
    /// The text of the offending line, for the caret display.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `position` of `file`, quoting the line from `text`.
    pub fn new(file: &Path, text: &str, position: Position, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            position,
            message: message.into(),
            suggestion: None,
            source_line: text
                .lines()
                .nth(position.line.saturating_sub(1))
                .map(str::to_owned),
        }
    }

    pub fn with_suggestion(mut self, suggestion: Option<String>) -> Self {
        self.suggestion = suggestion;
        self
    }

    /// `path:line:column: message (did you mean `x`?)` on one line, for logs and `--json`.
    pub fn headline(&self) -> String {
        let mut line = format!(
            "{}:{}:{}: {}",
            self.file.display(),
            self.position.line,
            self.position.column,
            self.message
        );
        if let Some(suggestion) = &self.suggestion {
            line.push_str(&format!(" (did you mean `{suggestion}`?)"));
        }
        line
    }
}

impl fmt::Display for Diagnostic {
    /// The headline, then the source line with a caret under the column (a long line cut to
    /// a window around the column).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.headline())?;
        if let Some(source) = &self.source_line {
            let number = self.position.line.to_string();
            let gutter = " ".repeat(number.len());
            let (shown, column) = window(source, self.position.column);
            let caret_pad: String = shown
                .chars()
                .take(column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{gutter} |\n{number} | {shown}\n{gutter} | {caret_pad}^"
            )?;
        }
        Ok(())
    }
}

/// Characters of a source line shown at most (a minified file is one long line).
const SHOWN: usize = 120;

/// `line` cut to at most [`SHOWN`] characters around `column` (`…` where cut), and the
/// column within what is shown.
fn window(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= SHOWN {
        return (line.to_owned(), column);
    }
    let at = column.saturating_sub(1).min(chars.len());
    let start = at
        .saturating_sub(SHOWN / 2)
        .min(chars.len().saturating_sub(SHOWN));
    let end = (start + SHOWN).min(chars.len());
    let mut shown = String::new();
    let mut column = at - start + 1;
    if start > 0 {
        shown.push('…');
        column += 1;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, column)
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_headline_and_caret() {
        let text = "jobs:\n  hello:\n    atempts: 3\n";
        let d = Diagnostic::new(
            Path::new("p/coco.yaml"),
            text,
            Position { line: 3, column: 5 },
            "unknown field `atempts`",
        )
        .with_suggestion(Some("attempts".into()));
        assert_eq!(
            d.to_string(),
            "p/coco.yaml:3:5: unknown field `atempts` (did you mean `attempts`?)\n  |\n3 |     atempts: 3\n  |     ^"
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let line = format!("{}X{}", "a".repeat(1000), "b".repeat(1000));
        let d = Diagnostic::new(
            Path::new("f"),
            &line,
            Position {
                line: 1,
                column: 1001,
            },
            "here",
        );
        let shown = d.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert!(lines[2].chars().count() < 140, "{}", lines[2]);
        let x = lines[2].chars().position(|c| c == 'X').unwrap();
        assert_eq!(lines[3].chars().position(|c| c == '^'), Some(x));
    }

    #[test]
    fn suggests_only_close_words() {
        let keys = ["attempts", "schedule", "timezone"];
        assert_eq!(did_you_mean("atempts", keys), Some("attempts".into()));
        assert_eq!(did_you_mean("shedule", keys), Some("schedule".into()));
        assert_eq!(did_you_mean("zzz", keys), None);
    }
}
