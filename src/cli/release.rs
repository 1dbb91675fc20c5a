//! `coco build`, `coco release` and `coco releases`: git-flow releases of a project (see
//! [`crate::lifecycle::flow`]). The project: `PROJECT` in the home, else the one the current
//! directory is in. core4 spellings: `coco --build`, `coco --release`.

use std::io::IsTerminal as _;

use chrono::Utc;
use clap::Args;

use super::{GlobalArgs, context, output};
use crate::lifecycle::flow::{self, FlowError, Next};
use crate::lifecycle::version::{Bump, Version};
use crate::store::ReleaseRecord;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("next").args(["major", "minor", "patch", "exactly"]).multiple(false)))]
pub struct BuildArgs {
    /// The project (default: the one the current directory is in).
    #[arg(value_name = "PROJECT")]
    pub project: Option<String>,
    /// Next major version (X+1.0.0).
    #[arg(long)]
    pub major: bool,
    /// Next minor version (X.Y+1.0).
    #[arg(long)]
    pub minor: bool,
    /// Next patch version (X.Y.Z+1).
    #[arg(long)]
    pub patch: bool,
    /// This version (higher than coco.yaml's).
    #[arg(long = "to", value_name = "X.Y.Z", value_parser = Version::parse)]
    pub exactly: Option<Version>,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The project (default: the one the current directory is in).
    #[arg(value_name = "PROJECT")]
    pub project: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// Only this project's releases.
    #[arg(value_name = "PROJECT")]
    pub project: Option<String>,
    /// Print JSON instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub async fn build(global: &GlobalArgs, args: &BuildArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let project = match flow::locate(&config.home, args.project.as_deref()) {
        Ok(project) => project,
        Err(error) => return refused(&error),
    };
    let next = if args.major {
        Next::Bump(Bump::Major)
    } else if args.minor {
        Next::Bump(Bump::Minor)
    } else if args.patch {
        Next::Bump(Bump::Patch)
    } else if let Some(version) = args.exactly {
        Next::Exactly(version)
    } else {
        match ask_version(&project)? {
            Some(next) => next,
            None => {
                output::error("which version? give --major, --minor, --patch or --to X.Y.Z");
                return Ok(1);
            }
        }
    };
    match flow::build(&project, next, &author()).await {
        Ok(built) => {
            if let Some(warning) = built.signer.warning("the version commit") {
                output::warning(&warning);
            }
            output::text(&format!(
                "{}: {} → {} on {}{}\nnext: test it, merge {} into master and develop, then run coco release on master",
                project.display(),
                built.from,
                built.version,
                built.branch,
                if built.pushed {
                    " (pushed to origin)"
                } else {
                    ""
                },
                built.branch,
            ));
            Ok(0)
        }
        Err(error) => refused(&error),
    }
}

/// On a terminal: ask for the next version (Enter takes the next patch).
fn ask_version(project: &std::path::Path) -> anyhow::Result<Option<Next>> {
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let current = flow::manifest_version(project).unwrap_or(Version::ZERO);
    let patch = current.bump(Bump::Patch);
    output::text_stderr(&format!(
        "current version {current}; next version [{patch}], or major/minor/patch: "
    ));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    let answer = answer.trim();
    Ok(Some(match answer {
        "" | "patch" => Next::Bump(Bump::Patch),
        "minor" => Next::Bump(Bump::Minor),
        "major" => Next::Bump(Bump::Major),
        other => match Version::parse(other) {
            Ok(version) => Next::Exactly(version),
            Err(error) => anyhow::bail!(error),
        },
    }))
}

pub async fn release(global: &GlobalArgs, args: &ReleaseArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let project = match flow::locate(&config.home, args.project.as_deref()) {
        Ok(project) => project,
        Err(error) => return refused(&error),
    };
    let released = match flow::release(&project, &author()).await {
        Ok(released) => released,
        Err(error) => return refused(&error),
    };
    let name = crate::manifest::parse::load_project(&project)
        .map(|p| p.name)
        .unwrap_or_else(|_| {
            project
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let store = context::open_store(&config).await?;
    store
        .put_release(&ReleaseRecord {
            project: name.clone(),
            version: released.version.to_string(),
            commit: released.commit.clone(),
            at: Utc::now(),
            by: released.by.clone(),
        })
        .await?;
    if let Some(warning) = released.signer.warning("the release tag") {
        output::warning(&warning);
    }
    output::text(&format!(
        "released {name} {} (commit {}), tagged{}; release branch deleted",
        released.version,
        &released.commit[..released.commit.len().min(12)],
        if released.pushed {
            " and pushed with master and develop"
        } else {
            ""
        }
    ));
    Ok(0)
}

pub async fn releases(global: &GlobalArgs, args: &ReleasesArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let releases = store.list_releases(args.project.as_deref()).await?;
    if args.json {
        output::json(&releases);
    } else if releases.is_empty() {
        output::text("No releases.");
    } else {
        let rows: Vec<Vec<String>> = releases
            .iter()
            .map(|r| {
                vec![
                    r.project.clone(),
                    r.version.clone(),
                    r.commit.chars().take(12).collect(),
                    r.at.format("%Y-%m-%d %H:%M").to_string(),
                    r.by.clone(),
                ]
            })
            .collect();
        output::table(&["PROJECT", "VERSION", "COMMIT", "RELEASED", "BY"], &rows);
    }
    Ok(0)
}

fn refused(error: &FlowError) -> anyhow::Result<i32> {
    output::error(&error.to_string());
    Ok(1)
}

/// Who signs a commit when git has no identity: the login name.
fn author() -> String {
    std::env::var("USER").unwrap_or_else(|_| "coco".into())
}
