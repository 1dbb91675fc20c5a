//! `coco token create | list | revoke`: the API's tokens (see [`crate::access`]).
//!
//! `create` prints the secret once, alone on stdout (so `TOKEN=$(coco token create ci --role
//! viewer)` keeps it), and what it made on stderr; the store keeps only the secret's SHA-256.
//! `list` never shows a secret, nor its hash. All three open the store for writing, so an
//! older store gets its `tokens` table first.

use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::list::human_duration;
use super::{GlobalArgs, JsonFlag, context, output};
use crate::access::{self, Role};
use crate::manifest::is_valid_name;
use crate::store::TokenRecord;

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print its secret, once (coco keeps only its SHA-256).
    ///
    /// The secret goes alone to stdout, what it may do to stderr.
    Create(CreateArgs),
    /// Tokens with role, projects, created, expiry and last use (never a secret).
    List(JsonFlag),
    /// Revoke a token: its secret is refused from then on.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Its name: letters, digits, `.`, `_` and `-`, at most 64.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// viewer: read; operator: also enqueue, kill, restart, remove, pause, restart apps;
    /// admin: everything, tokens included.
    #[arg(long, value_name = "ROLE", value_parser = parse_role)]
    pub role: Role,
    /// Limit it to this project (repeat for several; default: every project; not for admin).
    #[arg(long = "project", value_name = "PROJECT")]
    pub projects: Vec<String>,
    /// How long it is accepted, e.g. 30d or 12h (1m to 10 years; default: until revoked).
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// Print JSON (the secret included) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token's name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
}

/// What `token create --json` prints: the only place a secret is ever shown.
#[derive(Debug, Serialize)]
struct Created<'a> {
    name: &'a str,
    role: Role,
    projects: &'a [String],
    created: DateTime<Utc>,
    expires: Option<DateTime<Utc>>,
    token: &'a str,
}

/// One token as `token list` shows it: everything but its hash.
#[derive(Debug, Serialize)]
pub struct TokenLine {
    pub name: String,
    pub role: Role,
    /// Empty: every project.
    pub projects: Vec<String>,
    pub created: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
    pub expired: bool,
}

impl TokenLine {
    pub fn of(token: TokenRecord, now: DateTime<Utc>) -> Self {
        Self {
            expired: token.holder().expired(now),
            name: token.name,
            role: token.role,
            projects: token.projects,
            created: token.created,
            expires: token.expires,
            last_used: token.last_used,
        }
    }
}

pub async fn run(global: &GlobalArgs, args: &TokenArgs) -> anyhow::Result<i32> {
    match &args.command {
        TokenCommand::Create(create_args) => create(global, create_args).await,
        TokenCommand::List(flags) => list(global, *flags).await,
        TokenCommand::Revoke(revoke_args) => revoke(global, revoke_args).await,
    }
}

/// The token `args` ask for, at `now`, with the secret's hash `hash` (pure): or why not.
fn token_of(args: &CreateArgs, hash: String, now: DateTime<Utc>) -> Result<TokenRecord, String> {
    access::check_name(&args.name).map_err(|why| format!("token name `{}`: {why}", args.name))?;
    if args.role == Role::Admin && !args.projects.is_empty() {
        return Err(
            "an admin token may do everything: it is not limited to projects (leave \
                    out --project, or give --role operator or viewer)"
                .into(),
        );
    }
    let mut projects: Vec<String> = Vec::new();
    for project in &args.projects {
        if !is_valid_name(project) {
            return Err(format!(
                "--project `{project}`: not a project name (a lowercase letter, then \
                 lowercase letters, digits, `_` or `-`)"
            ));
        }
        if projects.contains(project) {
            continue;
        }
        if projects.len() == access::MAX_PROJECTS {
            return Err(format!(
                "a token is limited to at most {} projects",
                access::MAX_PROJECTS
            ));
        }
        projects.push(project.clone());
    }
    let expires = match &args.expires {
        None => None,
        Some(text) => {
            let lifetime = humantime::parse_duration(text.trim())
                .map_err(|e| format!("--expires `{text}`: {e} (for example 30d, 12h, 90m)"))?;
            access::check_lifetime(lifetime).map_err(|why| format!("--expires `{text}`: {why}"))?;
            let lifetime = TimeDelta::from_std(lifetime)
                .map_err(|_| format!("--expires `{text}`: too long"))?;
            Some(now + lifetime)
        }
    };
    Ok(TokenRecord {
        name: args.name.clone(),
        role: args.role,
        projects,
        hash,
        created: now,
        expires,
        last_used: None,
    }
    .truncated_to_ms())
}

