//! Reading YAML files so that every problem can be shown at `path:line:column`.
//!
//! [`Document::parse`] keeps the text, the parsed value and a [`Positions`] index side by
//! side; [`Document::deserialize`] turns any sub-tree into a typed value and, on failure,
//! places the error on the offending key or value (with a "did you mean" for unknown keys).
//! Callers deserialize sub-trees one by one (each job, each app) so that one bad entry does
//! not hide the errors of the others. serde_yaml is used only here and in nothing that
//! outlives a parse (it is deprecated upstream; this module is the seam to replace it).

pub mod diagnostic;
pub mod positions;
pub mod text;
mod wording;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
pub use serde_yaml::Value;

pub use diagnostic::{Diagnostic, did_you_mean};
pub use positions::{Position, Positions};
use wording::{clean_message, quote_path};

/// A parsed YAML file with the positions of its nodes.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: PathBuf,
    pub text: String,
    pub value: Value,
    pub positions: Positions,
}

impl Document {
    /// Parse `text` (read from `file`). A syntax error comes back located: a character YAML
    /// does not allow, a duplicate key (at the duplicate), a second document, a YAML tag.
    /// A leading byte order mark is skipped.
    pub fn parse(file: &Path, text: &str) -> Result<Document, Diagnostic> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        text::check_characters(file, text)?;
        let positions = Positions::index(text);
        // Before libyaml sees it: its time grows with the square of the depth.
        if let Some(position) = positions.too_deep() {
            return Err(Diagnostic::new(
                file,
                text,
                position,
                format!(
                    "nested more than {} levels deep: coco reads at most {}",
                    positions::MAX_DEPTH,
                    positions::MAX_DEPTH
                ),
            ));
        }
        let value: Value = serde_yaml::from_str(text).map_err(|error| {
            let message = clean_message(&error.to_string());
            if message.contains("duplicate entry")
                && let Some(duplicate) = duplicate_named(positions.duplicates(), &message)
            {
                return Diagnostic::new(file, text, duplicate.position, duplicate.message());
            }
            if message.contains("more than one document")
                && let Some(second) = positions.documents().get(1)
            {
                return Diagnostic::new(
                    file,
                    text,
                    *second,
                    "a second YAML document starts here: the file must hold one",
                );
            }
            let position = error
                .location()
                .map(|l| text::position_of(text, l.index()))
                .unwrap_or(Position { line: 1, column: 1 });
            Diagnostic::new(file, text, position, quote_path(&message))
        })?;
        if let Some((path, tag)) = first_tag(&value, &mut Vec::new()) {
            let key = path.join(".");
            let at = if key.is_empty() {
                String::new()
            } else {
                format!("`{key}`: ")
            };
            return Err(Diagnostic::new(
                file,
                text,
                tag_position(text, positions.locate(&path)),
                format!("{at}YAML tags such as `{tag}` are not supported: remove the tag"),
            ));
        }
        Ok(Document {
            file: file.to_path_buf(),
            text: text.to_owned(),
            value,
            positions,
        })
    }

    /// A diagnostic placed at the node at `path`.
    pub fn at(&self, path: &[String], message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.file, &self.text, self.positions.locate(path), message)
    }

    /// A diagnostic placed at the key of `path` (falls back to its value).
    pub fn at_key(&self, path: &[String], message: impl Into<String>) -> Diagnostic {
        let position = self
            .positions
            .key(path)
            .unwrap_or_else(|| self.positions.locate(path));
        Diagnostic::new(&self.file, &self.text, position, message)
    }

    /// The value at `path`, if present.
    pub fn get(&self, path: &[String]) -> Option<&Value> {
        path.iter()
            .try_fold(&self.value, |node, segment| match node {
                Value::Mapping(map) => map.get(segment.as_str()),
                Value::Sequence(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            })
    }

    /// Deserialize `value` (found at `path` in this document) into `T`, locating any error.
    pub fn deserialize<T: DeserializeOwned>(
        &self,
        path: &[String],
        value: &Value,
    ) -> Result<T, Diagnostic> {
        self.try_deserialize(path, value)
            .map_err(|(diagnostic, _)| diagnostic)
    }

    /// Deserialize `value` into `T` and report every problem, not only the first: after an
    /// error inside the value, the offending entry is left out and the rest read again (its
    /// default applies), so later checks still see the other fields. `None` when the value
    /// cannot be read at all (e.g. a required field is missing).
    pub fn deserialize_all<T: DeserializeOwned>(
        &self,
        path: &[String],
        value: &Value,
    ) -> (Option<T>, Vec<Diagnostic>) {
        let mut value = value.clone();
        let mut problems = Vec::new();
        let mut removed: Vec<Vec<String>> = Vec::new();
        // Each round removes one entry, so this ends; the bound is a guard.
        for _ in 0..100 {
            match self.try_deserialize(path, &value) {
                Ok(parsed) => return (Some(parsed), problems),
                Err((diagnostic, relative)) => {
                    // A required entry left out for its own error is not missing as well.
                    let missing_removed = removed.iter().any(|gone| {
                        gone.split_last().is_some_and(|(key, parent)| {
                            parent == relative.as_slice()
                                && diagnostic
                                    .message
                                    .ends_with(&format!("missing field `{key}`"))
                        })
                    });
                    if missing_removed {
                        return (None, problems);
                    }
                    problems.push(diagnostic);
                    if relative.is_empty() || !remove(&mut value, &relative) {
                        return (None, problems);
                    }
                    removed.push(relative);
                }
            }
        }
        (None, problems)
    }

    /// Deserialize, or a located diagnostic plus the path of the offending entry relative to
    /// `value`.
    fn try_deserialize<T: DeserializeOwned>(
        &self,
        path: &[String],
        value: &Value,
    ) -> Result<T, (Diagnostic, Vec<String>)> {
        serde_path_to_error::deserialize(value.clone()).map_err(|error| {
            let mut relative: Vec<String> = error
                .path()
                .iter()
                .filter_map(|segment| {
                    use serde_path_to_error::Segment;
                    match segment {
                        Segment::Map { key } => Some(key.clone()),
                        Segment::Seq { index } => Some(index.to_string()),
                        Segment::Enum { variant } => Some(variant.clone()),
                        Segment::Unknown => None,
                    }
                })
                .collect();
            let message = clean_message(&error.inner().to_string());
            if let Some((variant, expected)) = unknown_name("unknown variant `", &message) {
                let full = [path, &relative].concat();
                let suggestion = did_you_mean(&variant, expected.iter().map(String::as_str));
                let key = full.join(".");
                let diagnostic = self
                    .at(
                        &full,
                        format!(
                            "`{key}`: `{variant}` is not one of: {}",
                            expected.join(", ")
                        ),
                    )
                    .with_suggestion(suggestion);
                return (diagnostic, relative);
            }
            if let Some((field, expected)) = unknown_name("unknown field `", &message) {
                // The path may or may not already end in the unknown key.
                if relative.last().map(String::as_str) != Some(field.as_str()) {
                    relative.push(field.clone());
                }
                let full = [path, &relative].concat();
                let suggestion = did_you_mean(&field, expected.iter().map(String::as_str));
                let text = if suggestion.is_some() || expected.is_empty() {
                    format!("unknown key `{field}`")
                } else {
                    format!(
                        "unknown key `{field}`, expected one of: {}",
                        expected.join(", ")
                    )
                };
                return (
                    self.at_key(&full, text).with_suggestion(suggestion),
                    relative,
                );
            }
            let full = [path, &relative].concat();
            let key = full.join(".");
            let text = if key.is_empty() {
                message
            } else {
                format!("`{key}`: {message}")
            };
            (self.at(&full, text), relative)
        })
    }
}

