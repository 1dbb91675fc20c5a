//! `coco schema`: the JSON Schema of coco.yaml, generated from the manifest types.

use super::output;

/// The schema as pretty JSON (what docs/coco.schema.json holds).
pub fn manifest_schema() -> String {
    let schema = schemars::schema_for!(crate::manifest::raw::RawManifest);
    serde_json::to_string_pretty(&schema).expect("schemas serialize") + "\n"
}

pub fn run() -> anyhow::Result<i32> {
    output::text(&manifest_schema());
    Ok(0)
}
