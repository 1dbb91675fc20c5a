//! Carry out a [`Plan`]: the only part of reconcile that writes to the store.
//!
//! Each project's jobs and apps are written first and the project record last, so an
//! interrupted apply leaves differences that the next plan shows again; every write is an
//! idempotent replace, so two processes applying the same plan agree.

use chrono::{DateTime, Utc};

use super::diff::{Change, Kind, Plan, Stored, definition_hash};
use crate::manifest::{JobId, content_hash};
use crate::store::Catalog;
use crate::store::{AppRecord, JobRecord, ProjectRecord, StoreResult};

/// Read everything the diff compares against.
pub async fn load_stored(store: &dyn Catalog) -> StoreResult<Stored> {
    Ok(Stored {
        projects: store.list_projects().await?,
        jobs: store.list_jobs(None).await?,
        apps: store.list_apps(None).await?,
    })
}

/// Make the store match `plan`, which must have been computed against `stored`.
pub async fn apply(
    store: &dyn Catalog,
    plan: &Plan,
    stored: &Stored,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for project in &plan.projects {
        for item in &project.items {
            if !item.change.is_change() {
                continue;
            }
            let id = JobId::new(&project.name, &item.name).into_string();
            let active = !matches!(item.change, Change::Deactivate);
            match item.kind {
                Kind::Job => {
                    let old = stored.jobs.iter().find(|j| j.id == id);
                    let definition = match &item.definition {
                        Some(definition) => definition.clone(),
                        None => old.map(|j| j.definition.clone()).unwrap_or_default(),
                    };
                    let next_fire = if !active {
                        None
                    } else if item.reschedule {
                        // The diff computed the upcoming fires; the first one is next.
                        item.next_fires.first().map(|t| t.with_timezone(&Utc))
                    } else {
                        old.and_then(|j| j.next_fire)
                    };
                    store
                        .put_job(&JobRecord {
                            id,
                            project: project.name.clone(),
                            name: item.name.clone(),
                            hash: definition_hash(&definition),
                            definition,
                            active,
                            next_fire,
                            last_fire: old.and_then(|j| j.last_fire),
                            updated_at: now,
                        })
                        .await?;
                }
                Kind::App => {
                    let old = stored.apps.iter().find(|a| a.id == id);
                    let definition = match &item.definition {
                        Some(definition) => definition.clone(),
                        None => old.map(|a| a.definition.clone()).unwrap_or_default(),
                    };
                    store
                        .put_app(&AppRecord {
                            id,
                            project: project.name.clone(),
                            name: item.name.clone(),
                            hash: definition_hash(&definition),
                            definition,
                            active,
                            updated_at: now,
                        })
                        .await?;
                }
            }
        }
        let old = stored.projects.iter().find(|p| p.name == project.name);
        let record = match &project.desired {
            Some(desired) => Some(ProjectRecord {
                name: project.name.clone(),
                hash: content_hash(desired),
                manifest: serde_json::to_value(desired).expect("projects serialize"),
                source: project.source.display().to_string(),
                active: true,
                applied_at: now,
            }),
            None => old.map(|old| ProjectRecord {
                active: false,
                applied_at: now,
                ..old.clone()
            }),
        };
        if let Some(record) = record {
            store.put_project(&record).await?;
        }
    }
    Ok(())
}
