//! Crash: a `coco worker` process with many runs in flight is SIGKILLed; a new worker must
//! take every run back and finish it, and no job process may outlive the killed worker.
//!
//! 1. Enqueue `runs` runs of `bench.nap` (`sleep N`, two attempts) and start one worker
//!    process with a slot for each; wait until every run is `running` with its pid recorded.
//! 2. SIGKILL the worker and reap it. Every recorded pid must be gone (the worker's process
//!    guard, `coco __guard`, kills every process carrying its marker) within `EXIT_WAIT` —
//!    before any new worker starts, so no run's work can run twice at once.
//! 3. Start a second worker in this process through the library, with short zombie settings
//!    (`coco worker` has no flags for them): heartbeat-less runs older than 3 s are taken back
//!    (`pending` again, reason `zombie`, the attempt not spent) and retried.
//! 4. Every run must end `complete` at attempt 1, its history pending → running → pending →
//!    running → complete, its second try by the new worker with a new pid.
//!
//! Probe: `probe` runs of `bench.nest`, `sh -c 'sleep N & …; wait'`, are in flight too. The
//! recorded pid is the `sh`; the `sleep` it forked carries the guard's marker too, so it must
//! be gone within `EXIT_WAIT` of the kill as well (a death signal would reach only `sh`). The
//! report counts those grandchildren alive after the kill, and again once every run was taken
//! back, when the rescuer's sweep (`coco::process::sweep`, the second line) has run; either
//! count above 0 fails the check — their retries would otherwise run beside them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure};
use chrono::{DateTime, Utc};
use coco::queue::run::RunRecord;
use coco::queue::state::RunState;
use coco::store::RunFilter;
use coco::worker::run::RunSettings;
use coco::worker::{Worker, WorkerSettings};
use serde_json::json;
use tokio::time::Instant;

use crate::sandbox::{Sandbox, alive_as};

/// How long the recorded pids get to disappear after the worker was reaped.
const EXIT_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Crash {
    /// `bench.nap` runs in flight when the worker was killed.
    pub runs: usize,
    /// `bench.nest` probe runs in flight too.
    pub probe: usize,
    /// Victim spawned → every run running with its pid recorded.
    pub in_flight_after: Duration,
    /// Recorded job pids still alive `EXIT_WAIT` after the kill.
    pub survivors: usize,
    /// Kill → the last recorded pid gone.
    pub pids_gone: Duration,
    /// Kill → the last run taken back (from the runs' histories).
    pub taken_back: Duration,
    /// Kill → every run ended.
    pub all_done: Duration,
    /// Runs that did not end `complete` at attempt 1 with the expected history.
    pub wrong: Vec<String>,
    /// Probe: grandchildren alive after the kill, of how many.
    pub grandchildren: (usize, usize),
    /// Probe: grandchildren alive once every run was taken back, of how many.
    pub grandchildren_after: (usize, usize),
}

impl Crash {
    pub fn passed(&self) -> bool {
        self.survivors == 0
            && self.wrong.is_empty()
            && self.grandchildren.0 == 0
            && self.grandchildren_after.0 == 0
    }

    pub fn verdict(&self) -> String {
        if self.passed() {
            format!(
                "pass ({} in flight, all retried once, 0 survivors)",
                self.runs + self.probe
            )
        } else {
            format!(
                "FAIL ({} survivors, {} runs wrong, {} grandchildren alive after the kill, {} once taken back)",
                self.survivors,
                self.wrong.len(),
                self.grandchildren.0,
                self.grandchildren_after.0
            )
        }
    }
}

