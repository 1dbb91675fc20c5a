//! A child's output, line by line: reading a stream, parsing special lines, keeping a tail.
//!
//! [`read_lines`] turns one pipe into [`Event`]s: it cuts lines longer than [`MAX_LINE_BYTES`],
//! replaces invalid UTF-8 lossily, stamps each line with the time it was read and sends it
//! through a bounded channel (a slow receiver slows the child down; a dropped receiver does not:
//! the pipe is still drained so the child never blocks on a full pipe). [`parse_line`] is pure:
//! it recognises `::progress::` and `::log::` lines, which are reports, not output.
//! [`TailBuffer`] keeps the newest lines within a byte budget.

use std::collections::VecDeque;
use std::fmt;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// Lines longer than this many bytes are cut (the rest of the line is read and dropped).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Appended to a line that was cut at [`MAX_LINE_BYTES`].
pub const CUT_MARKER: &str = " [line cut]";

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// Level of a `::log:: LEVEL message` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// Case-insensitive; `WARNING` is accepted for `WARN`.
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.to_ascii_uppercase().as_str() {
            "TRACE" => Some(LogLevel::Trace),
            "DEBUG" => Some(LogLevel::Debug),
            "INFO" => Some(LogLevel::Info),
            "WARN" | "WARNING" => Some(LogLevel::Warn),
            "ERROR" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        })
    }
}

/// What one line of child output means.
#[derive(Debug, Clone, PartialEq)]
pub enum LineKind {
    /// An ordinary line of output (without its line terminator).
    Output(String),
    /// `::progress:: 0.42 optional message`; `fraction` is clamped to `0.0..=1.0`.
    Progress {
        fraction: f64,
        message: Option<String>,
    },
    /// `::log:: LEVEL message`.
    Log { level: LogLevel, message: String },
}

const PROGRESS: &str = "::progress::";
const LOG: &str = "::log::";

/// Classify one line (without its `\n`; a trailing `\r` is ignored for special lines).
///
/// A special line starts with its marker, followed by whitespace. A malformed special line
/// (`::progress:: abc`, `::log:: LOUD x`) is kept as ordinary output, so nothing is lost.
pub fn parse_line(line: &str) -> LineKind {
    let trimmed = line.strip_suffix('\r').unwrap_or(line);
    if let Some(rest) = marker_rest(trimmed, PROGRESS) {
        let (number, message) = split_word(rest);
        if let Ok(fraction) = number.parse::<f64>()
            && fraction.is_finite()
        {
            return LineKind::Progress {
                fraction: fraction.clamp(0.0, 1.0),
                message: (!message.is_empty()).then(|| message.to_string()),
            };
        }
    } else if let Some(rest) = marker_rest(trimmed, LOG) {
        let (level, message) = split_word(rest);
        if let Some(level) = LogLevel::parse(level) {
            return LineKind::Log {
                level,
                message: message.to_string(),
            };
        }
    }
    LineKind::Output(line.to_string())
}

/// The text after `marker` if the line starts with it and a space or tab follows.
fn marker_rest<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(marker)?;
    rest.starts_with([' ', '\t']).then(|| rest.trim())
}

/// First whitespace-separated word and the trimmed remainder.
fn split_word(text: &str) -> (&str, &str) {
    match text.split_once([' ', '\t']) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

/// One line read from a child, with when it was read and from which stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub stream: Stream,
    pub kind: LineKind,
}

/// Read `reader` to its end, sending one [`Event`] per line to `tx`.
///
/// Never fails: a read error ends the stream like EOF (after sending what was read). If the
/// receiver is gone, the rest is read and dropped so the writer is not blocked.
pub async fn read_lines<R: AsyncRead + Unpin>(reader: R, stream: Stream, tx: mpsc::Sender<Event>) {
    let mut reader = BufReader::with_capacity(16 * 1024, reader);
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    let mut receiver_gone = false;
    loop {
        let (consumed, complete) = match reader.fill_buf().await {
            Ok([]) | Err(_) => {
                if !line.is_empty() || cut {
                    send(&tx, stream, &line, cut, &mut receiver_gone).await;
                }
                return;
            }
            Ok(buf) => {
                let (chunk, complete) = match buf.iter().position(|&b| b == b'\n') {
                    Some(newline) => (&buf[..newline], Some(newline + 1)),
                    None => (buf, None),
                };
                let room = MAX_LINE_BYTES - line.len();
                if chunk.len() > room {
                    cut = true;
                }
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                (complete.unwrap_or(buf.len()), complete.is_some())
            }
        };
        reader.consume(consumed);
        if complete {
            send(&tx, stream, &line, cut, &mut receiver_gone).await;
            line.clear();
            cut = false;
        }
    }
}

