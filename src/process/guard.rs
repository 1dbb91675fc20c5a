//! The process guard: a small process that outlives its worker to end the worker's jobs.
//!
//! Why not only `PR_SET_PDEATHSIG`: setting it needs code between fork and exec, which forces a
//! full `fork` of the worker (copying its page tables, then copy-on-write faults) instead of
//! `posix_spawn` (a `vfork`). On a 2-CPU host that fork cost more than half of every trivial
//! run (see docs/benchmarks.md). And the death signal reaches only the job's own process, not
//! what the job started (`sh -c 'sleep 60 &'`).
//!
//! How: [`Guard::start`] runs `coco __guard MARKER` (the coco binary, a process group of its
//! own, SIGINT/SIGTERM/SIGHUP ignored) with a pipe on its stdin whose only writer is the
//! worker. Every job spawned with [`Leash::Guard`] carries `COCO_GUARD=MARKER` in its
//! environment, inherited by whatever it starts. [`serve`] (the guard's body) reads its stdin
//! until end of file — which comes when the worker exits in any way, SIGKILL included, because
//! the kernel closes the pipe — then SIGKILLs every process of this host carrying the marker,
//! pass after pass until one finds none (a job may fork while it is being swept), and exits.
//! Spawns with the guard need no pre-exec code, so they take the `posix_spawn` path.
//!
//! The guard also chooses the worker's [`Containment`] (a cgroup per run, or a subreaper per
//! run: [`super::contain`]). With cgroups, it is given the worker's cgroup folder and, at end
//! of file, kills and removes it too: that reaches what scrubbed its environment. (A
//! subreaper notices the worker's end by itself.)
//!
//! A watcher task restarts a guard that died (someone killed it) with the same marker, so it
//! still covers the jobs started before; while it is down, [`Handle::leash`] falls back
//! to the death signal.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::contain::{ContainError, Mode};
use super::{Contained, Containment, Leash, Spec, cgroup, sweep};

/// The environment variable naming a job's guard.
pub const ENV: &str = "COCO_GUARD";

/// The hidden verb that runs [`serve`].
pub const VERB: &str = "__guard";

/// How long the watcher waits before restarting a guard that died.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Sweep passes at most, and the pause between them.
const MAX_PASSES: usize = 50;
const PASS_GAP: Duration = Duration::from_millis(10);

/// A running guard; dropping it closes the guard's stdin, so the guard sweeps and exits.
#[derive(Debug)]
pub struct Guard {
    handle: Handle,
    watcher: tokio::task::JoinHandle<()>,
}

/// What a spawner needs from a [`Guard`]: cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    marker: String,
    up: Arc<AtomicBool>,
    containment: Containment,
}

/// Why a guard could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Contain(#[from] ContainError),
    #[error("cannot start the process guard: {0}")]
    Spawn(#[from] io::Error),
}

impl Handle {
    /// [`Leash::Guard`] while the guard runs, else [`Leash::DeathSignal`].
    pub fn leash(&self) -> Leash {
        if self.up.load(Ordering::Acquire) {
            Leash::Guard(self.marker.clone())
        } else {
            Leash::DeathSignal
        }
    }

    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// How this worker holds its children's trees.
    pub fn containment(&self) -> &Containment {
        &self.containment
    }

    /// Put `spec` under this guard, its tree held as the unit `unit` (e.g. `run-<id>`).
    pub fn hold(&self, spec: &mut Spec, unit: &str) {
        spec.leash = self.leash();
        spec.contain = Some(self.containment.unit(unit));
    }

    /// The containment of a unit, for a spec built elsewhere.
    pub fn contained(&self, unit: &str) -> Contained {
        self.containment.unit(unit)
    }
}

impl Guard {
    /// Choose the containment (`mode`), start `exe __guard MARKER [CGROUP]` (`exe`: the coco
    /// binary) and a task that restarts it if it dies; must be called inside a tokio runtime.
    pub fn start(exe: PathBuf, mode: Mode) -> Result<Guard, StartError> {
        let marker = format!(
            "{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let containment = Containment::choose(mode, &marker, &exe)?;
        let cgroup_dir = containment.cgroup_dir().map(Path::to_path_buf);
        let first = match spawn_guard(&exe, &marker, cgroup_dir.as_deref()) {
            Ok(first) => first,
            Err(error) => {
                if let Some(dir) = &cgroup_dir {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(error.into());
            }
        };
        tracing::debug!(containment = containment.name(), "process guard started");
        let handle = Handle {
            marker: marker.clone(),
            up: Arc::new(AtomicBool::new(true)),
            containment,
        };
        let up = Arc::clone(&handle.up);
        let watcher = tokio::spawn(async move {
            let mut guard = first;
            loop {
                // The pipe's write end, held until this task ends (`wait` would close it).
                let _pipe = guard.stdin.take();
                let status = guard.wait().await;
                up.store(false, Ordering::Release);
                tracing::warn!(
                    status = %status.as_ref().map_or_else(ToString::to_string, ToString::to_string),
                    "the process guard exited; jobs started now get the death signal instead; \
                     restarting it"
                );
                loop {
                    tokio::time::sleep(RESTART_AFTER).await;
                    match spawn_guard(&exe, &marker, cgroup_dir.as_deref()) {
                        Ok(child) => {
                            guard = child;
                            break;
                        }
                        Err(error) => tracing::warn!("cannot restart the process guard: {error}"),
                    }
                }
                up.store(true, Ordering::Release);
            }
        });
        Ok(Guard { handle, watcher })
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Ends the watcher, which drops the child and with it the pipe's write end.
        self.watcher.abort();
    }
}

fn spawn_guard(
    exe: &Path,
    marker: &str,
    cgroup_dir: Option<&Path>,
) -> io::Result<tokio::process::Child> {
    super::command(exe)
        .arg(VERB)
        .arg(marker)
        .args(cgroup_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // Not in the worker's group: Ctrl-C in a terminal reaches the worker, not its guard.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
}

/// The guard's body (blocking): wait for end of file on stdin, then SIGKILL every process
/// carrying `COCO_GUARD=marker` and everything in the cgroup folder `cgroup_dir` (then
/// removed); returns how many processes were signalled by marker.
pub fn serve(marker: &str, cgroup_dir: Option<&Path>) -> usize {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if let Some(dir) = cgroup_dir
        && !cgroup::kill_and_remove(dir)
    {
        tracing::warn!(cgroup = %dir.display(), "the worker's cgroup could not be removed");
    }
    let needle = format!("{ENV}={marker}");
    let mut killed = 0;
    for _ in 0..MAX_PASSES {
        let now = sweep::kill_carrying(&needle);
        if now == 0 {
            break;
        }
        killed += now;
        std::thread::sleep(PASS_GAP);
    }
    killed
}
