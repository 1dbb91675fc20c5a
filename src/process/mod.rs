//! THE one place coco starts child processes (job runs, app servers).
//!
//! A [`Spec`] says what to run: an argv (never a shell), an explicit absolute working directory,
//! declared environment variables added on top of a short base set of coco's own
//! ([`BASE_ENV`]: `PATH`, `HOME`, the locale, …; never coco's `COCO_…` configuration) or, for
//! tools coco runs for the operator, all of it ([`Inherit`]), and directories prepended to
//! `PATH`. [`spawn`] resolves the program on that new `PATH` itself (so a project's
//! `.venv/bin/python3` is found), then starts it with stdin null, stdout and stderr piped, in a
//! process group of its own, leashed so that a child never outlives a killed coco
//! ([`Leash`]): under a process [`guard`] (spawned with `posix_spawn`, the fast path
//! a worker takes) or, without one, with `PR_SET_PDEATHSIG = SIGKILL` (Linux; needs a full
//! fork). A worker's children are also [`Contained`]: their whole tree is held by a cgroup
//! ([`cgroup`]; the child is born in it by [`vfork`]'s `clone3(CLONE_INTO_CGROUP)` with
//! `posix_spawn`'s vfork semantics, no fork of the worker, and waited for through its pidfd)
//! or by a `coco __contain` subreaper ([`reaper`], spawned with `posix_spawn`), as
//! [`contain`] chose for the worker. [`leader`] holds either kind of leader and its pipes.
//!
//! Theory of operation: the [`Child`] handle owns the leader process; signals go to the whole
//! tree ([`Child::signal_group`]): the group (so `sh -c 'a & b'` is reached), and every member
//! of the cgroup, or every descendant of the subreaper (which forwards them), however it
//! detached. [`Child::terminate_group`] sends SIGTERM, waits for the leader and then for the
//! rest of the tree (polled: non-children cannot be waited for) up to a grace period, then
//! SIGKILLs the tree (`cgroup.kill`, or the subreaper asked to). [`Child::capture`] spawns one
//! reader task per pipe (an app's output); [`Child::read_output`] reads both pipes in the
//! caller's task instead (a job's: no task and no wake-up of another thread per stream);
//! either sends [`Event`]s through a bounded channel. [`run_to_end`] ties it together for a
//! job: spawn, read the output beside the wait with a timeout and a cancel future, terminate
//! what is left of the tree, drain the output.
//!
//! Caveats: the death signal is tied to the *thread* that spawned the child, so call [`spawn`]
//! from async code (a runtime worker thread), never from `spawn_blocking`; outside the cgroup
//! path std uses `posix_spawn` only because the program is resolved to a path here and a
//! guarded spawn has no pre-exec code. Dropping a [`Child`] whose leader has not been reaped SIGKILLs its
//! tree; once the leader is reaped, only [`Child::terminate_group`] (which [`run_to_end`]
//! calls) cleans up stray members.
//! Under the death signal alone, what a job started outlives a SIGKILLed worker until the run
//! is taken back: [`sweep::kill_run_orphans`] ends it then (a guard ends it at once).

pub mod capture;
pub mod cgroup;
pub mod contain;
pub mod guard;
mod leader;
pub mod output;
pub mod procfs;
mod program;
pub mod reaper;
pub mod sweep;
mod vfork;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use contain::{Contained, Containment};
pub use output::{Event, LineKind, LogLevel, Stream, TailBuffer, parse_line};

/// The variables of coco's own environment a child gets under [`Inherit::Base`] (and every
/// `LC_*`): what programs need to find themselves at home, never coco's configuration
/// (`COCO_…`, where a MongoDB password may be) nor anything else the worker was started with.
pub const BASE_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
];

/// Is `key` one of [`BASE_ENV`] or an `LC_*` locale variable (pure)?
pub fn is_base_env(key: &std::ffi::OsStr) -> bool {
    let key = key.as_bytes();
    key.starts_with(b"LC_") || BASE_ENV.iter().any(|base| base.as_bytes() == key)
}

/// `PATH` used when neither the spec nor coco's environment has one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How often [`Child::terminate_group`] checks whether the rest of the group is gone.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// After SIGKILL, how long [`Child::terminate_group`] waits for the group to be gone (a process
/// in uninterruptible sleep dies only when its I/O completes).
const KILL_SETTLE: Duration = Duration::from_secs(1);

/// Capacity of the channel between the output readers and [`run_to_end`].
const EVENT_CHANNEL: usize = 256;