async fn send(
    tx: &mpsc::Sender<Event>,
    stream: Stream,
    bytes: &[u8],
    cut: bool,
    receiver_gone: &mut bool,
) {
    if *receiver_gone {
        return;
    }
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if cut {
        text.push_str(CUT_MARKER);
    }
    let event = Event {
        at: Utc::now(),
        stream,
        kind: parse_line(&text),
    };
    if tx.send(event).await.is_err() {
        *receiver_gone = true;
    }
}

/// The newest whole lines of output, at most `max_bytes` in all (each line counts its bytes
/// plus one for its newline). Pushing drops the oldest lines to make room.
#[derive(Debug, Clone)]
pub struct TailBuffer {
    max_bytes: usize,
    lines: VecDeque<String>,
    bytes: usize,
    dropped_lines: u64,
}

impl Default for TailBuffer {
    fn default() -> Self {
        TailBuffer::new(TailBuffer::DEFAULT_MAX_BYTES)
    }
}

impl TailBuffer {
    /// 1 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;

    pub fn new(max_bytes: usize) -> TailBuffer {
        TailBuffer {
            max_bytes,
            lines: VecDeque::new(),
            bytes: 0,
            dropped_lines: 0,
        }
    }

    /// Add the newest line (without its newline). A single line longer than the whole budget
    /// is cut to fit (at a character boundary) rather than lost.
    pub fn push(&mut self, line: &str) {
        let Some(budget) = self.max_bytes.checked_sub(1) else {
            self.dropped_lines += 1;
            return;
        };
        let mut end = line.len().min(budget);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let line = &line[..end];
        let cost = line.len() + 1;
        while self.bytes + cost > self.max_bytes {
            let oldest = self.lines.pop_front().expect("bytes > 0 means lines exist");
            self.bytes -= oldest.len() + 1;
            self.dropped_lines += 1;
        }
        self.lines.push_back(line.to_string());
        self.bytes += cost;
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// The kept lines, each followed by `\n`.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.bytes);
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Bytes kept, newlines included; never more than the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many lines were dropped (or, with a zero budget, never kept).
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(line: &str) -> LineKind {
        LineKind::Output(line.to_string())
    }

    #[test]
    fn progress_lines() {
        assert_eq!(
            parse_line("::progress:: 0.42 copying files"),
            LineKind::Progress {
                fraction: 0.42,
                message: Some("copying files".into())
            }
        );
        assert_eq!(
            parse_line("::progress:: 1"),
            LineKind::Progress {
                fraction: 1.0,
                message: None
            }
        );
        assert_eq!(
            parse_line("::progress::\t0.5  \r"),
            LineKind::Progress {
                fraction: 0.5,
                message: None
            }
        );
    }

    #[test]
    fn progress_is_clamped() {
        let fraction = |line| match parse_line(line) {
            LineKind::Progress { fraction, .. } => fraction,
            other => panic!("not progress: {other:?}"),
        };
        assert_eq!(fraction("::progress:: 1.7"), 1.0);
        assert_eq!(fraction("::progress:: -3"), 0.0);
    }

    #[test]
    fn malformed_progress_is_output() {
        for line in [
            "::progress:: abc",
            "::progress::",
            "::progress:: ",
            "::progress::0.5",
            "::progress:: NaN",
            "::progress:: inf",
            "::progress:: 42%",
            " ::progress:: 0.5",
            "x ::progress:: 0.5",
        ] {
            assert_eq!(parse_line(line), output(line), "{line:?}");
        }
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            parse_line("::log:: WARN disk almost full"),
            LineKind::Log {
                level: LogLevel::Warn,
                message: "disk almost full".into()
            }
        );
        assert_eq!(
            parse_line("::log:: warning  spaced   out "),
            LineKind::Log {
                level: LogLevel::Warn,
                message: "spaced   out".into()
            }
        );
        assert_eq!(
            parse_line("::log:: error"),
            LineKind::Log {
                level: LogLevel::Error,
                message: String::new()
            }
        );
    }

