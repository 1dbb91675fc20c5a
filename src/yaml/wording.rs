//! serde's and serde_yaml's messages in words a user knows: no Rust type names
//! (`struct RawEnvironment`, `a Value::Tagged enum`, `u32`, `as i128`), no " at line X column
//! Y" (the position is shown already), paths quoted like every other message. Pure.

/// serde's message in words a user knows: without serde_yaml's " at line X column Y" (the
/// position is shown already) and without Rust type names (`struct RawEnvironment`, `u32`).
pub fn clean_message(message: &str) -> String {
    let message = match message.find(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    // serde_yaml's word for "a choice, written as one word", and for a number no setting
    // holds (`integer `N` as i128, expected any YAML value`).
    let mut message = message.replace("a Value::Tagged enum", "one word naming a choice");
    for wide in ["i128", "u128"] {
        const HEAD: &str = "invalid type: integer `";
        let foot = format!("` as {wide}, expected any YAML value");
        if let Some(start) = message.find(HEAD)
            && let Some(end) = message.find(&foot)
            && end > start
        {
            let number = &message[start + HEAD.len()..end];
            let tail = &message[end + foot.len()..];
            message = format!(
                "{}the number `{number}` is too large{tail}",
                &message[..start]
            );
        }
    }
    let mut words: Vec<String> = Vec::new();
    let mut rest = message.split(' ').peekable();
    while let Some(word) = rest.next() {
        let (core, tail) = split_punctuation(word);
        let plain = match core {
            "struct" | "enum" if rest.peek().is_some_and(|next| is_type_name(next)) => {
                let (_, next_tail) = split_punctuation(rest.next().unwrap_or_default());
                words.push(format!(
                    "{}{next_tail}",
                    if core == "struct" {
                        "a mapping"
                    } else {
                        "one of the listed values"
                    }
                ));
                continue;
            }
            "u8" => Some("a whole number from 0 to 255"),
            "u16" => Some("a whole number from 0 to 65535"),
            "u32" => Some("a whole number from 0 to 4294967295"),
            "u64" | "usize" => Some("a whole number of 0 or more"),
            "i8" | "i16" | "i32" | "i64" | "isize" => Some("a whole number"),
            "f32" | "f64" => Some("a number"),
            _ => None,
        };
        words.push(match plain {
            Some(plain) => format!("{plain}{tail}"),
            None => word.to_owned(),
        });
    }
    words.join(" ")
}

/// serde_yaml starts some messages with the path (`jobs.a: ...`): quoted as everywhere else.
pub fn quote_path(message: &str) -> String {
    match message.split_once(": ") {
        Some((path, rest))
            if !path.is_empty() && !path.contains([' ', '`']) && !rest.is_empty() =>
        {
            format!("`{path}`: {rest}")
        }
        _ => message.to_owned(),
    }
}

/// `Name,` → (`Name`, `,`).
fn split_punctuation(word: &str) -> (&str, &str) {
    let end = word.trim_end_matches([',', '.', ';', ':', ')']).len();
    word.split_at(end)
}

/// A Rust type name as serde shows it: `RawEnvironment`, `Concurrency`.
fn is_type_name(word: &str) -> bool {
    let (core, _) = split_punctuation(word);
    core.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && core.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_no_rust_types() {
        assert_eq!(
            clean_message(
                "invalid type: sequence, expected struct RawEnvironment at line 2 column 3"
            ),
            "invalid type: sequence, expected a mapping"
        );
        assert_eq!(
            clean_message("invalid value: integer `70000`, expected u16"),
            "invalid value: integer `70000`, expected a whole number from 0 to 65535"
        );
        assert_eq!(
            clean_message("invalid type: map, expected a Value::Tagged enum"),
            "invalid type: map, expected one word naming a choice"
        );
        assert_eq!(
            clean_message(
                "a.b: invalid type: integer `-99999999999999999999` as i128, expected any YAML value"
            ),
            "a.b: the number `-99999999999999999999` is too large"
        );
        assert_eq!(
            clean_message("invalid type: string \"u32\", expected i32"),
            "invalid type: string \"u32\", expected a whole number"
        );
    }
}
