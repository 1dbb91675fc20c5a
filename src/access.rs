//! Who may use coco's API: API tokens, their roles and their secrets.
//!
//! A token is a random 256-bit secret, shown once when it is made (`coco token create`) and
//! stored only as its SHA-256 ([`secret_hash`]), beside its name, [`Role`], the projects it is
//! limited to and when it expires. Pure but for [`new_secret`], which asks the kernel for
//! random bytes.
//!
//! The rules for what a token may be called and how long it may live are here, so the
//! command line and, later, the API refuse the same things ([`check_name`], [`check_lifetime`]),
//! and so is what a token may do ([`authorize`]): the one decision every API route asks.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
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

/// What a request asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read (every role).
    Read,
    /// Change runs, apps or pauses: enqueue, kill, restart, remove, pause, resume (operator,
    /// admin).
    Operate,
    /// Manage tokens (admin).
    Administer,
}

/// What a request's token holds: its role, its projects (empty: all) and its expiry.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    pub role: Role,
    pub projects: &'a [String],
    pub expires: Option<DateTime<Utc>>,
}

impl Holder<'_> {
    /// Has it expired at `now`?
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }

    /// May it see project `project` at all? An admin sees every project; another token only
    /// those it is limited to, if it is limited.
    pub fn sees(&self, project: &str) -> bool {
        self.role == Role::Admin
            || self.projects.is_empty()
            || self.projects.iter().any(|p| p == project)
    }
}

/// The answer to a request (an HTTP status, when the API gives it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No token, an unknown, revoked or expired one (401).
    Unauthenticated,
    /// A token that sees the project but may not do this (403).
    Forbidden,
    /// What the request names is in a project the token does not see: answered exactly as
    /// if it did not exist (404), so a token never learns what other projects hold.
    Hidden,
}

