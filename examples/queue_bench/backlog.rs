//! Claim cost as the queue grows: the pick-up latency of [`crate::latency`] with a backlog
//! of `small`, then of `large`, pending runs of another job (`bench.later`) that may not
//! start yet (`not_before` a day ahead: what retries, deferrals and delayed runs look like),
//! each in a fresh sandbox. Every claim must pass over them; the goal is a p50 with the large
//! backlog at most twice the p50 with the small one (the claim walks an index, not the
//! table).

use std::time::Duration;

use chrono::Utc;
use coco::queue::{self, NewRun};
use coco::store::Enqueued;
use serde_json::json;

use crate::latency::{self, Latency};
use crate::sandbox::Sandbox;

/// The latencies with each backlog, and how long the large one took to enqueue.
#[derive(Debug, Clone)]
pub struct Backlog {
    pub small: usize,
    pub large: usize,
    pub with_small: Latency,
    pub with_large: Latency,
}

impl Backlog {
    /// p50 with the large backlog / p50 with the small one (goal ≤ 2).
    pub fn growth(&self) -> f64 {
        self.with_large.p(0.5) as f64 / (self.with_small.p(0.5) as f64).max(1.0)
    }
}

/// Fill `sandbox` with `count` pending runs of `bench.later`, startable only in a day.
pub async fn fill(sandbox: &Sandbox, count: usize) -> anyhow::Result<()> {
    let job = sandbox.job("later").await?;
    let now = Utc::now();
    let later = now + chrono::Duration::days(1);
    for i in 0..count {
        let new = NewRun {
            not_before: Some(later),
            ..NewRun::new("bench.later", "bench", json!({ "backlog": i }), now)
        };
        match sandbox.store.enqueue(&queue::new_run(&job, new)).await? {
            Enqueued::Queued(_) => {}
            Enqueued::Duplicate(id) => anyhow::bail!("backlog run {i} is a duplicate of {id}"),
        }
    }
    Ok(())
}

/// Measure the pick-up latency over `reps` repetitions with `backlog` waiting runs.
pub async fn measure(
    sandbox: &Sandbox,
    backlog: usize,
    reps: usize,
    gap: Duration,
) -> anyhow::Result<Latency> {
    let started = std::time::Instant::now();
    fill(sandbox, backlog).await?;
    eprintln!(
        "  {backlog} waiting runs enqueued in {:.1?}",
        started.elapsed()
    );
    let measured = latency::measure(sandbox, reps, gap).await?;
    eprintln!(
        "  pick-up with {backlog} waiting: p50 {:.2} ms, p99 {:.2} ms",
        measured.p(0.5) as f64 / 1000.0,
        measured.p(0.99) as f64 / 1000.0
    );
    Ok(measured)
}
