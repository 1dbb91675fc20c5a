//! The scheduler task: fire the scheduled jobs of the store at their instants.
//!
//! It keeps the active scheduled jobs in memory (read from the store at start, whenever
//! [`Scheduler::reload`] is notified — the daemon does after each apply — and, to see what
//! other processes applied, every `reload_every` when the jobs' marker moved, else every
//! [`FULL_RELOAD_EVERY`]) and sleeps until the earliest
//! `next_fire`. Then, for up to [`FIRE_BATCH`] due jobs at a time (each one's instants in
//! order; each step below one store call for the whole batch; the workers woken a few times
//! per pass, not once per run: [`Waker`]), [`super::due::due`] says what to fire; each
//! instant is first recorded under its unique `(job, instant)` key ([`Fires::record_fires`](crate::store::Fires::record_fires))
//! and only the process that recorded it enqueues, so several schedulers on one store never
//! double a fire. The
//! run's dedupe decides `concurrency`: `forbid` skips the fire (logged) while a run of the
//! job with the same arguments is active, `replace` kills that run and enqueues, `allow`
//! gives the run a dedupe key of its own ([`crate::queue::new_run`]). The new `next_fire`
//! and `last_fire` are written back while the job's definition is unchanged.
//!
//! A fire is recorded unsettled and settled with its outcome once handled. A scheduler that
//! dies in between would lose it (its key is taken), so every scheduler, on each reload,
//! takes over fires left unsettled for [`SchedulerSettings::recover_after`]
//! ([`Fires::retake_fire`](crate::store::Fires::retake_fire): one taker each) and handles them. A scheduled run's id is made
//! from its job and instant ([`queue::scheduled_run_id`]), so a taker sees when the run was
//! enqueued after all and never doubles it.
//!
//! How late each fire this scheduler recorded was (the pass's time minus the due instant)
//! is counted in the process's metrics ([`crate::metrics::fired`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::Notify;

use super::due::{Due, due};
use crate::manifest::{Catchup, Concurrency, Job};
use crate::queue::run::{Cancel, RunRecord};
use crate::queue::{self, NewRun, new_run};
use crate::schedule::Schedule;
use crate::store::{
    Cancelled, Enqueued, Fire, FireOutcome, FireTimes, JobRecord, Skipped, Store, StoreResult,
};

/// Jobs fired together, each step of their fires one store call for all of them
/// ([`Scheduler::fire_batch`]), so a burst of fires at one instant is a few round trips, not
/// four per fire.
const FIRE_BATCH: usize = 500;

/// Wake-ups after enqueues are at least this far apart during a pass (see [`Waker`]).
const WAKE_EVERY: Duration = Duration::from_millis(2);

/// The jobs are listed in full at least this often, even when their marker
/// ([`Catalog::jobs_marker`](crate::store::Catalog::jobs_marker)) did not move.
pub const FULL_RELOAD_EVERY: Duration = Duration::from_secs(60);

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Re-read the jobs at least this often (changes applied by other processes).
    pub reload_every: Duration,
    /// The state folder whose workers are woken after an enqueue; `None`: they poll.
    pub state_dir: Option<PathBuf>,
    /// A fire left unsettled this long is taken over: its scheduler stopped.
    pub recover_after: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            reload_every: Duration::from_secs(2),
            state_dir: None,
            recover_after: Duration::from_secs(30),
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
    /// Fires taken over from a scheduler that stopped before settling them.
    pub recovered: usize,
}

impl FireCounts {
    fn add(&mut self, other: &FireCounts) {
        self.enqueued += other.enqueued;
        self.lost += other.lost;
        self.forbidden += other.forbidden;
        self.replaced += other.replaced;
        self.missed += other.missed;
        self.recovered += other.recovered;
    }
}

impl std::fmt::Display for FireCounts {
    /// `2 enqueued, 0 lost to another scheduler, …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} enqueued, {} lost to another scheduler, {} skipped (concurrency: forbid), \
             {} replaced, {} missed, {} taken over",
            self.enqueued, self.lost, self.forbidden, self.replaced, self.missed, self.recovered
        )
    }
}

