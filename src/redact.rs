//! Hide secrets before anything is shown: passwords in URLs become `***`.
//!
//! Used by `coco config`, store error messages and the log formatter, so no output path
//! prints a credential.

/// Replace the password of every `scheme://user:password@host` URL in `text` with `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_at) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_at + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let authority_len = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..authority_len];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_len..];
    }
    out.push_str(rest);
    out
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
    fn leaves_urls_without_password_alone() {
        for url in [
            "mongodb://localhost:27017",
            "mongodb://user@host",
            "plain text",
            "",
        ] {
            assert_eq!(redact(url), url);
        }
    }
}
