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
//! The guard is also the fence that outlives a stalled worker: after each renewal in the store
//! (its runs' heartbeat; a `stop` app's hold), the worker writes the renewal's deadline to the
//! guard's stdin ([`Handle::renewed`]: `fence KEY MS GRACE_MS`, the deadline `MS` from now).
//! A deadline that passes unrenewed — the worker cannot reach the store, or is stalled
//! (SIGSTOP, a long pause) — makes the guard end what the key covers before any other host
//! may take it over: SIGTERM to every process carrying the marker and the key's variable
//! (`COCO_RUN_ID` for `runs`, `COCO_PROJECT`/`COCO_APP` for `app=ID`), the grace, then
//! SIGKILL to them, their descendants and the key's cgroup units ([`FenceKey`]).
//! `clear KEY` drops a deadline (no runs left, the app stopped).
//!
//! A watcher task restarts a guard that died (someone killed it) with the same marker, so it
//! still covers the jobs started before; while it is down, [`Handle::leash`] falls back
//! to the death signal.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// The write end of the guard's stdin, shared by the watcher (which replaces it when it
/// restarts the guard) and the handles that send fences; `None` once the guard is dropped.
type Pipe = Arc<Mutex<Option<std::fs::File>>>;

/// What a spawner needs from a [`Guard`]: cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    marker: String,
    up: Arc<AtomicBool>,
    containment: Containment,
    pipe: Pipe,
}

/// What one fence deadline covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FenceKey {
    /// Every run of the worker (processes with a `COCO_RUN_ID`).
    Runs,
    /// One app, `project.app`.
    App(String),
}

impl FenceKey {
    fn text(&self) -> String {
        match self {
            FenceKey::Runs => "runs".to_owned(),
            FenceKey::App(id) => format!("app={id}"),
        }
    }

    fn parse(text: &str) -> Option<FenceKey> {
        match text {
            "runs" => Some(FenceKey::Runs),
            _ => {
                let id = text.strip_prefix("app=")?;
                id.split_once('.').map(|_| FenceKey::App(id.to_owned()))
            }
        }
    }

    /// The environment entries (besides the marker) of the processes it covers.
    fn needles(&self) -> Vec<String> {
        match self {
            FenceKey::Runs => vec!["COCO_RUN_ID=".to_owned()],
            FenceKey::App(id) => {
                let (project, app) = id.split_once('.').unwrap_or((id, ""));
                vec![format!("COCO_PROJECT={project}"), format!("COCO_APP={app}")]
            }
        }
    }

    /// The start of the names of the cgroup units it covers.
    fn unit_prefix(&self) -> String {
        match self {
            FenceKey::Runs => "run-".to_owned(),
            FenceKey::App(id) => cgroup::app_unit_prefix(id),
        }
    }
}

/// One line the worker sends its guard (pure to parse).
#[derive(Debug, Clone, PartialEq, Eq)]
enum FenceOrder {
    /// End what `key` covers unless renewed within `within` (SIGTERM, `grace`, SIGKILL).
    Fence {
        key: FenceKey,
        within: Duration,
        grace: Duration,
    },
    /// Forget `key`'s deadline.
    Clear(FenceKey),
}

impl FenceOrder {
    fn line(&self) -> String {
        match self {
            FenceOrder::Fence { key, within, grace } => format!(
                "fence {} {} {}\n",
                key.text(),
                within.as_millis(),
                grace.as_millis()
            ),
            FenceOrder::Clear(key) => format!("clear {}\n", key.text()),
        }
    }

    fn parse(line: &str) -> Option<FenceOrder> {
        let mut words = line.split_ascii_whitespace();
        let order = match (words.next()?, FenceKey::parse(words.next()?)?) {
            ("fence", key) => {
                let mut ms = || words.next()?.parse::<u64>().ok().map(Duration::from_millis);
                let (within, grace) = (ms()?, ms()?);
                FenceOrder::Fence { key, within, grace }
            }
            ("clear", key) => FenceOrder::Clear(key),
            _ => return None,
        };
        words.next().is_none().then_some(order)
    }
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

    /// `key` was renewed in the store: unless renewed again within `within`, the guard ends
    /// what it covers (SIGTERM, `grace`, SIGKILL). Never blocks: a message the pipe has no
    /// room for is dropped, which leaves the earlier (sooner) deadline standing.
    pub fn renewed(&self, key: FenceKey, within: Duration, grace: Duration) {
        self.send(&FenceOrder::Fence { key, within, grace });
    }

    /// Forget `key`'s deadline (nothing of it runs any more).
    pub fn clear(&self, key: FenceKey) {
        self.send(&FenceOrder::Clear(key));
    }

