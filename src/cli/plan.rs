//! `coco plan`: what `apply` would change. Exit 0: nothing; 2: changes; 1: invalid input.

use super::context::{self, Access};
use super::{GlobalArgs, JsonFlag, output};
use crate::reconcile::{self, Plan, render};

/// Compute the plan for the configured home against the store, opened for `access`; `None`
/// if a manifest is invalid (the problems are printed).
pub async fn compute(
    global: &GlobalArgs,
    access: Access,
) -> anyhow::Result<
    Option<(
        std::sync::Arc<dyn crate::store::Store>,
        Plan,
        reconcile::Stored,
    )>,
> {
    let (config, _) = context::load_config(global)?;
    let discovery = context::discover_home(&config)?;
    if !discovery.is_valid() {
        output::diagnostics(discovery.problems());
        return Ok(None);
    }
    let store = context::open_store_for(&config, access).await?;
    let (plan, stored) = context::plan_home(&discovery, store.as_ref()).await?;
    Ok(Some((store, plan, stored)))
}

/// JSON form of a plan for `--json` (the CLI plans only a valid home).
pub fn plan_json(plan: &Plan) -> crate::views::plan::PlanView {
    crate::views::plan::PlanView::new(plan, &crate::manifest::discover::Discovery::default())
}

pub async fn run(global: &GlobalArgs, flags: JsonFlag) -> anyhow::Result<i32> {
    let Some((_, plan, _)) = compute(global, Access::Read).await? else {
        return Ok(1);
    };
    if flags.json {
        output::json(&plan_json(&plan));
    } else {
        output::text(&render::render(&plan));
    }
    Ok(if plan.has_changes() { 2 } else { 0 })
}
