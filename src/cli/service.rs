//! `coco service install | uninstall`: coco as a systemd service, as `pm2 startup` does it
//! but without its guesswork — the unit names exactly which binary runs as which user with
//! which configuration, and `--print` shows it without writing anything.
//!
//! The unit (`coco.service`) runs `coco daemon` with the global flags given here made
//! absolute (`--config`, `--home`, `--state`, `--mongo-database`); `Restart=on-failure`;
//! `KillMode=mixed` (SIGTERM to the daemon alone, which stops its jobs and apps itself, then
//! SIGKILL to whatever is left of the unit); `Delegate=yes` (each job's cgroup sits under the
//! unit's); a `TimeoutStopSec` longer than the daemon's own
//! stop: the worker's shutdown grace, a job's grace after SIGTERM and `daemon.app_grace`, plus
//! a margin. A system unit (`/etc/systemd/system`, the default) runs as `--run-as USER`
//! (default: whoever installs it); a user unit (`--user`, `~/.config/systemd/user`) as its
//! user, started at boot once lingering is enabled. Either names its `HOME`: the one this
//! command read the configuration with, or the `--run-as` user's.
//!
//! Refused: `--mongo-url` on the command line (a unit is readable by every local user: the
//! URL's password belongs in local.yaml), an unknown `--run-as` user, a path that a unit
//! cannot hold. `uninstall` refuses while the unit is still enabled, and names the
//! `systemctl` line that disables it.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{GlobalArgs, context, output};

/// The unit's file name.
pub const UNIT: &str = "coco.service";

/// What `TimeoutStopSec` adds to the daemon's own stop.
const STOP_MARGIN: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub command: ServiceCommand,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write a systemd unit that runs `coco daemon` (and print how to start it).
    ///
    /// The global flags given here (`--config`, `--home`, `--state`) go into the unit, made
    /// absolute. A system unit by default (needs root); `--user` for one of your own.
    Install(InstallArgs),
    /// Remove the unit `install` wrote (disable it first: the command says how).
    Uninstall(UninstallArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// A user unit (`~/.config/systemd/user`), run by your own systemd instance.
    #[arg(long)]
    pub user: bool,
    /// Print the unit instead of writing it.
    #[arg(long)]
    pub print: bool,
    /// The user a system unit runs as (default: whoever runs this command).
    #[arg(long, value_name = "USER", conflicts_with = "user")]
    pub run_as: Option<String>,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// The user unit (`~/.config/systemd/user`) instead of the system one.
    #[arg(long)]
    pub user: bool,
}

/// Which systemd instance runs the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    System,
    User,
}

impl Scope {
    fn of(user: bool) -> Scope {
        if user { Scope::User } else { Scope::System }
    }

    /// `systemctl` with the flag this scope needs.
    fn systemctl(self) -> &'static str {
        match self {
            Scope::System => "systemctl",
            Scope::User => "systemctl --user",
        }
    }

    fn wanted_by(self) -> &'static str {
        match self {
            Scope::System => "multi-user.target",
            Scope::User => "default.target",
        }
    }
}

/// An account: its name and home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub home: PathBuf,
}

/// Everything the unit says.
#[derive(Debug, Clone)]
pub struct Unit {
    pub scope: Scope,
    /// The `coco` binary (absolute).
    pub exe: PathBuf,
    /// What follows it: global flags, then `daemon`.
    pub args: Vec<String>,
    /// A system unit's user (a user unit runs as its own).
    pub run_as: Option<String>,
    /// The `HOME` the daemon gets: where `~` in local.yaml points, and `~/.coco/local.yaml`.
    pub home: PathBuf,
    pub stop_timeout: Duration,
}

