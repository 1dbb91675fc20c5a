//! Hide secrets before anything is shown: passwords in URLs become `***`.
//!
//! Used by `coco config`, store error messages and the log formatter, so no output path
//! prints a credential.
//!
//! A password may hold any character the MongoDB driver accepts unencoded (`/`, `#`, `?`,
//! spaces, `@`), so the userinfo of a URL is not cut at the first of those: it runs to the
//! last `@` before the URL-like text ends (a line break, a closing `"` of a quoted string,
//! or the next `scheme://`). When unsure, more is hidden rather than less.

/// Replace the password of every `scheme://user:password@host` URL in `text` with `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_at) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_at + 3);
        out.push_str(head);
        let region = &tail[..url_text_len(tail)];
        let consumed = match password_span(region).or_else(|| quote_in_password(tail, region)) {
            Some((start, end)) => {
                out.push_str(&region[..start]);
                out.push_str("***");
                end
            }
            None => 0,
        };
        rest = &tail[consumed..];
    }
    out.push_str(rest);
    out
}

/// How far the URL-like text at the start of `tail` (just after `://`) may reach: to a line
/// break, an unescaped `"` (the end of a quoted or JSON string) or the next `://`.
fn url_text_len(tail: &str) -> usize {
    let mut escaped = false;
    for (index, c) in tail.char_indices() {
        match c {
            '\n' | '\r' => return index,
            '"' if !escaped => return index,
            ':' if tail[index..].starts_with("://") => return index,
            _ => {}
        }
        escaped = c == '\\' && !escaped;
    }
    tail.len()
}

/// A password holding a raw `"` (`mongodb://u:pa"ss@host`) cuts the URL-like text short of
/// its `@`: when the text cut at that quote has a `user:` and the quote is followed by an
/// `@` before the line ends with no other quote between, the password runs to that `@`.
fn quote_in_password(tail: &str, region: &str) -> Option<(usize, usize)> {
    let after = tail[region.len()..].strip_prefix('"')?;
    let line = &after[..after.find(['\n', '\r']).unwrap_or(after.len())];
    let at = line.find('@')?;
    if line[..at].contains('"') {
        return None;
    }
    let colon = region.find(':')?;
    if region[..colon].chars().any(char::is_whitespace) {
        return None;
    }
    Some((colon + 1, region.len() + 1 + at))
}

/// The byte range of the password in `region` (`user:password@host…`): after the first `:`
/// up to the last `@`; `None` without both, or when the user part holds whitespace (then it
/// is prose, not a user name).
fn password_span(region: &str) -> Option<(usize, usize)> {
    let at = region.rfind('@')?;
    let colon = region[..at].find(':')?;
    if region[..colon].chars().any(char::is_whitespace) {
        return None;
    }
    Some((colon + 1, at))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_the_password_only() {
        assert_eq!(
            redact("mongodb://core:654321@localhost:27017"),
            "mongodb://core:***@localhost:27017"
        );
        assert_eq!(
            redact("failed: mongodb://a:b@h/db?x=1 and http://u:p@w:1/"),
            "failed: mongodb://a:***@h/db?x=1 and http://u:***@w:1/"
        );
    }

    #[test]
    fn hides_passwords_with_characters_the_driver_accepts_unencoded() {
        for (url, shown) in [
            (
                "mongodb://u:se cretpw@localhost:27017/db",
                "mongodb://u:***@localhost:27017/db",
            ),
            ("mongodb://u:a/b#c@h:1", "mongodb://u:***@h:1"),
            ("mongodb://u:p?q=1@h/db?x=1", "mongodb://u:***@h/db?x=1"),
            ("mongodb://u:p@ss@h", "mongodb://u:***@h"),
            ("mongodb://u:@h", "mongodb://u:***@h"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
            assert_eq!(
                redact(&format!("error: {url}: timed out")),
                format!("error: {shown}: timed out")
            );
        }
    }

    #[test]
    fn the_url_ends_at_a_line_a_quote_or_the_next_url() {
        assert_eq!(
            redact("url: mongodb://u:a b@h\nnext line: x@y"),
            "url: mongodb://u:***@h\nnext line: x@y"
        );
        assert_eq!(
            redact(r#"{"url": "mongodb://u:a\"b c@h", "who": "x@y"}"#),
            r#"{"url": "mongodb://u:***@h", "who": "x@y"}"#
        );
        assert_eq!(
            redact("Mongo { url: \"mongodb://u:se cret@h\", database: \"d@b\" }"),
            "Mongo { url: \"mongodb://u:***@h\", database: \"d@b\" }"
        );
        assert_eq!(
            redact("a mongodb://u:p w@h then http://v:q/r@i"),
            "a mongodb://u:***@h then http://v:***@i"
        );
    }

    #[test]
    fn a_password_with_a_quote_is_hidden_too() {
        assert_eq!(
            redact("mongo_url: mongodb://u:pa\"ss@h:27017/db"),
            "mongo_url: mongodb://u:***@h:27017/db"
        );
        assert_eq!(
            redact("error: mongodb://u:p\"w@h: timed out"),
            "error: mongodb://u:***@h: timed out"
        );
        // A quoted URL without a password, then other quoted text with an `@`: left alone.
        let json = r#"{"url": "mongodb://host:27017", "mail": "a@b"}"#;
        assert_eq!(redact(json), json);
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        for url in [
            "mongodb://localhost:27017",
            "mongodb://user@host",
            "mongodb://host:27017/db failed",
            "see http://example.org/a b for who@where",
            "plain text",
            "",
        ] {
            assert_eq!(redact(url), url);
        }
    }
}