/// Remove the entry at `path` from `value`; false if there is none.
fn remove(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        node = match node {
            Value::Mapping(map) => match map.get_mut(segment.as_str()) {
                Some(child) => child,
                None => return false,
            },
            Value::Sequence(items) => {
                match segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(child) => child,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match node {
        Value::Mapping(map) => map.remove(last.as_str()).is_some(),
        Value::Sequence(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// The duplicate serde_yaml's `duplicate entry with key "a"` is about: the first whose key
/// is written the same, else the first (keys such as `1` and `"1"` differ in YAML but not in
/// the index).
fn duplicate_named<'a>(
    duplicates: &'a [positions::Duplicate],
    message: &str,
) -> Option<&'a positions::Duplicate> {
    let key = message
        .split_once("with key ")
        .map(|(_, key)| key.trim_matches(|c| c == '"' || c == '`'));
    duplicates
        .iter()
        .find(|d| d.path.last().map(String::as_str) == key)
        .or(duplicates.first())
}

/// The path and tag of the first tagged node (`!foo x`) in `value`, keys before values.
fn first_tag(value: &Value, path: &mut Vec<String>) -> Option<(Vec<String>, String)> {
    match value {
        Value::Tagged(tagged) => Some((path.clone(), tagged.tag.to_string())),
        Value::Mapping(map) => map.iter().find_map(|(key, child)| {
            if let Value::Tagged(tagged) = key {
                return Some((path.clone(), tagged.tag.to_string()));
            }
            path.push(scalar_text(key));
            let found = first_tag(child, path);
            path.pop();
            found
        }),
        Value::Sequence(items) => items.iter().enumerate().find_map(|(index, child)| {
            path.push(index.to_string());
            let found = first_tag(child, path);
            path.pop();
            found
        }),
        _ => None,
    }
}

/// Where the tag of the node at `node` is written: the last `!` before it on its line (the
/// positions index marks a node where its content starts, after the tag).
fn tag_position(text: &str, node: Position) -> Position {
    let line = text
        .lines()
        .nth(node.line.saturating_sub(1))
        .unwrap_or_default();
    let before: Vec<char> = line.chars().take(node.column.saturating_sub(1)).collect();
    let Some(mut start) = before.iter().rposition(|c| *c == '!') else {
        return node;
    };
    // `!e!tag`, `!<tag>`: back to the first character of the tag.
    while start > 0 && !before[start - 1].is_whitespace() && !"[{,".contains(before[start - 1]) {
        start -= 1;
    }
    Position {
        line: node.line,
        column: start + 1,
    }
}

/// A mapping key as the positions index names it.
fn scalar_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "~".to_owned(),
        _ => "?".to_owned(),
    }
}

/// Split serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant ...")
/// into `x` and `[a, b]`.
fn unknown_name(prefix: &str, message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(prefix)?;
    let end = rest.find('`')?;
    let field = rest[..end].to_owned();
    let expected = rest[end..]
        .split('`')
        .skip(2)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field, expected))
}