/// After the group is gone, how long [`run_to_end`] waits for the pipes to close (a process
/// that left the group, e.g. with `setsid`, may hold them open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// What to run, where, and with which environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The program and its arguments, passed as is (no shell, no splitting, no expansion).
    pub program_and_args: Vec<String>,
    /// Absolute working directory; it must exist.
    pub cwd: PathBuf,
    /// Which of coco's own environment the child starts from.
    pub inherit: Inherit,
    /// Added on top of the inherited environment (a declared `PATH` replaces the inherited one
    /// before `path_prepend` is applied).
    pub env: BTreeMap<String, String>,
    /// Prepended to `PATH`, first entry first; the program is looked up on the new `PATH`.
    pub path_prepend: Vec<PathBuf>,
    /// How the child is kept from outliving coco (when `contain` is not a subreaper).
    pub leash: Leash,
    /// How the child's whole tree is held; `None`: its process group only.
    pub contain: Option<Contained>,
}

/// Which part of coco's own environment a child starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Inherit {
    /// Only [`BASE_ENV`] and `LC_*`: jobs and apps (the default).
    #[default]
    Base,
    /// All of it: tools coco runs for the operator (`git`, `pip`), which may need their
    /// agent sockets and proxies.
    All,
}

/// How a child is kept from outliving the coco process that started it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Leash {
    /// `PR_SET_PDEATHSIG = SIGKILL`, set between fork and exec (Linux): the child dies with
    /// the thread that spawned it. Costs a full fork of coco per spawn.
    #[default]
    DeathSignal,
    /// The child carries `COCO_GUARD=<marker>`; the [`guard`] holding that marker kills it
    /// (and what it started) when coco dies. Spawned with `posix_spawn`.
    Guard(String),
}

impl Spec {
    pub fn new<S: Into<String>>(
        program_and_args: impl IntoIterator<Item = S>,
        cwd: impl Into<PathBuf>,
    ) -> Spec {
        Spec {
            program_and_args: program_and_args.into_iter().map(Into::into).collect(),
            cwd: cwd.into(),
            inherit: Inherit::Base,
            env: BTreeMap::new(),
            path_prepend: Vec::new(),
            leash: Leash::DeathSignal,
            contain: None,
        }
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Spec {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn path_prepend(mut self, dir: impl Into<PathBuf>) -> Spec {
        self.path_prepend.push(dir.into());
        self
    }

    /// `argv[0]` as written, or `""` for an empty command.
    pub fn program(&self) -> &str {
        self.program_and_args.first().map_or("", String::as_str)
    }
}

/// Why a process could not be started; each names the program and the directory.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("nothing to run in {}: the command is empty", cwd.display())]
    EmptyCommand { cwd: PathBuf },
    #[error("cannot run `{program}`: working directory {} is not an absolute path", cwd.display())]
    CwdNotAbsolute { program: String, cwd: PathBuf },
    #[error("cannot run `{program}`: working directory {} does not exist", cwd.display())]
    CwdMissing { program: String, cwd: PathBuf },
    #[error("cannot run `{program}`: working directory {} is not a directory", cwd.display())]
    CwdNotDirectory { program: String, cwd: PathBuf },
    #[error(
        "cannot run `{program}` in {}: environment variable {key:?} has an invalid name or value",
        cwd.display()
    )]
    InvalidEnv {
        program: String,
        cwd: PathBuf,
        key: String,
    },
    #[error(
        "cannot run `{program}` in {}: directory {} cannot be put on PATH (it contains ':')",
        cwd.display(),
        dir.display()
    )]
    InvalidPathEntry {
        program: String,
        cwd: PathBuf,
        dir: PathBuf,
    },
    #[error("cannot run `{program}` in {}: program not found on PATH {path}", cwd.display())]
    NotFoundOnPath {
        program: String,
        cwd: PathBuf,
        path: String,
    },
    #[error("cannot run `{program}` in {}: {} does not exist", cwd.display(), resolved.display())]
    NotFound {
        program: String,
        cwd: PathBuf,
        resolved: PathBuf,
    },
    #[error(
        "cannot run `{program}` in {}: {} is not an executable file",
        cwd.display(),
        resolved.display()
    )]
    NotExecutable {
        program: String,
        cwd: PathBuf,
        resolved: PathBuf,
    },
    #[error("cannot run `{program}` in {}: cannot contain it: {source}", cwd.display())]
    Contain {
        program: String,
        cwd: PathBuf,
        source: io::Error,
    },
    #[error("cannot run `{program}` ({}) in {}: {source}", resolved.display(), cwd.display())]
    Spawn {
        program: String,
        cwd: PathBuf,
        resolved: PathBuf,
        source: io::Error,
    },
}