/// `catchup`'s value as written in coco.yaml.
fn catchup_name(catchup: Catchup) -> &'static str {
    match catchup {
        Catchup::None => "none",
        Catchup::Once => "once",
        Catchup::All => "all",
    }
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
    waker: Arc<Waker>,
    reload: Arc<Notify>,
    jobs: BTreeMap<String, Entry>,
    counts: FireCounts,
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, settings: SchedulerSettings) -> Scheduler {
        Scheduler {
            store,
            waker: Arc::new(Waker::new(settings.state_dir.clone())),
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
        // A full re-read at least this often, whatever the marker says (clocks of other hosts
        // may lag).
        let mut full_at = tokio::time::Instant::now();
        let mut marker = None;
        let mut notified = true;
        loop {
            if tokio::time::Instant::now() >= reload_at {
                // Between full re-reads, list the jobs only when the marker moved.
                let seen = self.store.jobs_marker().await.ok();
                let stale = notified
                    || seen.is_none()
                    || seen != marker
                    || tokio::time::Instant::now() >= full_at;
                if stale {
                    match self.load().await {
                        Ok(()) => {
                            marker = seen;
                            full_at = tokio::time::Instant::now() + FULL_RELOAD_EVERY;
                        }
                        Err(error) => crate::store::outage::failed(&error, || {
                            tracing::warn!("cannot read the scheduled jobs: {error}")
                        }),
                    }
                }
                notified = false;
                if let Err(error) = self.recover(Utc::now()).await {
                    crate::store::outage::failed(&error, || {
                        tracing::warn!("cannot look for unsettled fires: {error}")
                    });
                }
                reload_at = tokio::time::Instant::now() + self.settings.reload_every;
            }
            self.fire_due(Utc::now()).await;
            let wake_at = self
                .jobs
                .values()
                .filter_map(|entry| entry.next)
                .min()
                .map_or(reload_at, |next| reload_at.min(instant_of(next)));
            tokio::select! {
                () = tokio::time::sleep_until(wake_at) => {}
                () = self.reload.notified() => {
                    reload_at = tokio::time::Instant::now();
                    notified = true;
                }
                () = &mut shutdown => break,
            }
        }
        tracing::info!("scheduler stopped: {}", self.counts);
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

    /// Fire what is due at `now`, [`FIRE_BATCH`] jobs at a time ([`Scheduler::fire_batch`]),
    /// then one wake-up for what was enqueued since the last.
    async fn fire_due(&mut self, now: DateTime<Utc>) {
        let due = self
            .jobs
            .values()
            .filter(|entry| entry.next.is_some_and(|next| next <= now))
            .cloned()
            .collect::<Vec<_>>();
        for batch in due.chunks(FIRE_BATCH) {
            self.fire_batch(batch, now).await;
        }
        self.waker.flush();
    }

    /// Fire what is due of the jobs `entries` at `now`, each step for all of them at once:
    /// record their due instants ([`Fires::record_fires`](crate::store::Fires::record_fires)), enqueue the runs of the fires
    /// this scheduler won ([`Queue::enqueue_all`](crate::store::Queue::enqueue_all), then the `concurrency` of those that
    /// found a run active), settle those fires ([`Fires::settle_fires`](crate::store::Fires::settle_fires)), and write the
    /// jobs' fire times back ([`Fires::set_fire_times_all`](crate::store::Fires::set_fire_times_all)). A step that fails leaves the
    /// jobs where they were (their recorded fires are taken over later, unsettled).
    ///
    /// [`Fires::record_fires`](crate::store::Fires::record_fires): crate::store::Fires::record_fires
    /// [`Queue::enqueue_all`](crate::store::Queue::enqueue_all): crate::store::Queue::enqueue_all
    /// [`Fires::settle_fires`](crate::store::Fires::settle_fires): crate::store::Fires::settle_fires
    /// [`Fires::set_fire_times_all`](crate::store::Fires::set_fire_times_all): crate::store::Fires::set_fire_times_all
    async fn fire_batch(&mut self, entries: &[Entry], now: DateTime<Utc>) {
        let mut counts = FireCounts::default();
        let result = self.fire_entries(entries, now, &mut counts).await;
        self.counts.add(&counts);
        if let Err(error) = result {
            crate::store::outage::failed(&error, || {
                tracing::warn!("cannot fire {} job(s): {error}", entries.len())
            });
        }
    }

    async fn fire_entries(
        &mut self,
        entries: &[Entry],
        now: DateTime<Utc>,
        counts: &mut FireCounts,
    ) -> StoreResult<()> {
        let store = Arc::clone(&self.store);
        let store = store.as_ref();
        // What is due of each job: its instants (in order) and where it then is.
        let mut nexts = Vec::with_capacity(entries.len());
        let mut wanted: Vec<(usize, DateTime<Utc>)> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let Some(from) = entry.next else {
                nexts.push(None);
                continue;
            };
            let Due {
                fire,
                skipped,
                capped,
                next,
            } = due(&entry.schedule, entry.tz, from, now, entry.job.catchup);
            log_missed(entry, skipped, capped, counts);
            wanted.extend(fire.into_iter().map(|instant| (i, instant)));
            nexts.push(Some(next));
        }

        // Recorded before enqueued: only the scheduler that recorded a fire enqueues it.
        let keys: Vec<(String, DateTime<Utc>)> = wanted
            .iter()
            .map(|&(i, instant)| (entries[i].record.id.clone(), instant))
            .collect();
        let recorded = store.record_fires(&keys).await?;
        let mut last_fires: Vec<Option<DateTime<Utc>>> =
            entries.iter().map(|entry| entry.record.last_fire).collect();
        let mut won = Vec::new();
        for (&(i, instant), recorded) in wanted.iter().zip(recorded) {
            if recorded {
                last_fires[i] = Some(instant);
                won.push((i, instant));
                crate::metrics::fired((now - instant).to_std().unwrap_or_default());
            } else {
                counts.lost += 1;
            }
        }

        let runs: Vec<RunRecord> = won
            .iter()
            .map(|&(i, instant)| scheduled_run(&entries[i], instant, now))
            .collect();
        let enqueued = store.enqueue_all(&runs).await?;
        let mut settled = Vec::with_capacity(won.len());
        for ((&(i, instant), run), enqueued) in won.iter().zip(&runs).zip(enqueued) {
            let entry = &entries[i];
            let outcome = settle_enqueue(
                store,
                &self.waker,
                counts,
                entry,
                (instant, run),
                now,
                enqueued,
            )
            .await?;
            settled.push((entry.record.id.clone(), instant, outcome));
        }
        // Settled after enqueued: a fire left unsettled is taken over (see the module docs).
        store.settle_fires(&settled).await?;

        let mut times = Vec::with_capacity(entries.len());
        for ((entry, next), last_fire) in entries.iter().zip(nexts).zip(last_fires) {
            let Some(next) = next else {
                continue;
            };
            if let Some(held) = self.jobs.get_mut(&entry.record.id) {
                held.next = next;
                held.record.last_fire = last_fire;
            }
            times.push(FireTimes {
                job: entry.record.id.clone(),
                hash: entry.record.hash.clone(),
                last_fire,
                next_fire: next,
            });
        }
        store.set_fire_times_all(&times).await?;
        Ok(())
    }

    /// Take over the fires other schedulers recorded and never settled, and handle them.
    async fn recover(&mut self, now: DateTime<Utc>) -> StoreResult<()> {
        let after = chrono::TimeDelta::from_std(self.settings.recover_after)
            .unwrap_or(chrono::TimeDelta::MAX);
        let Some(recorded_before) = now.checked_sub_signed(after) else {
            return Ok(());
        };
        for fire in self.store.unsettled_fires(recorded_before).await? {
            if !self.store.retake_fire(&fire, now).await? {
                continue;
            }
            self.counts.recovered += 1;
            let outcome = self.recover_fire(&fire, now).await?;
            tracing::warn!(
                job = %fire.job,
                instant = %fire.instant,
                "took over a fire its scheduler never settled: {outcome}"
            );
            self.store
                .settle_fire(&fire.job, fire.instant, &outcome)
                .await?;
        }
        Ok(())
    }

    /// Handle a fire taken over; its outcome.
    async fn recover_fire(&mut self, fire: &Fire, now: DateTime<Utc>) -> StoreResult<FireOutcome> {
        let run_id = queue::scheduled_run_id(&fire.job, fire.instant);
        if self.store.get_run(&run_id).await?.is_some() {
            return Ok(FireOutcome::Enqueued { run: run_id });
        }
        let Some(entry) = self.jobs.get(&fire.job).cloned() else {
            return Ok(FireOutcome::Skipped(Skipped::NotScheduled));
        };
        if entry.job.catchup == Catchup::None {
            self.counts.missed += 1;
            return Ok(FireOutcome::Skipped(Skipped::Missed));
        }
        enqueue(
            self.store.as_ref(),
            &self.waker,
            &mut self.counts,
            &entry,
            fire.instant,
            now,
        )
        .await
    }
}

