//! `coco init NAME [DESCRIPTION] [--template T] [--force] [--no-git] [--no-venv]` (core4:
//! `coco --init NAME DESCRIPTION`) and `coco init --list`.
//!
//! Creates `<home>/NAME` from a template ([`crate::scaffold`]; home: `--home`, else
//! `folder.home`, else `~/coco.home` — the home of every verb), writes `~/.coco/local.yaml` with the seed's defaults when there is none,
//! validates the new project and applies it to the store at once — only it: other projects
//! keep their stored state — so `coco enqueue NAME.hello` works right away. Never asks
//! anything: an existing non-empty folder is refused unless `--force`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;

use super::spinner::Spinner;
use super::{GlobalArgs, context, output};
use crate::config::{CONFIG_ENV, ConfigPaths};
use crate::manifest::parse::load_project;
use crate::reconcile;
use crate::scaffold::init::{self, Request};
use crate::scaffold::template::{self, Origin};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's name: a lowercase letter, then lowercase letters, digits, `_` or `-`.
    #[arg(value_name = "NAME", required_unless_present = "list")]
    pub name: Option<String>,
    /// One line saying what the project is for.
    #[arg(value_name = "DESCRIPTION")]
    pub description: Option<String>,
    /// The template to render (`coco init --list` shows them).
    #[arg(long, short = 't', value_name = "TEMPLATE", default_value = "python")]
    pub template: String,
    /// Go on in an existing non-empty folder: add the template's missing files (existing
    /// files are never overwritten).
    #[arg(long)]
    pub force: bool,
    /// Make no git repository.
    #[arg(long)]
    pub no_git: bool,
    /// Create no `.venv` (python template).
    #[arg(long)]
    pub no_venv: bool,
    /// Accepted for scripts: init never asks anything.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// List the templates (embedded and from folder.templates) and exit.
    #[arg(long)]
    pub list: bool,
}

pub async fn run(global: &GlobalArgs, args: &InitArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    if args.list {
        let catalog = template::all(config.templates.as_deref())?;
        let rows: Vec<Vec<String>> = catalog
            .templates
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    match &t.origin {
                        Origin::Embedded => "embedded".into(),
                        Origin::Folder(path) => path.display().to_string(),
                    },
                    t.files.len().to_string(),
                ]
            })
            .collect();
        output::table(&["TEMPLATE", "FROM", "FILES"], &rows);
        for broken in &catalog.broken {
            output::warning(&broken.to_string());
        }
        return Ok(0);
    }
    let name = args.name.clone().unwrap_or_default();
    // `--home`, else folder.home, else the default: the same home as every other verb's.
    let home = config.home.clone();
    let request = Request {
        name: name.clone(),
        description: args.description.clone().unwrap_or_default(),
        template: args.template.clone(),
        home: home.clone(),
        user_templates: config.templates.clone(),
        force: args.force,
        git: !args.no_git,
        venv: !args.no_venv,
    };
    let spinner = Spinner::on_terminal();
    let result = init::init(&request, &|step| spinner.step(step)).await;
    drop(spinner);
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            output::error(&error.to_string());
            return Ok(1);
        }
    };
    let mut lines = vec![format!(
        "created {} from template {}",
        report.project.display(),
        args.template
    )];
    for path in &report.written.created {
        lines.push(format!("  + {}", path.display()));
    }
    for path in &report.written.skipped {
        lines.push(format!("  = {} (exists: kept)", path.display()));
    }
    if report.venv == Some(true) {
        lines.push("  + .venv (python3 -m venv)".into());
    }
    if report.git.is_some() {
        lines.push("  git: master (initial commit), develop checked out, origin .repos".into());
    }
    if let Some(note) = &report.git_note {
        lines.push(format!("  git: {note}"));
    }
    if let Some(created) = write_local_yaml(global, &report.home)? {
        lines.push(format!("wrote {} (embedded store)", created.display()));
    }
    output::text(&lines.join("\n"));
    for broken in &report.broken_templates {
        output::warning(&broken.to_string());
    }
    if let Some(warning) = report
        .git
        .as_ref()
        .and_then(|s| s.warning("the first commit"))
    {
        output::warning(&warning);
    }

    // Validate and apply only the new project.
    let project = match load_project(&report.project) {
        Ok(project) => project,
        Err(problems) => {
            output::diagnostics(&problems);
            output::error("the new project does not validate: nothing applied");
            return Ok(1);
        }
    };
    let store = context::open_store(&config).await?;
    let stored = reconcile::load_stored(store.as_ref()).await?;
    let now = Utc::now();
    let plan = reconcile::diff_one(project, &stored, now);
    reconcile::apply(store.as_ref(), &plan, &stored, now)
        .await
        .context("applying the new project")?;
    output::text(&format!(
        "applied to the {}\n\nnext:\n  cd {}\n  {}coco run {name}.hello       (the sample job, here)\n  coco enqueue {name}.hello   (queue it; `coco worker` or `coco daemon` runs it)",
        store.describe(),
        report.project.display(),
        if report.venv == Some(true) {
            "source enter_env   (the project's .venv)\n  "
        } else {
            ""
        },
    ));
    Ok(0)
}

/// Write `~/.coco/local.yaml` with the seed's defaults if there is none (and no other file
/// was named); its path if written. An existing file is never touched.
fn write_local_yaml(global: &GlobalArgs, home: &Path) -> anyhow::Result<Option<PathBuf>> {
    if global.config.is_some() || std::env::var_os(CONFIG_ENV).is_some_and(|v| !v.is_empty()) {
        return Ok(None);
    }
    let path = ConfigPaths::from_env().user_file();
    if path.exists() {
        return Ok(None);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = format!(
        "# coco configuration, written by `coco init` (core4's form of local.yaml).\n\
         # No DEFAULT.mongo_url: coco keeps its state in an embedded store under folder.state\n\
         # (default ~/.coco). To share one MongoDB between hosts instead:\n\
         # DEFAULT:\n\
         #   mongo_url: mongodb://core:654321@localhost:27017\n\
         #   mongo_database: coco\n\
         logging:\n  mongodb: INFO\n  stderr: INFO\n  stdout: ~\n\
         folder:\n  home: {}\n",
        serde_json::to_string(&home.display().to_string()).unwrap_or_default()
    );
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut file) => {
            use std::io::Write as _;
            file.write_all(text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(Some(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}