/// A signal coco sends to a process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Kill,
    Usr1,
    Usr2,
    Term,
    Cont,
    Stop,
}

impl Signal {
    const ALL: [Signal; 9] = [
        Signal::Hup,
        Signal::Int,
        Signal::Quit,
        Signal::Kill,
        Signal::Usr1,
        Signal::Usr2,
        Signal::Term,
        Signal::Cont,
        Signal::Stop,
    ];

    pub fn as_raw(self) -> i32 {
        match self {
            Signal::Hup => libc::SIGHUP,
            Signal::Int => libc::SIGINT,
            Signal::Quit => libc::SIGQUIT,
            Signal::Kill => libc::SIGKILL,
            Signal::Usr1 => libc::SIGUSR1,
            Signal::Usr2 => libc::SIGUSR2,
            Signal::Term => libc::SIGTERM,
            Signal::Cont => libc::SIGCONT,
            Signal::Stop => libc::SIGSTOP,
        }
    }

    pub fn from_raw(raw: i32) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.as_raw() == raw)
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Quit => "SIGQUIT",
            Signal::Kill => "SIGKILL",
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
            Signal::Term => "SIGTERM",
            Signal::Cont => "SIGCONT",
            Signal::Stop => "SIGSTOP",
        }
    }
}

/// How a process ended: an exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Exit {
        Exit {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(raw)) => match Signal::from_raw(raw) {
                Some(signal) => write!(f, "killed by {}", signal.name()),
                None => write!(f, "killed by signal {raw}"),
            },
            (None, None) => f.write_str("unknown exit"),
        }
    }
}

/// What [`Child::terminate_group`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Termination {
    /// How the leader ended (it may have exited before or because of SIGTERM).
    pub exit: Exit,
    /// The grace ran out and the group was sent SIGKILL.
    pub forced: bool,
}

