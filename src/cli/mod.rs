//! The command line: clap types, and one file per verb. [`run`] dispatches with one `match`.
//! Verbs return an [`ExitCode`]-like number; only [`output`] prints.

pub(crate) mod alive;
pub(crate) mod apply;
pub(crate) mod apps;
pub mod args;
pub(crate) mod completions;
pub(crate) mod config;
pub mod context;
pub(crate) mod daemon;
pub(crate) mod dashboard;
pub(crate) mod detail;
pub(crate) mod enqueue;
pub(crate) mod halt;
pub(crate) mod init;
pub(crate) mod install;
pub(crate) mod jobs;
pub(crate) mod kill;
pub(crate) mod list;
pub(crate) mod log;
pub(crate) mod logs;
pub mod output;
pub(crate) mod pause;
pub(crate) mod plan;
pub(crate) mod projects;
pub(crate) mod release;
pub(crate) mod restart;
pub(crate) mod run;
pub mod schema;
pub(crate) mod service;
pub(crate) mod spinner;
pub(crate) mod status;
pub(crate) mod token;
pub(crate) mod validate;
pub(crate) mod wait;
pub(crate) mod worker;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::queue::run::Cancel;

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

/// The heading of [`GlobalArgs`] in every verb's help, apart from the verb's own options.
pub const GLOBAL_HEADING: &str = "Global options";

/// Flags every verb accepts; they override local.yaml and COCO_* variables.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Configuration file to read instead of ~/.coco/local.yaml (also: COCO_CONFIG).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL_HEADING)]
    pub config: Option<PathBuf>,
    /// Folder whose sub-folders are the projects (overrides folder.home).
    #[arg(long, global = true, value_name = "DIR", help_heading = GLOBAL_HEADING)]
    pub home: Option<PathBuf>,
    /// Folder of the embedded store (overrides folder.state).
    #[arg(long, global = true, value_name = "DIR", help_heading = GLOBAL_HEADING)]
    pub state: Option<PathBuf>,
    /// MongoDB URL of the state store (overrides DEFAULT.mongo_url).
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL_HEADING)]
    pub mongo_url: Option<String>,
    /// MongoDB database (overrides DEFAULT.mongo_database).
    #[arg(long, global = true, value_name = "NAME", help_heading = GLOBAL_HEADING)]
    pub mongo_database: Option<String>,
}

/// The examples at the end of some verbs' help: a command a line, what it does after `#`.
mod examples {
    pub const ENQUEUE: &str = "\
Examples:
  coco enqueue shop.export                      # queue a run; prints its id
  coco enqueue shop.export --arg day=3 --wait   # with an argument; follow it, exit with its status
  coco enqueue shop.export --priority 10        # claimed before runs of lower priority
  coco enqueue shop.export --force              # runs even while shop is paused";
    pub const LIST: &str = "\
Examples:
  coco list                                     # every run, newest first
  coco list failed --project shop               # shop's failed runs (failed and error)
  coco list running --json                      # for scripts
  coco list --job shop.export --limit 5         # the latest five runs of one job";
    pub const DAEMON: &str = "\
Examples:
  coco daemon                                   # everything: watch, converge, schedule, work, apps
  coco daemon --slots 4 --name vm-1             # four runs at once, named vm-1 in `coco alive`
  coco daemon --no-worker                       # schedules and apps only; `coco worker` elsewhere
  coco --config ~/prod.yaml daemon              # another local.yaml";
    pub const INIT: &str = "\
Examples:
  coco init mypro \"My first project\"           # python template, .venv and git
  coco init tools --template shell --no-git     # a shell project without a repository
  coco init --list                              # the templates there are
  coco --home ~/work init mypro                 # in another home folder";
    pub const BUILD: &str = "\
Examples:
  coco build --patch                            # on develop: release-0.0.2 from 0.0.1
  coco build --minor shop                       # the project shop of the home, 0.1.0 -> 0.2.0
  coco build --to 2.0.0                         # an exact version";
    pub const RELEASE: &str = "\
Examples (git-flow, after `coco build --patch` made release-0.0.2):
  git checkout master && git merge --no-ff release-0.0.2
  git checkout develop && git merge --no-ff release-0.0.2 && git checkout master
  coco release                                  # on master: tag 0.0.2, push, delete the branch
  coco releases                                 # what was released when";
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

