//! Throughput: N runs of `true` through one `coco worker --slots 2`, against N spawns of
//! `true` by `xargs -P2` (the physical baseline: fork, exec, wait, nothing else).
//!
//! What is timed: all N runs are enqueued first (timed apart, as the enqueue rate); then
//! the clock starts just before the worker process is spawned, and stops at the largest
//! `finished` timestamp of the runs (the store's millisecond clock: the last run's
//! `complete`). So the figure includes the worker's start-up (exec, configuration, store
//! connection), reported apart as "start-up". The runs are checked for completion every
//! 250 ms by listing (limit 1) the pending and running ones; the end time comes from the
//! records, not from the check. xargs is timed from spawn to exit.
//!
//! Before the runs, the store's own pace: how many of its cheapest round trips (a read by
//! key) `slots` tasks complete in a second. A run needs several (claim, finish and their
//! conditional writes), so this bounds what any worker can reach on that store.
//!
//! A second baseline splits the gap: the same N runs of `true` through `coco::process`
//! (`run_to_end`, what the worker uses: `posix_spawn` under a guard marker, a process group,
//! output pipes, group check) from this process, `slots` at a time, with no store at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use chrono::{DateTime, Utc};
use coco::process;
use coco::queue::state::RunState;
use serde_json::json;
use tokio::task::JoinSet;

use crate::common::host_command;
use crate::sandbox::Sandbox;

/// What one throughput measurement found.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub runs: usize,
    /// Enqueuing all runs, one after the other, from this process.
    pub enqueue: Duration,
    /// `xargs -P SLOTS` running `true` `runs` times.
    pub xargs: Duration,
    /// `coco::process::run_to_end` running `true` `runs` times, SLOTS at once.
    pub process: Duration,
    /// Worker spawned → last run finished.
    pub coco: Duration,
    /// Worker spawned → first run started.
    pub start_up: Duration,
    /// The store's cheapest round trips (`get_project`, a read by key), SLOTS at once for
    /// [`ROUND_TRIP_WINDOW`]: how many the store serves per second, a ceiling for a queue
    /// whose every run needs several.
    pub round_trips: usize,
}

/// How long the store's round trips are counted.
const ROUND_TRIP_WINDOW: Duration = Duration::from_secs(1);

impl Throughput {
    pub fn coco_rate(&self) -> f64 {
        rate(self.runs, self.coco)
    }
    pub fn xargs_rate(&self) -> f64 {
        rate(self.runs, self.xargs)
    }
    pub fn process_rate(&self) -> f64 {
        rate(self.runs, self.process)
    }
    pub fn enqueue_rate(&self) -> f64 {
        rate(self.runs, self.enqueue)
    }
    /// coco's rate over the steady part (first start → last finish).
    pub fn steady_rate(&self) -> f64 {
        rate(self.runs, self.coco.saturating_sub(self.start_up))
    }
    pub fn round_trip_rate(&self) -> f64 {
        rate(self.round_trips, ROUND_TRIP_WINDOW)
    }
    pub fn ratio(&self) -> f64 {
        self.coco_rate() / self.xargs_rate()
    }
}

pub fn rate(runs: usize, took: Duration) -> f64 {
    runs as f64 / took.as_secs_f64().max(1e-9)
}

