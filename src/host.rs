//! This host as coco names it: in member records, app owners and log records. Its
//! hostname, unless the process chose another name at its start ([`choose`]: `--host`,
//! `fleet.host`), as hosts that share a hostname must (network namespaces, containers).

use std::sync::OnceLock;

/// The name chosen for this process's host, if any.
static CHOSEN: OnceLock<String> = OnceLock::new();

/// The longest host name coco takes.
pub const MAX_NAME: usize = 64;

/// What is wrong with `name` as a host's name, if anything (pure): 1 to [`MAX_NAME`] letters,
/// digits, `.`, `_` or `-`, not starting with `-` or `.`.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Some(format!("a host name has 1 to {MAX_NAME} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "a host name holds only letters, digits, `.`, `_` and `-`, not {bad:?}"
        ));
    }
    if name.starts_with(['-', '.']) {
        return Some("a host name does not start with `-` or `.`".to_owned());
    }
    None
}

/// Go by `name` from now on (the first choice of a process stands).
pub fn choose(name: &str) {
    let _ = CHOSEN.set(name.to_owned());
}

/// This host's name: the one chosen, else the hostname (`localhost` if it cannot be read).
pub fn name() -> String {
    if let Some(chosen) = CHOSEN.get() {
        return chosen.clone();
    }
    hostname()
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_short_plain_words() {
        for good in ["h1", "web-01.example", "a_b", "X"] {
            assert_eq!(name_problem(good), None, "{good}");
        }
        for bad in ["", "-h", ".h", "a b", "h/1", "hé", &"x".repeat(65)] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