/// Start `spec`: see the module documentation for what is guaranteed.
pub fn spawn(spec: &Spec) -> Result<Child, SpawnError> {
    let cwd = spec.cwd.clone();
    let Some(program) = spec.program_and_args.first().cloned() else {
        return Err(SpawnError::EmptyCommand { cwd });
    };
    if !cwd.is_absolute() {
        return Err(SpawnError::CwdNotAbsolute { program, cwd });
    }
    match std::fs::metadata(&cwd) {
        Err(_) => return Err(SpawnError::CwdMissing { program, cwd }),
        Ok(meta) if !meta.is_dir() => return Err(SpawnError::CwdNotDirectory { program, cwd }),
        Ok(_) => {}
    }
    if let Some(key) = spec.env.iter().find_map(|(key, value)| {
        let bad = key.is_empty() || key.contains(['=', '\0']) || value.contains('\0');
        bad.then(|| key.clone())
    }) {
        return Err(SpawnError::InvalidEnv { program, cwd, key });
    }
    let path = match new_path(spec) {
        Ok(path) => path,
        Err(dir) => return Err(SpawnError::InvalidPathEntry { program, cwd, dir }),
    };
    let resolved = program::resolve(&program, &cwd, &path)?;

    let spawn_error = |source| SpawnError::Spawn {
        program: program.clone(),
        cwd: cwd.clone(),
        resolved: resolved.clone(),
        source,
    };
    let contain_error = |source| SpawnError::Contain {
        program: program.clone(),
        cwd: cwd.clone(),
        source,
    };
    let subreaper = match &spec.contain {
        Some(Contained {
            containment: Containment::Subreaper(exe),
            ..
        }) => Some(exe.as_path()),
        _ => None,
    };
    // The subreaper itself notices the worker's end (its stdin, the link, closes); a death
    // signal would kill it before it could end the tree. It still carries the guard's marker:
    // should the subreaper itself be killed, the guard (which ends a carrier's descendants
    // first) still ends its tree with the worker.
    let env = child_env(spec, own_env().iter().map(|(k, v)| (k, v)), &path);
    let death_signal = subreaper.is_none() && spec.leash == Leash::DeathSignal;
    // The cgroup exists before the child does, so a failure to make it starts nothing.
    if let Some(Contained {
        containment: Containment::Cgroup(group),
        unit,
    }) = &spec.contain
    {
        let unit = group.unit(unit).map_err(contain_error)?;
        let born = || -> io::Result<_> {
            let argv = spec.program_and_args.iter().map(|arg| arg.as_ref());
            let plan = vfork::Plan::new(&resolved, argv, &env, &cwd, unit.dir(), death_signal)?;
            let started = vfork::spawn_in(&plan, unit.folder())?;
            Ok((
                leader::Leader::Born(vfork::Born::new(started.pid, started.pidfd)?),
                started.pid,
                leader::Pipe::from_fd(started.stdout)?,
                leader::Pipe::from_fd(started.stderr)?,
            ))
        };
        return match born() {
            Ok((leader, pid, stdout, stderr)) => Ok(Child::started(
                leader,
                pid,
                program,
                Some(stdout),
                Some(stderr),
                Tree::Cgroup(unit),
                &cwd,
            )),
            Err(source) => {
                unit.remove();
                Err(spawn_error(source))
            }
        };
    }
    let mut command = match subreaper {
        // The subreaper starts the program (see `reaper`); its argv: the resolved program,
        // `argv[0]`, the arguments.
        Some(exe) => {
            let mut command = command(exe);
            command
                .arg(reaper::VERB)
                .arg(&resolved)
                .args(&spec.program_and_args);
            command
        }
        None => {
            let mut command = command(&resolved);
            command.arg0(&program).args(&spec.program_and_args[1..]);
            command
        }
    };
    command
        .env_clear()
        .envs(&env)
        .current_dir(&cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut link = None;
    if subreaper.is_some() {
        let (ours, theirs) = reaper::Link::pair().map_err(contain_error)?;
        command.stdin(Stdio::from(theirs));
        link = Some(ours);
    } else {
        command.stdin(Stdio::null());
        #[cfg(target_os = "linux")]
        if death_signal {
            set_death_signal(&mut command);
        }
    }
    let mut inner = command.spawn().map_err(spawn_error)?;
    let pid = inner
        .id()
        .filter(|&pid| pid > 1 && pid <= i32::MAX as u32)
        .expect("a freshly spawned child has a pid");
    let tree = match link {
        Some(link) => Tree::Reaper(link),
        None => Tree::Group,
    };
    let (stdout, stderr) = (inner.stdout.take(), inner.stderr.take());
    Ok(Child::started(
        leader::Leader::Command(inner),
        pid,
        program,
        stdout.map(leader::Pipe::Stdout),
        stderr.map(leader::Pipe::Stderr),
        tree,
        &cwd,
    ))
}

/// coco's own environment, read once: coco never changes it (Rust's `set_var` is unsafe,
/// and it is called nowhere), so a spawn need not copy every variable to keep a few.
fn own_env() -> &'static [(OsString, OsString)] {
    static OWN: std::sync::OnceLock<Vec<(OsString, OsString)>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| std::env::vars_os().collect())
}

/// The child's whole environment (pure but for `vars`, coco's own): under [`Inherit::Base`]
/// only [`is_base_env`] variables of `vars` (all of them under [`Inherit::All`]), then the
/// spec's, then `path` as `PATH`, then the guard's marker for a [`Leash::Guard`].
fn child_env<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    spec: &Spec,
    vars: impl Iterator<Item = (K, V)>,
    path: &OsString,
) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = vars
        .filter(|(key, _)| spec.inherit == Inherit::All || is_base_env(key.as_ref()))
        .map(|(key, value)| (key.as_ref().to_owned(), value.as_ref().to_owned()))
        .collect();
    env.extend(
        spec.env
            .iter()
            .map(|(key, value)| (OsString::from(key), OsString::from(value))),
    );
    env.insert("PATH".into(), path.clone());
    if let Leash::Guard(marker) = &spec.leash {
        env.insert(guard::ENV.into(), marker.into());
    }
    env
}

