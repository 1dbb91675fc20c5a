//! The steps of `coco init` after the command line: check the name and the folder, render
//! and write the template, create the Python environment, make the git-flow repository.
//! (Writing local.yaml and applying the project to the store are the CLI's: see
//! `cli::init`.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check_name;
use super::render::{self, RenderError, Vars};
use super::template::{self, Broken, TemplateError};
use super::write::{self, WriteError, Written};
use crate::git;
use crate::process::Spec;
use crate::process::capture::capture;

/// How long creating the virtual environment (and installing requirements) may take.
const VENV_TIMEOUT: Duration = Duration::from_secs(600);

/// A slow step under way, for a sign of life while it runs (a spinner on a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `python3 -m venv .venv`.
    CreatingVenv,
    /// `pip install -r requirements.txt`.
    InstallingRequirements,
    /// The git-flow repository with its `.repos` origin.
    MakingRepository,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::CreatingVenv => "creating the virtual environment .venv (python3 -m venv)",
            Step::InstallingRequirements => "installing requirements.txt into .venv (pip)",
            Step::MakingRepository => "making the git repository",
        })
    }
}

/// Told each [`Step`] as it starts.
pub type OnStep<'a> = &'a (dyn Fn(Step) + Send + Sync);

/// What to create.
#[derive(Debug, Clone)]
pub struct Request {
    pub name: String,
    pub description: String,
    pub template: String,
    /// The home the project folder is created in.
    pub home: PathBuf,
    /// `folder.templates`.
    pub user_templates: Option<PathBuf>,
    /// Go on in an existing non-empty folder (never overwriting a file).
    pub force: bool,
    pub git: bool,
    pub venv: bool,
}

/// What `init` did.
#[derive(Debug)]
pub struct Report {
    /// The home the project was created in (absolute).
    pub home: PathBuf,
    /// The project folder (absolute).
    pub project: PathBuf,
    pub written: Written,
    /// `Some(true)`: a `.venv` was created (and requirements installed).
    pub venv: Option<bool>,
    /// A note when git was skipped because the folder already is a repository.
    pub git_note: Option<String>,
    /// The git-flow repository was made, its first commit signed by this.
    pub git: Option<git::Signer>,
    /// The templates of `folder.templates` that are broken (skipped).
    pub broken_templates: Vec<Broken>,
}

/// Why `init` refused or failed; each a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Name(String),
    #[error("the description must be one line")]
    Description,
    #[error("no template `{name}`; there are: {known}")]
    UnknownTemplate { name: String, known: String },
    #[error(
        "template {} ({}) cannot be used: {}",
        .0.name,
        .0.folder.display(),
        .0.error
    )]
    BrokenTemplate(Broken),
    #[error(
        "{} exists and is not empty: nothing written (use --force to add the template's missing files; existing files are never overwritten)",
        path.display()
    )]
    NotEmpty { path: PathBuf },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("creating the virtual environment: {0}")]
    Venv(String),
    #[error(transparent)]
    Git(#[from] git::GitError),
}

/// Create the project `request` describes, telling `on_step` each slow step as it starts.
pub async fn init(request: &Request, on_step: OnStep<'_>) -> Result<Report, InitError> {
    check_name(&request.name).map_err(InitError::Name)?;
    if request.description.contains('\n') {
        return Err(InitError::Description);
    }
    let mut catalog = template::all(request.user_templates.as_deref())?;
    let Some(template) = catalog.get(&request.template).cloned() else {
        if let Some(at) = catalog
            .broken
            .iter()
            .position(|b| b.name == request.template)
        {
            return Err(InitError::BrokenTemplate(catalog.broken.swap_remove(at)));
        }
        return Err(InitError::UnknownTemplate {
            name: request.template.clone(),
            known: catalog
                .templates
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    // A relative home (`--home projects`) is taken from the current directory, once: git and
    // the venv run in the project folder by its absolute path.
    let home = std::path::absolute(&request.home).map_err(|source| {
        InitError::Write(WriteError::Io {
            path: request.home.clone(),
            source,
        })
    })?;
    let project = home.join(&request.name);
    write::check_project_folder(&project)?;
    if !request.force && is_non_empty_dir(&project) {
        return Err(InitError::NotEmpty { path: project });
    }
    let vars = Vars {
        name: request.name.clone(),
        description: request.description.clone(),
        version: "0.0.0".into(),
        author: author(&home).await,
        year: chrono::Utc::now().format("%Y").to_string(),
        home: home.display().to_string(),
    };
    let files = render::render(&template, &vars)?;
    let written = write::write(&project, &files)?;

    let requirements = project.join("requirements.txt");
    let venv = if request.venv && requirements.is_file() && !project.join(".venv").exists() {
        create_venv(&project, &requirements, on_step).await?;
        Some(true)
    } else {
        None
    };

    let (mut git_done, mut git_note) = (None, None);
    if request.git {
        if project.join(".git").exists() {
            git_note = Some("already a git repository: left as it is".into());
        } else {
            let message = format!("{} {}: created by coco init", vars.name, vars.version);
            on_step(Step::MakingRepository);
            git_done = Some(git::init_flow(&project, &message, &vars.author).await?);
        }
    }
    Ok(Report {
        home,
        project,
        written,
        venv,
        git_note,
        git: git_done,
        broken_templates: catalog.broken,
    })
}

fn is_non_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_some())
        || (path.exists() && !path.is_dir())
}

/// The author: git's `user.name`, else the login name.
async fn author(dir: &Path) -> String {
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    match git::config_value(&dir, "user.name").await {
        Some(name) => name,
        None => std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
    }
}

/// `python3 -m venv .venv`, then `pip install -r requirements.txt` when it lists anything;
/// `on_step` is told each as it starts.
pub async fn create_venv(
    project: &Path,
    requirements: &Path,
    on_step: OnStep<'_>,
) -> Result<(), InitError> {
    let run = |argv: Vec<String>| async move {
        let spec = Spec::new(argv.clone(), project);
        let captured = capture(&spec, VENV_TIMEOUT)
            .await
            .map_err(|e| InitError::Venv(e.to_string()))?;
        if captured.success() {
            Ok(())
        } else {
            Err(InitError::Venv(format!(
                "`{}` failed: {}",
                argv.join(" "),
                captured.complaint()
            )))
        }
    };
    on_step(Step::CreatingVenv);
    run(["python3", "-m", "venv", ".venv"]
        .map(String::from)
        .to_vec())
    .await?;
    let listed = std::fs::read_to_string(requirements).unwrap_or_default();
    if listed
        .lines()
        .any(|line| !line.trim().is_empty() && !line.trim().starts_with('#'))
    {
        on_step(Step::InstallingRequirements);
        let pip = project.join(".venv/bin/pip").display().to_string();
        run(vec![
            pip,
            "install".into(),
            "-q".into(),
            "-r".into(),
            "requirements.txt".into(),
        ])
        .await?;
    }
    Ok(())
}
