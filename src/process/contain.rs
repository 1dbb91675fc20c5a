//! Containment: how a worker holds the whole process tree of each run (and app process), so
//! that a kill, a timeout and a lost worker reach every descendant however it detached
//! (`setsid`, double fork, a cleared environment, SIGTERM ignored).
//!
//! Chosen once per worker ([`Containment::choose`], `worker.containment` in local.yaml):
//!
//! - [`Containment::Cgroup`]: a cgroup v2 per run under the worker's own folder
//!   ([`super::cgroup`]; its folder reused for a later run once empty); signals go to every member, SIGKILL through `cgroup.kill`. The
//!   process guard kills the worker's folder when the worker is gone; a worker taking a run
//!   back kills its cgroup on this host ([`super::sweep`]).
//! - [`Containment::Subreaper`]: each child runs under a `coco __contain` child subreaper
//!   ([`super::reaper`]) that holds every descendant, forwards signals to them and SIGKILLs
//!   them on request or when the worker is gone.
//!
//! `auto` (the default) takes the cgroup where this host lets coco make one, else the
//! subreaper; `cgroup` refuses to start without cgroups; `subreaper` never tries them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::cgroup::{CgroupError, WorkerGroup};

/// `worker.containment` in local.yaml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A cgroup per run where the host allows it, else the subreaper.
    #[default]
    Auto,
    /// A cgroup per run, or the worker does not start.
    Cgroup,
    /// A subreaper per run, even where cgroups would work.
    Subreaper,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Cgroup => "cgroup",
            Mode::Subreaper => "subreaper",
        }
    }
}

/// How one worker holds its children's trees (cheap to clone).
#[derive(Debug, Clone)]
pub enum Containment {
    /// A cgroup per child inside this worker's folder.
    Cgroup(Arc<WorkerGroup>),
    /// Each child under `<exe> __contain` (exe: the coco binary).
    Subreaper(Arc<PathBuf>),
}

/// Why the containment asked for cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ContainError {
    #[error("worker.containment is `cgroup`, but {0}")]
    NoCgroup(#[source] CgroupError),
}

/// Numbers the units of one process, so two children of one run or app never share a name.
static UNITS: AtomicU64 = AtomicU64::new(0);

impl Containment {
    /// Choose as `mode` says for the worker marked `marker` (its guard's marker); `exe` runs
    /// the subreaper.
    pub fn choose(mode: Mode, marker: &str, exe: &Path) -> Result<Containment, ContainError> {
        let subreaper = || Containment::Subreaper(Arc::new(exe.to_path_buf()));
        match mode {
            Mode::Subreaper => Ok(subreaper()),
            Mode::Cgroup => WorkerGroup::create(marker)
                .map(|group| Containment::Cgroup(Arc::new(group.reusing_folders())))
                .map_err(ContainError::NoCgroup),
            Mode::Auto => match WorkerGroup::create(marker) {
                Ok(group) => Ok(Containment::Cgroup(Arc::new(group.reusing_folders()))),
                Err(why) => {
                    tracing::info!("runs are contained by a subreaper: no cgroup ({why})");
                    Ok(subreaper())
                }
            },
        }
    }

    /// `cgroup` or `subreaper`.
    pub fn name(&self) -> &'static str {
        match self {
            Containment::Cgroup(_) => "cgroup",
            Containment::Subreaper(_) => "subreaper",
        }
    }

    /// The worker's cgroup folder, for the guard to kill when the worker is gone.
    pub fn cgroup_dir(&self) -> Option<&Path> {
        match self {
            Containment::Cgroup(group) => Some(group.dir()),
            Containment::Subreaper(_) => None,
        }
    }

    /// Hold a child named `unit` (e.g. `run-<id>`, `app-<project.app>`) this way.
    pub fn unit(&self, unit: &str) -> Contained {
        Contained {
            containment: self.clone(),
            unit: format!("{unit}-{}", UNITS.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

/// One child's containment: how, and under which unit name.
#[derive(Debug, Clone)]
pub struct Contained {
    pub containment: Containment,
    pub unit: String,
}

impl PartialEq for Contained {
    fn eq(&self, other: &Contained) -> bool {
        self.unit == other.unit && self.containment.name() == other.containment.name()
    }
}

impl Eq for Contained {}
