//! The pure diff of desired (manifests) against stored (records) state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::manifest::{Job, Project, content_hash};
use crate::store::{AppRecord, JobRecord, ProjectRecord};

/// How many upcoming fire times a plan shows per scheduled job.
pub const FIRES_SHOWN: usize = 3;

/// The stored state the diff compares against.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub projects: Vec<ProjectRecord>,
    pub jobs: Vec<JobRecord>,
    pub apps: Vec<AppRecord>,
}

/// What happens to one thing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "action", content = "fields")]
pub enum Change {
    /// New, or back after having been removed (`+`).
    Create,
    /// Changed fields, old → new (`~`).
    Update(Vec<FieldChange>),
    /// Removed from its manifest: marked inactive, history kept (`-`).
    Deactivate,
    Unchanged,
}

impl Change {
    pub fn is_change(&self) -> bool {
        !matches!(self, Change::Unchanged)
    }

    /// The Terraform-style sign.
    pub fn sign(&self) -> &'static str {
        match self {
            Change::Create => "+",
            Change::Update(_) => "~",
            Change::Deactivate => "-",
            Change::Unchanged => " ",
        }
    }
}

/// One changed field: dotted path, old and new value as compact JSON (`(none)` if absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Job,
    App,
}

/// The change to one job or app.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemPlan {
    pub kind: Kind,
    pub name: String,
    pub change: Change,
    /// The definition to store (None when deactivating).
    #[serde(skip)]
    pub definition: Option<Value>,
    /// For a job whose schedule takes effect: the next fire instants, in its time zone.
    pub next_fires: Vec<DateTime<chrono_tz::Tz>>,
    /// The job's schedule or time zone takes effect: apply stores the first of
    /// `next_fires` as its next fire (none if unscheduled). For other changes the stored
    /// next/last fire are kept.
    #[serde(skip)]
    pub reschedule: bool,
}

/// Everything that changes for one project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectPlan {
    pub name: String,
    /// The project's own fields (description, version, folder, environment).
    pub change: Change,
    pub items: Vec<ItemPlan>,
    /// The desired project (None when it is being deactivated).
    #[serde(skip)]
    pub desired: Option<Project>,
    /// Its manifest file.
    pub source: PathBuf,
}

impl ProjectPlan {
    /// Does anything about this project change?
    pub fn has_changes(&self) -> bool {
        self.change.is_change() || self.items.iter().any(|i| i.change.is_change())
    }
}

/// What applying the manifests would change, project by project (sorted by name).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub projects: Vec<ProjectPlan>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.projects.iter().any(ProjectPlan::has_changes)
    }

    /// Counts of (created, updated, deactivated) things, projects' own fields included.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        let changes = self
            .projects
            .iter()
            .flat_map(|p| std::iter::once(&p.change).chain(p.items.iter().map(|i| &i.change)));
        for change in changes {
            match change {
                Change::Create => counts.0 += 1,
                Change::Update(_) => counts.1 += 1,
                Change::Deactivate => counts.2 += 1,
                Change::Unchanged => {}
            }
        }
        counts
    }
}

/// The project fields compared at project level (jobs and apps are compared one by one).
fn project_fields(manifest: &Value) -> Value {
    let mut fields = manifest.clone();
    if let Some(object) = fields.as_object_mut() {
        object.remove("jobs");
        object.remove("apps");
        object.remove("name");
    }
    fields
}

/// The plan for `project` alone: every other stored project is kept as it is (as if its
/// manifest were invalid), so applying it touches nothing else (`coco init`, `coco install`).
pub fn diff_one(project: Project, stored: &Stored, now: DateTime<Utc>) -> Plan {
    let others: BTreeSet<PathBuf> = stored
        .projects
        .iter()
        .filter(|record| record.name != project.name)
        .filter_map(|record| Path::new(&record.source).parent().map(Path::to_path_buf))
        .collect();
    let desired = BTreeMap::from([(project.name.clone(), project)]);
    diff(&desired, stored, &others, now)
}

/// Compare `desired` with `stored`. Stored projects whose manifest folder is in
/// `invalid_dirs` (their manifest exists but does not validate) keep their last good state:
/// they are never deactivated because of a typo.
pub fn diff(
    desired: &BTreeMap<String, Project>,
    stored: &Stored,
    invalid_dirs: &BTreeSet<PathBuf>,
    now: DateTime<Utc>,
) -> Plan {
    let stored_projects: BTreeMap<&str, &ProjectRecord> = stored
        .projects
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut jobs_by_project: BTreeMap<&str, BTreeMap<&str, &JobRecord>> = BTreeMap::new();
    for job in &stored.jobs {
        jobs_by_project
            .entry(&job.project)
            .or_default()
            .insert(&job.name, job);
    }
    let mut apps_by_project: BTreeMap<&str, BTreeMap<&str, &AppRecord>> = BTreeMap::new();
    for app in &stored.apps {
        apps_by_project
            .entry(&app.project)
            .or_default()
            .insert(&app.name, app);
    }

    let names: BTreeSet<&str> = desired
        .keys()
        .map(String::as_str)
        .chain(stored_projects.keys().copied())
        .chain(jobs_by_project.keys().copied())
        .chain(apps_by_project.keys().copied())
        .collect();

    let mut plan = Plan::default();
    for name in names {
        let record = stored_projects.get(name).copied();
        let stored_jobs = jobs_by_project.get(name).cloned().unwrap_or_default();
        let stored_apps = apps_by_project.get(name).cloned().unwrap_or_default();
        let project_plan = match desired.get(name) {
            Some(project) => plan_present(project, record, &stored_jobs, &stored_apps, now),
            None => {
                let kept = record.is_some_and(|r| {
                    Path::new(&r.source)
                        .parent()
                        .is_some_and(|dir| invalid_dirs.contains(dir))
                });
                if kept {
                    continue;
                }
                plan_absent(name, record, &stored_jobs, &stored_apps)
            }
        };
        if project_plan.has_changes() {
            plan.projects.push(project_plan);
        }
    }
    plan
}

