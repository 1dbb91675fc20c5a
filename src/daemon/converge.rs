//! One convergence pass: read the home, diff it against the store and apply — the code path
//! of `coco plan`/`coco apply` — and describe what changed in one line.
//!
//! An invalid project is left as it is in the store (the diff keeps the stored state of
//! every folder with problems), so a typo never stops, unschedules or restarts anything; its
//! problems come back in [`Pass::problems`] for the log.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::manifest::discover::discover;
use crate::reconcile::{self, Change, Kind, Plan};
use crate::store::Store;
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

/// Converge the store on the projects of `home` as of `now`.
pub async fn converge(home: &Path, store: &dyn Store, now: DateTime<Utc>) -> anyhow::Result<Pass> {
    let discovery = discover(home)?;
    let invalid = discovery.invalid.keys().cloned().collect();
    let stored = reconcile::load_stored(store).await?;
    let plan = reconcile::diff(&discovery.projects, &stored, &invalid, now);
    if plan.has_changes() {
        reconcile::apply(store, &plan, &stored, now).await?;
    }
    Ok(Pass {
        plan,
        problems: discovery.problems().cloned().collect(),
    })
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
