//! `coco apply`: make the store match the manifests and print what changed.

use chrono::Utc;

use super::context::Access;
use super::{GlobalArgs, JsonFlag, output, plan};
use crate::reconcile::{self, render};

pub async fn run(global: &GlobalArgs, flags: JsonFlag) -> anyhow::Result<i32> {
    let Some((store, plan, stored)) = plan::compute(global, Access::Write).await? else {
        return Ok(1);
    };
    reconcile::apply(store.as_ref(), &plan, &stored, Utc::now()).await?;
    if flags.json {
        output::json(&plan::plan_json(&plan));
    } else if plan.has_changes() {
        output::text(&format!(
            "{}Applied to the {}.",
            render::render(&plan),
            store.describe()
        ));
    } else {
        output::text(&render::render(&plan));
    }
    Ok(0)
}
