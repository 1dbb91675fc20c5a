//! cgroup v2 for containment: a folder per worker under coco's own cgroup, a folder per run
//! (or app process) inside it, killed as one with `cgroup.kill`.
//!
//! Layout: `<cgroup2 mount><coco's cgroup>/coco-<marker>/<unit>` — for a worker started from
//! a shell on a host whose cgroup2 tree is mounted at `/sys/fs/cgroup` (or, on a hybrid host,
//! `/sys/fs/cgroup/unified`) and sits at `/`, `/sys/fs/cgroup/coco-<marker>/run-<id>-<n>`;
//! under systemd it needs a delegated subtree (`Delegate=yes`), else the folder cannot be made
//! and the worker falls back to the subreaper ([`super::contain`]). No controller is enabled:
//! the cgroups only hold processes.
//!
//! A worker reuses its units' folders ([`WorkerGroup::reusing_folders`]): making and removing
//! a cgroup (a dozen kernfs files, a fresh css_set) cost about a tenth of a trivial run's
//! worker CPU, and cgroup v2 cannot rename one. So each folder carries a label, the extended
//! attribute `user.coco.unit`: the name of the unit it holds (`run-<id>-<n>`), empty while
//! idle. A folder is made, named and labelled for a unit; once that unit is empty its label is
//! cleared and the folder waits (at most 64 per worker) for the next unit, which relabels it —
//! its name stays its first unit's, the label is what counts. Where cgroupfs takes no `user.*`
//! attribute (before Linux 5.7: probed once per worker), a unit's folder is removed once
//! empty, as one made by [`WorkerGroup::create`] alone. The sweep of a run
//! ([`kill_run_units`]) finds its units by label, or by name where a folder has no label.
//!
//! A child is born in its unit (`clone3` with `CLONE_INTO_CGROUP`, or, where that is refused,
//! it writes `0` to the unit's `cgroup.procs` before its exec: [`super::vfork`]), so
//! everything it ever starts is born inside and can leave only by writing its pid to another
//! cgroup's `cgroup.procs` (what the worker's user may write: root, or the owner of a
//! delegated subtree; the `COCO_GUARD` sweep is the backstop then). Moving it after
//! `posix_spawn` instead would leave a hole: a job forks (and its child detaches) before the
//! parent gets to the move. Killing a unit or a worker folder
//! writes `1` to `cgroup.kill`: SIGKILL to every
//! process of the subtree at once, however it detached (`setsid`, double fork, cleared
//! environment). A unit is released (idle, or removed) when it is empty; idle folders go when
//! their [`WorkerGroup`] does, and the process guard kills and removes the worker's folder,
//! every unit folder in it, when the worker is gone.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prefix of a worker's folder.
const WORKER_PREFIX: &str = "coco-";

/// The extended attribute that names the unit a pooled folder holds (empty: idle).
const LABEL: &std::ffi::CStr = c"user.coco.unit";

/// At most this many idle folders are kept per worker (more are removed).
const IDLE_CAP: usize = 64;

/// How long [`kill_and_remove`] waits for a killed subtree to empty.
const KILL_SETTLE: Duration = Duration::from_secs(2);

/// Why cgroups cannot contain this worker's runs (the reason the fallback is taken).
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup v2 hierarchy is mounted (see /proc/self/mountinfo)")]
    NotMounted,
    #[error("this process's cgroup v2 path is unknown (no `0::` line in /proc/self/cgroup)")]
    NoOwnCgroup,
    #[error("this process's cgroup {path} is outside every mounted cgroup v2 tree")]
    OutsideMount { path: String },
    #[error("cannot create the cgroup {}: {source}", dir.display())]
    Create { dir: PathBuf, source: io::Error },
    #[error("the kernel has no cgroup.kill (Linux 5.14 or newer is needed) in {}", dir.display())]
    NoKill { dir: PathBuf },
}

/// The folder of coco's own cgroup in the cgroup v2 tree.
pub fn own_base() -> Result<PathBuf, CgroupError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let path = unified_path(&own).ok_or(CgroupError::NoOwnCgroup)?;
    base_dir(&mountinfo, path)
}

