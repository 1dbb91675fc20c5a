//! Exactly once under contention: several `coco worker` processes on one store; runs are
//! enqueued while they are up (each enqueue wakes all of them, so they race for every run);
//! each run's command appends its `$COCO_RUN_ID` to one file. Every enqueued id must be in
//! the file exactly once, every run must be `complete` after one attempt, and the count of
//! runs each worker claimed shows that they all took part.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::ensure;
use coco::queue::state::RunState;
use serde_json::json;

use crate::sandbox::Sandbox;

#[derive(Debug, Clone)]
pub struct ExactlyOnce {
    pub runs: usize,
    /// Enqueued ids missing from the file.
    pub missing: usize,
    /// Ids written more than once (counted once per extra line), or never enqueued.
    pub extra: usize,
    /// Runs not `complete`, or complete after more than one attempt.
    pub not_once: usize,
    /// Runs claimed per worker.
    pub per_worker: BTreeMap<String, usize>,
    /// First enqueue → all runs ended.
    pub took: Duration,
}

impl ExactlyOnce {
    pub fn passed(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.not_once == 0
    }

    pub fn verdict(&self) -> String {
        if self.passed() {
            format!("pass ({} ids once each)", self.runs)
        } else {
            format!(
                "FAIL (missing {}, extra {}, not once {})",
                self.missing, self.extra, self.not_once
            )
        }
    }
}

pub async fn check(
    sandbox: &Sandbox,
    runs: usize,
    workers: usize,
    slots: usize,
) -> anyhow::Result<ExactlyOnce> {
    let processes = (1..=workers)
        .map(|n| sandbox.worker(&format!("contender-{n}"), slots))
        .collect::<anyhow::Result<Vec<_>>>()?;
    sandbox
        .wait_for_listeners(workers, Duration::from_secs(30))
        .await?;
    let job = sandbox.job("append").await?;
    let started = Instant::now();
    let mut enqueued = Vec::with_capacity(runs);
    for i in 0..runs {
        enqueued.push(sandbox.enqueue("append", &job, json!({ "i": i })).await?);
        sandbox.wake();
    }
    sandbox
        .wait_idle(Duration::from_millis(250), Duration::from_secs(1800))
        .await?;
    let took = started.elapsed();
    for process in processes {
        process.stop().await?;
    }

    let written = std::fs::read_to_string(sandbox.project_dir().join("ran.txt"))?;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for line in written.lines() {
        *counts.entry(line.trim()).or_default() += 1;
    }
    let missing = enqueued
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .count();
    let expected = crate::sandbox::ids_of(&enqueued);
    let extra = counts
        .iter()
        .map(|(id, n)| if expected.contains(id) { n - 1 } else { *n })
        .sum();
    let records = sandbox.runs().await?;
    ensure!(
        records.len() == runs,
        "{} runs stored, {runs} enqueued",
        records.len()
    );
    let not_once = records
        .iter()
        .filter(|r| r.state != RunState::Complete || r.attempt != 1)
        .count();
    let mut per_worker = BTreeMap::new();
    for record in &records {
        let worker = record.worker.clone().unwrap_or_else(|| "-".into());
        *per_worker.entry(worker).or_default() += 1;
    }
    Ok(ExactlyOnce {
        runs,
        missing,
        extra,
        not_once,
        per_worker,
        took,
    })
}
