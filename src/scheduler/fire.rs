//! The scheduler task: fire the scheduled jobs of the store at their instants.
//!
//! It keeps the active scheduled jobs in memory (read from the store at start, whenever
//! [`Scheduler::reload`] is notified — the daemon does after each apply — and every
//! `reload_every`, to see what other processes applied) and sleeps until the earliest
//! `next_fire`. Then, per job, [`super::due::due`] says what to fire; each instant is first
//! recorded under its unique `(job, instant)` key ([`Store::record_fire`]) and only the process
//! that recorded it enqueues, so several schedulers on one store never double a fire. The
//! run's dedupe decides `concurrency`: `forbid` skips the fire (logged) while a run of the
//! job with the same arguments is active, `replace` kills that run and enqueues, `allow`
//! gives the run a dedupe key of its own ([`crate::queue::new_run`]). The new `next_fire`
//! and `last_fire` are written back while the job's definition is unchanged.
//!
//! Caveat: a scheduler that dies between recording a fire and enqueueing its run loses that
//! one fire (the key is taken); the window is one store call.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::Notify;

use super::due::{Due, due};
use super::schedule::Schedule;
use crate::manifest::{Concurrency, Job};
use crate::queue::{self, NewRun, new_run};
use crate::store::{Cancel, Cancelled, Enqueued, JobRecord, Store, StoreResult};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Re-read the jobs at least this often (changes applied by other processes).
    pub reload_every: Duration,
    /// The state folder whose workers are woken after an enqueue; `None`: they poll.
    pub state_dir: Option<PathBuf>,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            reload_every: Duration::from_secs(2),
            state_dir: None,
        }
    }
}

/// What a scheduler did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FireCounts {
    /// Runs enqueued.
    pub enqueued: usize,
    /// Instants another scheduler had recorded first.
    pub lost: usize,
    /// Fires skipped because a run was still active (`concurrency: forbid`).
    pub forbidden: usize,
    /// Active runs killed for a new one (`concurrency: replace`).
    pub replaced: usize,
    /// Missed instants skipped (`catchup`).
    pub missed: usize,
}

/// One scheduled job as the scheduler holds it.
#[derive(Debug, Clone)]
struct Entry {
    record: JobRecord,
    job: Job,
    schedule: Schedule,
    tz: Tz,
    /// The first instant not handled yet.
    next: Option<DateTime<Utc>>,
}

