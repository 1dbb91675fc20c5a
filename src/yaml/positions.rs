//! Where every node of a YAML document sits: `jobs.hello.schedule` → line 7, column 15.
//!
//! serde_yaml locates syntax errors, but a value that parses and is still wrong (a cron
//! field of 61) needs its position too. [`Positions::index`] walks the document once with a
//! parser that keeps markers (yaml-rust2) and records, for each path, where its key and its
//! value start. Pure: text in, index out.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Positions of the keys and values of one YAML document, by path (map keys and sequence
/// indexes as strings).
#[derive(Debug, Default, Clone)]
pub struct Positions {
    values: HashMap<Vec<String>, Position>,
    keys: HashMap<Vec<String>, Position>,
    /// Where flow collection values (`[..]`, `{..}`) start.
    collections: HashMap<Vec<String>, Position>,
    /// Keys written a second time in the same mapping, in document order.
    duplicates: Vec<Duplicate>,
    /// Where each document of the stream starts.
    documents: Vec<Position>,
    /// Where the first collection nested deeper than [`MAX_DEPTH`] starts.
    too_deep: Option<Position>,
}

/// A key written twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The path of the key (its mapping's path, then the key).
    pub path: Vec<String>,
    /// Where it is written first.
    pub first: Position,
    /// Where it is written again.
    pub position: Position,
}

impl Duplicate {
    /// `duplicate key `a` in `jobs` (first written at line 3)`.
    pub fn message(&self) -> String {
        let (key, parents) = self
            .path
            .split_last()
            .map_or(("", &[][..]), |(k, p)| (k.as_str(), p));
        let within = if parents.is_empty() {
            String::new()
        } else {
            format!(" in `{}`", parents.join("."))
        };
        format!(
            "duplicate key `{key}`{within} (first written at line {}): write each key once",
            self.first.line
        )
    }
}

impl Positions {
    /// Index `text`. A document that does not parse yields an empty index (its syntax error
    /// is reported by serde_yaml, with its own position).
    pub fn index(text: &str) -> Positions {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        // Every document, to know where a second one starts (that is an error); the
        // builder indexes only the first.
        let result = parser.load(&mut builder, true);
        let mut positions = builder.positions;
        // Flow collections deeper than 255 levels stop the scanner before their events come.
        if let Err(error) = result
            && error.info() == "recursion limit exceeded"
        {
            positions.too_deep.get_or_insert(Position {
                line: error.marker().line(),
                column: error.marker().col() + 1,
            });
        }
        // Only flow collections (`[..]`, `{..}`) start where the parser marks them; a block
        // collection is better shown at its key.
        let lines: Vec<&str> = text.lines().collect();
        positions.collections.retain(|_, p| {
            lines
                .get(p.line.wrapping_sub(1))
                .and_then(|line| line.chars().nth(p.column.wrapping_sub(1)))
                .is_some_and(|c| c == '[' || c == '{')
        });
        positions
    }

    /// Keys written twice in one mapping, in document order.
    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// Where each YAML document of the text starts (more than one is an error).
    pub fn documents(&self) -> &[Position] {
        &self.documents
    }

    /// Where the first collection nested more than [`MAX_DEPTH`] levels deep starts, if any.
    pub fn too_deep(&self) -> Option<Position> {
        self.too_deep
    }

    /// Where the value at `path` starts.
    pub fn value(&self, path: &[String]) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// Where the key naming `path` starts (for "unknown key" errors).
    pub fn key(&self, path: &[String]) -> Option<Position> {
        self.keys.get(path).copied()
    }

    /// The best position for an error at `path`: a scalar value or flow collection, else its
    /// key; else the same for the nearest known ancestor; else the top of the file.
    pub fn locate(&self, path: &[String]) -> Position {
        (0..=path.len())
            .rev()
            .find_map(|len| {
                let at = &path[..len];
                self.value(at)
                    .or_else(|| self.collections.get(at).copied())
                    .or_else(|| self.key(at))
            })
            .unwrap_or(Position { line: 1, column: 1 })
    }
}

/// One open collection while walking the events.
enum Frame {
    /// A mapping; `pending_key` is the key whose value comes next, if one was read.
    Mapping {
        pending_key: Option<String>,
    },
    Sequence {
        next_index: usize,
    },
}

/// Collections nested deeper than this are not indexed: serde_yaml refuses them, and indexing
/// (or parsing them with libyaml) costs the square of their depth.
pub const MAX_DEPTH: usize = 128;

#[derive(Default)]
struct Builder {
    positions: Positions,
    path: Vec<String>,
    stack: Vec<Frame>,
    /// How many collections deeper than [`MAX_DEPTH`] are open.
    too_deep: usize,
}

