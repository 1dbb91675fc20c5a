//! One convergence pass: read the home (or only the project folders whose manifests were
//! saved), diff it against the store and apply — the code path of `coco plan`/`coco apply` —
//! and describe what changed in one line.
//!
//! An invalid project is left as it is in the store (the diff keeps the stored state of
//! every folder with problems), so a typo never stops, unschedules or restarts anything; its
//! problems come back in [`Pass::problems`] for the log. Two folders naming one project:
//! the folder whose manifest is applied keeps the name (on a save and at start-up alike),
//! and the other one's manifest is the problem.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::error::ConvergeError;
use crate::manifest::Project;
use crate::manifest::discover::{has_manifest, load_projects_keeping, name_taken, project_dirs};
use crate::manifest::parse::load_project;
use crate::reconcile::{self, Change, Kind, Plan, Stored};
use crate::store::Catalog;
use crate::yaml::Diagnostic;

/// What one pass found and did.
#[derive(Debug)]
pub struct Pass {
    /// The plan that was applied (possibly without changes).
    pub plan: Plan,
    /// Problems of the invalid projects, whose stored state was kept.
    pub problems: Vec<Diagnostic>,
}

impl Pass {
    pub fn changed(&self) -> bool {
        self.plan.has_changes()
    }
}

/// Converges the store on a home, remembering per folder what the last pass saw, so that a
/// saved manifest is read, diffed and applied on its own ([`Converger::folders`]) — the
/// time of a save does not grow with the number of projects in the home.
#[derive(Debug)]
pub struct Converger {
    home: PathBuf,
    /// Folder (absolute) → the name of the valid project it held at the last pass.
    names: BTreeMap<PathBuf, String>,
    /// Folder (absolute) → its problems at the last pass.
    problems: BTreeMap<PathBuf, Vec<Diagnostic>>,
}

impl Converger {
    pub fn new(home: &Path) -> Converger {
        Converger {
            home: home.to_path_buf(),
            names: BTreeMap::new(),
            problems: BTreeMap::new(),
        }
    }

    /// Converge on another home from now on (the next pass should be [`Converger::everything`]).
    pub fn set_home(&mut self, home: &Path) {
        *self = Converger::new(home);
    }

    /// Read every project of the home and converge.
    pub async fn everything(
        &mut self,
        store: &dyn Catalog,
        now: DateTime<Utc>,
    ) -> Result<Pass, ConvergeError> {
        let stored = reconcile::load_stored(store).await?;
        let dirs = project_dirs(&self.home)?;
        // Two folders naming one project: the one whose manifest is applied keeps it.
        let discovery = load_projects_keeping(&dirs, &holders(&stored, &dirs));
        let invalid = discovery.invalid.keys().cloned().collect();
        let plan = reconcile::diff(&discovery.projects, &stored, &invalid, now);
        if plan.has_changes() {
            reconcile::apply(store, &plan, &stored, now).await?;
        }
        self.names = discovery
            .projects
            .values()
            .map(|project| (absolute(&project.dir), project.name.clone()))
            .collect();
        self.problems = discovery
            .invalid
            .into_iter()
            .map(|(dir, problems)| (absolute(&dir), problems))
            .collect();
        Ok(Pass {
            plan,
            problems: self.all_problems(),
        })
    }