/// The folder of the cgroup `path` (as `/proc/self/cgroup` says it) under the cgroup2 mount
/// of `mountinfo` whose root holds it (pure).
fn base_dir(mountinfo: &str, path: &str) -> Result<PathBuf, CgroupError> {
    let mut mounted = false;
    for (root, mount_point) in cgroup2_mounts(mountinfo) {
        mounted = true;
        let inside = if root == "/" {
            Some(path)
        } else {
            path.strip_prefix(root)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if let Some(inside) = inside {
            return Ok(Path::new(mount_point).join(inside.trim_start_matches('/')));
        }
    }
    Err(if mounted {
        CgroupError::OutsideMount {
            path: path.to_string(),
        }
    } else {
        CgroupError::NotMounted
    })
}

/// The (root, mount point) of every cgroup2 mount in a `/proc/self/mountinfo` text (pure).
fn cgroup2_mounts(mountinfo: &str) -> impl Iterator<Item = (&str, &str)> {
    mountinfo.lines().filter_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mut fields = left.split_whitespace().skip(3);
        let (root, mount_point) = (fields.next()?, fields.next()?);
        (fstype == "cgroup2").then_some((root, mount_point))
    })
}

/// The cgroup v2 path (`0::PATH`) in a `/proc/self/cgroup` text (pure).
fn unified_path(cgroup: &str) -> Option<&str> {
    cgroup.lines().find_map(|line| line.strip_prefix("0::"))
}

/// A worker's cgroup folder: its units are made inside.
#[derive(Debug)]
pub struct WorkerGroup {
    dir: PathBuf,
    /// The idle folders to reuse, where this host labels cgroups (`None`: a folder per unit,
    /// named by it, removed at its end).
    pool: Option<Arc<Pool>>,
}

/// A reused unit folder, and its descriptor (open once: a spawn needs it for
/// `CLONE_INTO_CGROUP`, and a label or `cgroup.events` reached through it costs no walk of
/// the folder's path).
#[derive(Debug)]
struct Folder {
    dir: PathBuf,
    fd: Option<Arc<OwnedFd>>,
}