fn plan_present(
    project: &Project,
    record: Option<&ProjectRecord>,
    stored_jobs: &BTreeMap<&str, &JobRecord>,
    stored_apps: &BTreeMap<&str, &AppRecord>,
    now: DateTime<Utc>,
) -> ProjectPlan {
    let manifest = serde_json::to_value(project).expect("projects serialize");
    let change = match record {
        Some(record) if record.active => {
            let changes = field_changes(
                &project_fields(&record.manifest),
                &project_fields(&manifest),
            );
            if changes.is_empty() {
                Change::Unchanged
            } else {
                Change::Update(changes)
            }
        }
        _ => Change::Create,
    };

    let mut items = Vec::new();
    for (name, job) in &project.jobs {
        let definition = serde_json::to_value(job).expect("jobs serialize");
        let stored = stored_jobs.get(name.as_str()).copied();
        let change = item_change(stored.map(|s| (s.active, &s.definition)), &definition);
        let reschedule = match &change {
            Change::Create => true,
            Change::Update(fields) => fields
                .iter()
                .any(|f| f.field == "schedule" || f.field == "timezone"),
            _ => false,
        };
        items.push(ItemPlan {
            kind: Kind::Job,
            name: name.clone(),
            next_fires: if reschedule {
                upcoming(job, now)
            } else {
                Vec::new()
            },
            change,
            definition: Some(definition),
            reschedule,
        });
    }
    for (name, app) in &project.apps {
        let definition = serde_json::to_value(app).expect("apps serialize");
        let stored = stored_apps.get(name.as_str()).copied();
        items.push(ItemPlan {
            kind: Kind::App,
            name: name.clone(),
            change: item_change(stored.map(|s| (s.active, &s.definition)), &definition),
            definition: Some(definition),
            next_fires: Vec::new(),
            reschedule: false,
        });
    }
    items.extend(deactivations(
        stored_jobs,
        stored_apps,
        |kind, name| match kind {
            Kind::Job => project.jobs.contains_key(name),
            Kind::App => project.apps.contains_key(name),
        },
    ));

    ProjectPlan {
        name: project.name.clone(),
        change,
        items,
        desired: Some(project.clone()),
        source: project.dir.join(crate::manifest::MANIFEST_FILE),
    }
}

fn plan_absent(
    name: &str,
    record: Option<&ProjectRecord>,
    stored_jobs: &BTreeMap<&str, &JobRecord>,
    stored_apps: &BTreeMap<&str, &AppRecord>,
) -> ProjectPlan {
    ProjectPlan {
        name: name.to_owned(),
        change: if record.is_some_and(|r| r.active) {
            Change::Deactivate
        } else {
            Change::Unchanged
        },
        items: deactivations(stored_jobs, stored_apps, |_, _| false).collect(),
        desired: None,
        source: record.map(|r| PathBuf::from(&r.source)).unwrap_or_default(),
    }
}

/// Active stored jobs and apps that `keep` does not want any more.
fn deactivations<'a>(
    stored_jobs: &'a BTreeMap<&str, &JobRecord>,
    stored_apps: &'a BTreeMap<&str, &AppRecord>,
    keep: impl Fn(Kind, &str) -> bool + 'a,
) -> impl Iterator<Item = ItemPlan> + 'a {
    let jobs = stored_jobs
        .values()
        .filter(|j| j.active)
        .map(|j| (Kind::Job, j.name.as_str()));
    let apps = stored_apps
        .values()
        .filter(|a| a.active)
        .map(|a| (Kind::App, a.name.as_str()));
    jobs.chain(apps)
        .filter(move |(kind, name)| !keep(*kind, name))
        .map(|(kind, name)| ItemPlan {
            kind,
            name: name.to_owned(),
            change: Change::Deactivate,
            definition: None,
            next_fires: Vec::new(),
            reschedule: false,
        })
}

fn item_change(stored: Option<(bool, &Value)>, desired: &Value) -> Change {
    match stored {
        Some((true, old)) => {
            let changes = field_changes(old, desired);
            if changes.is_empty() {
                Change::Unchanged
            } else {
                Change::Update(changes)
            }
        }
        _ => Change::Create,
    }
}

/// The next fire instants of a scheduled job, in its time zone.
pub fn upcoming(job: &Job, now: DateTime<Utc>) -> Vec<DateTime<chrono_tz::Tz>> {
    job.parsed_schedule()
        .map(|s| s.next_fires(job.tz(), now, FIRES_SHOWN))
        .unwrap_or_default()
}

/// Field-by-field differences of two JSON documents, objects compared recursively
/// (`env.PORT`), anything else compared whole.
pub fn field_changes(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    collect_changes("", old, new, &mut changes);
    changes
}

fn collect_changes(prefix: &str, old: &Value, new: &Value, out: &mut Vec<FieldChange>) {
    if let (Value::Object(old), Value::Object(new)) = (old, new) {
        let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for key in keys {
            let field = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let missing = Value::Null;
            collect_changes(
                &field,
                old.get(key).unwrap_or(&missing),
                new.get(key).unwrap_or(&missing),
                out,
            );
        }
    } else if old != new {
        out.push(FieldChange {
            field: prefix.to_owned(),
            old: show(old),
            new: show(new),
        });
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

/// The hash stored with a definition.
pub fn definition_hash(definition: &Value) -> String {
    content_hash(definition)
}