/// Make the child SIGKILLed when the spawning thread dies (the pre-exec code this needs makes
/// std fork instead of using `posix_spawn`).
#[cfg(target_os = "linux")]
fn set_death_signal(command: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only makes async-signal-safe calls (prctl, getppid) and builds an
    // io::Error from an errno, which does not allocate.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            // coco died between fork and prctl: the death signal will never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// The only `Command::new` in coco.
#[allow(clippy::disallowed_methods)]
fn command(program: &Path) -> tokio::process::Command {
    tokio::process::Command::new(program)
}

/// `path_prepend` entries, then the declared or inherited `PATH`; `Err(dir)` for an entry that
/// cannot be part of a `PATH`.
fn new_path(spec: &Spec) -> Result<OsString, PathBuf> {
    let base = match spec.env.get("PATH") {
        Some(path) => OsString::from(path),
        None => std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    };
    let mut entries: Vec<&[u8]> = Vec::new();
    for dir in &spec.path_prepend {
        let bytes = dir.as_os_str().as_bytes();
        if bytes.contains(&b':') {
            return Err(dir.clone());
        }
        entries.push(bytes);
    }
    if !base.is_empty() || entries.is_empty() {
        entries.push(base.as_bytes());
    }
    Ok(OsString::from_vec(entries.join(&b':')))
}

/// A running (or finished, not yet dropped) child process and its process group.
#[derive(Debug)]
pub struct Child {
    /// The leader (under a subreaper: the subreaper).
    inner: leader::Leader,
    pid: u32,
    program: String,
    stdout: Option<leader::Pipe>,
    stderr: Option<leader::Pipe>,
    exit: Option<Exit>,
    tree: Tree,
}

/// What holds a child's whole tree.
#[derive(Debug)]
enum Tree {
    /// Its process group only.
    Group,
    /// Its cgroup ([`cgroup::Unit`]), and its process group.
    Cgroup(cgroup::Unit),
    /// Its subreaper, asked through the link ([`reaper::Link`]).
    Reaper(reaper::Link),
}

impl Tree {
    fn name(&self) -> &'static str {
        match self {
            Tree::Group => "group",
            Tree::Cgroup(_) => "cgroup",
            Tree::Reaper(_) => "subreaper",
        }
    }
}

impl Child {
    fn started(
        inner: leader::Leader,
        pid: u32,
        program: String,
        stdout: Option<leader::Pipe>,
        stderr: Option<leader::Pipe>,
        tree: Tree,
        cwd: &Path,
    ) -> Child {
        tracing::debug!(pid, program = %program, cwd = %cwd.display(), tree = tree.name(), "spawned");
        Child {
            inner,
            pid,
            program,
            stdout,
            stderr,
            exit: None,
            tree,
        }
    }

    /// The leader's pid, which is also the process group id (under a subreaper, the
    /// subreaper's: the job is in its group).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `argv[0]` as given in the spec.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Send `signal` to every process of the tree: the group, and every member of its cgroup
    /// or every descendant of its subreaper however they detached. `Ok(false)` if nothing of
    /// it is left.
    pub fn signal_group(&mut self, signal: Signal) -> io::Result<bool> {
        match &self.tree {
            Tree::Group => kill_group(self.pid, signal.as_raw()),
            Tree::Cgroup(unit) => {
                let group = kill_group(self.pid, signal.as_raw());
                unit.signal(signal.as_raw(), Some(self.pid))?;
                Ok(group? || unit.populated())
            }
            Tree::Reaper(link) => {
                if self.inner.try_wait()?.is_some() {
                    return Ok(false);
                }
                match signal {
                    // The subreaper must live to SIGKILL the tree: it is asked, not killed.
                    Signal::Kill => link.kill(),
                    _ => {
                        // SAFETY: kill(2) on our own unreaped child (checked just now).
                        unsafe { libc::kill(self.pid as libc::pid_t, signal.as_raw()) };
                    }
                }
                Ok(true)
            }
        }
    }

    /// Whether any live (non-zombie) process is left in the tree, the leader included.
    pub fn group_alive(&mut self) -> io::Result<bool> {
        match &self.tree {
            Tree::Group => group_alive(self.pid),
            Tree::Cgroup(unit) => Ok(unit.populated() || group_alive(self.pid)?),
            // The subreaper lives as long as anything of its tree does.
            Tree::Reaper(_) => Ok(self.inner.try_wait()?.is_none()),
        }
    }