    /// Converge after the manifests of `dirs` (project folders of the home) changed: only
    /// they are read and only their stored state is loaded. A project named like another
    /// folder's is a problem of its own folder (the other keeps the name). Falls back to
    /// [`Converger::everything`] when the change must touch another project: a manifest
    /// gone, a project renamed (its old name is deactivated), a folder not seen before.
    pub async fn folders(
        &mut self,
        dirs: &BTreeSet<PathBuf>,
        store: &dyn Catalog,
        now: DateTime<Utc>,
    ) -> Result<Pass, ConvergeError> {
        let mut desired = BTreeMap::new();
        let mut problems = self.problems.clone();
        for dir in dirs {
            let dir = absolute(dir);
            if !has_manifest(&dir) {
                return self.everything(store, now).await;
            }
            match load_project(&dir) {
                Ok(project) => {
                    let taken_by = self
                        .names
                        .iter()
                        .find(|(other, name)| **other != dir && **name == project.name)
                        .map(|(other, _)| other.clone())
                        .or_else(|| desired.get(&project.name).map(|p: &Project| p.dir.clone()));
                    if let Some(first) = taken_by {
                        // Another folder's project keeps its name; this one keeps its stored
                        // state, as with any invalid manifest.
                        problems.insert(dir.clone(), vec![name_taken(&dir, &project.name, &first)]);
                        continue;
                    }
                    let renamed = self.names.get(&dir).is_some_and(|old| *old != project.name);
                    let unseen =
                        !self.names.contains_key(&dir) && !self.problems.contains_key(&dir);
                    if renamed || unseen {
                        // The old name must be deactivated, or a folder never seen: let the
                        // whole home decide.
                        return self.everything(store, now).await;
                    }
                    problems.remove(&dir);
                    desired.insert(project.name.clone(), project);
                }
                Err(found) => {
                    problems.insert(dir, found);
                }
            }
        }
        // Only the desired projects' stored state: nothing else can be planned.
        let mut stored = Stored::default();
        for name in desired.keys() {
            stored.projects.extend(store.get_project(name).await?);
            stored.jobs.extend(store.list_jobs(Some(name)).await?);
            stored.apps.extend(store.list_apps(Some(name)).await?);
        }
        let plan = reconcile::diff(&desired, &stored, &BTreeSet::new(), now);
        if plan.has_changes() {
            reconcile::apply(store, &plan, &stored, now).await?;
        }
        for project in desired.values() {
            self.names
                .insert(absolute(&project.dir), project.name.clone());
        }
        self.problems = problems;
        Ok(Pass {
            plan,
            problems: self.all_problems(),
        })
    }

    /// The project a manifest `file` of the home is about: the name its folder's project
    /// had at the last good pass, else the folder's name.
    pub fn project_of(&self, file: &Path) -> Option<String> {
        let dir = absolute(file.parent()?);
        if let Some(name) = self.names.get(&dir) {
            return Some(name.clone());
        }
        (dir.parent() == Some(absolute(&self.home).as_path()))
            .then(|| dir.file_name())
            .flatten()
            .map(|name| name.to_string_lossy().into_owned())
    }

    fn all_problems(&self) -> Vec<Diagnostic> {
        self.problems.values().flatten().cloned().collect()
    }
}

/// For each active stored project, the folder of `dirs` its applied manifest came from.
fn holders(stored: &Stored, dirs: &[PathBuf]) -> BTreeMap<String, PathBuf> {
    stored
        .projects
        .iter()
        .filter(|project| project.active)
        .filter_map(|project| {
            let source_dir = absolute(Path::new(&project.source).parent()?);
            let dir = dirs.iter().find(|dir| absolute(dir) == source_dir)?;
            Some((project.name.clone(), dir.clone()))
        })
        .collect()
}

fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `+proj.job ~proj.app -proj.old` for every change of `plan` (pure); empty if none.
pub fn summary(plan: &Plan) -> String {
    let mut parts = Vec::new();
    for project in &plan.projects {
        let sign = match project.change {
            Change::Create => Some('+'),
            Change::Update(_) => Some('~'),
            Change::Deactivate => Some('-'),
            Change::Unchanged => None,
        };
        if let Some(sign) = sign {
            parts.push(format!("{sign}project {}", project.name));
        }
        for item in &project.items {
            let sign = match item.change {
                Change::Create => '+',
                Change::Update(_) => '~',
                Change::Deactivate => '-',
                Change::Unchanged => continue,
            };
            let kind = match item.kind {
                Kind::Job => "job",
                Kind::App => "app",
            };
            parts.push(format!("{sign}{kind} {}.{}", project.name, item.name));
        }
    }
    parts.join(", ")
}