    /// Run the daemon: watch files, converge, schedule, run a worker (and apps).
    ///
    /// Saving a manifest applies it (an invalid one is reported and changes nothing); stops
    /// on Ctrl-C, SIGTERM or `coco halt`, handing running runs back.
    #[command(after_help = examples::DAEMON)]
    Daemon(daemon::DaemonArgs),
    /// Run the scheduler alone: fire the applied schedules until Ctrl-C / SIGTERM.
    Scheduler,
    /// Run a worker in the foreground: claim and run queued runs until Ctrl-C / SIGTERM.
    Worker(worker::WorkerArgs),
    /// Enqueue a run of an applied job and print its id (core4: `coco --enqueue`).
    ///
    /// Exit 1 if the job is unknown, or if a run of the same job with the same arguments is
    /// still pending, running, failed or deferred (its id is named).
    #[command(after_help = examples::ENQUEUE)]
    Enqueue(enqueue::EnqueueArgs),
    /// Run a job in the foreground, in its project's environment, without the queue.
    ///
    /// Reads the project's coco.yaml from the home (not the store). Exit status: the job's
    /// exit code; 128 + signal if it was killed; 124 if its timeout ran out.
    Run(run::RunArgs),
    /// List runs, newest first (core4: `coco --list`).
    #[command(after_help = examples::LIST)]
    List(list::ListArgs),
    /// Everything about one run: fields, state history, output (core4: `coco --detail`).
    Detail(detail::DetailArgs),
    /// Output kept of a run's latest try, with times; --follow prints it as it comes.
    Logs(logs::LogsArgs),
    /// Kill runs: a running run's process group is ended; a waiting run never starts.
    ///
    /// The run ends in state `killed` (final; it does not block enqueueing the same work).
    Kill(kill::CancelArgs),
    /// Enqueue a finished or failed run again, as a new run linked to the old one.
    Restart(restart::RestartArgs),
    /// Take waiting runs (pending, failed, deferred) out of the queue; they are kept as
    /// `removed`.
    Remove(kill::CancelArgs),
    /// Ask every worker and daemon started before now to finish its runs and exit
    /// (core4: `coco --halt`).
    Halt(halt::HaltArgs),
    /// Workers and daemons with their heartbeat age (core4: `coco --alive`).
    Alive(alive::AliveArgs),
    /// Start no new runs (of everything, or of one project) until `coco resume`.
    ///
    /// Running runs finish; runs enqueued with --force still start.
    Pause(pause::PauseArgs),
    /// Start new runs again (everything, or one project).
    Resume(pause::PauseArgs),
    /// Show whether coco or any project is paused, and the last halt.
    Mode(JsonFlag),
    /// Applied jobs with schedule, time zone, last and next fire, and their latest run.
    Jobs(jobs::JobsArgs),
    /// App servers with state, host, pid, uptime, restarts and latest health check.
    Apps(apps::AppsArgs),
    /// One screen: daemons, apps, schedules, queue, manifest errors.
    Status(JsonFlag),
    /// API tokens: create (the secret is shown once), list, revoke.
    ///
    /// `coco token create ci --role viewer`; roles: viewer (read), operator (also enqueue,
    /// kill, restart, remove, pause), admin (everything); `--project P` limits a token.
    Token(token::TokenArgs),
    /// Print a one-time link that logs a browser in to the dashboard the daemon serves.
    ///
    /// The link works once, within a minute; `--token NAME` logs in with that token's role
    /// and projects (default: admin).
    Dashboard(dashboard::DashboardArgs),
    /// Log records daemons and workers keep in the store (filter by project, job, run, app,
    /// level; --follow).
    Log(log::LogArgs),
    /// Create a project from a template.
    ///
    /// Renders the template into <home>/NAME, creates its `.venv` (python), a git repository
    /// (master, develop checked out, a bare `.repos` as origin) and applies the project.
    #[command(after_help = examples::INIT)]
    Init(init::InitArgs),
    /// Cut a release branch (git-flow).
    ///
    /// Run on develop with a clean tree: creates release-X.Y.Z with the version written into
    /// coco.yaml, committed (and pushed, with an origin). Then merge it into master and
    /// develop, and run `coco release` on master.
    #[command(after_help = examples::BUILD)]
    Build(release::BuildArgs),
    /// Finish a release: tag, push, record.
    ///
    /// Run on master after the release branch (from `coco build`) is merged into master and
    /// into develop: tags X.Y.Z, pushes master, develop and the tag, deletes the release
    /// branch (here and on origin) and records the release in the store.
    #[command(after_help = examples::RELEASE)]
    Release(release::ReleaseArgs),
    /// List recorded releases.
    Releases(release::ReleasesArgs),
    /// Install a project from a git remote into the home.
    Install(install::InstallArgs),
    /// coco as a systemd service: install (or --print) a unit for `coco daemon`, uninstall.
    ///
    /// `sudo coco service install --run-as ops` writes /etc/systemd/system/coco.service;
    /// `coco service install --user` a unit of your own. The global flags given go into it.
    Service(service::ServiceArgs),
    /// Projects of the home with version, branch and state.
    Projects(JsonFlag),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// bash: `coco completions bash > ~/.local/share/bash-completion/completions/coco`;
    /// zsh: into a folder of `$fpath` as `_coco`; fish: `~/.config/fish/completions/coco.fish`.
    Completions(completions::CompletionsArgs),
    /// Print the manual page coco(1) in roff, or write it and one per verb (--dir).
    ///
    /// `coco man --dir ~/.local/share/man/man1`, then `man coco`, `man coco-init`.
    Man(completions::ManArgs),
    /// Internal: the process guard a worker starts (see `coco::process::guard`).
    #[command(name = "__guard", hide = true)]
    Guard {
        /// The `COCO_GUARD` value of the processes to end.
        marker: String,
        /// The worker's cgroup folder, killed and removed too.
        cgroup: Option<std::path::PathBuf>,
    },
}

