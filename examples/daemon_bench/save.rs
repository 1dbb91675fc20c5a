//! Save-to-applied latency, and the start-up reconcile of a large home.
//!
//! The home holds `projects` project folders (`p000`, `p001`, …), each a `coco.yaml` with
//! `jobs` scheduled jobs (`j0`…; `command: ["true"]`, `schedule: "M H * * *"` in UTC, each
//! job its own minute, the hour 12 hours away from now so that no job fires and no next
//! fire is close to "now"). `coco daemon --no-worker --no-apps` runs on it: the converger and
//! the scheduler, as a daemon that only applies and fires would.
//!
//! Start-up: from just before the daemon is spawned, on an empty store, until (a) the store
//! lists every project as active (polled every 20 ms) and (b) the daemon logs `daemon
//! started`, which it does after its first convergence pass. The daemon's own `took=` of that
//! pass (its `applied:` line) is reported too. Afterwards every job must be stored active with
//! a next fire. Then, after the saves, the daemon is stopped and started again on the applied
//! home: spawn → `daemon started` is the start-up with nothing to apply.
//!
//! Saves: `saves` times, after a pause of 500–750 ms (random, so that saves fall at random
//! points of the scheduler's 2 s re-read of the jobs), a random job of a random project gets a
//! new minute; its manifest is written in place (truncate and write, `std::fs::write`). The
//! time runs from just before the write until `get_job` (polled every 2 ms) shows the new next
//! fire, computed here with `coco::schedule` as the apply path does. That covers
//! the inotify event, the watcher's debounce (15 ms of quiet), the pass — discover and parse
//! every manifest of the home, read every stored project, job and app, diff, write the one
//! changed job and its project — and this process noticing. The daemon's `took=` of each
//! save's pass is collected from its log, to split the figure. A save not seen within 10 s
//! fails the check.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chrono::{Timelike as _, Utc};
use coco::schedule::Schedule;
use tokio::time::Instant;

use crate::sandbox::{Backend, CONFIG, Rng, Sandbox};

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct Save {
    pub projects: usize,
    pub jobs: usize,
    /// Spawn → the store shows every project applied.
    pub startup_store: Duration,
    /// Spawn → `daemon started` logged (its first pass done).
    pub startup_log: Duration,
    /// The daemon's `took=` of its start-up pass.
    pub startup_took: Option<Duration>,
    /// Spawn → `daemon started` again, on the applied home.
    pub restart_log: Duration,
    /// Write → the new next fire in the store, per save (µs), in order.
    pub latencies: Vec<u64>,
    /// The daemon's `took=` of each pass after a save (µs).
    pub took: Vec<u64>,
    /// Passes the daemon logged after start-up (one per save if none was split).
    pub passes: usize,
    /// Saves never seen in the store.
    pub missed: Vec<String>,
}

impl Save {
    pub fn passed(&self) -> bool {
        self.missed.is_empty()
    }
}

/// `coco.yaml` of project `name`: one job per minute in `minutes`, at `hour` UTC.
fn manifest(name: &str, minutes: &[u32], hour: u32) -> String {
    let mut text = format!(
        "project: {name}\ndescription: Benchmark project {name}\nenvironment:\n  workdir: .\njobs:\n"
    );
    for (k, minute) in minutes.iter().enumerate() {
        text.push_str(&format!(
            "  j{k}:\n    description: job {k} of {name}\n    command: [\"true\"]\n    \
             schedule: \"{minute} {hour} * * *\"\n    timezone: UTC\n    attempts: 2\n"
        ));
    }
    text
}

