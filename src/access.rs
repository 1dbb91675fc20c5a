//! Who may use coco's API: API tokens, their roles and their secrets.
//!
//! A token is a random 256-bit secret, shown once when it is made (`coco token create`) and
//! stored only as its SHA-256 ([`secret_hash`]), beside its name, [`Role`], the projects it is
//! limited to and when it expires. Pure but for [`new_secret`], which asks the kernel for
//! random bytes.
//!
//! The rules for what a token may be called and how long it may live are here, so the
//! command line and, later, the API refuse the same things ([`check_name`], [`check_lifetime`]).

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What every secret starts with: a token is recognisable in a config file or a leak scan.
pub const PREFIX: &str = "coco_";

/// Random bytes in a secret (256 bits).
const SECRET_BYTES: usize = 32;

/// The longest token name.
pub const MAX_NAME_LEN: usize = 64;

/// The most projects one token may be limited to.
pub const MAX_PROJECTS: usize = 64;

/// The shortest lifetime a token may be given.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);

/// The longest lifetime a token may be given (ten years of 365.25 days, as `10y` reads);
/// without `--expires` it never ends.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 31_557_600);

/// What a token may do. Stored as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything it may see.
    Viewer,
    /// Also enqueue, kill, restart, remove, pause and resume, and restart apps.
    Operator,
    /// Everything, tokens included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}` (viewer, operator or admin)"))
    }
}

/// A new secret: [`PREFIX`] and 64 lowercase hex digits of kernel randomness.
pub fn new_secret() -> io::Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: writes at most the remaining length into our own buffer.
        let got = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if got < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        filled += got.unsigned_abs();
    }
    Ok(format!("{PREFIX}{}", hex::encode(bytes)))
}

/// What the store keeps of `secret`: its SHA-256, as lowercase hex.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Does `text` have the shape of a secret [`new_secret`] makes? (A cheap check before any
/// lookup: what is not one is refused without touching the store.)
pub fn looks_like_secret(text: &str) -> bool {
    text.strip_prefix(PREFIX).is_some_and(|digits| {
        digits.len() == 2 * SECRET_BYTES
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Why `name` cannot name a token, if it cannot: 1 to [`MAX_NAME_LEN`] characters, ASCII
/// letters, digits, `.`, `_` and `-`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a token name cannot be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a token name has at most {MAX_NAME_LEN} characters (this one has {})",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{bad}` is not allowed in a token name (letters, digits, `.`, `_` and `-`)"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("a token name starts with a letter or a digit".into());
    }
    Ok(())
}

/// Why a token cannot live `lifetime`, if it cannot: [`MIN_LIFETIME`] to [`MAX_LIFETIME`].
pub fn check_lifetime(lifetime: Duration) -> Result<(), String> {
    if lifetime < MIN_LIFETIME {
        return Err(format!(
            "a token lives at least {} (got {})",
            humantime::format_duration(MIN_LIFETIME),
            humantime::format_duration(lifetime)
        ));
    }
    if lifetime > MAX_LIFETIME {
        return Err(format!(
            "a token lives at most 10 years (got {}); leave out --expires for one that never \
             expires",
            humantime::format_duration(lifetime)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_recognised() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 64);
        assert!(looks_like_secret(&a));
        assert!(!looks_like_secret(&a[..a.len() - 1]));
        assert!(!looks_like_secret(&a.to_uppercase()));
        assert!(!looks_like_secret(&a.replacen(PREFIX, "xoxo_", 1)));
        assert!(!looks_like_secret(""));
    }

    #[test]
    fn the_hash_is_sha256_in_hex() {
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let secret = new_secret().unwrap();
        assert!(!secret_hash(&secret).contains(&secret[PREFIX.len()..]));
    }

    #[test]
    fn roles_read_and_print_as_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert!("Admin".parse::<Role>().unwrap_err().contains("viewer"));
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn names_are_short_plain_words() {
        for good in [
            "ci",
            "grafana-1",
            "ops.team_2",
            "9lives",
            &"a".repeat(MAX_NAME_LEN),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("", "empty"),
            ("-x", "starts with"),
            (".hidden", "starts with"),
            ("a b", "` ` is not allowed"),
            ("tab\tname", "is not allowed"),
            ("ünï", "`ü` is not allowed"),
            ("a/b", "`/` is not allowed"),
        ] {
            let error = check_name(bad).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert!(check_name(&long).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn lifetimes_have_a_floor_and_a_ceiling() {
        assert_eq!(check_lifetime(MIN_LIFETIME), Ok(()));
        assert_eq!(check_lifetime(MAX_LIFETIME), Ok(()));
        assert!(
            check_lifetime(Duration::from_secs(59))
                .unwrap_err()
                .contains("at least 1m")
        );
        assert!(
            check_lifetime(MAX_LIFETIME + Duration::from_secs(1))
                .unwrap_err()
                .contains("at most 10 years")
        );
    }
}
