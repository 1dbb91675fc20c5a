//! `coco config`: the effective configuration, each value with where it came from.

use super::{GlobalArgs, JsonFlag, context, output};

pub fn run(global: &GlobalArgs, flags: JsonFlag) -> anyhow::Result<i32> {
    let (_, settings) = context::load_config(global)?;
    if flags.json {
        let values: Vec<serde_json::Value> = settings
            .iter()
            .map(|s| serde_json::json!({"key": s.key, "value": s.value, "source": s.source}))
            .collect();
        output::json(&values);
    } else {
        let rows: Vec<Vec<String>> = settings
            .iter()
            .map(|s| vec![s.key.clone(), s.value.clone(), s.source.clone()])
            .collect();
        output::table(&["KEY", "VALUE", "SOURCE"], &rows);
    }
    Ok(0)
}
