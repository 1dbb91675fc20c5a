//! Pick-up latency: one idle `coco worker --slots 1`; enqueue one run, wake the workers as
//! `coco enqueue` does, and see when the job's process started by its own clock.
//!
//! The job is `date +%s%N` run directly (no shell), so its output is the wall-clock time in
//! nanoseconds just after `date` was exec'd (and its libraries loaded); coco keeps it as the
//! run's output. Latency = that stamp − the wall-clock time just before the enqueue call
//! (`SystemTime`, the same clock), so it covers the enqueue itself, the wake-up datagram, the
//! claim, reading the job, and fork/exec. Before each repetition the worker has been idle for
//! `gap`, so its poll timer has backed off to 80–160 ms: a run picked up by polling rather
//! than by the wake-up would show. The first `WARM_UP` repetitions are not counted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use coco::queue::state::RunState;
use serde_json::json;
use tokio::time::Instant;

use crate::sandbox::Sandbox;

const WARM_UP: usize = 5;

/// Latencies in microseconds, in the order measured.
#[derive(Debug, Clone)]
pub struct Latency {
    pub pick_up: Vec<u64>,
    /// The enqueue call alone (part of `pick_up`).
    pub enqueue: Vec<u64>,
}

impl Latency {
    pub fn p(&self, q: f64) -> u64 {
        percentile(&sorted(&self.pick_up), q)
    }

    pub fn enqueue_p50(&self) -> u64 {
        percentile(&sorted(&self.enqueue), 0.5)
    }

    /// The median of the first and of the last `n` repetitions: does the latency grow as
    /// runs accumulate in the store?
    pub fn drift(&self, n: usize) -> (u64, u64) {
        let n = n.min(self.pick_up.len());
        let first = sorted(&self.pick_up[..n]);
        let last = sorted(&self.pick_up[self.pick_up.len() - n..]);
        (percentile(&first, 0.5), percentile(&last, 0.5))
    }
}

fn sorted(values: &[u64]) -> Vec<u64> {
    let mut values = values.to_vec();
    values.sort_unstable();
    values
}

/// Nearest-rank percentile of sorted `values` (0 for none).
pub fn percentile(values: &[u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

pub async fn measure(sandbox: &Sandbox, reps: usize, gap: Duration) -> anyhow::Result<Latency> {
    let worker = sandbox.worker("latency", 1)?;
    sandbox
        .wait_for_listeners(1, Duration::from_secs(30))
        .await?;
    let job = sandbox.job("stamp").await?;
    let mut pick_up = Vec::with_capacity(reps);
    let mut enqueue = Vec::with_capacity(reps);
    for i in 0..reps + WARM_UP {
        tokio::time::sleep(gap).await;
        let before = now_ns();
        let id = sandbox.enqueue("stamp", &job, json!({ "i": i })).await?;
        let enqueued = now_ns();
        sandbox.wake();
        let stamp = wait_for_stamp(sandbox, &id).await?;
        if i >= WARM_UP {
            pick_up.push(stamp.saturating_sub(before) / 1000);
            enqueue.push(enqueued.saturating_sub(before) / 1000);
        }
    }
    worker.stop().await?;
    Ok(Latency { pick_up, enqueue })
}

/// Wait for run `id` to complete and return the stamp it printed.
async fn wait_for_stamp(sandbox: &Sandbox, id: &str) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Give the run time to start before looking, so this process's queries do not
        // compete with the pick-up it measures.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let run = sandbox.store.get_run(id).await?.context("run vanished")?;
        match run.state {
            RunState::Complete => break,
            RunState::Pending | RunState::Running => {}
            other => bail!("run {id} ended {other}: {:?}", run.reason),
        }
        if Instant::now() > deadline {
            bail!("run {id} did not complete within 30 s");
        }
    }
    let output = sandbox.store.get_output(id).await?.unwrap_or_default();
    // The kept line is `HH:MM:SS.mmm out TEXT`: the stamp is its last word.
    output
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("run {id} printed {output:?}, not a nanosecond stamp"))
}

fn now_ns() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}
