//! `coco pause [PROJECT]`, `coco resume [PROJECT]`, `coco mode`: maintenance switches.
//!
//! While paused (everything, or one project) workers start no new runs of it — except runs
//! enqueued with `--force` — and running ones finish. Workers on this host hear it at once
//! (a control wake-up), elsewhere within about a second. Resuming everything leaves projects
//! paused one by one paused.

use clap::Args;

use super::args::close_names;
use super::{GlobalArgs, JsonFlag, context, output};
use crate::queue;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Only this project (default: everything).
    #[arg(value_name = "PROJECT")]
    pub project: Option<String>,
}

/// `pause` (`paused`) or `resume`.
pub async fn run(global: &GlobalArgs, args: &PauseArgs, paused: bool) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    if let Some(project) = &args.project
        && !known_project(store.as_ref(), project, paused).await?
    {
        return Ok(1);
    }
    store.set_paused(args.project.as_deref(), paused).await?;
    queue::wake_control(&config.state_dir);
    let control = store.control().await?;
    output::text(&crate::views::status::mode(&control));
    Ok(0)
}

/// `coco mode`.
pub async fn mode(global: &GlobalArgs, flags: JsonFlag) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let store = context::open_store(&config).await?;
    let control = store.control().await?;
    if flags.json {
        output::json(&serde_json::json!({
            "paused": control.paused_all,
            "paused_projects": control.paused_projects,
            "halt_before": control.halt_before,
        }));
    } else {
        output::text(&crate::views::status::mode(&control));
    }
    Ok(0)
}

/// Is `project` applied (or, when resuming, paused)? Prints why not, with close names.
async fn known_project(store: &dyn Store, project: &str, pausing: bool) -> anyhow::Result<bool> {
    let projects = store.list_projects().await?;
    if projects.iter().any(|p| p.name == project) {
        return Ok(true);
    }
    if !pausing
        && store
            .control()
            .await?
            .paused_projects
            .iter()
            .any(|p| p == project)
    {
        return Ok(true);
    }
    let names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
    let close = close_names(project, names.iter().copied(), 3);
    let hint = if close.is_empty() {
        format!("applied projects: {}", names.join(", "))
    } else {
        format!("did you mean {}?", close.join(", "))
    };
    output::error(&format!("unknown project `{project}` ({hint})"));
    Ok(false)
}

#[cfg(test)]
mod tests {
    use crate::store::Control;

    #[test]
    fn the_mode_names_every_switch() {
        assert_eq!(
            crate::views::status::mode(&Control::default()),
            "mode: running"
        );
        let control = Control {
            paused_all: true,
            paused_projects: vec!["a".into(), "b".into()],
            halt_before: chrono::DateTime::from_timestamp(1_700_000_000, 0),
            ..Control::default()
        };
        let text = crate::views::status::mode(&control);
        assert!(
            text.starts_with("mode: paused: no new runs start"),
            "{text}"
        );
        assert!(text.contains("\npaused projects: a, b"), "{text}");
        assert!(text.contains("\nlast halt: 2023-11-14T22:13:20Z"), "{text}");
    }
}