    /// Wait for the leader to exit (cancel-safe; after the first time, returns the same exit).
    pub async fn wait(&mut self) -> io::Result<Exit> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        let exit = match &mut self.tree {
            Tree::Reaper(link) => match link.report().await {
                Some(exit) => exit,
                // Gone without a report (killed itself): its own end stands for the job's.
                None => Exit::from(self.inner.wait().await?),
            },
            _ => Exit::from(self.inner.wait().await?),
        };
        self.exit = Some(exit);
        Ok(exit)
    }

    /// The leader's exit if it has already ended.
    pub fn try_wait(&mut self) -> io::Result<Option<Exit>> {
        if self.exit.is_none() {
            self.exit = match &mut self.tree {
                Tree::Reaper(link) => match link.try_report() {
                    Some(exit) => Some(exit),
                    None => self.inner.try_wait()?.map(Exit::from),
                },
                _ => self.inner.try_wait()?.map(Exit::from),
            };
        }
        Ok(self.exit)
    }

    /// Remove what held the tree once nothing of it is left (a cgroup is a folder).
    fn release(&mut self) {
        if let Tree::Cgroup(unit) = &self.tree {
            unit.remove_if_empty();
        }
    }

    /// SIGTERM to the group; wait up to `grace` for the leader and then the rest of the group
    /// to end; SIGKILL the group if anything is left (and wait up to a second for it to die).
    /// Also cleans up after a leader that has already exited.
    pub async fn terminate_group(&mut self, grace: Duration) -> io::Result<Termination> {
        let deadline = Instant::now() + grace;
        self.signal_group(Signal::Term)?;
        if tokio::time::timeout_at(deadline, self.wait()).await.is_ok() {
            while self.group_alive()? && Instant::now() < deadline {
                tokio::time::sleep(GROUP_POLL.min(deadline - Instant::now())).await;
            }
        }
        let forced = self.exit.is_none() || self.group_alive()?;
        if forced {
            tracing::debug!(
                pid = self.pid,
                program = %self.program,
                grace = %crate::fields::duration(grace),
                "grace over, SIGKILL to the group"
            );
            self.signal_group(Signal::Kill)?;
        }
        let exit = self.wait().await?;
        if forced {
            // SIGKILL is delivered asynchronously: give the members a moment to actually die.
            let settle = Instant::now() + KILL_SETTLE;
            while self.group_alive()? && Instant::now() < settle {
                tokio::time::sleep(GROUP_POLL).await;
            }
        }
        self.release();
        Ok(Termination { exit, forced })
    }

    /// Read stdout and stderr (once: later calls read nothing) into `tx` in the caller's own
    /// task: the future ends when both streams have (dropping it stops reading and closes
    /// the pipes). No task and no cross-thread wake-up per stream, unlike [`Child::capture`].
    pub fn read_output(&mut self, tx: mpsc::Sender<Event>) -> impl Future<Output = ()> + use<> {
        let (stdout, stderr) = (self.stdout.take(), self.stderr.take());
        let tx_err = tx.clone();
        // Each side drops its sender when its stream ends, so the receiver sees the end.
        let out = async move {
            if let Some(stdout) = stdout {
                output::read_lines(stdout, Stream::Stdout, tx).await;
            }
        };
        let err = async move {
            if let Some(stderr) = stderr {
                output::read_lines(stderr, Stream::Stderr, tx_err).await;
            }
        };
        async move {
            tokio::join!(out, err);
        }
    }

    /// Read stdout and stderr (once: later calls capture nothing) into `tx`, one task each.
    pub fn capture(&mut self, tx: mpsc::Sender<Event>) -> Capture {
        let mut tasks = JoinSet::new();
        if let Some(stdout) = self.stdout.take() {
            tasks.spawn(output::read_lines(stdout, Stream::Stdout, tx.clone()));
        }
        if let Some(stderr) = self.stderr.take() {
            tasks.spawn(output::read_lines(stderr, Stream::Stderr, tx));
        }
        Capture { tasks }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Only while the leader is unreaped: its pid (the group id) cannot have been reused.
        // (A subreaper ends its tree by itself once the link closes.)
        if matches!(self.try_wait(), Ok(None)) {
            let _ = self.signal_group(Signal::Kill);
        }
        if let Tree::Cgroup(unit) = &self.tree
            && unit.populated()
        {
            let _ = unit.signal(libc::SIGKILL, None);
        }
        self.release();
    }
}

/// The reader tasks of [`Child::capture`]. Dropping it stops reading (and closes the pipes).
#[derive(Debug)]
pub struct Capture {
    tasks: JoinSet<()>,
}

