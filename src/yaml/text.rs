//! From a file's bytes to YAML text both parsers count the same way.
//!
//! [`read_at_most`] reads no more than a limit (plus one byte, to tell "too large"), so a
//! huge file is refused without being read whole. [`decode`] turns bytes into text: a UTF-8
//! byte order mark is dropped (YAML allows one), bytes that are not UTF-8 are an error at the
//! line and column where they start. [`check_characters`] refuses the characters YAML does
//! not allow raw (control characters) and the ones the two YAML parsers behind
//! [`super::Document`] disagree on (NEL, U+2028, U+2029 and a carriage return without a
//! newline end a line for libyaml but not for yaml-rust2, which would put every later
//! position on the wrong line). [`position_of`] maps a byte offset to a line and column as
//! an editor shows them (lines end at `\n`, columns count characters). All but
//! [`read_at_most`] are pure.

use std::io::Read;
use std::path::Path;

use super::diagnostic::Diagnostic;
use super::positions::Position;

/// The UTF-8 byte order mark.
const BOM: char = '\u{feff}';

/// Read at most `limit + 1` bytes of `file`: more than `limit` bytes means the file is too
/// large, whatever its real size. Opened without blocking, so a named pipe or a terminal in
/// its place reads as what is there now (nothing, or an error) instead of hanging the reader.
pub fn read_at_most(file: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = Vec::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The problem of a file of `len` bytes (as read by [`read_at_most`]) over `limit` bytes.
pub fn too_large(file: &Path, len: usize, limit: u64, what: &str) -> Option<Diagnostic> {
    (len as u64 > limit).then(|| {
        Diagnostic::new(
            file,
            "",
            Position { line: 1, column: 1 },
            format!(
                "the file is larger than {}: {what} may have at most {} bytes",
                size(limit),
                limit
            ),
        )
    })
}

/// `1 MiB`, `64 KiB`, or bytes.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The text of `bytes` read from `file`, without a leading byte order mark; bytes that are
/// not UTF-8 are located.
pub fn decode(file: &Path, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    match String::from_utf8(bytes) {
        Ok(text) => Ok(match text.strip_prefix(BOM) {
            Some(rest) => rest.to_owned(),
            None => text,
        }),
        Err(error) => {
            let bytes = error.as_bytes();
            let valid = error.utf8_error().valid_up_to();
            // The text up to the bad byte is UTF-8: count lines and columns in it.
            let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
            let before = before.strip_prefix(BOM).unwrap_or(before);
            let position = end_position(before);
            let line_start = bytes[..valid]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let line_end = bytes[valid..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |i| valid + i);
            let line = String::from_utf8_lossy(&bytes[line_start..line_end]).into_owned();
            let mut diagnostic = Diagnostic::new(
                file,
                "",
                position,
                format!(
                    "the file is not UTF-8 text: byte 0x{:02X} does not belong here (save it as UTF-8)",
                    bytes[valid]
                ),
            );
            diagnostic.source_line = Some(line);
            Err(diagnostic)
        }
    }
}

/// The first character of `text` that YAML does not allow raw, or that would make the two
/// parsers count lines differently, located.
pub fn check_characters(file: &Path, text: &str) -> Result<(), Diagnostic> {
    let mut chars = text.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        let problem = match c {
            '\t' | '\n' => None,
            '\r' if chars.peek().is_some_and(|(_, next)| *next == '\n') => None,
            '\r' => Some(
                "a carriage return without a newline: save the file with LF (or CRLF) line ends"
                    .to_owned(),
            ),
            '\u{85}' | '\u{2028}' | '\u{2029}' => Some(format!(
                "{} is not allowed: YAML readers disagree on whether it ends a line (use a newline, or the escape \"{}\" in a double-quoted string)",
                describe(c),
                match c {
                    '\u{85}' => "\\N",
                    '\u{2028}' => "\\L",
                    _ => "\\P",
                }
            )),
            BOM if offset > 0 => Some(format!(
                "{} is only allowed at the start of the file",
                describe(c)
            )),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => Some(format!(
                "{} is not allowed in YAML (write it as the escape \"\\u{:04X}\" in a double-quoted string, or remove it)",
                describe(c),
                u32::from(c)
            )),
            _ => None,
        };
        if let Some(message) = problem {
            return Err(Diagnostic::new(
                file,
                text,
                position_of(text, offset),
                message,
            ));
        }
    }
    Ok(())
}

/// `control character U+0001`, `line separator U+2028`, ...
fn describe(c: char) -> String {
    let name = match c {
        '\u{85}' => "next line (NEL)",
        '\u{2028}' => "line separator",
        '\u{2029}' => "paragraph separator",
        BOM => "byte order mark",
        '\0' => "NUL character",
        c if c.is_control() => "control character",
        _ => "non-character",
    };
    format!("{name} U+{:04X}", u32::from(c))
}

/// The line and column of the byte `offset` of `text` (lines end at `\n`, columns count
/// characters); an offset past the end or inside a character is taken at the character
/// boundary before it.
pub fn position_of(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    end_position(&text[..offset])
}

/// The position right after `before`.
fn end_position(before: &str) -> Position {
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> &'static Path {
        Path::new("f.yaml")
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let text = decode(file(), b"\xef\xbb\xbfa: 1\n".to_vec()).unwrap();
        assert_eq!(text, "a: 1\n");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_located() {
        let error = decode(file(), b"a: 1\nb: x\xffy\n".to_vec()).unwrap_err();
        assert_eq!(error.position, Position { line: 2, column: 5 });
        assert!(error.message.contains("not UTF-8"), "{}", error.message);
        assert!(error.message.contains("0xFF"), "{}", error.message);
        assert_eq!(error.source_line.as_deref(), Some("b: x\u{fffd}y"));
    }

    #[test]
    fn control_characters_are_located_on_their_line() {
        let error = check_characters(file(), "a: 1\nbé: x\u{1}\n").unwrap_err();
        assert_eq!(error.position, Position { line: 2, column: 6 });
        assert!(
            error
                .message
                .starts_with("control character U+0001 is not allowed"),
            "{}",
            error.message
        );
    }

    #[test]
    fn line_separators_and_lone_carriage_returns_are_refused() {
        for (text, column) in [
            ("a: x\u{2028}y\n", 5),
            ("a: x\u{85}y\n", 5),
            ("a: x\ry\n", 5),
        ] {
            let error = check_characters(file(), text).unwrap_err();
            assert_eq!(error.position, Position { line: 1, column }, "{text:?}");
        }
        assert!(check_characters(file(), "a: 1\r\nb: \t2\n").is_ok());
    }

    #[test]
    fn positions_count_characters_from_line_starts() {
        let text = "ab\nçd\nx";
        assert_eq!(position_of(text, 0), Position { line: 1, column: 1 });
        assert_eq!(position_of(text, 3), Position { line: 2, column: 1 });
        assert_eq!(position_of(text, 5), Position { line: 2, column: 2 });
        assert_eq!(position_of(text, 4), Position { line: 2, column: 1 });
        assert_eq!(position_of(text, 99), Position { line: 3, column: 2 });
    }

    #[test]
    fn files_over_the_limit_are_refused() {
        assert!(too_large(file(), 10, 10, "a manifest").is_none());
        let error = too_large(file(), 11, 10, "a manifest").unwrap();
        assert!(
            error
                .message
                .starts_with("the file is larger than 10 bytes")
        );
        assert_eq!(size(1 << 20), "1 MiB");
    }
}