impl Folder {
    /// Label the folder with `name` (`""`: idle), through its descriptor if it is open, else
    /// by its path.
    fn set_label(&self, name: &str) -> io::Result<()> {
        let (value, len) = (name.as_ptr().cast(), name.len());
        let done = match &self.fd {
            // SAFETY: fsetxattr(2) of an open descriptor, a C string name, `len` bytes at
            // `value`.
            Some(fd) => unsafe { libc::fsetxattr(fd.as_raw_fd(), LABEL.as_ptr(), value, len, 0) },
            None => {
                let path = c_path(&self.dir)?;
                // SAFETY: setxattr(2) of a C string path and name, `len` bytes at `value`.
                unsafe { libc::setxattr(path.as_ptr(), LABEL.as_ptr(), value, len, 0) }
            }
        };
        if done == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Whether the folder is still in the hierarchy (a sweep may have removed it; its open
    /// descriptor would still take a label).
    fn exists(&self) -> bool {
        match &self.fd {
            // SAFETY: faccessat(2) of a C string relative to an open directory descriptor.
            Some(fd) => unsafe {
                libc::faccessat(fd.as_raw_fd(), c"cgroup.events".as_ptr(), libc::F_OK, 0) == 0
            },
            None => self.dir.join("cgroup.events").exists(),
        }
    }

    /// Whether a live process is left in the folder or below it (zombies are not).
    fn populated(&self) -> bool {
        let Some(fd) = &self.fd else {
            return populated(&self.dir);
        };
        // SAFETY: openat(2) of a C string relative to an open directory descriptor; the new
        // descriptor is owned by the `File` at once.
        let events = unsafe {
            libc::openat(
                fd.as_raw_fd(),
                c"cgroup.events".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if events < 0 {
            return false;
        }
        // SAFETY: `events` is a new descriptor nobody else owns.
        let mut file = unsafe { std::fs::File::from_raw_fd(events) };
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).is_ok() && says_populated(&text)
    }
}

/// A worker's idle unit folders (labelled `""`), ready for the next unit.
#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    folders: Vec<Folder>,
    /// The group has ended: a released folder is removed, not kept.
    closed: bool,
}

impl Pool {
    /// An idle folder, if one is left.
    fn take(&self) -> Option<Folder> {
        self.idle.lock().ok()?.folders.pop()
    }

    /// Keep the (empty, unlabelled) `folder` for a later unit; removed if the pool is
    /// full or closed.
    fn give_back(&self, folder: Folder) {
        let surplus = match self.idle.lock() {
            Ok(mut idle) if !idle.closed && idle.folders.len() < IDLE_CAP => {
                idle.folders.push(folder);
                None
            }
            _ => Some(folder),
        };
        if let Some(folder) = surplus {
            let _ = remove_tree(&folder.dir);
        }
    }

    /// Close the pool: its idle folders, returned to be removed.
    fn close(&self) -> Vec<Folder> {
        self.idle.lock().map_or_else(
            |_| Vec::new(),
            |mut idle| {
                idle.closed = true;
                std::mem::take(&mut idle.folders)
            },
        )
    }
}

impl WorkerGroup {
    /// Make `coco-<marker>` under coco's own cgroup, and check that it can be killed. Each
    /// unit gets a folder of its own, removed at its end ([`WorkerGroup::reusing_folders`]
    /// reuses them).
    pub fn create(marker: &str) -> Result<WorkerGroup, CgroupError> {
        let dir = own_base()?.join(format!("{WORKER_PREFIX}{}", unit_name(marker)));
        if let Err(source) = std::fs::create_dir(&dir)
            && source.kind() != io::ErrorKind::AlreadyExists
        {
            return Err(CgroupError::Create { dir, source });
        }
        if !dir.join("cgroup.kill").exists() {
            let _ = std::fs::remove_dir(&dir);
            return Err(CgroupError::NoKill { dir });
        }
        Ok(WorkerGroup { dir, pool: None })
    }

    /// Reuse the units' folders (labelled with the unit each holds) where this host can
    /// label them (probed once, on the worker's folder); else as before.
    pub fn reusing_folders(mut self) -> WorkerGroup {
        if labels_work(&self.dir) {
            self.pool = Some(Arc::default());
        }
        self
    }

    /// Whether the units' folders are reused ([`WorkerGroup::reusing_folders`]).
    pub fn reuses_folders(&self) -> bool {
        self.pool.is_some()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The unit `name` (made safe for a file name): an idle folder of the pool labelled
    /// `name`, else a new folder named `name` (and the worker folder again, should a sweep
    /// have taken it for a dead worker's), labelled `name` where folders are reused.
    pub fn unit(&self, name: &str) -> io::Result<Unit> {
        let name = unit_name(name);
        if let Some(pool) = &self.pool {
            // An idle folder a sweep removed meanwhile is out of the hierarchy (its descriptor
            // would still take a label): it is dropped.
            while let Some(folder) = pool.take() {
                if folder.set_label(&name).is_ok() && folder.exists() {
                    return Ok(Unit::new(folder, Some(pool)));
                }
                let _ = remove_tree(&folder.dir);
            }
        }
        let dir = self.dir.join(&name);
        match std::fs::create_dir(&dir) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)?;
                std::fs::create_dir(&dir)?;
            }
            other => other?,
        }
        // Unlabelled, the folder is this unit's alone (and removed at its end).
        let pool = self
            .pool
            .as_ref()
            .filter(|_| set_label(&dir, &name).is_ok());
        let fd = pool.and_then(|_| {
            std::fs::File::open(&dir)
                .ok()
                .map(|file| Arc::new(file.into()))
        });
        Ok(Unit::new(Folder { dir, fd }, pool))
    }
}

impl Drop for WorkerGroup {
    /// Remove the idle folders (a unit released later removes its own).
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            for folder in pool.close() {
                let _ = remove_tree(&folder.dir);
            }
        }
    }
}