/// One word of `ExecStart=` as systemd reads it (pure): quoted when it holds a space, a
/// quote or a backslash; `%` and `$` doubled so systemd expands neither.
fn exec_word(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if escaped.is_empty() || escaped.contains([' ', '\t', '"', '\'', '\\', ';']) {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// One `Environment=` assignment as systemd reads it (pure): `%` doubled, quoted when it
/// holds a space, a quote or a backslash (`$` is literal there).
fn env_assignment(key: &str, value: &str) -> String {
    let word = format!("{key}={}", value.replace('%', "%%"));
    if word.contains([' ', '\t', '"', '\'', '\\']) {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        word
    }
}

/// The unit's text (pure).
pub fn unit_text(unit: &Unit) -> String {
    let mut exec = vec![exec_word(&unit.exe.to_string_lossy())];
    exec.extend(unit.args.iter().map(|arg| exec_word(arg)));
    let mut text = String::from(
        "# Written by `coco service install`; `coco service uninstall` removes it.\n\
         [Unit]\n\
         Description=coco daemon: jobs, schedules and apps of the coco home\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n",
    );
    if let Some(user) = &unit.run_as {
        text += &format!("User={user}\n");
    }
    text += &format!(
        "Environment={}\n",
        env_assignment("HOME", &unit.home.to_string_lossy())
    );
    text += &format!("ExecStart={}\n", exec.join(" "));
    text += &format!(
        "Restart=on-failure\n\
         RestartSec=2s\n\
         # SIGTERM to the daemon alone (it stops its jobs and apps), SIGKILL to what is left.\n\
         KillMode=mixed\n\
         TimeoutStopSec={}s\n\
         # coco's workers hold each job in a cgroup of its own, under the unit's.\n\
         Delegate=yes\n\
         \n\
         [Install]\n\
         WantedBy={}\n",
        unit.stop_timeout.as_secs(),
        unit.scope.wanted_by()
    );
    text
}

/// The folder the unit goes into.
fn unit_dir(scope: Scope, me: &Account) -> PathBuf {
    match scope {
        Scope::System => PathBuf::from("/etc/systemd/system"),
        Scope::User => std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .unwrap_or_else(|| me.home.join(".config"))
            .join("systemd/user"),
    }
}

/// The account named `name`, or the one this process runs as.
fn account(name: Option<&str>) -> anyhow::Result<Account> {
    let mut buffer = vec![0u8; 16 * 1024];
    // SAFETY: `passwd` is plain data filled in by getpw*_r; `buffer` outlives every use
    // of the pointers it holds, which are copied out before it is dropped.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let code = match name {
        Some(name) => {
            let c_name = CString::new(name)
                .map_err(|_| anyhow::anyhow!("user `{name}` holds a NUL byte"))?;
            // SAFETY: as above; `c_name` is a valid C string.
            unsafe {
                libc::getpwnam_r(
                    c_name.as_ptr(),
                    &mut entry,
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    &mut found,
                )
            }
        }
        // SAFETY: as above.
        None => unsafe {
            libc::getpwuid_r(
                libc::geteuid(),
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut found,
            )
        },
    };
    if code != 0 || found.is_null() {
        anyhow::bail!(
            "{}",
            match name {
                Some(name) => format!("no user `{name}` on this host"),
                None => "this process's user has no account entry".to_string(),
            }
        );
    }
    // SAFETY: getpw*_r succeeded: both fields are C strings in `buffer`.
    let (user, home) = unsafe { (CStr::from_ptr(entry.pw_name), CStr::from_ptr(entry.pw_dir)) };
    Ok(Account {
        name: user.to_string_lossy().into_owned(),
        home: PathBuf::from(home.to_string_lossy().into_owned()),
    })
}

/// Is `program` on `PATH`?
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The global flags the unit passes on, made absolute against `cwd`.
fn passed_flags(global: &GlobalArgs, cwd: &Path) -> anyhow::Result<Vec<String>> {
    if global.mongo_url.is_some() {
        anyhow::bail!(
            "--mongo-url is not put into a unit (every local user may read it, and a URL may \
             hold a password): set DEFAULT.mongo_url in local.yaml (readable by you alone) and \
             run this again without it"
        );
    }
    let mut args = Vec::new();
    // `COCO_CONFIG` names the file as `--config` does (which wins over it).
    let config = global
        .config
        .clone()
        .or_else(|| std::env::var_os("COCO_CONFIG").map(PathBuf::from));
    for (flag, path) in [
        ("--config", &config),
        ("--home", &global.home),
        ("--state", &global.state),
    ] {
        if let Some(path) = path {
            let absolute = cwd.join(path);
            let text = absolute.to_string_lossy().into_owned();
            if text.contains(['\n', '\r']) || absolute.to_str().is_none() {
                anyhow::bail!(
                    "{flag} {}: a unit cannot hold this path",
                    absolute.display()
                );
            }
            args.extend([flag.to_string(), text]);
        }
    }
    if let Some(database) = &global.mongo_database {
        args.extend(["--mongo-database".to_string(), database.clone()]);
    }
    args.push("daemon".into());
    Ok(args)
}

/// How long the daemon's own stop may take, with the configured app grace.
fn stop_timeout(app_grace: Duration) -> Duration {
    let worker = crate::worker::WorkerSettings::default();
    worker.shutdown_grace + worker.run.grace + app_grace + STOP_MARGIN
}

pub async fn run(global: &GlobalArgs, args: &ServiceArgs) -> anyhow::Result<i32> {
    match &args.command {
        ServiceCommand::Install(install) => run_install(global, install),
        ServiceCommand::Uninstall(uninstall) => run_uninstall(uninstall),
    }
}

fn run_install(global: &GlobalArgs, args: &InstallArgs) -> anyhow::Result<i32> {
    let scope = Scope::of(args.user);
    // The configuration as the daemon will read it: refused here if it does not load.
    let (config, _) = context::load_config(global)?;
    let cwd = std::env::current_dir()?;
    let flags = match passed_flags(global, &cwd) {
        Ok(flags) => flags,
        Err(problem) => {
            output::error(&problem.to_string());
            return Ok(1);
        }
    };
    let me = account(None)?;
    // Whoever installs it runs it with the HOME this configuration was read with; another
    // user (`--run-as`) with that user's home.
    let here = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|home| home.is_absolute())
        .unwrap_or_else(|| me.home.clone());
    let (run_as, home) = match (scope, args.run_as.as_deref()) {
        (Scope::User, _) => (None, here),
        (Scope::System, None) => (Some(me.name.clone()), here),
        (Scope::System, Some(name)) => match account(Some(name)) {
            Ok(account) if account.name == me.name => (Some(account.name), here),
            Ok(account) => (Some(account.name), account.home),
            Err(problem) => {
                output::error(&problem.to_string());
                return Ok(1);
            }
        },
    };
    if home.to_str().is_none_or(|text| text.contains(['\n', '\r'])) {
        output::error(&format!(
            "HOME {}: a unit cannot hold this path",
            home.display()
        ));
        return Ok(1);
    }
    let exe = std::env::current_exe()?;
    if exe.to_str().is_none_or(|text| text.contains(['\n', '\r'])) {
        output::error(&format!("{}: a unit cannot hold this path", exe.display()));
        return Ok(1);
    }
    let unit = Unit {
        scope,
        exe,
        args: flags,
        run_as,
        home,
        stop_timeout: stop_timeout(config.daemon.app_grace),
    };
    let text = unit_text(&unit);
    if args.print {
        output::text(&text);
        return Ok(0);
    }
    let dir = unit_dir(scope, &me);
    let path = dir.join(UNIT);
    let before = std::fs::read_to_string(&path).ok();
    if before.as_deref() == Some(text.as_str()) {
        output::text_stderr(&format!("{} is already this unit", path.display()));
    } else {
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            let partial = dir.join(format!(".{UNIT}.partial"));
            std::fs::write(&partial, &text)?;
            std::fs::rename(&partial, &path)
        });
        if let Err(error) = written {
            let hint = match (scope, error.kind()) {
                (Scope::System, std::io::ErrorKind::PermissionDenied) => {
                    " (a system unit needs root: `sudo coco service install --run-as USER`, or \
                     `coco service install --user`)"
                }
                _ => "",
            };
            output::error(&format!("writing {}: {error}{hint}", path.display()));
            return Ok(1);
        }
        let how = if before.is_some() {
            "replaced"
        } else {
            "wrote"
        };
        output::text_stderr(&format!("{how} {}", path.display()));
    }
    let env: Vec<String> = std::env::vars()
        .map(|(key, _)| key)
        .filter(|key| key.starts_with("COCO_") && key != "COCO_CONFIG")
        .collect();
    if !env.is_empty() {
        output::warning(&format!(
            "the unit does not carry {} from this shell: put what they set in local.yaml",
            env.join(", ")
        ));
    }
    if !on_path("systemctl") {
        output::warning(
            "systemd is not found here (no systemctl on PATH): the unit is written, but \
             nothing on this host will start it",
        );
    }
    let systemctl = scope.systemctl();
    output::text(&format!(
        "{systemctl} daemon-reload && {systemctl} enable --now {UNIT}"
    ));
    if scope == Scope::User {
        output::text_stderr(&format!(
            "To start it at boot, before you log in: loginctl enable-linger {}",
            me.name
        ));
    }
    Ok(0)
}