/// Build a path from dotted text: `path!("jobs", name, "schedule")`.
pub fn path<const N: usize>(segments: [&str; N]) -> Vec<String> {
    segments.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Job {
        command: String,
        attempts: Option<u32>,
    }

    fn doc(text: &str) -> Document {
        Document::parse(Path::new("f.yaml"), text).unwrap()
    }

    #[test]
    fn duplicate_keys_are_located_at_the_duplicate() {
        let error = Document::parse(Path::new("f.yaml"), "a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert_eq!(error.position, Position { line: 4, column: 3 });
        assert_eq!(
            error.message,
            "duplicate key `c` in `b` (first written at line 3): write each key once"
        );
        // `1` and `"1"` are different keys; the same key in two mappings is no duplicate.
        assert!(Document::parse(Path::new("f.yaml"), "x: {a: 1}\ny: {a: 1}\n").is_ok());
        let error =
            Document::parse(Path::new("f.yaml"), "1: a\n\"1\": b\nc: 1\nc: 2\n").unwrap_err();
        assert_eq!(error.position, Position { line: 4, column: 1 });
    }

    #[test]
    fn tags_are_refused_at_the_tag() {
        let error = Document::parse(Path::new("f.yaml"), "a:\n  b: [1, !x 2]\n").unwrap_err();
        assert_eq!(
            error.position,
            Position {
                line: 2,
                column: 10
            }
        );
        assert!(
            error.message.starts_with("`a.b.1`: YAML tags such as `!x`"),
            "{}",
            error.message
        );
        // Standard tags resolve to plain values.
        assert!(Document::parse(Path::new("f.yaml"), "a: !!str 1\n").is_ok());
    }

    #[test]
    fn syntax_errors_are_located() {
        let error = Document::parse(Path::new("f.yaml"), "a: [1, 2\nb: c\n").unwrap_err();
        assert_eq!(error.file, Path::new("f.yaml"));
        assert!(error.position.line >= 1, "{error}");
    }

    #[test]
    fn unknown_keys_are_located_with_a_suggestion() {
        let d = doc("jobs:\n  hello:\n    command: x\n    atempts: 3\n");
        let job = d.get(&path(["jobs", "hello"])).unwrap();
        let error = d
            .deserialize::<Job>(&path(["jobs", "hello"]), job)
            .unwrap_err();
        assert_eq!(
            error.headline(),
            "f.yaml:4:5: unknown key `atempts` (did you mean `attempts`?)"
        );
    }

    #[test]
    fn type_errors_are_located_on_the_value() {
        let d = doc("jobs:\n  hello:\n    command: x\n    attempts: many\n");
        let job = d.get(&path(["jobs", "hello"])).unwrap();
        let error = d
            .deserialize::<Job>(&path(["jobs", "hello"]), job)
            .unwrap_err();
        assert_eq!(
            error.position,
            Position {
                line: 4,
                column: 15
            }
        );
        assert!(
            error
                .message
                .starts_with("`jobs.hello.attempts`: invalid type"),
            "{}",
            error.message
        );
    }
}