/// `coco __contain PROGRAM ARGV0 ARGS…`: the subreaper one run is held by (see
/// [`crate::process::reaper`]); `main` serves it before it parses a command line or starts
/// a runtime, since every run of a subreaper-contained worker starts one. Its exit code.
pub fn contain(command: &[std::ffi::OsString]) -> i32 {
    crate::process::reaper::serve(command).unwrap_or_else(|error| {
        output::error(&error.to_string());
        127
    })
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
        Command::Daemon(args) => daemon::run(&global, &args).await,
        Command::Scheduler => daemon::scheduler(&global).await,
        Command::Enqueue(args) => enqueue::run(&global, &args).await,
        Command::Run(args) => run::run(&global, &args).await,
        Command::List(args) => list::run(&global, &args).await,
        Command::Detail(args) => detail::run(&global, &args).await,
        Command::Worker(args) => worker::run(&global, &args).await,
        Command::Logs(args) => logs::run(&global, &args).await,
        Command::Kill(args) => kill::run(&global, &args, Cancel::Kill).await,
        Command::Restart(args) => restart::run(&global, &args).await,
        Command::Remove(args) => kill::run(&global, &args, Cancel::Remove).await,
        Command::Halt(args) => halt::run(&global, &args).await,
        Command::Alive(args) => alive::run(&global, &args).await,
        Command::Pause(args) => pause::run(&global, &args, true).await,
        Command::Resume(args) => pause::run(&global, &args, false).await,
        Command::Mode(flags) => pause::mode(&global, flags).await,
        Command::Jobs(args) => jobs::run(&global, &args).await,
        Command::Apps(args) => apps::run(&global, &args).await,
        Command::Status(flags) => status::run(&global, flags).await,
        Command::Log(args) => log::run(&global, &args).await,
        Command::Token(args) => token::run(&global, &args).await,
        Command::Dashboard(args) => dashboard::run(&global, &args).await,
        Command::Init(args) => init::run(&global, &args).await,
        Command::Build(args) => release::build(&global, &args).await,
        Command::Release(args) => release::release(&global, &args).await,
        Command::Releases(args) => release::releases(&global, &args).await,
        Command::Install(args) => install::run(&global, &args).await,
        Command::Service(args) => service::run(&global, &args).await,
        Command::Projects(flags) => projects::run(&global, flags).await,
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
        Command::Guard { marker, cgroup } => {
            tokio::task::spawn_blocking(move || {
                crate::process::guard::serve(&marker, cgroup.as_deref())
            })
            .await?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap's own consistency checks of every verb (clashing flag names and the like).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
