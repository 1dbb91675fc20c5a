//! The command line: clap types, and one file per verb. [`run`] dispatches with one `match`.
//! Verbs return an [`ExitCode`]-like number; only [`output`] prints.

pub mod apply;
pub mod args;
pub mod config;
pub mod context;
pub mod detail;
pub mod enqueue;
pub mod list;
pub mod not_yet;
pub mod output;
pub mod plan;
pub mod run;
pub mod schema;
pub mod validate;
pub mod worker;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// coco: declare in YAML what must run — jobs, schedules, environments, app servers — and
/// coco makes it so.
///
/// Every sub-folder of the home (`folder.home` in local.yaml, or --home) that holds a
/// coco.yaml is a project. `coco plan` shows what differs between the manifests and the
/// state store; `coco apply` makes the store match. The store is an embedded SQLite file
/// unless local.yaml names a MongoDB (`DEFAULT.mongo_url`).
#[derive(Debug, Parser)]
#[command(name = "coco", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb accepts; they override local.yaml and COCO_* variables.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Configuration file to read instead of ~/.coco/local.yaml (also: COCO_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder whose sub-folders are the projects (overrides folder.home).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Folder of the embedded store (overrides folder.state).
    #[arg(long, global = true, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// MongoDB URL of the state store (overrides DEFAULT.mongo_url).
    #[arg(long, global = true, value_name = "URL")]
    pub mongo_url: Option<String>,
    /// MongoDB database (overrides DEFAULT.mongo_database).
    #[arg(long, global = true, value_name = "NAME")]
    pub mongo_database: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the effective configuration and where each value came from.
    Config(JsonFlag),
    /// Check manifests and report every problem as file:line:column.
    ///
    /// PATH may be a coco.yaml, a project folder or a home folder (default: the home).
    /// Exits 1 if anything is wrong; prints only "ok" lines otherwise.
    Validate(validate::ValidateArgs),
    /// Show what `apply` would change in the store, without changing it.
    ///
    /// `+` create, `~` update (old → new), `-` deactivate; scheduled jobs show their next
    /// three fire times. Exit status: 0 nothing to change, 2 changes, 1 invalid input.
    Plan(JsonFlag),
    /// Make the store match the manifests, and print what changed.
    ///
    /// Jobs removed from a manifest become inactive (their history is kept); nothing is
    /// changed when any manifest is invalid.
    Apply(JsonFlag),
    /// Print the JSON Schema of coco.yaml (for editors; also in docs/coco.schema.json).
    Schema,

    /// Run the daemon: watch files, converge, schedule, run workers and apps.
    Daemon(not_yet::Rest),
    /// Run the scheduler alone.
    Scheduler(not_yet::Rest),
    /// Run a worker in the foreground: claim and run queued runs until Ctrl-C / SIGTERM.
    Worker(worker::WorkerArgs),
    /// Enqueue a run of an applied job and print its id (core4: `coco --enqueue`).
    ///
    /// Exit 1 if the job is unknown, or if a run of the same job with the same arguments is
    /// still pending, running, failed or deferred (its id is named).
    Enqueue(enqueue::EnqueueArgs),
    /// Run a job in the foreground, in its project's environment, without the queue.
    ///
    /// Reads the project's coco.yaml from the home (not the store). Exit status: the job's
    /// exit code; 128 + signal if it was killed; 124 if its timeout ran out.
    Run(run::RunArgs),
    /// List runs, newest first (core4: `coco --list`).
    List(list::ListArgs),
    /// Everything about one run: fields, state history, output (core4: `coco --detail`).
    Detail(detail::DetailArgs),
    /// Output of a run or an app.
    Logs(not_yet::Rest),
    /// Kill a running run.
    Kill(not_yet::Rest),
    /// Re-enqueue a finished or failed run.
    Restart(not_yet::Rest),
    /// Remove a pending run.
    Remove(not_yet::Rest),
    /// Ask every worker and daemon to finish and exit.
    Halt(not_yet::Rest),
    /// Workers and daemons with their heartbeat age.
    Alive(not_yet::Rest),
    /// Pause starting new runs (globally or for one project).
    Pause(not_yet::Rest),
    /// Resume starting new runs.
    Resume(not_yet::Rest),
    /// Show whether coco or a project is paused.
    Mode(not_yet::Rest),
    /// Jobs with schedule, time zone, last and next fire.
    Jobs(not_yet::Rest),
    /// App servers with state, pid, uptime, restarts.
    Apps(not_yet::Rest),
    /// One screen: daemons, apps, schedules, queue, manifest errors.
    Status(not_yet::Rest),
    /// Records of the log collection.
    Log(not_yet::Rest),
    /// Create a project from a template.
    Init(not_yet::Rest),
    /// Cut a release branch (git-flow).
    Build(not_yet::Rest),
    /// Finish a release: tag, push, record.
    Release(not_yet::Rest),
    /// List recorded releases.
    Releases(not_yet::Rest),
    /// Install a project from a git remote into the home.
    Install(not_yet::Rest),
    /// Projects of the home with version, branch and state.
    Projects(not_yet::Rest),
}

/// `--json` for read commands.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct JsonFlag {
    /// Print JSON instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Run one command; returns the process exit status.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let global = cli.global;
    match cli.command {
        Command::Config(flags) => config::run(&global, flags),
        Command::Validate(args) => validate::run(&global, &args),
        Command::Plan(flags) => plan::run(&global, flags).await,
        Command::Apply(flags) => apply::run(&global, flags).await,
        Command::Schema => schema::run(),
        Command::Daemon(_) | Command::Scheduler(_) => not_yet::run("daemon/scheduler", 4),
        Command::Enqueue(args) => enqueue::run(&global, &args).await,
        Command::Run(args) => run::run(&global, &args).await,
        Command::List(args) => list::run(&global, &args).await,
        Command::Detail(args) => detail::run(&global, &args).await,
        Command::Worker(args) => worker::run(&global, &args).await,
        Command::Logs(_)
        | Command::Kill(_)
        | Command::Restart(_)
        | Command::Remove(_)
        | Command::Halt(_)
        | Command::Alive(_)
        | Command::Pause(_)
        | Command::Resume(_)
        | Command::Mode(_) => not_yet::run("the job queue and workers", 3),
        Command::Jobs(_) | Command::Apps(_) | Command::Status(_) | Command::Log(_) => {
            not_yet::run("the daemon's views", 4)
        }
        Command::Init(_)
        | Command::Build(_)
        | Command::Release(_)
        | Command::Releases(_)
        | Command::Install(_)
        | Command::Projects(_) => not_yet::run("the project life cycle", 5),
    }
}