/// Fires scheduled jobs; see the module docs.
pub struct Scheduler {
    store: Arc<dyn Store>,
    settings: SchedulerSettings,
    reload: Arc<Notify>,
    jobs: BTreeMap<String, Entry>,
    counts: FireCounts,
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, settings: SchedulerSettings) -> Scheduler {
        Scheduler {
            store,
            settings,
            reload: Arc::new(Notify::new()),
            jobs: BTreeMap::new(),
            counts: FireCounts::default(),
        }
    }

    /// Notify this to make the scheduler re-read the jobs now.
    pub fn reload(&self) -> Arc<Notify> {
        Arc::clone(&self.reload)
    }

    /// Fire jobs until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> FireCounts {
        tracing::info!("scheduler started");
        let mut shutdown = std::pin::pin!(shutdown);
        let mut reload_at = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= reload_at {
                if let Err(error) = self.load().await {
                    tracing::warn!("cannot read the scheduled jobs: {error}");
                }
                reload_at = tokio::time::Instant::now() + self.settings.reload_every;
            }
            let now = Utc::now();
            let due_ids: Vec<String> = self
                .jobs
                .iter()
                .filter(|(_, entry)| entry.next.is_some_and(|next| next <= now))
                .map(|(id, _)| id.clone())
                .collect();
            for id in due_ids {
                if let Err(error) = self.fire_job(&id, now).await {
                    tracing::warn!(job = %id, "cannot fire: {error}");
                }
            }
            let wake_at = self
                .jobs
                .values()
                .filter_map(|entry| entry.next)
                .min()
                .map_or(reload_at, |next| reload_at.min(instant_of(next)));
            tokio::select! {
                () = tokio::time::sleep_until(wake_at) => {}
                () = self.reload.notified() => reload_at = tokio::time::Instant::now(),
                () = &mut shutdown => break,
            }
        }
        tracing::info!(?self.counts, "scheduler stopped");
        self.counts
    }

    /// Re-read the active scheduled jobs. A job whose definition is unchanged keeps the
    /// point it reached (this scheduler may be ahead of what the store shows).
    async fn load(&mut self) -> StoreResult<()> {
        let records = self.store.list_jobs(None).await?;
        let mut jobs = BTreeMap::new();
        for record in records.into_iter().filter(|record| record.active) {
            let Some(entry) = entry_of(record) else {
                continue;
            };
            let entry = match self.jobs.remove(&entry.record.id) {
                Some(old) if old.record.hash == entry.record.hash => Entry {
                    next: old.next.max(entry.next),
                    ..entry
                },
                _ => entry,
            };
            jobs.insert(entry.record.id.clone(), entry);
        }
        self.jobs = jobs;
        Ok(())
    }

    /// Fire what is due of job `id` at `now` and write its fire times back.
    async fn fire_job(&mut self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let Some(entry) = self.jobs.get(id).cloned() else {
            return Ok(());
        };
        let Some(from) = entry.next else {
            return Ok(());
        };
        let Due {
            fire,
            skipped,
            capped,
            next,
        } = due(&entry.schedule, entry.tz, from, now, entry.job.catchup);
        if skipped > 0 {
            self.counts.missed += skipped;
            tracing::info!(
                job = %id,
                catchup = ?entry.job.catchup,
                "{skipped} missed fire(s) skipped"
            );
        }
        if capped {
            tracing::warn!(
                job = %id,
                "catchup: all fires only the latest {} missed instants",
                super::due::CATCHUP_LIMIT
            );
        }
        let mut last_fire = entry.record.last_fire;
        for instant in fire {
            if !self.store.record_fire(id, instant).await? {
                self.counts.lost += 1;
                continue;
            }
            last_fire = Some(instant);
            self.enqueue(&entry, instant, now).await?;
        }
        if let Some(held) = self.jobs.get_mut(id) {
            held.next = next;
            held.record.last_fire = last_fire;
        }
        self.store
            .set_fire_times(id, &entry.record.hash, last_fire, next)
            .await?;
        Ok(())
    }

    /// Enqueue the run of `entry` fired for `instant`, as its `concurrency` says.
    async fn enqueue(
        &mut self,
        entry: &Entry,
        instant: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let id = &entry.record.id;
        let args = serde_json::to_value(&entry.job.args).unwrap_or_default();
        let run = new_run(
            &entry.job,
            NewRun {
                scheduled_for: Some(instant),
                ..NewRun::new(id, &entry.record.project, args, now)
            },
        );
        let active = match self.store.enqueue(&run).await? {
            Enqueued::Queued(run_id) => {
                self.enqueued(id, &run_id, instant);
                return Ok(());
            }
            Enqueued::Duplicate(active) => active,
        };
        if entry.job.concurrency != Concurrency::Replace {
            self.counts.forbidden += 1;
            tracing::info!(job = %id, %instant, run = %active, "fire skipped: the run is still active (concurrency: forbid)");
            return Ok(());
        }
        match self.store.cancel_run(&active, Cancel::Kill, now).await? {
            Cancelled::Done(_) => {
                self.counts.replaced += 1;
                tracing::info!(job = %id, run = %active, "killed for the next fire (concurrency: replace)");
                if let Some(state_dir) = &self.settings.state_dir {
                    queue::wake_control(state_dir);
                }
            }
            Cancelled::Refused(_) | Cancelled::Missing => {}
        }
        match self.store.enqueue(&run).await? {
            Enqueued::Queued(run_id) => self.enqueued(id, &run_id, instant),
            Enqueued::Duplicate(other) => {
                tracing::warn!(job = %id, run = %other, "fire skipped: another run took the place of the one killed");
            }
        }
        Ok(())
    }

    fn enqueued(&mut self, job: &str, run: &str, instant: DateTime<Utc>) {
        self.counts.enqueued += 1;
        tracing::info!(%job, %run, %instant, "fired");
        if let Some(state_dir) = &self.settings.state_dir {
            queue::wake(state_dir);
        }
    }
}

/// The scheduler's view of a stored job; `None` if it has no schedule or its stored
/// definition no longer parses (logged).
fn entry_of(record: JobRecord) -> Option<Entry> {
    let job = match queue::job_of(&record) {
        Ok(job) => job,
        Err(error) => {
            tracing::warn!(job = %record.id, "stored definition unreadable: {error}");
            return None;
        }
    };
    let text = job.schedule.clone()?;
    let (schedule, tz) = match (Schedule::parse(&text), job.timezone.parse::<Tz>()) {
        (Ok(schedule), Ok(tz)) => (schedule, tz),
        (Err(error), _) => {
            tracing::warn!(job = %record.id, "stored schedule invalid: {error}");
            return None;
        }
        (_, Err(error)) => {
            tracing::warn!(job = %record.id, "stored time zone invalid: {error}");
            return None;
        }
    };
    // Applied without a next fire (or before the scheduler existed): start from now, as a
    // job that was never due.
    let next = record
        .next_fire
        .or_else(|| schedule.next_fire(tz, Utc::now()));
    Some(Entry {
        record,
        job,
        schedule,
        tz,
        next,
    })
}

/// The tokio instant at which wall-clock `at` comes (now, if it has passed).
fn instant_of(at: DateTime<Utc>) -> tokio::time::Instant {
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + wait
}