/// Whether the folder `dir` takes a `user.*` extended attribute (cgroupfs: Linux 5.7).
fn labels_work(dir: &Path) -> bool {
    let works = set_label(dir, "").is_ok();
    if works && let Ok(path) = c_path(dir) {
        // SAFETY: removexattr(2) of a C string path and a C string name.
        unsafe { libc::removexattr(path.as_ptr(), LABEL.as_ptr()) };
    }
    works
}

/// Label the folder `dir` with `name` (`""`: idle), by its path.
fn set_label(dir: &Path, name: &str) -> io::Result<()> {
    Folder {
        dir: dir.to_path_buf(),
        fd: None,
    }
    .set_label(name)
}

/// The label of the folder `dir` (`None`: it has none, or it cannot be read).
fn label(dir: &Path) -> Option<String> {
    let path = c_path(dir).ok()?;
    let mut buf = [0u8; 256];
    // SAFETY: getxattr(2) of a C string path and name into `buf` of `buf.len()` bytes.
    let len = unsafe {
        libc::getxattr(
            path.as_ptr(),
            LABEL.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let len = usize::try_from(len).ok()?;
    Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

fn c_path(dir: &Path) -> io::Result<CString> {
    CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a cgroup path"))
}

/// `name` with every character but ASCII letters, digits, `.`, `_` and `-` as `_` (pure).
fn unit_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The cgroup of one run or app process.
#[derive(Debug)]
pub struct Unit {
    /// The folder, with its descriptor where it is kept open (a reused folder).
    folder: Folder,
    /// Removed (or back in its pool) by [`Unit::remove_if_empty`]: nothing to read or remove
    /// any more.
    removed: AtomicBool,
    /// [`Unit::populated`] found it empty: nothing can enter it again (its processes are
    /// all gone, and only a spawn into it, which is over, puts new ones there), so a release
    /// need not read `cgroup.events` again.
    emptied: AtomicBool,
    /// The pool a labelled folder goes back to once empty.
    pool: Option<Arc<Pool>>,
}

impl Unit {
    fn new(folder: Folder, pool: Option<&Arc<Pool>>) -> Unit {
        Unit {
            folder,
            removed: AtomicBool::new(false),
            emptied: AtomicBool::new(false),
            pool: pool.cloned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.folder.dir
    }

    /// The folder's descriptor, if it is kept open (for [`super::vfork::spawn_in`]).
    pub fn folder(&self) -> Option<BorrowedFd<'_>> {
        self.folder.fd.as_deref().map(AsFd::as_fd)
    }

    /// Send `signal` to every process in the unit (SIGKILL through `cgroup.kill`) but those
    /// of process group `signalled_group`, which the caller signalled already (a second
    /// SIGTERM means "quit now" to some programs).
    pub fn signal(&self, signal: i32, signalled_group: Option<u32>) -> io::Result<()> {
        if self.removed.load(Ordering::Relaxed) {
            return Ok(());
        }
        if signal == libc::SIGKILL {
            return kill(&self.folder.dir);
        }
        for pid in members(&self.folder.dir) {
            let Ok(raw) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: getpgid(2) only reads the process group of a pid listed just now.
            let group = unsafe { libc::getpgid(raw) };
            if signalled_group.is_some_and(|pgid| i64::from(group) == i64::from(pgid)) {
                continue;
            }
            // SAFETY: kill(2) on a pid listed in our own run's cgroup just now.
            unsafe { libc::kill(raw, signal) };
        }
        Ok(())
    }

    /// Whether a live process is left in the unit (zombies are not).
    pub fn populated(&self) -> bool {
        let populated = !self.removed.load(Ordering::Relaxed) && self.folder.populated();
        if !populated {
            self.emptied.store(true, Ordering::Relaxed);
        }
        populated
    }

    /// Remove the (empty) unit, never to be reused; a failure is logged.
    pub fn remove(&self) {
        if self.removed.load(Ordering::Relaxed) {
            return;
        }
        match remove_tree(&self.folder.dir) {
            Ok(()) => self.removed.store(true, Ordering::Relaxed),
            Err(error) => {
                tracing::debug!(cgroup = %self.folder.dir.display(), "cannot remove the run's cgroup: {error}");
            }
        }
    }

    /// Release the unit if no live process is left in it: a pooled folder, unlabelled, goes
    /// back to its pool (one a sweep removed meanwhile is just gone); another is removed (the
    /// kernel refuses to remove one that holds any: that is the check; a unit with cgroups
    /// made inside is looked at closer). Whether it is released.
    pub fn remove_if_empty(&self) -> bool {
        if self.removed.load(Ordering::Relaxed) {
            return true;
        }
        if let Some(pool) = &self.pool {
            if !self.emptied.load(Ordering::Relaxed) && self.folder.populated() {
                return false;
            }
            self.removed.store(true, Ordering::Relaxed);
            match self.folder.set_label("") {
                Ok(()) => pool.give_back(Folder {
                    dir: self.folder.dir.clone(),
                    fd: self.folder.fd.clone(),
                }),
                Err(_) => {
                    let _ = remove_tree(&self.folder.dir);
                }
            }
            return true;
        }
        match std::fs::remove_dir(&self.folder.dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                if populated(&self.folder.dir) {
                    return false;
                }
                self.remove();
            }
            _ => self.removed.store(true, Ordering::Relaxed),
        }
        self.removed.load(Ordering::Relaxed)
    }
}

/// The pids of every process in `dir` and the cgroups below it.
fn members(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    for sub in subgroups(dir) {
        pids.extend(members(&sub));
    }
    pids
}

fn subgroups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default()
}

fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|events| says_populated(&events))
}