fn run_uninstall(args: &UninstallArgs) -> anyhow::Result<i32> {
    let scope = Scope::of(args.user);
    let me = account(None)?;
    let dir = unit_dir(scope, &me);
    let path = dir.join(UNIT);
    let systemctl = scope.systemctl();
    let wants = dir.join(format!("{}.wants", scope.wanted_by())).join(UNIT);
    if wants.symlink_metadata().is_ok() {
        output::error(&format!(
            "{UNIT} is still enabled ({}): first `{systemctl} disable --now {UNIT}`",
            wants.display()
        ));
        return Ok(1);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {
            output::text_stderr(&format!("removed {}", path.display()));
            output::text(&format!("{systemctl} daemon-reload"));
            Ok(0)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            output::text_stderr(&format!("nothing to remove: no {}", path.display()));
            Ok(0)
        }
        Err(error) => {
            output::error(&format!("removing {}: {error}", path.display()));
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(scope: Scope) -> Unit {
        Unit {
            scope,
            exe: PathBuf::from("/usr/local/bin/coco"),
            args: vec![
                "--config".into(),
                "/srv/my conf/local.yaml".into(),
                "daemon".into(),
            ],
            run_as: (scope == Scope::System).then(|| "ops".to_string()),
            home: PathBuf::from("/home/ops"),
            stop_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_system_unit_names_its_user_binary_and_config() {
        let text = unit_text(&unit(Scope::System));
        for line in [
            "User=ops",
            "Environment=HOME=/home/ops",
            "ExecStart=/usr/local/bin/coco --config \"/srv/my conf/local.yaml\" daemon",
            "Restart=on-failure",
            "KillMode=mixed",
            "TimeoutStopSec=30s",
            "WantedBy=multi-user.target",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn a_user_unit_has_no_user_line_and_starts_with_the_session() {
        let text = unit_text(&unit(Scope::User));
        assert!(!text.contains("User="), "{text}");
        assert!(text.contains("Environment=HOME=/home/ops"), "{text}");
        assert!(text.contains("WantedBy=default.target"), "{text}");
    }

    #[test]
    fn words_are_quoted_and_specifiers_kept_literal() {
        assert_eq!(exec_word("plain/path"), "plain/path");
        assert_eq!(exec_word("a b"), "\"a b\"");
        assert_eq!(exec_word("100%"), "100%%");
        assert_eq!(exec_word("$HOME"), "$$HOME");
        assert_eq!(exec_word("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(exec_word("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(exec_word(""), "\"\"");
    }

    #[test]
    fn an_environment_value_keeps_its_dollar_signs() {
        assert_eq!(env_assignment("HOME", "/home/a$b"), "HOME=/home/a$b");
        assert_eq!(
            env_assignment("HOME", "/home/my home"),
            "\"HOME=/home/my home\""
        );
        assert_eq!(env_assignment("HOME", "/x%y"), "HOME=/x%%y");
    }

    #[test]
    fn the_stop_timeout_outlasts_the_daemons_own_stop() {
        let timeout = stop_timeout(Duration::from_secs(5));
        let worker = crate::worker::WorkerSettings::default();
        assert!(timeout > worker.shutdown_grace + worker.run.grace + Duration::from_secs(5));
    }
}