    #[test]
    fn malformed_log_is_output() {
        for line in ["::log:: LOUD hello", "::log::", "::log::INFO x", "::log:x"] {
            assert_eq!(parse_line(line), output(line), "{line:?}");
        }
    }

    #[test]
    fn ordinary_lines_are_kept_verbatim() {
        for line in ["", "hello", "  indented\r", "::other:: 1"] {
            assert_eq!(parse_line(line), output(line));
        }
    }

    async fn lines_of(bytes: &[u8]) -> Vec<LineKind> {
        let (tx, mut rx) = mpsc::channel(1);
        let reader = tokio::spawn(read_lines(
            std::io::Cursor::new(bytes.to_vec()),
            Stream::Stdout,
            tx,
        ));
        let mut kinds = Vec::new();
        while let Some(event) = rx.recv().await {
            assert_eq!(event.stream, Stream::Stdout);
            kinds.push(event.kind);
        }
        reader.await.unwrap();
        kinds
    }

    #[tokio::test]
    async fn reads_lines_with_a_final_unterminated_line() {
        assert_eq!(
            lines_of(b"one\n::progress:: 0.5\n\nlast").await,
            vec![
                output("one"),
                LineKind::Progress {
                    fraction: 0.5,
                    message: None
                },
                output(""),
                output("last"),
            ]
        );
        assert_eq!(lines_of(b"").await, vec![]);
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced() {
        assert_eq!(
            lines_of(b"\xff\xfeabc\n").await,
            vec![output("\u{fffd}\u{fffd}abc")]
        );
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_the_next_line_survives() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 3 + 17];
        input.extend_from_slice(b"\nafter\n");
        let kinds = lines_of(&input).await;
        assert_eq!(kinds.len(), 2);
        assert_eq!(
            kinds[0],
            output(&format!("{}{CUT_MARKER}", "x".repeat(MAX_LINE_BYTES)))
        );
        assert_eq!(kinds[1], output("after"));
    }

    #[tokio::test]
    async fn a_dropped_receiver_does_not_stop_the_draining() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let input = b"a\nb\nc\n".repeat(10_000);
        read_lines(input.as_slice(), Stream::Stderr, tx).await;
    }

    #[test]
    fn tail_keeps_the_newest_whole_lines() {
        let mut tail = TailBuffer::new(10);
        tail.push("aaa"); // 4
        tail.push("bbb"); // 8
        assert_eq!(tail.text(), "aaa\nbbb\n");
        tail.push("cc"); // 11 > 10: drop "aaa"
        assert_eq!(tail.lines().collect::<Vec<_>>(), ["bbb", "cc"]);
        assert_eq!(tail.bytes(), 7);
        assert_eq!(tail.dropped_lines(), 1);
        tail.push("dddddd"); // 7 + 7 > 10: drop "bbb", 3 + 7 fits exactly
        assert_eq!(tail.text(), "cc\ndddddd\n");
        assert_eq!(tail.bytes(), 10);
        assert_eq!(tail.dropped_lines(), 2);
        tail.push("eeeeeeeee"); // 10 bytes: only it fits
        assert_eq!(tail.text(), "eeeeeeeee\n");
        assert_eq!(tail.dropped_lines(), 4);
    }

    #[test]
    fn tail_cuts_a_line_larger_than_the_budget() {
        let mut tail = TailBuffer::new(5);
        tail.push("ab");
        tail.push("héllo wörld");
        // 4 bytes of room: "hé" is 3 bytes, "hél" 4.
        assert_eq!(tail.text(), "hél\n");
        assert!(tail.bytes() <= 5);
        let mut tail = TailBuffer::new(3);
        tail.push("éé");
        assert_eq!(tail.text(), "é\n");
    }

    #[test]
    fn tail_with_zero_budget_keeps_nothing() {
        let mut tail = TailBuffer::new(0);
        tail.push("x");
        assert!(tail.is_empty());
        assert_eq!(tail.dropped_lines(), 1);
        assert_eq!(TailBuffer::default().max_bytes, 1024 * 1024);
    }

    #[test]
    fn tail_stays_within_budget() {
        let mut tail = TailBuffer::new(100);
        for i in 0..1000 {
            tail.push(&"y".repeat(i % 37));
            assert!(tail.bytes() <= 100);
            assert_eq!(tail.bytes(), tail.text().len());
        }
    }
}
