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
//! A child is born in its unit (`clone3` with `CLONE_INTO_CGROUP`, or, where that is refused,
//! it writes `0` to the unit's `cgroup.procs` before its exec: [`super::vfork`]), so
//! everything it ever starts is born inside and can leave only by writing its pid to another
//! cgroup's `cgroup.procs` (what the worker's user may write: root, or the owner of a
//! delegated subtree; the `COCO_GUARD` sweep is the backstop then). Moving it after
//! `posix_spawn` instead would leave a hole: a job forks (and its child detaches) before the
//! parent gets to the move. Killing a unit or a worker folder
//! writes `1` to `cgroup.kill`: SIGKILL to every
//! process of the subtree at once, however it detached (`setsid`, double fork, cleared
//! environment). A unit is removed when it is empty; the process guard kills and removes the
//! worker's folder when the worker is gone.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Prefix of a worker's folder.
const WORKER_PREFIX: &str = "coco-";

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
}

impl WorkerGroup {
    /// Make `coco-<marker>` under coco's own cgroup, and check that it can be killed.
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
        Ok(WorkerGroup { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Make the unit `name` (made safe for a file name) inside (and the folder again, should
    /// a sweep have taken it for a dead worker's).
    pub fn unit(&self, name: &str) -> io::Result<Unit> {
        let dir = self.dir.join(unit_name(name));
        match std::fs::create_dir(&dir) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)?;
                std::fs::create_dir(&dir)?;
            }
            other => other?,
        }
        Ok(Unit {
            dir,
            removed: AtomicBool::new(false),
        })
    }
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
    dir: PathBuf,
    /// Removed by [`Unit::remove_if_empty`]: nothing to read or remove any more.
    removed: AtomicBool,
}

impl Unit {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Send `signal` to every process in the unit (SIGKILL through `cgroup.kill`) but those
    /// of process group `signalled_group`, which the caller signalled already (a second
    /// SIGTERM means "quit now" to some programs).
    pub fn signal(&self, signal: i32, signalled_group: Option<u32>) -> io::Result<()> {
        if signal == libc::SIGKILL {
            return kill(&self.dir);
        }
        for pid in members(&self.dir) {
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
        !self.removed.load(Ordering::Relaxed) && populated(&self.dir)
    }

    /// Remove the (empty) unit; a failure is logged.
    pub fn remove(&self) {
        match remove_tree(&self.dir) {
            Ok(()) => self.removed.store(true, Ordering::Relaxed),
            Err(error) => {
                tracing::debug!(cgroup = %self.dir.display(), "cannot remove the run's cgroup: {error}");
            }
        }
    }

    /// Remove the unit if no live process is left in it (the kernel refuses to remove one
    /// that holds any: that is the check; a unit with cgroups made inside is looked at
    /// closer); whether it is gone.
    pub fn remove_if_empty(&self) -> bool {
        if self.removed.load(Ordering::Relaxed) {
            return true;
        }
        match std::fs::remove_dir(&self.dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                if populated(&self.dir) {
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
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|events| events.lines().any(|line| line == "populated 1"))
        .unwrap_or(false)
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

/// Kill and remove every unit named `run-<run_id>-…` of every coco worker folder under this
/// process's cgroup (a lost worker's run on this host), and the folders left empty by
/// workers that are gone; returns how many units held processes.
pub fn kill_run_units(run_id: &str) -> usize {
    let Ok(base) = own_base() else {
        return 0;
    };
    let prefix = format!("{}-", run_unit_prefix(run_id));
    let mut killed = 0;
    for worker in subgroups(&base) {
        let is_worker = worker
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(WORKER_PREFIX));
        if !is_worker {
            continue;
        }
        for unit in subgroups(&worker) {
            let matches = unit
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&prefix));
            if matches && populated(&unit) {
                killed += 1;
            }
            if matches {
                kill_and_remove(&unit);
            }
        }
        if subgroups(&worker).is_empty() && !worker_alive(&worker) {
            let _ = std::fs::remove_dir(&worker);
        }
    }
    killed
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
    fn unit_names_are_file_names() {
        assert_eq!(unit_name("shop.web/../x y"), "shop.web_.._x_y");
        assert_eq!(run_unit_prefix("01ABC"), "run-01ABC");
    }
}
