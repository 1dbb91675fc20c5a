//! `coco projects [--json]`: the projects of the home with their version, git branch or tag,
//! manifest state (applied, changed, not applied, invalid) and environment.

use super::{GlobalArgs, JsonFlag, context, output};

pub async fn run(global: &GlobalArgs, flags: JsonFlag) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let discovery = context::discover_home(&config)?;
    let store = context::open_store_to_read(&config).await?;
    let (plan, _) = context::plan_home(&discovery, store.as_ref()).await?;
    let lines = crate::views::projects::project_lines(&discovery, &plan).await;
    if flags.json {
        output::json(&lines);
    } else if lines.is_empty() {
        output::text(&format!(
            "No projects in {} (coco init NAME creates one).",
            config.home.display()
        ));
    } else {
        let rows: Vec<Vec<String>> = lines
            .iter()
            .map(|line| {
                vec![
                    line.name.clone(),
                    line.version.clone().unwrap_or_else(|| "-".into()),
                    line.git.clone().unwrap_or_else(|| "-".into()),
                    line.manifest.lines().next().unwrap_or_default().to_owned(),
                    line.environment.clone(),
                ]
            })
            .collect();
        output::table(
            &["PROJECT", "VERSION", "GIT", "MANIFEST", "ENVIRONMENT"],
            &rows,
        );
    }
    Ok(0)
}