impl Capture {
    /// Wait until both streams have reached their end (cancel-safe).
    pub async fn finished(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

fn kill_group(pgid: u32, signal: i32) -> io::Result<bool> {
    // pid 0 or 1 would signal coco's own group or every process: never.
    assert!(pgid > 1, "refusing to signal process group {pgid}");
    // SAFETY: plain syscall with integer arguments.
    if unsafe { libc::killpg(pgid as libc::pid_t, signal) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        _ => Err(error),
    }
}

fn group_alive(pgid: u32) -> io::Result<bool> {
    match kill_group(pgid, 0) {
        Ok(false) => Ok(false),
        Ok(true) => Ok(group_has_live_member(pgid)),
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => Ok(true),
        Err(error) => Err(error),
    }
}

/// Zombies still count for `killpg(pgid, 0)`; an orphan's zombie lingers forever under an
/// init that does not reap (common in containers). So look at the states in /proc (Linux);
/// if that cannot be read, assume the group is alive.
fn group_has_live_member(pgid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let Some(mut pids) = procfs::pids() else {
        return true;
    };
    pids.any(|pid| {
        let Some(stat) = procfs::Stat::read(pid) else {
            return false;
        };
        stat.field(2) == Some(pgid) && !matches!(stat.fields().next(), Some("Z" | "X"))
    })
}

/// How a [`run_to_end`] run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub pid: u32,
    pub exit: Exit,
    /// The timeout ran out and the group was terminated.
    pub timed_out: bool,
    /// The cancel future completed and the group was terminated.
    pub cancelled: bool,
    /// Something in the group outlived SIGTERM plus the grace and was SIGKILLed.
    pub forced: bool,
    /// Every line was delivered (false if a process that left the group kept a pipe open).
    pub output_complete: bool,
}

/// Why [`run_to_end`] failed: the process could not be started, or (rarely) not waited for
/// or signalled.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("`{program}` (pid {pid}): {doing}: {source}")]
    Process {
        program: String,
        pid: u32,
        doing: &'static str,
        source: io::Error,
    },
}

/// Run `spec` to its end: capture its output into `on_event` (in order per stream), stop the
/// group when `timeout` runs out or `cancel` completes (SIGTERM, `grace`, SIGKILL), and once
/// the leader has exited terminate whatever it left running in its group.
pub async fn run_to_end(
    spec: &Spec,
    timeout: Option<Duration>,
    grace: Duration,
    cancel: impl Future<Output = ()>,
    on_event: impl FnMut(Event),
) -> Result<Outcome, RunError> {
    run_to_end_observed(spec, timeout, grace, cancel, |_| {}, on_event).await
}

/// [`run_to_end`], calling `on_spawn` with the leader's pid (the group id) once it started.
pub async fn run_to_end_observed(
    spec: &Spec,
    timeout: Option<Duration>,
    grace: Duration,
    cancel: impl Future<Output = ()>,
    on_spawn: impl FnOnce(u32),
    mut on_event: impl FnMut(Event),
) -> Result<Outcome, RunError> {
    let mut child = spawn(spec)?;
    on_spawn(child.pid);
    let failed = |child: &Child, doing: &'static str| {
        let (program, pid) = (child.program.clone(), child.pid);
        move |source| RunError::Process {
            program,
            pid,
            doing,
            source,
        }
    };
    let (tx, mut rx) = mpsc::channel(EVENT_CHANNEL);
    // Output is read in this task, beside the wait: one task per run, not three.
    let mut reading = pin!(child.read_output(tx));
    let mut read_all = false;
    let mut events_open = true;
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut cancel = pin!(cancel);
    let (mut timed_out, mut cancelled) = (false, false);

    loop {
        tokio::select! {
            event = rx.recv(), if events_open => match event {
                Some(event) => on_event(event),
                None => events_open = false,
            },
            () = &mut reading, if !read_all => read_all = true,
            exit = child.wait() => {
                exit.map_err(failed(&child, "waiting for it to exit"))?;
                break;
            }
            () = sleep_until(deadline) => {
                timed_out = true;
                break;
            }
            () = &mut cancel => {
                cancelled = true;
                break;
            }
        }
    }

    let mut forced = false;
    let stop = timed_out || cancelled;
    if stop
        || child
            .group_alive()
            .map_err(failed(&child, "checking its process group"))?
    {
        let error = failed(&child, "terminating its process group");
        let mut terminate = pin!(child.terminate_group(grace));
        let termination = loop {
            tokio::select! {
                event = rx.recv(), if events_open => match event {
                    Some(event) => on_event(event),
                    None => events_open = false,
                },
                () = &mut reading, if !read_all => read_all = true,
                termination = &mut terminate => break termination,
            }
        };
        forced = termination.map_err(error)?.forced;
    }
    let exit = child
        .wait()
        .await
        .map_err(failed(&child, "waiting for it to exit"))?;
    child.release();

    let drain_deadline = Instant::now() + DRAIN_AFTER_EXIT;
    while events_open {
        tokio::select! {
            event = rx.recv() => match event {
                Some(event) => on_event(event),
                None => events_open = false,
            },
            () = &mut reading, if !read_all => read_all = true,
            () = tokio::time::sleep_until(drain_deadline) => break,
        }
    }
    // What a process that left the group still holds open is not read any further: the
    // reading future is dropped (the pipes closed) as this returns.
    if events_open {
        tracing::warn!(
            pid = child.pid,
            program = %child.program,
            "output still open after the process group ended; stopped reading"
        );
    }
    Ok(Outcome {
        pid: child.pid,
        exit,
        timed_out,
        cancelled,
        forced,
        output_complete: !events_open,
    })
}

