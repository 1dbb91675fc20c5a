//! `coco plan --json` (and `coco apply --json`) and `GET /api/v1/plan`: what applying the
//! home would change, from the store's state to the home's projects.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::manifest::discover::Discovery;
use crate::reconcile::{self, Plan, ProjectPlan, Stored};
use crate::store::{Store, StoreResult};

/// A plan as JSON shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanView {
    /// Whether applying would change anything.
    pub changes: bool,
    pub create: usize,
    pub update: usize,
    pub deactivate: usize,
    pub projects: Vec<ProjectPlan>,
    /// The problems of manifests that are invalid (their projects keep their applied state
    /// and are left out of the plan): `file:line:column: message` with the snippet. The CLI
    /// refuses to plan while there is any, so its JSON has none.
    pub invalid: Vec<String>,
}

impl PlanView {
    pub fn new(plan: &Plan, discovery: &Discovery) -> PlanView {
        let (create, update, deactivate) = plan.counts();
        PlanView {
            changes: plan.has_changes(),
            create,
            update,
            deactivate,
            projects: plan.projects.clone(),
            invalid: discovery.problems().map(ToString::to_string).collect(),
        }
    }
}

/// The plan from the store's state to `discovery`'s projects (the stored state of invalid
/// projects is kept as it is), and that stored state.
pub async fn plan_home(
    discovery: &Discovery,
    store: &dyn Store,
    now: DateTime<Utc>,
) -> StoreResult<(Plan, Stored)> {
    let stored = reconcile::load_stored(store).await?;
    let invalid: BTreeSet<PathBuf> = discovery.invalid.keys().cloned().collect();
    let plan = reconcile::diff(&discovery.projects, &stored, &invalid, now);
    Ok((plan, stored))
}
