//! A fire burst: `jobs` jobs (of one project `burst-0`, or spread over several) scheduled at
//! the same instant
//! (`S * * * * *`: once a minute, at second S, a few seconds after the sandbox is ready),
//! fired by the real scheduler ([`coco::scheduler::Scheduler`]) and run by a worker
//! ([`coco::worker::Worker`], a slot for each job, under a process guard and its containment
//! as `coco worker` runs them), both in this process on one store, as `coco daemon` runs them.
//!
//! Measured from the instant itself: when the runs were enqueued (goal: all within 100 ms),
//! by the scheduler's own `fired` log events (logged right after each enqueue; a `created`
//! is the time of the scheduler's pass, taken before the first), caught by a tracing layer of
//! this process; and when the last one started (goal: within 1 s), by the runs' `started`.
//! The job is `true`.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Timelike, Utc};
use coco::process::contain::Mode;
use coco::process::guard::Guard;
use coco::scheduler::{FireCounts, Scheduler, SchedulerSettings};
use coco::worker::run::RunSettings;
use coco::worker::{Worker, WorkerSettings};
use tokio::time::Instant;

use crate::sandbox::Sandbox;

/// The wall-clock time of every `fired` event of the scheduler in this process.
fn fired_at() -> &'static Mutex<Vec<DateTime<Utc>>> {
    static FIRED: OnceLock<Mutex<Vec<DateTime<Utc>>>> = OnceLock::new();
    FIRED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt as _;
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(FiredLayer),
        );
        Mutex::default()
    })
}

/// Records the time of the scheduler's `fired` events.
struct FiredLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FiredLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}") == "fired" {
                    self.0 = true;
                }
            }
        }
        if !event.metadata().target().starts_with("coco::scheduler") {
            return;
        }
        let mut fired = Message(false);
        event.record(&mut fired);
        if fired.0 {
            let now = Utc::now();
            fired_at().lock().expect("not poisoned").push(now);
        }
    }
}

/// Seconds between the sandbox being ready and the burst's instant.
pub const LEAD: i64 = 8;

/// When the runs of one burst were enqueued and started, after its instant.
#[derive(Debug, Clone)]
pub struct Burst {
    pub jobs: usize,
    pub projects: usize,
    pub enqueued_p50: Duration,
    pub enqueued_last: Duration,
    pub started_p50: Duration,
    pub started_last: Duration,
    pub counts: FireCounts,
}

/// The second of the minute the burst's jobs fire at, and its next instant: `LEAD` seconds
/// from now (whole seconds).
pub fn instant_ahead() -> (u32, DateTime<Utc>) {
    let at = (Utc::now() + chrono::Duration::seconds(LEAD))
        .with_nanosecond(0)
        .expect("0 ns is valid");
    (at.second(), at)
}

/// The manifests of projects `burst-P` (folder and text): `jobs` jobs `j-N` in all, spread
/// over `projects`, each `S * * * * *`.
pub fn manifests(jobs: usize, projects: usize, second: u32) -> Vec<(String, String)> {
    let projects = projects.clamp(1, jobs.max(1));
    (0..projects)
        .map(|p| {
            let name = format!("burst-{p}");
            let mut text = format!("project: {name}\nenvironment:\n  workdir: .\njobs:\n");
            for n in (p..jobs).step_by(projects) {
                text.push_str(&format!(
                    "  j-{n:04}:\n    command: [\"true\"]\n    schedule: \"{second} * * * * *\"\n"
                ));
            }
            (name, text)
        })
        .collect()
}

pub async fn measure(
    sandbox: &Sandbox,
    coco: &std::path::Path,
    jobs: usize,
    projects: usize,
    instant: DateTime<Utc>,
) -> anyhow::Result<Burst> {
    fired_at().lock().expect("not poisoned").clear();
    let guard = Guard::start(coco.to_path_buf(), Mode::Auto).context("starting a guard")?;
    let settings = WorkerSettings {
        slots: jobs,
        wake_dir: Some(coco::wake::dir(&sandbox.state_dir())),
        run: RunSettings {
            guard: Some(guard.handle()),
            ..RunSettings::default()
        },
        ..WorkerSettings::default()
    };
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        Worker::new("burst", Arc::clone(&sandbox.store), settings).run(async move {
            let _ = worker_stopped.await;
        }),
    );
    sandbox
        .wait_for_listeners(1, Duration::from_secs(30))
        .await?;
    if Utc::now() + chrono::Duration::seconds(1) > instant {
        bail!("the sandbox took too long: the burst's instant {instant} is (nearly) past");
    }
    let settings = SchedulerSettings {
        state_dir: Some(sandbox.state_dir()),
        ..SchedulerSettings::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(Scheduler::new(Arc::clone(&sandbox.store), settings).run(
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(LEAD as u64 + 60);
    let runs = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let runs: Vec<_> = sandbox
            .runs()
            .await?
            .into_iter()
            .filter(|run| run.job.starts_with("burst-"))
            .collect();
        if runs.len() >= jobs && runs.iter().all(|run| run.started.is_some()) {
            break runs;
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {jobs} burst runs enqueued, {} started within a minute",
                runs.len(),
                runs.iter().filter(|run| run.started.is_some()).count()
            );
        }
    };
    let _ = stop.send(());
    let counts = scheduler.await.context("the scheduler task")?;
    let _ = stop_worker.send(());
    worker.await.context("the worker task")?;
    drop(guard);
    let after = |at: DateTime<Utc>| (at - instant).to_std().unwrap_or_default();
    let mut enqueued: Vec<Duration> = fired_at()
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|&at| after(at))
        .collect();
    if enqueued.len() != jobs {
        bail!("{} `fired` events for {jobs} jobs", enqueued.len());
    }
    let mut started: Vec<Duration> = runs.iter().filter_map(|r| r.started).map(after).collect();
    enqueued.sort();
    started.sort();
    let p50 = |all: &[Duration]| all[all.len() / 2];
    let burst = Burst {
        jobs,
        projects,
        enqueued_p50: p50(&enqueued),
        enqueued_last: *enqueued.last().context("no run")?,
        started_p50: p50(&started),
        started_last: *started.last().context("no run")?,
        counts,
    };
    eprintln!(
        "  {jobs} fired: enqueued p50 {:.1?}, last {:.1?}; started p50 {:.1?}, last {:.1?} ({counts})",
        burst.enqueued_p50, burst.enqueued_last, burst.started_p50, burst.started_last
    );
    Ok(burst)
}