pub async fn check(sandbox: &Sandbox, runs: usize, probe: usize) -> anyhow::Result<Crash> {
    let total = runs + probe;
    let (nap, nest) = (sandbox.job("nap").await?, sandbox.job("nest").await?);
    for i in 0..runs {
        sandbox.enqueue("nap", &nap, json!({ "i": i })).await?;
    }
    for i in 0..probe {
        sandbox.enqueue("nest", &nest, json!({ "i": i })).await?;
    }
    let spawned = Instant::now();
    let victim = sandbox.worker("victim", total)?;
    let first = wait_in_flight(sandbox, total).await?;
    let in_flight_after = spawned.elapsed();
    victim.kill().await?;
    let killed = Instant::now();
    let killed_at = Utc::now();
    let (survivors, pids_gone) = wait_pids_gone(&first).await;
    // The first tries' shells are gone: no grandchild is added until the retries start
    // (whose own grandchildren are not the crash's business).
    let orphans = grandchildren(sandbox);
    let mut grandchildren = alive_of(&orphans);
    while grandchildren.0 > 0 && killed.elapsed() < EXIT_WAIT {
        tokio::time::sleep(Duration::from_millis(10)).await;
        grandchildren = alive_of(&orphans);
    }
    eprintln!(
        "  {total} runs in flight {in_flight_after:.2?} after the worker's spawn; killed it; recorded pids gone after {pids_gone:.0?}, \
         {survivors} survivors; probe grandchildren alive: {}/{}",
        grandchildren.0, grandchildren.1
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rescuer = Worker::new(
        "rescuer",
        Arc::clone(&sandbox.store),
        rescuer_settings(total),
    );
    let rescuer = tokio::spawn(rescuer.run(async {
        let _ = stopped.await;
    }));
    wait_taken_back(sandbox, total).await?;
    // The rescuer sweeps right after its take-back is written: give it a moment (the
    // grandchildren would live for seconds on their own).
    let swept_by = Instant::now() + Duration::from_secs(1);
    let mut grandchildren_after = alive_of(&orphans);
    while grandchildren_after.0 > 0 && Instant::now() < swept_by {
        tokio::time::sleep(Duration::from_millis(10)).await;
        grandchildren_after = alive_of(&orphans);
    }
    eprintln!(
        "  all taken back; probe grandchildren alive: {}/{}",
        grandchildren_after.0, grandchildren_after.1
    );
    sandbox
        .wait_idle(Duration::from_millis(100), Duration::from_secs(120))
        .await?;
    let all_done = killed.elapsed();
    let _ = stop.send(());
    rescuer.await?;

    let records = sandbox.runs().await?;
    ensure!(records.len() == total, "{} runs stored", records.len());
    let wrong = records
        .iter()
        .filter_map(|run| retried_once(run, &first).err())
        .collect();
    Ok(Crash {
        runs,
        probe,
        in_flight_after,
        survivors,
        pids_gone,
        taken_back: last_take_back(&records, killed_at),
        all_done,
        wrong,
        grandchildren,
        grandchildren_after,
    })
}

/// Wait until every one of the `total` runs was taken back (its history has a loss).
async fn wait_taken_back(sandbox: &Sandbox, total: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = sandbox.runs().await?;
        let back = runs
            .iter()
            .filter(|r| r.history.iter().any(is_take_back))
            .count();
        if back == total {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "only {back} of {total} taken back after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a crashed run's first try looked like.
struct FirstTry {
    pid: u32,
    /// The program the pid runs (`sleep` for `nap`, `sh` for `nest`).
    comm: &'static str,
}

/// Wait until `total` runs are running with their pid recorded.
async fn wait_in_flight(
    sandbox: &Sandbox,
    total: usize,
) -> anyhow::Result<HashMap<String, FirstTry>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = RunFilter {
        state: Some(RunState::Running),
        ..RunFilter::default()
    };
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let runs = sandbox.store.list_runs(&running).await?;
        if runs.len() == total && runs.iter().all(|r| r.pid.is_some()) {
            return Ok(runs
                .into_iter()
                .map(|r| {
                    let comm = if r.job == "bench.nest" { "sh" } else { "sleep" };
                    let pid = r.pid.unwrap_or_default();
                    (r.id, FirstTry { pid, comm })
                })
                .collect());
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {total} runs in flight after 60 s: raise --nap-secs",
                runs.len()
            );
        }
        let complete = RunFilter {
            state: Some(RunState::Complete),
            limit: Some(1),
            ..RunFilter::default()
        };
        if !sandbox.store.list_runs(&complete).await?.is_empty() {
            bail!("a run completed before all were in flight: raise --nap-secs");
        }
    }
}

/// Poll the recorded pids until none runs its job's program any more (or `EXIT_WAIT`):
/// how many still do, and when the last one went.
async fn wait_pids_gone(first: &HashMap<String, FirstTry>) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        let alive = first.values().filter(|t| alive_as(t.pid, t.comm)).count();
        if alive == 0 || started.elapsed() > EXIT_WAIT {
            return (alive, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The probe's grandchildren (`sleep`s forked by `bench.nest`) still alive: (alive, total).
/// The probe's grandchildren (`sleep`s forked by `bench.nest`) recorded so far.
fn grandchildren(sandbox: &Sandbox) -> Vec<u32> {
    let path = sandbox.project_dir().join("grandchildren.txt");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Of `pids`, those still running `sleep`: (alive, total).
fn alive_of(pids: &[u32]) -> (usize, usize) {
    let alive = pids.iter().filter(|&&pid| alive_as(pid, "sleep")).count();
    (alive, pids.len())
}

/// A worker that takes back runs whose heartbeat is over 3 s old, checking 4× a second. (With
/// 1 s, on FerretDB, one heartbeat round over 55 runs could take longer than that, and the
/// rescuer took its own runs back as zombies.)
fn rescuer_settings(slots: usize) -> WorkerSettings {
    WorkerSettings {
        slots,
        heartbeat_every: Duration::from_millis(200),
        zombie_every: Duration::from_millis(250),
        zombie_after: Duration::from_secs(3),
        poll_min: Duration::from_millis(5),
        poll_max: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(1),
        run: RunSettings {
            grace: Duration::from_millis(500),
            ..RunSettings::default()
        },
        ..WorkerSettings::default()
    }
}

/// `Ok` when `run` was taken back once and completed by the rescuer with a new process.
fn retried_once(run: &RunRecord, first: &HashMap<String, FirstTry>) -> Result<(), String> {
    let states: Vec<RunState> = run.history.iter().map(|c| c.state).collect();
    let expected = [
        RunState::Pending,
        RunState::Running,
        RunState::Pending,
        RunState::Running,
        RunState::Complete,
    ];
    let old_pid = first.get(&run.id).map(|t| t.pid);
    if states != expected
        || run.attempt != 1
        || run.worker.as_deref() != Some("rescuer")
        || run.pid.is_none()
        || run.pid == old_pid
    {
        return Err(format!(
            "run {}: {:?} attempt {} worker {:?} pid {:?} (first {old_pid:?})",
            run.id, states, run.attempt, run.worker, run.pid
        ));
    }
    Ok(())
}

/// Is this history entry a take-back from a lost worker?
fn is_take_back(change: &coco::queue::run::StateChange) -> bool {
    change.state == RunState::Pending
        && change
            .note
            .as_deref()
            .is_some_and(|note| note.starts_with("lost with worker"))
}

/// Kill → the latest take-back entry of any run.
fn last_take_back(runs: &[RunRecord], killed_at: DateTime<Utc>) -> Duration {
    runs.iter()
        .flat_map(|r| &r.history)
        .filter(|c| is_take_back(c))
        .map(|c| c.at)
        .max()
        .and_then(|at| (at - killed_at).to_std().ok())
        .unwrap_or_default()
}