impl Builder {
    /// A node (scalar or collection start) begins at `mark`: is it a key or a value?
    /// Returns true when the node is a value (so a collection start must push a path segment).
    fn node(&mut self, mark: Marker, scalar: Option<&str>) -> bool {
        // yaml-rust2 counts columns from 0.
        let position = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        let values = if scalar.is_some() {
            &mut self.positions.values
        } else {
            &mut self.positions.collections
        };
        match self.stack.last_mut() {
            // The document itself: errors there point at the top of the file.
            None => false,
            Some(Frame::Mapping { pending_key }) => match pending_key.take() {
                None => {
                    // A key. Non-scalar keys are unusual; index them by their marker text.
                    let key = scalar.map(str::to_owned).unwrap_or_else(|| "?".to_owned());
                    let mut key_path = self.path.clone();
                    key_path.push(key.clone());
                    match self.positions.keys.entry(key_path) {
                        Entry::Occupied(first) if scalar.is_some() => {
                            self.positions.duplicates.push(Duplicate {
                                path: first.key().clone(),
                                first: *first.get(),
                                position,
                            });
                        }
                        Entry::Occupied(_) => {}
                        Entry::Vacant(entry) => {
                            entry.insert(position);
                        }
                    }
                    *pending_key = Some(key);
                    false
                }
                Some(key) => {
                    self.path.push(key);
                    values.insert(self.path.clone(), position);
                    true
                }
            },
            Some(Frame::Sequence { next_index }) => {
                self.path.push(next_index.to_string());
                *next_index += 1;
                values.insert(self.path.clone(), position);
                true
            }
        }
    }
}

impl Builder {
    /// A scalar value is complete at once: drop its path segment again.
    fn leave_scalar(&mut self, is_value: bool) {
        if is_value {
            self.path.pop();
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.positions.documents.len() > 1 {
            return;
        }
        if self.too_deep > 0 {
            match event {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.too_deep += 1,
                Event::MappingEnd | Event::SequenceEnd => self.too_deep -= 1,
                _ => {}
            }
            return;
        }
        if self.stack.len() >= MAX_DEPTH
            && matches!(event, Event::MappingStart(..) | Event::SequenceStart(..))
        {
            // Indexed as a leaf, its contents skipped.
            self.positions.too_deep.get_or_insert(Position {
                line: mark.line(),
                column: mark.col() + 1,
            });
            let is_value = self.node(mark, None);
            self.leave_scalar(is_value);
            self.too_deep = 1;
            return;
        }
        match event {
            Event::Scalar(text, ..) => {
                let is_value = self.node(mark, Some(&text));
                self.leave_scalar(is_value);
            }
            Event::Alias(_) => {
                let is_value = self.node(mark, None);
                self.leave_scalar(is_value);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_value = self.node(mark, None);
                if !is_value && !self.stack.is_empty() {
                    // A collection used as a mapping key: keep the stack balanced with a
                    // placeholder segment.
                    self.path.push("?".to_owned());
                }
                self.stack.push(match event {
                    Event::MappingStart(..) => Frame::Mapping { pending_key: None },
                    _ => Frame::Sequence { next_index: 0 },
                });
            }
            Event::DocumentStart => self.positions.documents.push(Position {
                line: mark.line(),
                column: mark.col() + 1,
            }),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                if !self.stack.is_empty() {
                    self.path.pop();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(dotted: &str) -> Vec<String> {
        dotted.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn indexes_nested_keys_values_and_sequences() {
        let text = "project: a\njobs:\n  hello:\n    command: [echo, hi]\n    schedule: \"* * * * *\"\n  other:\n    command:\n      - x\n";
        let p = Positions::index(text);
        assert_eq!(
            p.value(&path("project")),
            Some(Position {
                line: 1,
                column: 10
            })
        );
        assert_eq!(
            p.key(&path("jobs.hello")),
            Some(Position { line: 3, column: 3 })
        );
        assert_eq!(
            p.value(&path("jobs.hello.schedule")),
            Some(Position {
                line: 5,
                column: 15
            })
        );
        assert_eq!(
            p.value(&path("jobs.hello.command.1")),
            Some(Position {
                line: 4,
                column: 21
            })
        );
        assert_eq!(
            p.value(&path("jobs.other.command.0")),
            Some(Position { line: 8, column: 9 })
        );
        assert_eq!(
            p.key(&path("jobs.other")),
            Some(Position { line: 6, column: 3 })
        );
    }

    #[test]
    fn deep_nesting_is_indexed_to_a_bound_in_linear_time() {
        let depth = 200;
        let text = format!("a: {}1{}\nb: 2\n", "[".repeat(depth), "]".repeat(depth));
        let p = Positions::index(&text);
        assert_eq!(p.value(&path("b")), Some(Position { line: 2, column: 4 }));
        assert!(p.values.keys().all(|k| k.len() <= MAX_DEPTH + 1));
        assert_eq!(
            p.too_deep(),
            Some(Position {
                line: 1,
                column: 3 + MAX_DEPTH
            })
        );
        // The scanner stops at its own bound: a million levels cost nothing.
        let text = format!("a: {}", "[".repeat(1_000_000));
        assert!(Positions::index(&text).too_deep().is_some());
    }

    #[test]
    fn locate_falls_back_to_the_nearest_ancestor() {
        let p = Positions::index("jobs:\n  hello:\n    attempts: 3\n");
        assert_eq!(
            p.locate(&path("jobs.hello.missing")),
            Position { line: 2, column: 3 }
        );
        assert_eq!(p.locate(&path("nothing")), Position { line: 1, column: 1 });
    }
}
