//! `coco install NAME GIT-URL[@REF]`: clone (or update) a project into the home, create its
//! environment, validate it and print what `coco plan` shows for it (see
//! [`crate::lifecycle::install`]). A running daemon applies it; so does `coco apply`.

use chrono::Utc;
use clap::Args;

use super::spinner::Spinner;
use super::{GlobalArgs, context, output};
use crate::lifecycle::install::install;
use crate::manifest::parse::load_project;
use crate::reconcile::{self, render};

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The project's folder name in the home.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where to clone it from, optionally with a tag, branch or commit: `URL@1.2.0`.
    #[arg(value_name = "GIT-URL[@REF]")]
    pub source: String,
}

pub async fn run(global: &GlobalArgs, args: &InstallArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let spinner = Spinner::on_terminal();
    let result = install(&config.home, &args.name, &args.source, &|step| {
        spinner.step(step)
    })
    .await;
    drop(spinner);
    let installed = match result {
        Ok(installed) => installed,
        Err(error) => {
            output::error(&error.to_string());
            return Ok(1);
        }
    };
    output::text(&format!(
        "{} {} at {}{}{}",
        if installed.cloned {
            "cloned"
        } else {
            "updated"
        },
        installed.dir.display(),
        &installed.commit[..installed.commit.len().min(12)],
        installed
            .reference
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        if installed.venv {
            "; .venv created"
        } else {
            ""
        },
    ));
    let project = match load_project(&installed.dir) {
        Ok(project) => project,
        Err(problems) => {
            output::diagnostics(&problems);
            output::error("its manifest does not validate: fix it before it is applied");
            return Ok(1);
        }
    };
    let store = context::open_store(&config).await?;
    let stored = reconcile::load_stored(store.as_ref()).await?;
    let plan = reconcile::diff_one(project, &stored, Utc::now());
    output::text(&render::render(&plan));
    output::text("a running coco daemon applies it now; without one, run coco apply");
    Ok(0)
}