    fn send(&self, order: &FenceOrder) {
        use std::io::Write as _;
        let mut pipe = self.pipe.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = pipe.as_mut()
            && let Err(error) = file.write_all(order.line().as_bytes())
        {
            tracing::debug!("cannot tell the process guard a deadline: {error}");
        }
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
            pipe: Pipe::default(),
        };
        let up = Arc::clone(&handle.up);
        let pipe = Arc::clone(&handle.pipe);
        let watcher = tokio::spawn(async move {
            let mut guard = first;
            loop {
                // The pipe's write end, kept until the guard is dropped (`wait` would close it).
                let stdin = guard
                    .stdin
                    .take()
                    .and_then(|stdin| stdin.into_owned_fd().ok())
                    .map(non_blocking);
                *pipe.lock().unwrap_or_else(PoisonError::into_inner) = stdin;
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
        // Closing the pipe's write end makes the guard sweep and exit; the watcher goes too.
        self.handle
            .pipe
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
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

/// The guard's body (blocking): until end of file on stdin, keep the fence deadlines the
/// worker sends and end what a passed one covers; then SIGKILL every process carrying
/// `COCO_GUARD=marker` and everything in the cgroup folder `cgroup_dir` (then removed);
/// returns how many processes were signalled by marker at the end.
pub fn serve(marker: &str, cgroup_dir: Option<&Path>) -> usize {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    let mut stdin = io::stdin().lock();
    let mut deadlines: HashMap<FenceKey, (Instant, Duration)> = HashMap::new();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        let due: Vec<FenceKey> = deadlines
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            if let Some((_, grace)) = deadlines.remove(&key) {
                fence(marker, cgroup_dir, &key, grace);
            }
        }
        let wait = deadlines
            .values()
            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
            .min();
        if !readable(&stdin, wait) {
            continue; // a deadline came first
        }
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    match FenceOrder::parse(&String::from_utf8_lossy(&line)) {
                        Some(FenceOrder::Fence { key, within, grace }) => {
                            deadlines.insert(key, (Instant::now() + within, grace));
                        }
                        Some(FenceOrder::Clear(key)) => {
                            deadlines.remove(&key);
                        }
                        None => {}
                    }
                }
                if pending.len() > buf.len() {
                    pending.clear(); // not a line of ours: never grow
                }
            }
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

/// The write end of the guard's pipe, made non-blocking: a guard that does not read (stopped,
/// hung) never blocks the worker. Each order is one write under `PIPE_BUF`, so it goes
/// whole or not at all.
fn non_blocking(fd: std::os::fd::OwnedFd) -> std::fs::File {
    use std::os::fd::AsRawFd as _;
    // SAFETY: fcntl(2) on a descriptor we own, adding O_NONBLOCK to its status flags.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
    std::fs::File::from(fd)
}

/// Whether `stdin` has something to read (or its end) within `wait` (`None`: no limit).
fn readable(stdin: &io::StdinLock<'_>, wait: Option<Duration>) -> bool {
    use std::os::fd::AsRawFd as _;
    let mut poll = libc::pollfd {
        fd: stdin.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = wait.map_or(-1, |wait| {
        i32::try_from(wait.as_millis().saturating_add(1)).unwrap_or(i32::MAX)
    });
    // SAFETY: poll(2) on one pollfd we own, for at most `timeout` ms.
    let ready = unsafe { libc::poll(&raw mut poll, 1, timeout) };
    ready != 0
}

/// End what `key` covers: SIGTERM, `grace`, SIGKILL (with descendants and cgroup units).
fn fence(marker: &str, cgroup_dir: Option<&Path>, key: &FenceKey, grace: Duration) {
    let guard_entry = format!("{ENV}={marker}");
    let needles = key.needles();
    let mut all: Vec<&str> = vec![guard_entry.as_str()];
    all.extend(needles.iter().map(String::as_str));
    let prefix = key.unit_prefix();
    let termed = sweep::signal_carrying(&all, libc::SIGTERM)
        + cgroup_dir.map_or(0, |dir| cgroup::signal_units(dir, &prefix, libc::SIGTERM));
    if termed == 0 {
        return;
    }
    eprintln!(
        "coco guard: the worker did not renew its hold on {} in time: ending it \
         ({termed} processes or units)",
        key.text()
    );
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        std::thread::sleep(PASS_GAP.max(Duration::from_millis(50)));
        if sweep::signal_carrying(&all, 0) == 0
            && cgroup_dir.is_none_or(|dir| cgroup::signal_units(dir, &prefix, 0) == 0)
        {
            return;
        }
    }
    for _ in 0..MAX_PASSES {
        let killed = sweep::signal_carrying(&all, libc::SIGKILL)
            + cgroup_dir.map_or(0, |dir| cgroup::signal_units(dir, &prefix, libc::SIGKILL));
        if killed == 0 {
            break;
        }
        std::thread::sleep(PASS_GAP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_orders_round_trip_and_anything_else_is_ignored() {
        let orders = [
            FenceOrder::Fence {
                key: FenceKey::Runs,
                within: Duration::from_millis(14_000),
                grace: Duration::from_secs(5),
            },
            FenceOrder::Fence {
                key: FenceKey::App("shop.web".into()),
                within: Duration::ZERO,
                grace: Duration::from_millis(100),
            },
            FenceOrder::Clear(FenceKey::Runs),
        ];
        for order in orders {
            assert_eq!(FenceOrder::parse(&order.line()), Some(order));
        }
        for junk in [
            "",
            "fence runs",
            "fence runs 1",
            "fence runs x 1",
            "fence app=web 1 1",
            "fence jobs 1 1",
            "clear runs extra",
            "kill runs",
        ] {
            assert_eq!(FenceOrder::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_key_names_the_processes_and_units_it_covers() {
        assert_eq!(FenceKey::Runs.needles(), ["COCO_RUN_ID="]);
        assert_eq!(
            FenceKey::App("shop.web".into()).needles(),
            ["COCO_PROJECT=shop", "COCO_APP=web"]
        );
        assert_eq!(
            FenceKey::App("shop.web".into()).unit_prefix(),
            "app-shop.web-"
        );
    }
}