/// Sleep until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    fn spec_with(env: &[(&str, &str)], prepend: &[&str]) -> Spec {
        let mut spec = Spec::new(["x"], "/");
        for (key, value) in env {
            spec = spec.env(*key, *value);
        }
        for dir in prepend {
            spec = spec.path_prepend(*dir);
        }
        spec
    }

    #[test]
    fn path_prepend_goes_first() {
        let spec = spec_with(&[("PATH", "/usr/bin:/bin")], &["/a/bin", "/b"]);
        assert_eq!(new_path(&spec).unwrap(), "/a/bin:/b:/usr/bin:/bin");
        let spec = spec_with(&[("PATH", "")], &["/a/bin"]);
        assert_eq!(new_path(&spec).unwrap(), "/a/bin");
        let spec = spec_with(&[("PATH", "/bin")], &[]);
        assert_eq!(new_path(&spec).unwrap(), "/bin");
        let spec = spec_with(&[], &["/x:y"]);
        assert_eq!(new_path(&spec).unwrap_err(), PathBuf::from("/x:y"));
    }

    #[test]
    fn the_base_environment_is_a_short_list_and_the_locale() {
        for key in ["PATH", "HOME", "LANG", "LC_ALL", "LC_TIME", "TZ", "TMPDIR"] {
            assert!(is_base_env(key.as_ref()), "{key}");
        }
        for key in [
            "COCO_DEFAULT__MONGO_URL",
            "COCO_CONFIG",
            "AWS_SECRET_ACCESS_KEY",
            "PATHX",
            "XLC_ALL",
            "",
        ] {
            assert!(!is_base_env(key.as_ref()), "{key}");
        }
    }

    #[test]
    fn the_child_env_is_the_base_then_the_spec_then_path_and_guard() {
        let vars = || {
            [("HOME", "/root"), ("COCO_CONFIG", "x"), ("LC_ALL", "C")]
                .map(|(key, value)| (OsString::from(key), OsString::from(value)))
                .into_iter()
        };
        let mut spec = spec_with(
            &[("A", "1"), ("HOME", "/home/a"), ("COCO_GUARD", "no")],
            &[],
        );
        spec.leash = Leash::Guard("m".into());
        let env = child_env(&spec, vars(), &OsString::from("/p"));
        let env: Vec<(&str, &str)> = env
            .iter()
            .map(|(key, value)| (key.to_str().unwrap(), value.to_str().unwrap()))
            .collect();
        assert_eq!(
            env,
            [
                ("A", "1"),
                ("COCO_GUARD", "m"),
                ("HOME", "/home/a"),
                ("LC_ALL", "C"),
                ("PATH", "/p")
            ]
        );
        spec.inherit = Inherit::All;
        spec.leash = Leash::DeathSignal;
        let env = child_env(&spec, vars(), &OsString::from("/p"));
        assert_eq!(
            env.get(OsStr::new("COCO_CONFIG")),
            Some(&OsString::from("x"))
        );
        assert_eq!(
            env.get(OsStr::new("COCO_GUARD")),
            Some(&OsString::from("no"))
        );
    }

    #[test]
    fn exit_display() {
        let exit = |code, signal| Exit { code, signal }.to_string();
        assert_eq!(exit(Some(3), None), "exit code 3");
        assert_eq!(exit(None, Some(9)), "killed by SIGKILL");
        assert_eq!(exit(None, Some(64)), "killed by signal 64");
    }

    #[test]
    fn signals_round_trip() {
        for signal in Signal::ALL {
            assert_eq!(Signal::from_raw(signal.as_raw()), Some(signal));
        }
    }
}