/// Count and log the instants of `entry` skipped (catch-up `none` or `once`) or beyond the
/// catch-up limit.
fn log_missed(entry: &Entry, skipped: usize, capped: bool, counts: &mut FireCounts) {
    let id = &entry.record.id;
    if skipped > 0 {
        counts.missed += skipped;
        tracing::info!(
            job = %id,
            catchup = catchup_name(entry.job.catchup),
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
}

/// The run of `entry` fired for `instant` (its id made from both).
fn scheduled_run(entry: &Entry, instant: DateTime<Utc>, now: DateTime<Utc>) -> RunRecord {
    let id = &entry.record.id;
    let args = serde_json::to_value(&entry.job.args).unwrap_or_default();
    let mut run = new_run(
        &entry.job,
        NewRun {
            scheduled_for: Some(instant),
            ..NewRun::new(id, &entry.record.project, args, now)
        },
    );
    run.id = queue::scheduled_run_id(id, instant);
    run
}

/// Enqueue the run of `entry` fired for `instant`, as its `concurrency` says; what became of
/// the fire.
async fn enqueue(
    store: &dyn Store,
    waker: &Waker,
    counts: &mut FireCounts,
    entry: &Entry,
    instant: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<FireOutcome> {
    let run = scheduled_run(entry, instant, now);
    let enqueued = store.enqueue(&run).await?;
    settle_enqueue(store, waker, counts, entry, (instant, &run), now, enqueued).await
}

/// What became of the fire of `entry` for `instant` whose `run` was enqueued as `first`
/// says: done if it was queued (or was queued before: a fire taken over), else as its
/// `concurrency` says when another run of the job is active.
async fn settle_enqueue(
    store: &dyn Store,
    waker: &Waker,
    counts: &mut FireCounts,
    entry: &Entry,
    (instant, run): (DateTime<Utc>, &RunRecord),
    now: DateTime<Utc>,
    first: Enqueued,
) -> StoreResult<FireOutcome> {
    let id = &entry.record.id;
    let active = match first {
        Enqueued::Queued(run_id) => {
            enqueued(waker, counts, id, &run_id, instant);
            return Ok(FireOutcome::Enqueued { run: run_id });
        }
        Enqueued::Duplicate(active) if active == run.id => {
            return Ok(FireOutcome::Enqueued { run: active });
        }
        Enqueued::Duplicate(active) => active,
    };
    if entry.job.concurrency != Concurrency::Replace {
        counts.forbidden += 1;
        tracing::info!(job = %id, %instant, run = %active, "fire skipped: the run is still active (concurrency: forbid)");
        return Ok(FireOutcome::Skipped(Skipped::StillActive { run: active }));
    }
    match store.cancel_run(&active, Cancel::Kill, now).await? {
        Cancelled::Done(_) => {
            counts.replaced += 1;
            tracing::info!(job = %id, run = %active, "killed for the next fire (concurrency: replace)");
            if let Some(state_dir) = &waker.state_dir {
                queue::wake_control(state_dir);
            }
        }
        Cancelled::Refused(_) | Cancelled::Missing => {}
    }
    match store.enqueue(run).await? {
        Enqueued::Queued(run_id) => {
            enqueued(waker, counts, id, &run_id, instant);
            Ok(FireOutcome::Replaced {
                run: run_id,
                replaced: active,
            })
        }
        Enqueued::Duplicate(other) => {
            tracing::warn!(job = %id, run = %other, "fire skipped: another run took the place of the one killed");
            Ok(FireOutcome::Skipped(Skipped::TookThePlace {
                other,
                killed: active,
            }))
        }
    }
}

fn enqueued(waker: &Waker, counts: &mut FireCounts, job: &str, run: &str, instant: DateTime<Utc>) {
    counts.enqueued += 1;
    tracing::info!(%job, %run, %instant, "fired");
    waker.enqueued();
}

/// Wakes this host's workers after enqueues: at once, unless it did less than
/// [`WAKE_EVERY`] ago (then at the end of the pass, [`Waker::flush`]), so a burst of fires
/// sends a few wake-ups, not one per run.
#[derive(Debug)]
struct Waker {
    /// `None`: the workers poll.
    state_dir: Option<PathBuf>,
    last: Mutex<Option<std::time::Instant>>,
    pending: AtomicBool,
}

impl Waker {
    fn new(state_dir: Option<PathBuf>) -> Waker {
        Waker {
            state_dir,
            last: Mutex::new(None),
            pending: AtomicBool::new(false),
        }
    }

    fn enqueued(&self) {
        let Some(state_dir) = &self.state_dir else {
            return;
        };
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < WAKE_EVERY) {
            self.pending.store(true, Ordering::Relaxed);
            return;
        }
        *last = Some(std::time::Instant::now());
        self.pending.store(false, Ordering::Relaxed);
        queue::wake(state_dir);
    }

    /// The wake-up held back, if any.
    fn flush(&self) {
        if let Some(state_dir) = &self.state_dir
            && self.pending.swap(false, Ordering::Relaxed)
        {
            *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(std::time::Instant::now());
            queue::wake(state_dir);
        }
    }
}

/// The scheduler's view of a stored job; `None` if it has no schedule or its stored
/// definition no longer parses (logged).
fn entry_of(record: JobRecord) -> Option<Entry> {
    let job = match record.job() {
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