/// May `holder` (`None`: no valid token was sent) do `need` at `now`, on what belongs to
/// `project` (`None`: nothing of one project, e.g. a list the caller filters with
/// [`Holder::sees`])? Pure.
pub fn authorize(
    holder: Option<&Holder<'_>>,
    now: DateTime<Utc>,
    need: Need,
    project: Option<&str>,
) -> Verdict {
    let Some(holder) = holder.filter(|h| !h.expired(now)) else {
        return Verdict::Unauthenticated;
    };
    if project.is_some_and(|p| !holder.sees(p)) {
        return Verdict::Hidden;
    }
    let allowed = match need {
        Need::Read => true,
        Need::Operate => holder.role >= Role::Operator,
        Need::Administer => holder.role == Role::Admin,
    };
    if allowed {
        Verdict::Allowed
    } else {
        Verdict::Forbidden
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

/// How long a `coco dashboard` login link is accepted.
pub const LOGIN_LIFETIME: Duration = Duration::from_secs(60);

/// How long a dashboard session lasts (never longer than the token it was made for).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// What a stored token record is, told by its name (pure). Login links and sessions are
/// token records whose names carry a `:`, which [`check_name`] refuses, so no token named by
/// an operator is taken for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind<'a> {
    /// A token `coco token create` made.
    Token,
    /// A one-time login link (`login:RANDOM:FOR`), accepted once by `GET /login`.
    Login { of: Option<&'a str> },
    /// A dashboard session (`session:RANDOM:FOR`), sent as a cookie.
    Session { of: Option<&'a str> },
}

impl<'a> TokenKind<'a> {
    /// The kind of the record named `name`; `of`: the token it was made for (`None`: the
    /// operator's own admin).
    pub fn of_name(name: &'a str) -> TokenKind<'a> {
        let mut parts = name.splitn(3, ':');
        let (Some(kind), Some(_random), Some(of)) = (parts.next(), parts.next(), parts.next())
        else {
            return TokenKind::Token;
        };
        let of = (!of.is_empty()).then_some(of);
        match kind {
            "login" => TokenKind::Login { of },
            "session" => TokenKind::Session { of },
            _ => TokenKind::Token,
        }
    }
}

/// The record name of a new login link or session for token `of` (`None`: the operator's
/// own admin), made unique by 8 random hex digits.
pub fn derived_name(kind: &str, of: Option<&str>) -> io::Result<String> {
    let random = new_secret()?;
    let random = &random[PREFIX.len()..PREFIX.len() + 8];
    Ok(format!("{kind}:{random}:{}", of.unwrap_or("")))
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

    /// The access matrix: role × need × project (own, another, none), expired and missing.
    #[test]
    fn what_each_role_may_do_where() {
        use Need::*;
        use Verdict::*;
        let now = DateTime::from_timestamp_millis(1_780_000_000_000).unwrap();
        let shop = ["shop".to_string()];
        let holder = |role, projects: &'static [String]| Holder {
            role,
            projects,
            expires: None,
        };
        let everywhere = |role| holder(role, &[]);
        let cases: &[(Holder<'_>, Need, Option<&str>, Verdict)] = &[
            (everywhere(Role::Viewer), Read, Some("shop"), Allowed),
            (everywhere(Role::Viewer), Read, None, Allowed),
            (everywhere(Role::Viewer), Operate, Some("shop"), Forbidden),
            (everywhere(Role::Viewer), Operate, None, Forbidden),
            (everywhere(Role::Viewer), Administer, None, Forbidden),
            (everywhere(Role::Operator), Read, Some("billing"), Allowed),
            (
                everywhere(Role::Operator),
                Operate,
                Some("billing"),
                Allowed,
            ),
            (everywhere(Role::Operator), Operate, None, Allowed),
            (everywhere(Role::Operator), Administer, None, Forbidden),
            (everywhere(Role::Admin), Administer, None, Allowed),
            (everywhere(Role::Admin), Operate, Some("billing"), Allowed),
        ];
        for (holder, need, project, verdict) in cases {
            assert_eq!(
                authorize(Some(holder), now, *need, *project),
                *verdict,
                "{holder:?} {need:?} {project:?}"
            );
        }
        // Limited to `shop`: another project's things do not exist for it, whatever the role
        // would allow; its own follow the role.
        let shop_operator = Holder {
            role: Role::Operator,
            projects: &shop,
            expires: None,
        };
        let shop_viewer = Holder {
            role: Role::Viewer,
            ..shop_operator
        };
        for (holder, need, project, verdict) in [
            (shop_operator, Operate, Some("shop"), Allowed),
            (shop_operator, Read, Some("shop"), Allowed),
            (shop_operator, Operate, Some("billing"), Hidden),
            (shop_operator, Read, Some("billing"), Hidden),
            (shop_operator, Operate, None, Allowed),
            (shop_operator, Administer, None, Forbidden),
            (shop_viewer, Operate, Some("shop"), Forbidden),
            (shop_viewer, Operate, Some("billing"), Hidden),
            (shop_viewer, Read, Some("billing"), Hidden),
        ] {
            assert_eq!(
                authorize(Some(&holder), now, need, project),
                verdict,
                "{holder:?} {need:?} {project:?}"
            );
        }
        assert!(shop_viewer.sees("shop") && !shop_viewer.sees("billing"));
        // An admin sees every project, even if a store says otherwise.
        let odd_admin = Holder {
            role: Role::Admin,
            ..shop_operator
        };
        assert_eq!(
            authorize(Some(&odd_admin), now, Operate, Some("billing")),
            Allowed
        );
        // No token, or an expired one: nothing, not even a read; the expiry instant itself
        // is past.
        assert_eq!(authorize(None, now, Read, None), Unauthenticated);
        for expires in [now, now - chrono::TimeDelta::seconds(1)] {
            let expired = Holder {
                expires: Some(expires),
                ..everywhere(Role::Admin)
            };
            assert_eq!(authorize(Some(&expired), now, Read, None), Unauthenticated);
            assert_eq!(
                authorize(Some(&expired), now, Read, Some("shop")),
                Unauthenticated
            );
        }
        let later = Holder {
            expires: Some(now + chrono::TimeDelta::seconds(1)),
            ..everywhere(Role::Viewer)
        };
        assert_eq!(authorize(Some(&later), now, Read, None), Allowed);
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

    #[test]
    fn login_links_and_sessions_are_told_by_their_names() {
        assert_eq!(TokenKind::of_name("ci"), TokenKind::Token);
        assert_eq!(TokenKind::of_name("a:b"), TokenKind::Token);
        assert_eq!(
            TokenKind::of_name("login:0a1b2c3d:"),
            TokenKind::Login { of: None }
        );
        assert_eq!(
            TokenKind::of_name("session:0a1b2c3d:ci"),
            TokenKind::Session { of: Some("ci") }
        );
        assert_eq!(TokenKind::of_name("other:0a1b2c3d:ci"), TokenKind::Token);
        let name = derived_name("session", Some("ci")).unwrap();
        assert_eq!(
            TokenKind::of_name(&name),
            TokenKind::Session { of: Some("ci") }
        );
        assert_eq!(name.len(), "session:".len() + 8 + ":ci".len());
        assert!(check_name(&name).is_err(), "no operator names one so");
    }
}
