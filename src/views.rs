//! The shapes the CLI's `--json` prints and the API answers: one type each, so the two
//! cannot drift apart (`tests/it/api.rs` holds them equal).

use serde::Serialize;

use crate::queue::run::RunRecord;
use crate::store::{Queue, StoreResult};

/// One run and the output kept of its latest try: `coco detail ID --json`,
/// `GET /api/v1/runs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    pub run: RunRecord,
    /// The tail of the latest try's output, if any was stored.
    pub output: Option<String>,
}

impl RunDetail {
    /// `run` with its output from `store`.
    pub async fn of(store: &dyn Queue, run: RunRecord) -> StoreResult<Self> {
        let output = store.get_output(&run.id).await?;
        Ok(Self { run, output })
    }
}