async fn create(global: &GlobalArgs, args: &CreateArgs) -> anyhow::Result<i32> {
    let secret = access::new_secret()
        .map_err(|e| anyhow::anyhow!("no random bytes from the kernel for a secret: {e}"))?;
    let token = match token_of(args, access::secret_hash(&secret), Utc::now()) {
        Ok(token) => token,
        Err(why) => {
            output::error(&why);
            return Ok(1);
        }
    };
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    if !store.create_token(&token).await? {
        output::error(&format!(
            "a token named `{}` exists already (`coco token revoke {}` first, or choose \
             another name)",
            token.name, token.name
        ));
        return Ok(1);
    }
    let applied: Vec<String> = store
        .list_projects()
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    for project in token.projects.iter().filter(|p| !applied.contains(p)) {
        output::warning(&format!(
            "no project `{project}` is applied (yet): the token can do nothing there until \
             one is"
        ));
    }
    if args.json {
        output::json(&Created {
            name: &token.name,
            role: token.role,
            projects: &token.projects,
            created: token.created,
            expires: token.expires,
            token: &secret,
        });
    } else {
        output::text(&secret);
        output::text_stderr(&format!(
            "Token `{}`: {}, {}, {}. Keep the secret above now: it is shown only this once \
             (coco keeps only its SHA-256).",
            token.name,
            token.role,
            projects_text(&token.projects),
            match token.expires {
                Some(expires) => format!("expires {}", expires.format("%Y-%m-%d %H:%M UTC")),
                None => "never expires".into(),
            }
        ));
    }
    Ok(0)
}

async fn list(global: &GlobalArgs, flags: JsonFlag) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let now = Utc::now();
    let lines: Vec<TokenLine> = store
        .list_tokens()
        .await?
        .into_iter()
        // Login links live a minute and are no one's to manage; sessions are listed (and
        // revoked) as what they are: `session:RANDOM:TOKEN`.
        .filter(|token| {
            !matches!(
                access::TokenKind::of_name(&token.name),
                access::TokenKind::Login { .. }
            )
        })
        .map(|token| TokenLine::of(token, now))
        .collect();
    if flags.json {
        output::json(&lines);
    } else if lines.is_empty() {
        output::text("No tokens (make one with `coco token create NAME --role viewer`).");
    } else {
        let rows: Vec<Vec<String>> = lines.iter().map(|line| row(line, now)).collect();
        output::table(HEADER, &rows);
    }
    Ok(0)
}

async fn revoke(global: &GlobalArgs, args: &RevokeArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    if store.revoke_token(&args.name).await? {
        // Its dashboard sessions and login links end with it.
        let mut ended = 0;
        for token in store.list_tokens().await? {
            let of = match access::TokenKind::of_name(&token.name) {
                access::TokenKind::Login { of } | access::TokenKind::Session { of } => of,
                access::TokenKind::Token => None,
            };
            if of == Some(args.name.as_str()) && store.revoke_token(&token.name).await? {
                ended += 1;
            }
        }
        let sessions = match ended {
            0 => String::new(),
            1 => " and its dashboard session".to_string(),
            n => format!(" and its {n} dashboard sessions"),
        };
        output::text(&format!("Revoked token `{}`{sessions}.", args.name));
        Ok(0)
    } else {
        output::error(&format!(
            "no token named `{}` (see `coco token list`)",
            args.name
        ));
        Ok(1)
    }
}