pub async fn measure(sandbox: &Sandbox, runs: usize, slots: usize) -> anyhow::Result<Throughput> {
    let xargs = xargs_baseline(sandbox, runs, slots).await?;
    eprintln!(
        "  xargs -P{slots}: {runs} × true in {xargs:.2?} ({:.0}/s)",
        rate(runs, xargs)
    );
    let process = process_baseline(sandbox, runs, slots).await?;
    eprintln!(
        "  coco::process, {slots} at once: {runs} × true in {process:.2?} ({:.0}/s)",
        rate(runs, process)
    );
    let round_trips = round_trips(sandbox, slots).await?;
    eprintln!(
        "  store round trips (get_project), {slots} at once: {:.0}/s",
        rate(round_trips, ROUND_TRIP_WINDOW)
    );
    let job = sandbox.job("noop").await?;
    let started = Instant::now();
    for i in 0..runs {
        sandbox.enqueue("noop", &job, json!({ "i": i })).await?;
    }
    let enqueue = started.elapsed();
    eprintln!(
        "  enqueued {runs} in {enqueue:.2?} ({:.0}/s)",
        rate(runs, enqueue)
    );

    let t0 = Utc::now();
    let worker = sandbox.worker("throughput", slots)?;
    sandbox
        .wait_idle(Duration::from_millis(250), Duration::from_secs(1800))
        .await?;
    worker.stop().await?;
    let (first, last) = span(sandbox, runs).await?;
    let result = Throughput {
        runs,
        enqueue,
        xargs,
        process,
        coco: since(t0, last),
        start_up: since(t0, first),
        round_trips,
    };
    eprintln!(
        "  coco worker --slots {slots}: {runs} runs in {:.2?} ({:.0}/s; start-up {:.0?}, then {:.0}/s)",
        result.coco,
        result.coco_rate(),
        result.start_up,
        result.steady_rate()
    );
    Ok(result)
}

/// `xargs -P SLOTS -n 1 true` over `runs` arguments, timed from spawn to exit.
async fn xargs_baseline(sandbox: &Sandbox, runs: usize, slots: usize) -> anyhow::Result<Duration> {
    let list = sandbox.path("xargs-input");
    let lines: String = (0..runs).map(|i| format!("{i}\n")).collect();
    std::fs::write(&list, lines)?;
    let mut command = host_command("xargs");
    command
        .arg("-a")
        .arg(&list)
        .args(["-P", &slots.to_string(), "-n", "1", "true"]);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let status = command.status().context("running xargs")?;
        ensure!(status.success(), "xargs failed: {status}");
        Ok(started.elapsed())
    })
    .await?
}

/// `runs` × `true` through `coco::process::run_to_end`, `slots` tasks each taking the next,
/// spawned as `coco worker` spawns jobs: under a guard marker (`posix_spawn`; no guard process
/// is needed, since every `true` ends by itself).
async fn process_baseline(
    sandbox: &Sandbox,
    runs: usize,
    slots: usize,
) -> anyhow::Result<Duration> {
    let spec = Arc::new(process::Spec {
        leash: process::Leash::Guard("queue-bench".into()),
        contain: None,
        ..process::Spec::new(["true"], sandbox.project_dir())
    });
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..slots {
        let (spec, next) = (Arc::clone(&spec), Arc::clone(&next));
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < runs {
                let ended = process::run_to_end(
                    &spec,
                    None,
                    Duration::from_secs(1),
                    std::future::pending(),
                    |_| {},
                )
                .await?;
                ensure!(ended.exit.code == Some(0), "true ended {}", ended.exit);
            }
            Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(started.elapsed())
}

/// `get_project` calls completed by `slots` tasks in [`ROUND_TRIP_WINDOW`].
async fn round_trips(sandbox: &Sandbox, slots: usize) -> anyhow::Result<usize> {
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + ROUND_TRIP_WINDOW;
    let mut tasks = JoinSet::new();
    for _ in 0..slots {
        let (store, done) = (Arc::clone(&sandbox.store), Arc::clone(&done));
        tasks.spawn(async move {
            while Instant::now() < deadline {
                store
                    .get_project("bench")
                    .await?
                    .context("the bench project is applied")?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(done.load(Ordering::Relaxed))
}

/// The first `started` and the last `finished` of the runs, after checking that all `runs`
/// of them completed.
async fn span(sandbox: &Sandbox, runs: usize) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
    let all = sandbox.runs().await?;
    let complete = all.iter().filter(|r| r.state == RunState::Complete).count();
    ensure!(
        all.len() == runs && complete == runs,
        "{complete} of {} runs complete, {runs} enqueued",
        all.len()
    );
    let first = all.iter().filter_map(|r| r.started).min();
    let last = all.iter().filter_map(|r| r.finished).max();
    first.zip(last).context("no run has start and end times")
}

fn since(t0: DateTime<Utc>, t: DateTime<Utc>) -> Duration {
    (t - t0).to_std().unwrap_or_default()
}