/// Whether the text of a `cgroup.events` says a live process is in the cgroup (pure).
fn says_populated(events: &str) -> bool {
    events.lines().any(|line| line == "populated 1")
}

fn kill(dir: &Path) -> io::Result<()> {
    match std::fs::write(dir.join("cgroup.kill"), "1") {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Remove `dir` and the cgroups below it, deepest first (each must be empty).
fn remove_tree(dir: &Path) -> io::Result<()> {
    for sub in subgroups(dir) {
        remove_tree(&sub)?;
    }
    match std::fs::remove_dir(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// SIGKILL everything in the cgroup `dir` and below, wait (briefly) for it to empty, remove
/// it; whether it is gone.
pub fn kill_and_remove(dir: &Path) -> bool {
    if kill(dir).is_err() {
        return false;
    }
    let deadline = Instant::now() + KILL_SETTLE;
    while populated(dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    remove_tree(dir).is_ok()
}

/// Kill and remove every unit of run `run_id` (named or labelled `run-<run_id>-…`) of every
/// coco worker folder under this process's cgroup (a lost worker's run on this host), and the
/// folders left empty (or idle) by workers that are gone; returns how many units held
/// processes.
pub fn kill_run_units(run_id: &str) -> usize {
    let Ok(base) = own_base() else {
        return 0;
    };
    let prefix = format!("{}-", run_unit_prefix(run_id));
    let mut killed = 0;
    for worker in subgroups(&base) {
        let is_worker = file_name(&worker).is_some_and(|name| name.starts_with(WORKER_PREFIX));
        if !is_worker {
            continue;
        }
        let alive = worker_alive(&worker);
        for unit in subgroups(&worker) {
            let name = file_name(&unit).unwrap_or_default();
            let label = label(&unit);
            if unit_of_run(name, label.as_deref(), &prefix) {
                if populated(&unit) {
                    killed += 1;
                }
                kill_and_remove(&unit);
            } else if !alive && label.as_deref() == Some("") {
                let _ = std::fs::remove_dir(&unit);
            }
        }
        if !alive && subgroups(&worker).is_empty() {
            let _ = std::fs::remove_dir(&worker);
        }
    }
    killed
}

/// Send `signal` to every process in the units of the worker folder `worker` whose label
/// (or, without one, name) starts with `prefix` (`run-`, `app-<id>`): SIGKILL through
/// `cgroup.kill`, another signal to each member. The folders stay (the worker reuses or
/// removes them); returns how many units held processes.
pub fn signal_units(worker: &Path, prefix: &str, signal: i32) -> usize {
    let mut signalled = 0;
    for unit in subgroups(worker) {
        let name = file_name(&unit).unwrap_or_default();
        if !unit_of_run(name, label(&unit).as_deref(), prefix) || !populated(&unit) {
            continue;
        }
        signalled += 1;
        if signal == libc::SIGKILL {
            let _ = kill(&unit);
            continue;
        }
        for pid in members(&unit) {
            if let Ok(raw) = libc::pid_t::try_from(pid) {
                // SAFETY: kill(2) on a pid listed in this worker's own cgroup just now.
                unsafe { libc::kill(raw, signal) };
            }
        }
    }
    signalled
}

fn file_name(dir: &Path) -> Option<&str> {
    dir.file_name().and_then(|name| name.to_str())
}

/// Whether the unit folder `name`, labelled `label`, holds a unit whose name starts with
/// `prefix` (`run-<id>-`): its label says so where it has one (a reused folder keeps the name
/// of its first unit), else its name (a folder per unit: hosts without labels, older coco)
/// (pure).
fn unit_of_run(name: &str, label: Option<&str>, prefix: &str) -> bool {
    label.unwrap_or(name).starts_with(prefix)
}

/// Whether the worker of folder `coco-<pid>-<nanos>` is still a process of this host.
fn worker_alive(folder: &Path) -> bool {
    let pid = folder
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix(WORKER_PREFIX))
        .and_then(|marker| marker.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    pid.is_none_or(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// The start of the unit names of app `id` with the spawn's `-` (`app-<id>-`).
pub fn app_unit_prefix(id: &str) -> String {
    format!("{}-", unit_name(&format!("app-{id}")))
}

/// The start of the unit names of run `run_id` (`run-<id>`; the spawn adds `-<n>`).
pub fn run_unit_prefix(run_id: &str) -> String {
    format!("run-{}", unit_name(run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_on_pure_and_hybrid_hosts() {
        let pure = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            base_dir(pure, "/system.slice/coco.service").unwrap(),
            PathBuf::from("/sys/fs/cgroup/system.slice/coco.service")
        );
        let hybrid = "25 24 0:22 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
                      26 24 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            base_dir(hybrid, "/").unwrap(),
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        assert!(matches!(
            base_dir("26 24 0:23 / /sys rw - sysfs sysfs rw\n", "/"),
            Err(CgroupError::NotMounted)
        ));
    }

    #[test]
    fn a_mount_of_a_subtree_is_joined_below_its_root() {
        let bound = "40 30 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(
            base_dir(bound, "/docker/abc/inner").unwrap(),
            PathBuf::from("/sys/fs/cgroup/inner")
        );
        assert_eq!(
            base_dir(bound, "/docker/abc").unwrap(),
            PathBuf::from("/sys/fs/cgroup")
        );
        assert!(matches!(
            base_dir(bound, "/docker/abcd"),
            Err(CgroupError::OutsideMount { .. })
        ));
    }

    #[test]
    fn the_unified_path_is_the_zero_line() {
        assert_eq!(
            unified_path("4:memory:/x\n0::/system.slice/coco.service\n"),
            Some("/system.slice/coco.service")
        );
        assert_eq!(unified_path("1:cpu:/\n"), None);
    }

    #[test]
    fn a_folders_label_says_whose_it_is_else_its_name() {
        let prefix = "run-01ABC-";
        assert!(unit_of_run("run-01ABC-3", None, prefix));
        assert!(unit_of_run("run-01XYZ-1", Some("run-01ABC-7"), prefix));
        assert!(!unit_of_run("run-01ABC-3", Some("run-01XYZ-8"), prefix));
        assert!(!unit_of_run("run-01ABC-3", Some(""), prefix), "idle");
        assert!(!unit_of_run("app-shop.web-2", None, prefix));
        assert!(!unit_of_run("run-01ABCD-2", None, prefix));
    }

    /// A worker folder of this test's own that reuses its units' folders, or `None` where
    /// this host makes no cgroup for coco or labels none: then there is nothing to test.
    fn reusing_group(name: &str) -> Option<WorkerGroup> {
        let marker = format!("cgroup-test-{}-{name}", std::process::id());
        let group = WorkerGroup::create(&marker).ok()?.reusing_folders();
        if group.reuses_folders() {
            Some(group)
        } else {
            let _ = std::fs::remove_dir(group.dir());
            None
        }
    }

    fn end(group: WorkerGroup) {
        let dir = group.dir().to_path_buf();
        drop(group);
        assert!(
            subgroups(&dir).is_empty(),
            "idle folders go with their group"
        );
        std::fs::remove_dir(dir).unwrap();
    }

    #[test]
    fn an_empty_units_folder_is_relabelled_for_the_next_unit() {
        let Some(group) = reusing_group("reuse") else {
            return;
        };
        let first = group.unit("run-A-1").unwrap();
        assert!(first.dir().ends_with("run-A-1"));
        assert_eq!(label(first.dir()).as_deref(), Some("run-A-1"));
        assert!(first.remove_if_empty());
        assert_eq!(label(first.dir()).as_deref(), Some(""), "idle");
        assert!(!first.populated());
        let second = group.unit("run-B/2").unwrap();
        assert_eq!(second.dir(), first.dir(), "the folder is reused");
        assert_eq!(label(second.dir()).as_deref(), Some("run-B_2"));
        // Forced removal does not give the folder back: the next unit gets a new one.
        second.remove();
        assert!(!second.dir().exists());
        let third = group.unit("run-C-3").unwrap();
        assert!(third.dir().ends_with("run-C-3"));
        // An idle folder removed from under the pool is dropped, not handed out.
        assert!(third.remove_if_empty());
        std::fs::remove_dir(third.dir()).unwrap();
        let fourth = group.unit("run-D-4").unwrap();
        assert!(fourth.dir().ends_with("run-D-4"));
        assert!(fourth.remove_if_empty());
        end(group);
    }

    #[tokio::test]
    async fn a_sweep_finds_a_reused_folder_by_its_label() {
        let Some(group) = reusing_group("sweep") else {
            return;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let (old, new) = (format!("OLD{nanos}"), format!("NEW{nanos}"));
        let first = group.unit(&format!("{}-1", run_unit_prefix(&old))).unwrap();
        assert!(first.remove_if_empty());
        let unit = group.unit(&format!("{}-2", run_unit_prefix(&new))).unwrap();
        assert_eq!(unit.dir(), first.dir(), "the folder is reused");
        let plan = super::super::vfork::Plan::new(
            Path::new("/bin/sleep"),
            ["sleep", "30"].map(std::ffi::OsStr::new),
            &std::collections::BTreeMap::new(),
            Path::new("/"),
            unit.dir(),
            false,
        )
        .unwrap();
        let started = super::super::vfork::spawn_in(&plan, unit.folder()).unwrap();
        let mut born = super::super::vfork::Born::new(started.pid, started.pidfd).unwrap();
        assert!(unit.populated());
        assert_eq!(
            kill_run_units(&old),
            0,
            "the folder's name is not its unit's"
        );
        assert!(unit.populated());
        assert_eq!(kill_run_units(&new), 1);
        let status = tokio::time::timeout(Duration::from_secs(5), born.wait())
            .await
            .expect("the sweep killed the unit's process")
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert!(!unit.dir().exists(), "the swept folder is removed");
        // Its owner finds it gone: released, and not handed out again.
        assert!(unit.remove_if_empty());
        let next = group.unit("run-N-3").unwrap();
        assert!(next.dir().ends_with("run-N-3"));
        assert!(next.remove_if_empty());
        end(group);
    }

    #[test]
    fn unit_names_are_file_names() {
        assert_eq!(unit_name("shop.web/../x y"), "shop.web_.._x_y");
        assert_eq!(run_unit_prefix("01ABC"), "run-01ABC");
    }
}