const HEADER: &[&str] = &[
    "NAME",
    "ROLE",
    "PROJECTS",
    "CREATED",
    "EXPIRES",
    "LAST USED",
];

/// `every project`, or the projects by name.
fn projects_text(projects: &[String]) -> String {
    if projects.is_empty() {
        "every project".into()
    } else {
        format!("projects {}", projects.join(", "))
    }
}

/// A table row of `line` at `now` (pure).
fn row(line: &TokenLine, now: DateTime<Utc>) -> Vec<String> {
    let day = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    vec![
        line.name.clone(),
        line.role.to_string(),
        if line.projects.is_empty() {
            "all".into()
        } else {
            line.projects.join(",")
        },
        day(line.created),
        match line.expires {
            None => "never".into(),
            Some(expires) if line.expired => format!("{} (expired)", day(expires)),
            Some(expires) => day(expires),
        },
        match line.last_used {
            None => "never".into(),
            Some(used) => format!("{} ago", human_duration(now - used)),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, role: Role, projects: &[&str], expires: Option<&str>) -> CreateArgs {
        CreateArgs {
            name: name.into(),
            role,
            projects: projects.iter().map(|p| p.to_string()).collect(),
            expires: expires.map(String::from),
            json: false,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_780_000_000_123).unwrap()
    }

    #[test]
    fn a_token_gets_its_projects_once_and_its_expiry_from_now() {
        let token = token_of(
            &args(
                "ci",
                Role::Operator,
                &["shop", "billing", "shop"],
                Some("30d"),
            ),
            "h".into(),
            now(),
        )
        .unwrap();
        assert_eq!(token.projects, ["shop", "billing"]);
        assert_eq!(token.expires, Some(now() + TimeDelta::days(30)));
        assert_eq!((token.created, token.last_used), (now(), None));
        let forever = token_of(&args("ci", Role::Admin, &[], None), "h".into(), now()).unwrap();
        assert_eq!(forever.expires, None);
    }

    #[test]
    fn what_cannot_make_a_token_is_named() {
        for (bad, says) in [
            (args("a b", Role::Viewer, &[], None), "token name `a b`"),
            (
                args("ops", Role::Admin, &["shop"], None),
                "not limited to projects",
            ),
            (
                args("ops", Role::Viewer, &["Shop"], None),
                "--project `Shop`",
            ),
            (
                args("ops", Role::Viewer, &["../x"], None),
                "--project `../x`",
            ),
            (
                args("ops", Role::Viewer, &[], Some("30x")),
                "--expires `30x`",
            ),
            (args("ops", Role::Viewer, &[], Some("30s")), "at least 1m"),
            (
                args("ops", Role::Viewer, &[], Some("11years")),
                "at most 10 years",
            ),
            (args("ops", Role::Viewer, &[], Some("")), "--expires ``"),
        ] {
            let error = token_of(&bad, "h".into(), now()).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("p{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let error = token_of(&args("ops", Role::Viewer, &many, None), "h".into(), now());
        assert!(error.unwrap_err().contains("at most 64 projects"));
    }

    #[test]
    fn a_row_says_all_never_and_expired() {
        let token = TokenRecord {
            name: "ci".into(),
            role: Role::Viewer,
            projects: Vec::new(),
            hash: "h".into(),
            created: now() - TimeDelta::days(2),
            expires: Some(now() - TimeDelta::hours(1)),
            last_used: Some(now() - TimeDelta::minutes(3)),
        };
        let line = TokenLine::of(token.clone(), now());
        assert!(line.expired);
        let row = row(&line, now());
        assert_eq!(row[2], "all");
        assert!(row[4].ends_with("(expired)"), "{row:?}");
        assert_eq!(row[5], "3m ago");
        let fresh = TokenLine::of(
            TokenRecord {
                expires: None,
                last_used: None,
                ..token
            },
            now(),
        );
        assert!(!fresh.expired);
        let row = super::row(&fresh, now());
        assert_eq!((row[4].as_str(), row[5].as_str()), ("never", "never"));
    }
}
