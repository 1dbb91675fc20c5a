//! Event latency: one client holds `GET /api/v1/events` open (HTTP/1.0, read by a thread of
//! its own that timestamps each event as its last line arrives); this process changes the
//! store through the library and waits for the matching `run` event.
//!
//! Each repetition makes two changes, each after a random pause of `gap` (300–600 ms by
//! default: more than the poller's interval, and not a multiple of it, so that changes fall
//! at every phase of its tick and never two in one poll):
//!
//! 1. a new run of `bench.report`, enqueued as `coco enqueue` does (`queue::new_run`,
//!    `Queue::enqueue`): until a `run` event with its id and state `pending`;
//! 2. that run removed, as `coco remove` does (`Queue::cancel_run`): until its `removed`.
//!
//! Latency = the event's arrival − the instant just before the store call; the store call
//! alone is reported too. A change whose event did not come within 10 s is counted as
//! missed (the benchmark goes on).
//!
//! The baselines: the poller's interval (`coco::api::POLL`), and one poll
//! round measured in-process ([`poll_round`]): the store reads the poller makes
//! (`coco::api::watched_runs`), on this process's own connection to the same store — `list_runs` of the
//! newest `WATCHED` runs and of the `WATCHED` newest of each active state (running,
//! pending, failed, deferred), each run encoded to JSON as the poller compares them, then
//! the status it reads after a change (`views::status::status`, encoded).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use coco::queue::run::Cancel;
use coco::queue::state::RunState;
use coco::queue::{self, NewRun};
use coco::store::{Cancelled, Enqueued, Store};
use serde_json::json;

use crate::Samples;
use crate::http::{Event, EventStream};
use crate::sandbox::Sandbox;

/// The poller's source, as built: its interval and how many runs it watches are read here.
/// Longest wait for one change's event.
const PATIENCE: Duration = Duration::from_secs(10);

/// What was measured.
#[derive(Debug, Clone)]
pub struct EventLatency {
    /// Enqueue → its `pending` event.
    pub enqueued: Samples,
    /// Removal → its `removed` event.
    pub removed: Samples,
    /// The store calls alone (both kinds).
    pub writes: Samples,
    /// Changes whose event did not come within [`PATIENCE`].
    pub missed: usize,
    /// Events of other kinds received meanwhile (`status`, `resync`).
    pub others: usize,
}

/// Measure `reps` repetitions (2 changes each) with pauses in `gap`.
pub async fn measure(
    sandbox: &Sandbox,
    port: u16,
    reps: usize,
    gap: (Duration, Duration),
) -> anyhow::Result<EventLatency> {
    let stream = EventStream::open(port, &sandbox.token)?;
    let closer = stream.closer()?;
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let reader = std::thread::spawn(move || {
        let mut stream = stream;
        while let Some(event) = stream.next() {
            if events.send(event).is_err() {
                break;
            }
        }
    });
    let result = async {
        // The poller's first read only learns what is there.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let job = sandbox
            .store
            .get_job("bench.report")
            .await?
            .context("job bench.report is not applied")?
            .job()?;
        let mut random = crate::Random::seeded();
        let mut measured = EventLatency {
            enqueued: Samples::default(),
            removed: Samples::default(),
            writes: Samples::default(),
            missed: 0,
            others: 0,
        };
        for rep in 0..reps {
            // 1. a new run.
            tokio::time::sleep(random.between(gap)).await;
            drain(&mut received, &mut measured.others);
            let run = queue::new_run(
                &job,
                NewRun::new(
                    "bench.report",
                    "bench",
                    json!({ "probe": rep, "at": Utc::now().timestamp_micros() }),
                    Utc::now(),
                ),
            );
            let before = Instant::now();
            let id = match sandbox.store.enqueue(&run).await? {
                Enqueued::Queued(id) => id,
                Enqueued::Duplicate(id) => bail!("the probe run was a duplicate of {id}"),
            };
            measured.writes.push(before.elapsed());
            match wait_for(&mut received, &id, RunState::Pending, &mut measured.others).await {
                Some(at) => measured.enqueued.push(at - before),
                None => measured.missed += 1,
            }
            // 2. its removal.
            tokio::time::sleep(random.between(gap)).await;
            drain(&mut received, &mut measured.others);
            let before = Instant::now();
            match sandbox
                .store
                .cancel_run(&id, Cancel::Remove, Utc::now())
                .await?
            {
                Cancelled::Done(_) => {}
                other => bail!("removing the probe run {id}: {other:?}"),
            }
            measured.writes.push(before.elapsed());
            match wait_for(&mut received, &id, RunState::Removed, &mut measured.others).await {
                Some(at) => measured.removed.push(at - before),
                None => measured.missed += 1,
            }
        }
        Ok(measured)
    }
    .await;
    let _ = closer.shutdown(std::net::Shutdown::Both);
    let _ = reader.join();
    result
}

/// Events already received: not about the change to come (counted if not `run`).
fn drain(received: &mut tokio::sync::mpsc::UnboundedReceiver<Event>, others: &mut usize) {
    while let Ok(event) = received.try_recv() {
        if event.name != "run" {
            *others += 1;
        }
    }
}

/// When the `run` event of run `id` in `state` arrived; `None` after [`PATIENCE`].
async fn wait_for(
    received: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    id: &str,
    state: RunState,
    others: &mut usize,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline, received.recv())
            .await
            .ok()??;
        if event.name != "run" {
            *others += 1;
            continue;
        }
        let Ok(run) = serde_json::from_str::<serde_json::Value>(&event.data) else {
            continue;
        };
        if run["id"] == id && run["state"] == state.as_str() {
            return Some(event.at);
        }
    }
}

/// One poll round's parts, measured in-process.
#[derive(Debug, Clone)]
pub struct PollRound {
    /// The five `list_runs` and the JSON of each run.
    pub runs: Samples,
    /// The status (read after a change, and at least once a second), encoded.
    pub status: Samples,
    /// Runs read per round (the same run may be read twice, as the poller does).
    pub runs_read: usize,
}

/// `rounds` poll rounds (after 2 uncounted ones), as the poller makes them.
pub async fn poll_round(
    store: &dyn Store,
    home: &Path,
    rounds: usize,
) -> anyhow::Result<PollRound> {
    let mut measured = PollRound {
        runs: Samples::default(),
        status: Samples::default(),
        runs_read: 0,
    };
    for n in 0..rounds + 2 {
        let started = Instant::now();
        let runs = coco::api::watched_runs(store).await?;
        let mut bytes = 0;
        for run in &runs {
            bytes += serde_json::to_string(run)?.len();
        }
        std::hint::black_box(bytes);
        let read = started.elapsed();
        let started = Instant::now();
        let status = coco::views::status::status(store, Some(home)).await?;
        std::hint::black_box(serde_json::to_string(&status)?);
        let status = started.elapsed();
        if n >= 2 {
            measured.runs.push(read);
            measured.status.push(status);
            measured.runs_read = runs.len();
        }
    }
    Ok(measured)
}