pub async fn measure(
    coco: &std::path::Path,
    backend: &Backend,
    projects: usize,
    jobs: usize,
    saves: usize,
) -> anyhow::Result<Save> {
    ensure!(jobs <= 60, "at most 60 jobs per project (one minute each)");
    let hour = (Utc::now().hour() + 12) % 24;
    let names: Vec<String> = (0..projects).map(|p| format!("p{p:03}")).collect();
    let mut minutes: Vec<Vec<u32>> = (0..projects).map(|_| (0..jobs as u32).collect()).collect();
    let sandbox = Sandbox::new(coco, backend, "save", CONFIG, |dir| {
        for (name, minutes) in names.iter().zip(&minutes) {
            let folder = dir.join("home").join(name);
            std::fs::create_dir_all(&folder)?;
            std::fs::write(folder.join("coco.yaml"), manifest(name, minutes, hour))?;
        }
        Ok(())
    })
    .await?;
    let result = async {
        // Start-up on an empty store.
        eprintln!("   start-up: {projects} projects × {jobs} jobs");
        let spawned = Instant::now();
        let mut daemon = sandbox.daemon(&["--no-worker", "--no-apps"], "save")?;
        let (mut store_done, mut log_done) = (None, None);
        while store_done.is_none() || log_done.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if log_done.is_none() && daemon.log().contains("daemon started") {
                log_done = Some(spawned.elapsed());
            }
            if store_done.is_none() {
                let active = sandbox
                    .store
                    .list_projects()
                    .await?
                    .iter()
                    .filter(|p| p.active)
                    .count();
                if active == projects {
                    store_done = Some(spawned.elapsed());
                }
            }
            daemon.check_running()?;
            if spawned.elapsed() > Duration::from_secs(600) {
                bail!(
                    "the start-up pass took over 10 minutes:\n{}",
                    daemon.log_tail()
                );
            }
        }
        let stored = sandbox.store.list_jobs(None).await?;
        let applied = stored
            .iter()
            .filter(|j| j.active && j.next_fire.is_some())
            .count();
        ensure!(
            applied == projects * jobs,
            "{applied} of {} jobs applied with a next fire",
            projects * jobs
        );
        let startup_took = passes(&daemon.log()).first().copied();

        // Saves.
        eprintln!("   {saves} saves");
        let mut rng = Rng::seeded();
        let mut latencies = Vec::with_capacity(saves);
        let mut missed = Vec::new();
        for i in 0..saves {
            tokio::time::sleep(Duration::from_millis(500 + rng.below(250) as u64)).await;
            let p = rng.below(projects);
            let k = rng.below(jobs);
            let old = minutes[p][k];
            let new = (old + 1 + rng.below(58) as u32) % 60;
            minutes[p][k] = new;
            let schedule = Schedule::parse(&format!("{new} {hour} * * *"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let expected = schedule.next_fire(chrono_tz::UTC, Utc::now());
            let id = format!("{}.j{k}", names[p]);
            let text = manifest(&names[p], &minutes[p], hour);
            let file = sandbox.home().join(&names[p]).join("coco.yaml");
            let before = Instant::now();
            std::fs::write(&file, text)?;
            let seen = loop {
                let job = sandbox.store.get_job(&id).await?.context("job vanished")?;
                if job.next_fire == expected {
                    break Some(before.elapsed());
                }
                if before.elapsed() > Duration::from_secs(10) {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            match seen {
                Some(latency) => latencies.push(latency.as_micros() as u64),
                None => {
                    eprintln!("   save {i} ({id}) not applied within 10 s");
                    missed.push(format!("save {i}: {id} minute {old} → {new}"));
                }
            }
            daemon.check_running()?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let all = passes(&daemon.log());
        daemon.stop().await?;

        // Start-up again, nothing to apply.
        let spawned = Instant::now();
        let mut again = sandbox.daemon(&["--no-worker", "--no-apps"], "save-again")?;
        again
            .wait_for_log("daemon started", Duration::from_secs(600))
            .await?;
        let restart_log = spawned.elapsed();
        ensure!(
            !again.log().contains("applied:"),
            "the second start applied something:\n{}",
            again.log_tail()
        );
        again.stop().await?;

        Ok(Save {
            projects,
            jobs,
            startup_store: store_done.unwrap_or_default(),
            startup_log: log_done.unwrap_or_default(),
            startup_took,
            restart_log,
            latencies,
            took: all.iter().skip(1).map(|d| d.as_micros() as u64).collect(),
            passes: all.len().saturating_sub(1),
            missed,
        })
    };
    let result = result.await;
    sandbox.close().await;
    result
}

/// The `took=` of every `applied:` line of a daemon's log, in order.
fn passes(log: &str) -> Vec<Duration> {
    log.lines()
        .filter(|line| line.contains("applied:"))
        .filter_map(|line| {
            let rest = &line[line.rfind("took=")? + 5..];
            parse_debug_duration(rest.split_whitespace().next()?)
        })
        .collect()
}

/// A `Duration` as `{:?}` prints it: `850ns`, `12.5µs`, `3.25ms`, `1.5s`.
pub fn parse_debug_duration(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ns") {
        (n, 1e-9)
    } else if let Some(n) = text.strip_suffix("µs") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let seconds = number.parse::<f64>().ok()? * scale;
    Some(Duration::from_secs_f64(seconds))
}
