//! The stored runs: `count` runs of the `bench` jobs created evenly over the past 7 days,
//! each a record the queue's own transitions made (`queue::new_run`, then
//! `RunRecord::claimed` and `RunRecord::ended` with the end `RunRecord::end` computes), with
//! a ULID of its creation time. The mix, newest last:
//!
//! - the newest 2 %: `pending` (no worker runs here, so they stay);
//! - 1 in 50 of the others: `failed` (`bench.sync`, exit 1 at attempt 1 of 3: waiting for
//!   its retry);
//! - 1 in 25: `error` (`bench.build`, exit 1, no attempt left);
//! - 1 in 200: `killed`;
//! - the rest `complete` (exit 0, 2 s after it started).
//!
//! They are inserted through the library as the queue benchmark fills its backlog,
//! `Queue::enqueue_all` (one SQLite transaction per 5,000; one enqueue after the other on
//! MongoDB), which keeps a record as given. On MongoDB the dedupe markers of the final runs
//! are then deleted, as the store does when a run becomes final (its state is the one a
//! store that ran these runs would hold), before the pending runs are enqueued.

use std::collections::BTreeMap;

use anyhow::{Context as _, ensure};
use chrono::{DateTime, TimeDelta, Utc};
use coco::manifest::Job;
use coco::queue::run::RunRecord;
use coco::queue::state::{Outcome, RunState};
use coco::queue::{self, NewRun};
use coco::store::Enqueued;
use serde_json::json;

use crate::Random;
use crate::sandbox::{JOBS, Sandbox};

/// How many runs of each state were stored.
pub type Mix = BTreeMap<RunState, usize>;

/// Runs a batch of `enqueue_all`.
const BATCH: usize = 5_000;

/// Fill `sandbox`'s store with `count` runs (see the module documentation).
pub async fn fill(sandbox: &Sandbox, count: usize) -> anyhow::Result<Mix> {
    let mut jobs = BTreeMap::new();
    for name in JOBS {
        let id = format!("bench.{name}");
        let record = sandbox
            .store
            .get_job(&id)
            .await?
            .with_context(|| format!("job {id} is not applied"))?;
        jobs.insert(name, record.job()?);
    }
    let now = Utc::now();
    let span = TimeDelta::days(7);
    let step = span / i32::try_from(count.max(1)).unwrap_or(i32::MAX);
    let pending_from = count - count / 50;
    let mut random = Random::seeded();
    let (mut finals, mut pending) = (Vec::new(), Vec::new());
    for i in 0..count {
        let created = now - span + step * i32::try_from(i).unwrap_or(i32::MAX);
        let state = if i >= pending_from {
            RunState::Pending
        } else if i % 50 == 7 {
            RunState::Failed
        } else if i % 25 == 3 {
            RunState::Error
        } else if i % 200 == 11 {
            RunState::Killed
        } else {
            RunState::Complete
        };
        let name = match state {
            RunState::Failed => "sync",
            RunState::Error => "build",
            _ => JOBS[i % JOBS.len()],
        };
        let run = made(&jobs[name], name, i, created, state, &mut random);
        ensure!(
            run.state == state,
            "run {i} became {} not {state}",
            run.state
        );
        if state == RunState::Pending {
            pending.push(run);
        } else {
            finals.push(run);
        }
    }
    let mut mix = Mix::new();
    for run in finals.iter().chain(&pending) {
        *mix.entry(run.state).or_default() += 1;
    }
    insert(sandbox, &finals).await?;
    if let Some((url, database)) = &sandbox.mongo {
        let client = mongodb::Client::with_uri_str(url).await?;
        client
            .database(database)
            .collection::<bson::Document>("locks")
            .delete_many(bson::doc! { "kind": "dedupe" })
            .await
            .context("deleting the final runs' dedupe markers")?;
    }
    insert(sandbox, &pending).await?;
    Ok(mix)
}

async fn insert(sandbox: &Sandbox, runs: &[RunRecord]) -> anyhow::Result<()> {
    for batch in runs.chunks(BATCH) {
        for enqueued in sandbox.store.enqueue_all(batch).await? {
            if let Enqueued::Duplicate(id) = enqueued {
                anyhow::bail!("a stored run was refused as a duplicate of {id}");
            }
        }
    }
    Ok(())
}

/// Run `i` of job `bench.NAME`, created at `created`, brought to `state` by the queue's
/// transitions.
fn made(
    job: &Job,
    name: &str,
    i: usize,
    created: DateTime<Utc>,
    state: RunState,
    random: &mut Random,
) -> RunRecord {
    let job_id = format!("bench.{name}");
    let mut run = queue::new_run(
        job,
        NewRun::new(&job_id, "bench", json!({ "n": i }), created),
    );
    let ms = u64::try_from(created.timestamp_millis()).unwrap_or(0);
    // A ULID's random part is 80 bits.
    let bits = (u128::from(random.bits()) << 64 | u128::from(random.bits())) & ((1 << 80) - 1);
    run.id = ulid::Ulid::from_parts(ms, bits).to_string();
    match state {
        RunState::Pending => run,
        RunState::Killed => {
            let started = created + TimeDelta::milliseconds(40);
            let mut run = run.claimed("host-1/worker", started);
            run.pid = Some(10_000 + (i % 50_000) as u32);
            let end = run.kill_end(started + TimeDelta::seconds(30));
            run.ended(&end)
        }
        _ => {
            let started = created + TimeDelta::milliseconds(40);
            let mut run = run.claimed("host-1/worker", started);
            run.pid = Some(10_000 + (i % 50_000) as u32);
            let code = if state == RunState::Complete { 0 } else { 1 };
            let end = run.end(
                Outcome::Exited(code),
                Some(code),
                started + TimeDelta::seconds(2),
            );
            run.ended(&end)
        }
    }
}
