//! Release versions (pure): `X.Y.Z` parsed, compared and bumped, and written into a
//! coco.yaml text without touching anything else in it (comments, order, quoting).

use std::fmt;

/// A release version `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

/// Which part `coco build --major/--minor/--patch` raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    Major,
    Minor,
    Patch,
}

impl Version {
    pub const ZERO: Version = Version {
        major: 0,
        minor: 0,
        patch: 0,
    };

    /// `X.Y.Z`, each a number (a leading `v` is accepted).
    pub fn parse(text: &str) -> Result<Version, String> {
        let trimmed = text.trim();
        let digits = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let parts: Vec<&str> = digits.split('.').collect();
        let number = |part: &str| {
            (!part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten()
        };
        match parts.as_slice() {
            [major, minor, patch] => match (number(major), number(minor), number(patch)) {
                (Some(major), Some(minor), Some(patch)) => Ok(Version {
                    major,
                    minor,
                    patch,
                }),
                _ => Err(format!("`{text}` is not a version X.Y.Z")),
            },
            _ => Err(format!("`{text}` is not a version X.Y.Z")),
        }
    }

    pub fn bump(self, part: Bump) -> Version {
        match part {
            Bump::Major => Version {
                major: self.major + 1,
                minor: 0,
                patch: 0,
            },
            Bump::Minor => Version {
                minor: self.minor + 1,
                patch: 0,
                ..self
            },
            Bump::Patch => Version {
                patch: self.patch + 1,
                ..self
            },
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// `text` (a coco.yaml) with its top-level `version:` set to `version`: the value replaced
/// in place (its quotes and any trailing comment kept), or a `version:` line added after
/// `project:` (else before the first top-level key) when there is none.
pub fn set_version(text: &str, version: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let key_of = |line: &str| -> Option<String> {
        let first = line.chars().next()?;
        if first.is_whitespace() || first == '#' || first == '-' {
            return None;
        }
        line.split_once(':').map(|(key, _)| key.trim().to_owned())
    };
    if let Some(index) = lines
        .iter()
        .position(|line| key_of(line).as_deref() == Some("version"))
    {
        let line = &lines[index];
        let (key, rest) = line.split_once(':').expect("a key line");
        let value_start = rest.len() - rest.trim_start().len();
        let value_and_comment = &rest[value_start..];
        // The value ends where a ` #` comment starts (outside quotes, which versions lack).
        let (value, comment) = match value_and_comment.find(" #") {
            Some(at) => value_and_comment.split_at(at),
            None => (value_and_comment, ""),
        };
        let value = value.trim_end();
        let padding = &value_and_comment[value.len()..value_and_comment.len() - comment.len()];
        let quoted = match value.chars().next() {
            Some(q @ ('"' | '\'')) => format!("{q}{version}{q}"),
            _ => version.to_owned(),
        };
        let space = if value_start == 0 {
            " "
        } else {
            &rest[..value_start]
        };
        lines[index] = format!("{key}:{space}{quoted}{padding}{comment}");
    } else {
        let at = lines
            .iter()
            .position(|line| key_of(line).as_deref() == Some("project"))
            .map(|i| i + 1)
            .or_else(|| lines.iter().position(|line| key_of(line).is_some()))
            .unwrap_or(lines.len());
        lines.insert(at, format!("version: {version}"));
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') || text.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_compare_and_bump() {
        let v = Version::parse("1.2.3").unwrap();
        assert_eq!(v.to_string(), "1.2.3");
        assert_eq!(Version::parse("v0.0.1").unwrap().to_string(), "0.0.1");
        for bad in ["1.2", "1.2.3.4", "a.b.c", "1..3", "", "1.2.-3"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(v.bump(Bump::Major).to_string(), "2.0.0");
        assert_eq!(v.bump(Bump::Minor).to_string(), "1.3.0");
        assert_eq!(v.bump(Bump::Patch).to_string(), "1.2.4");
        assert!(Version::parse("0.10.0").unwrap() > Version::parse("0.9.9").unwrap());
    }

    #[test]
    fn the_version_line_is_replaced_in_place() {
        let text = "# mine\nproject: p\nversion: 0.0.0   # bumped by coco build\njobs:\n  a:\n    version: 9\n";
        assert_eq!(
            set_version(text, "0.1.0"),
            "# mine\nproject: p\nversion: 0.1.0   # bumped by coco build\njobs:\n  a:\n    version: 9\n"
        );
        assert_eq!(
            set_version("version: \"1.0.0\"\n", "1.0.1"),
            "version: \"1.0.1\"\n"
        );
        assert_eq!(set_version("version: '1.0.0'", "2.0.0"), "version: '2.0.0'");
    }

    #[test]
    fn a_missing_version_is_added_after_the_project() {
        assert_eq!(
            set_version("# c\nproject: p\njobs: {}\n", "0.0.1"),
            "# c\nproject: p\nversion: 0.0.1\njobs: {}\n"
        );
        assert_eq!(
            set_version("# c\njobs: {}\n", "0.0.1"),
            "# c\nversion: 0.0.1\njobs: {}\n"
        );
    }
}
