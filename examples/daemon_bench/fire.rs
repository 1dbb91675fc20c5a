//! Fire precision: how late the scheduler of a running daemon enqueues a job due every
//! second, and whether it fires every instant exactly once.
//!
//! One project `clock` with job `tick`: `command: [date, "+%s%N"]`, `schedule: "* * * * *
//! *"` (every second), `concurrency: allow`. `coco daemon --no-apps` (scheduler and worker)
//! applies it at start and runs for `secs` seconds, then is stopped with SIGTERM. Every run
//! the scheduler enqueued carries its instant in its first history note (`scheduled for
//! RFC 3339`, written by `coco::queue::new_run`). Per run, three lateness figures against that
//! instant:
//!
//! - **created**: the run's `created` — the scheduler's `now` when it woke for the instant,
//!   before recording the fire (millisecond resolution, as the store keeps it; the run's id
//!   holds the instant itself, see `coco::queue::scheduled_run_id`, so it tells nothing);
//! - **enqueued**: the timestamp (µs) of the daemon's `fired … run=ID` log line, which the
//!   scheduler writes once the store accepted the run (after recording the fire and the
//!   insert): the figure the target is about;
//! - **started**: the job's own `date +%s%N` (ns) — enqueue, worker wake-up, claim, spawn:
//!   the end-to-end figure, an upper bound of the enqueue time.
//!
//! The check: the instants are unique (none doubled), and every second between the first and
//! the last is there (none missed); the first comes within 2 s of the daemon's start-up pass.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::ensure;
use chrono::{DateTime, Utc};
use coco::store::RunFilter;
use tokio::time::Instant;

use crate::sandbox::{Backend, CONFIG, Sandbox};

const MANIFEST: &str = r#"project: clock
environment:
  workdir: .
jobs:
  tick:
    command: [date, "+%s%N"]
    schedule: "* * * * * *"
    timezone: UTC
    concurrency: allow
"#;

/// What the benchmark measured; lateness in microseconds.
#[derive(Debug, Clone)]
pub struct Fire {
    pub secs: u64,
    /// Runs the scheduler enqueued.
    pub fired: usize,
    pub created: Vec<i64>,
    pub enqueued: Vec<i64>,
    pub started: Vec<i64>,
    /// Instants between the first and the last that have no run.
    pub missed: Vec<String>,
    /// Instants with more than one run.
    pub doubled: Vec<String>,
    /// Runs without a `scheduled for` note, or other surprises.
    pub wrong: Vec<String>,
}

impl Fire {
    pub fn passed(&self) -> bool {
        self.missed.is_empty() && self.doubled.is_empty() && self.wrong.is_empty()
    }
}

pub async fn measure(coco: &std::path::Path, backend: &Backend, secs: u64) -> anyhow::Result<Fire> {
    let sandbox = Sandbox::new(coco, backend, "fire", CONFIG, |dir| {
        std::fs::create_dir_all(dir.join("home/clock"))?;
        std::fs::write(dir.join("home/clock/coco.yaml"), MANIFEST)?;
        Ok(())
    })
    .await?;
    let result = async {
        let mut daemon = sandbox.daemon(&["--no-apps"], "fire")?;
        daemon
            .wait_for_log("daemon started", Duration::from_secs(60))
            .await?;
        let started = Utc::now();
        eprintln!("   firing every second for {secs} s");
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250)).await;
            daemon.check_running()?;
        }
        let daemon_log = daemon.log();
        daemon.stop().await?;
        analyse(&sandbox, secs, started, &daemon_log).await
    };
    let result = result.await;
    sandbox.close().await;
    result
}

async fn analyse(
    sandbox: &Sandbox,
    secs: u64,
    started: DateTime<Utc>,
    log: &str,
) -> anyhow::Result<Fire> {
    let fired = fired_lines(log);
    let runs = sandbox
        .store
        .list_runs(&RunFilter {
            job: Some("clock.tick".into()),
            ..RunFilter::default()
        })
        .await?;
    let mut wrong = Vec::new();
    let mut by_instant: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
    let (mut created, mut enqueued, mut begun) = (Vec::new(), Vec::new(), Vec::new());
    for run in &runs {
        let note = run.history.first().and_then(|h| h.note.as_deref());
        let Some(instant) = note
            .and_then(|n| n.strip_prefix("scheduled for "))
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
        else {
            wrong.push(format!(
                "run {} has no `scheduled for` note: {note:?}",
                run.id
            ));
            continue;
        };
        *by_instant.entry(instant).or_default() += 1;
        let us = |t: DateTime<Utc>| (t - instant).num_microseconds().unwrap_or(i64::MAX);
        created.push(us(run.created));
        if let Some(at) = fired.get(run.id.as_str()) {
            enqueued.push(us(*at));
        }
        // The job's stamp, for runs that ran (the last ones may have been handed back).
        if let Some(output) = sandbox.store.get_output(&run.id).await? {
            // The kept line is `HH:MM:SS.mmm out TEXT`: the stamp is its last word.
            if let Some(ns) = output
                .split_whitespace()
                .last()
                .and_then(|w| w.parse::<i64>().ok())
            {
                let instant_ns = instant.timestamp_nanos_opt().unwrap_or_default();
                begun.push((ns - instant_ns) / 1000);
            }
        }
    }
    let doubled = by_instant
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, n)| format!("{t} fired {n} times"))
        .collect();
    let mut missed = Vec::new();
    if let (Some(first), Some(last)) = (
        by_instant.keys().next().copied(),
        by_instant.keys().last().copied(),
    ) {
        let mut t = first;
        while t <= last {
            if !by_instant.contains_key(&t) {
                missed.push(format!("{t} never fired"));
            }
            t += chrono::TimeDelta::seconds(1);
        }
        if first - started > chrono::TimeDelta::seconds(2) {
            missed.push(format!(
                "the first fire is {first}, more than 2 s after the start-up pass ({started})"
            ));
        }
    }
    ensure!(
        by_instant.len() as u64 + 3 >= secs,
        "only {} instants fired in {secs} s",
        by_instant.len()
    );
    Ok(Fire {
        secs,
        fired: runs.len(),
        created,
        enqueued,
        started: begun,
        missed,
        doubled,
        wrong,
    })
}

/// When the daemon logged `fired … run=ID` for each run id (its log's own timestamps).
fn fired_lines(log: &str) -> BTreeMap<&str, DateTime<Utc>> {
    log.lines()
        .filter(|line| line.contains(" fired "))
        .filter_map(|line| {
            let at = DateTime::parse_from_rfc3339(line.split_whitespace().next()?).ok()?;
            let run = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("run="))?;
            Some((run, at.with_timezone(&Utc)))
        })
        .collect()
}
