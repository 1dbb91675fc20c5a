//! The worker: claims runs from the store and runs up to `slots` of them at once.
//!
//! Theory of operation: [`Worker::run`] is one loop owning a [`JoinSet`] of run tasks (each
//! `run::execute`, told to stop through its own `watch` channel). Each turn it reads the
//! operator switches if due, claims runs while slots are free, then sleeps until the first
//! of: a run ended (a slot is free), the heartbeat tick, the zombie tick, a wake-up datagram,
//! the poll delay, or shutdown.
//!
//! - A busy worker costs one store round trip per run: a run task ending its run claims the
//!   next in the same step ([`Queue::finish_and_claim`](crate::store::Queue::finish_and_claim), under the pauses the loop last put
//!   in the `run::ClaimGate`) and hands it to the loop, which starts it at once. The loop
//!   itself claims only for slots left free; it closes the gate when it stops, and gives
//!   back untouched a run claimed as it closed.
//! - Idle polling is adaptive: `poll_min` after any claim or freed slot, doubling up to
//!   `poll_max` while nothing is claimable. On the same host an enqueue wakes the workers at
//!   once through [`wake`]: each worker binds a UNIX datagram socket under
//!   `<state_dir>/wake/`, and [`crate::queue::wake`] sends a byte to every socket there.
//! - Heartbeat: every `heartbeat_every` the worker reports its running runs and refreshes its
//!   [`MemberRecord`] (`coco alive`); a run missing from the store's answer is no longer ours
//!   (taken back, or killed by `coco kill`) and is stopped (`run::Stop::Lost`). A control
//!   wake-up ([`wake::Poke::Control`], sent by `kill`, `pause`, `halt`) heartbeats at once.
//! - Operator switches ([`Control`]) are read every `control_every` and on a control
//!   wake-up: paused projects (or everything) are not claimed, except runs enqueued with
//!   `--force`; a halt for workers started before it shuts the worker down.
//! - Host limits ([`load::Limits`]): while CPU use or free memory is past them, only forced
//!   runs are claimed.
//! - Every `zombie_every` it takes back the runs of workers that stopped heartbeating: they
//!   run again without spending an attempt, up to `max_lost` losses in a row.
//! - A worker that cannot renew its runs' heartbeat for [`fence::fence_after`] ends them
//!   itself before another host may take them back (`run::Stop::Fenced`), and tells its
//!   process guard each renewal's deadline, so they end even while the worker is stalled
//!   ([`fence`]). Heartbeats are bounded by the time left before that deadline.
//! - Shutdown (signal or halt): claiming stops; running runs get `shutdown_grace` to finish,
//!   then their process groups are terminated and the runs handed back (`pending` again,
//!   the attempt not spent).
//!
//! The store is the only shared state: a worker that dies loses nothing but its heartbeat,
//! and its runs are taken back as zombies by any other worker (and tried again, as the lost
//! worker was not their job's failure).

pub(crate) mod argv;
pub mod chain;
pub(crate) mod env;
pub mod fence;
pub mod load;
pub mod run;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument as _;

use crate::queue::run::{RunEnd, RunRecord};
use crate::queue::state::{Outcome, Reason};
use crate::store::{Claimed, Control, MemberKind, MemberRecord, Paused, Store, StoreResult};
use crate::wake;
use chain::Followed;
use run::{ClaimGate, Executed, RunSettings, Stop};

/// How a worker behaves; [`Default`] suits production, tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Runs at once (at least 1).
    pub slots: usize,
    pub heartbeat_every: Duration,
    /// How often to take back zombies.
    pub zombie_every: Duration,
    /// A running run whose heartbeat is older than this is a zombie.
    pub zombie_after: Duration,
    /// A zombie lost with its worker this many times in a row ends as error
    /// (`worker.max_lost`; otherwise it is tried again without spending an attempt).
    pub max_lost: u32,
    /// Idle polling starts at `poll_min` and doubles up to `poll_max`.
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// How often pauses and halts are read (and at once on a control wake-up).
    pub control_every: Duration,
    /// No new runs (except forced ones) while the host is past these.
    pub limits: load::Limits,
    /// On shutdown, how long running runs may go on before they are stopped.
    pub shutdown_grace: Duration,
    /// Where the wake-up socket is bound (`<state_dir>/wake/`); `None`: polling only.
    pub wake_dir: Option<PathBuf>,
    pub run: RunSettings,
    /// What `coco alive` calls this process: `worker`, or `daemon` for a daemon's worker.
    pub kind: MemberKind,
    /// Its lease as recorded for `coco alive` (`fleet.lease`): silent this long, it is lost.
    pub lease: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            slots: std::thread::available_parallelism().map_or(1, usize::from),
            heartbeat_every: Duration::from_secs(2),
            zombie_every: Duration::from_secs(30),
            zombie_after: Duration::from_secs(60),
            max_lost: crate::queue::state::DEFAULT_MAX_LOST,
            poll_min: Duration::from_millis(5),
            poll_max: Duration::from_millis(500),
            control_every: Duration::from_secs(1),
            limits: load::Limits::default(),
            shutdown_grace: Duration::from_secs(10),
            wake_dir: None,
            run: RunSettings::default(),
            kind: MemberKind::Worker,
            lease: Duration::from_secs(10),
        }
    }
}

impl WorkerSettings {
    /// Take runs back after `after` of silence, looking for them every half of it (at
    /// most every 30 s, the default).
    pub fn with_zombie_after(self, after: Duration) -> Self {
        WorkerSettings {
            zombie_after: after,
            zombie_every: (after / 2).min(Duration::from_secs(30)),
            ..self
        }
    }
}

/// Records of workers and daemons silent for longer than this are dropped by the reaper.
const FORGET_MEMBERS_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What a worker did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runs claimed.
    pub claimed: usize,
    /// Runs finished by this worker (any end state).
    pub finished: usize,
    /// Runs handed back at shutdown or found no longer ours.
    pub handed_back: usize,
    /// It stopped because of `coco halt`.
    pub halted: bool,
}

impl std::fmt::Display for Summary {
    /// `3 claimed, 3 finished, 0 handed back` (`, halted` after `coco halt`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} claimed, {} finished, {} handed back",
            self.claimed, self.finished, self.handed_back
        )?;
        if self.halted {
            f.write_str(", halted")?;
        }
        Ok(())
    }
}

/// A worker: claims and runs up to `settings.slots` runs from `store` as `name`.
pub struct Worker {
    pub name: String,
    pub store: Arc<dyn Store>,
    pub settings: WorkerSettings,
}

/// One running run, as the loop sees it.
struct Running {
    stop: watch::Sender<Option<Stop>>,
    /// Its job, for the log records about it.
    job: String,
}

/// The operator switches as last read, and what they (and the host's load) hold back.
struct Switches {
    control: Control,
    read_at: Option<Instant>,
    sampler: load::Sampler,
    /// Why no (or fewer) runs are claimed now, for logs and `coco alive`.
    holding: Option<String>,
}

impl Worker {
    pub fn new(name: impl Into<String>, store: Arc<dyn Store>, settings: WorkerSettings) -> Self {
        Worker {
            name: name.into(),
            store,
            settings,
        }
    }

    /// Work until `shutdown` completes or a halt applies to this worker, then hand back what
    /// is still running (see the module documentation). Store errors are logged and retried,
    /// never fatal.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Summary {
        self.run_announced(shutdown, || {}).await
    }

    /// [`Worker::run`], calling `recorded` once this worker is recorded in the store (so
    /// `coco alive` lists it): what `coco worker` waits for before it says it started.
    pub async fn run_announced(
        mut self,
        shutdown: impl Future<Output = ()>,
        recorded: impl FnOnce(),
    ) -> Summary {
        let fence = Arc::new(fence::Fence::new(fence::fence_after(
            self.settings.zombie_after,
            self.settings.run.grace,
        )));
        self.settings.run.fence = Some(Arc::clone(&fence));
        let settings = &self.settings;
        let slots = settings.slots.max(1);
        let started = Utc::now();
        let mut summary = Summary::default();
        let mut tasks: JoinSet<StoreResult<Executed>> = JoinSet::new();
        let mut running: HashMap<String, Running> = HashMap::new();
        let mut shutdown = pin!(shutdown);
        let mut heartbeat = tokio::time::interval(settings.heartbeat_every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut zombies = tokio::time::interval(settings.zombie_every);
        zombies.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut wake = settings
            .wake_dir
            .as_ref()
            .and_then(|dir| wake::Listener::bind(dir, &self.name));
        let mut switches = Switches {
            control: Control::default(),
            read_at: None,
            sampler: load::Sampler::new(settings.limits, Duration::from_secs(1)),
            holding: None,
        };
        let mut poll = settings.poll_min;
        // After a failed claim: the wait before the next try (zero: none failed).
        let mut retry = Duration::ZERO;
        let gate = ClaimGate::default();
        tracing::info!(worker = %self.name, slots, store = %self.store.describe(), "worker started");
        self.announce(started, slots, &running, &switches).await;
        recorded();

        loop {
            self.read_switches(&mut switches, false).await;
            if switches.control.halts(started) {
                tracing::info!(worker = %self.name, "halted by `coco halt`");
                summary.halted = true;
                break;
            }
            let (paused, changed) = self.holding(&mut switches);
            if changed {
                // `coco alive` says why at once, not at the next heartbeat.
                self.announce(started, slots, &running, &switches).await;
            }
            gate.open(&paused);
            while running.len() < slots {
                let began = Instant::now();
                let claim = Some((Utc::now(), &paused));
                let claimed = self
                    .store
                    .finish_and_claim(&self.name, None, claim)
                    .await
                    .and_then(|stepped| stepped.claimed);
                match claimed {
                    Ok(Some(claimed)) => {
                        poll = settings.poll_min;
                        retry = Duration::ZERO;
                        if running.is_empty() {
                            // The claim dates the run's heartbeat; no other run to renew.
                            self.renewed(&fence, began, true);
                        }
                        self.start(claimed, &mut tasks, &mut running, &gate, &mut summary);
                    }
                    Ok(None) => {
                        retry = Duration::ZERO;
                        break;
                    }
                    Err(error) => {
                        crate::store::outage::failed(
                            &error,
                            || tracing::warn!(worker = %self.name, "claiming a run: {error}"),
                        );
                        // Capped and jittered: the hosts of a fleet do not retry in step.
                        retry = crate::store::outage::retry_after(
                            retry,
                            crate::store::outage::jitter(),
                        );
                        break;
                    }
                }
            }
            let idle = running.len() < slots;
            let poll_delay = tokio::time::sleep(if !retry.is_zero() {
                retry
            } else if idle {
                poll
            } else {
                settings.poll_max
            });
            tokio::select! {
                () = &mut shutdown => break,
                Some(joined) = tasks.join_next() => {
                    if let Some(next) = self.ended(joined, &mut running, &mut summary) {
                        self.start(next, &mut tasks, &mut running, &gate, &mut summary);
                    }
                    poll = settings.poll_min;
                }
                _ = heartbeat.tick() => self.beat(started, slots, &running, &switches, &fence).await,
                () = tokio::time::sleep_until(fence.deadline()), if fence.armed(!running.is_empty()) => {
                    self.fence(&running, &fence);
                }
                _ = zombies.tick() => self.take_back_zombies().await,
                woken = wake::woken(&mut wake) => {
                    poll = settings.poll_min;
                    if woken.control {
                        self.read_switches(&mut switches, true).await;
                        self.heartbeat(&running, &fence).await;
                    }
                }
                () = poll_delay => {
                    if idle {
                        poll = (poll * 2).min(settings.poll_max);
                    }
                }
            }
        }

        // Shutdown: no more claims; let the runs finish for a while, then stop them.
        gate.close();
        tracing::info!(worker = %self.name, running = running.len(), "worker stopping");
        let deadline = Instant::now() + settings.shutdown_grace;
        let mut stopped = false;
        while !tasks.is_empty() {
            tokio::select! {
                Some(joined) = tasks.join_next() => {
                    // Claimed as the gate closed: give it back untouched.
                    if let Some(next) = self.ended(joined, &mut running, &mut summary) {
                        self.hand_back_unstarted(next.run, &mut summary).await;
                    }
                }
                _ = heartbeat.tick() => self.beat(started, slots, &running, &switches, &fence).await,
                () = tokio::time::sleep_until(fence.deadline()), if fence.armed(!running.is_empty()) => {
                    self.fence(&running, &fence);
                }
                () = tokio::time::sleep_until(deadline), if !stopped => {
                    for run in running.values() {
                        let _ = run.stop.send(Some(Stop::Shutdown));
                    }
                    stopped = true;
                }
            }
        }
        if let Some(listener) = wake {
            listener.remove();
        }
        if let Err(error) = self.store.remove_member(&self.name).await {
            tracing::warn!(worker = %self.name, "forgetting this worker in the store: {error}");
        }
        tracing::info!(worker = %self.name, "worker stopped: {summary}");
        summary
    }

    /// Read the operator switches if they are due (or `now`); on a store error keep the last.
    async fn read_switches(&self, switches: &mut Switches, now: bool) {
        let due = now
            || switches
                .read_at
                .is_none_or(|at| at.elapsed() >= self.settings.control_every);
        if !due {
            return;
        }
        match self.store.control().await {
            Ok(control) => switches.control = control,
            Err(error) => crate::store::outage::failed(
                &error,
                || tracing::warn!(worker = %self.name, "reading pauses and halts: {error}"),
            ),
        }
        switches.read_at = Some(Instant::now());
    }

    /// What claims must leave alone now: the pauses, and everything unforced while the host
    /// is past its limits, and whether that changed (it is logged then).
    fn holding(&self, switches: &mut Switches) -> (Paused, bool) {
        let mut paused = switches.control.paused();
        let busy = switches.sampler.check();
        let holding = if let Some(busy) = busy {
            paused.all = true;
            Some(format!("host busy: {busy}"))
        } else if paused.all {
            Some("paused (coco resume to go on)".to_string())
        } else if !paused.projects.is_empty() {
            Some(format!("projects paused: {}", paused.projects.join(", ")))
        } else {
            None
        };
        let changed = holding != switches.holding;
        if changed {
            match &holding {
                Some(why) => {
                    tracing::info!(worker = %self.name, "holding back new runs: {why}");
                }
                None => tracing::info!(worker = %self.name, "taking new runs again"),
            }
            switches.holding = holding;
        }
        (paused, changed)
    }

    /// Record (or refresh) this worker in the store for `coco alive`.
    async fn announce(
        &self,
        started: DateTime<Utc>,
        slots: usize,
        running: &HashMap<String, Running>,
        switches: &Switches,
    ) {
        let mut ids: Vec<String> = running.keys().cloned().collect();
        ids.sort();
        let member = MemberRecord {
            name: self.name.clone(),
            kind: self.settings.kind,
            host: crate::host::name(),
            pid: std::process::id(),
            started,
            heartbeat: Utc::now(),
            slots: u32::try_from(slots).unwrap_or(u32::MAX),
            running: ids,
            holding: switches.holding.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            lease_ms: u64::try_from(self.settings.lease.as_millis()).unwrap_or(u64::MAX),
            apps: Vec::new(),
        };
        if let Err(error) = self.store.put_member(&member).await {
            crate::store::outage::failed(
                &error,
                || tracing::warn!(worker = %self.name, "recording this worker in the store: {error}"),
            );
        }
    }

    /// Start a task running `claimed`, a run claimed by this worker.
    fn start(
        &self,
        claimed: Claimed,
        tasks: &mut JoinSet<StoreResult<Executed>>,
        running: &mut HashMap<String, Running>,
        gate: &ClaimGate,
        summary: &mut Summary,
    ) {
        let run = &claimed.run;
        tracing::info!(worker = %self.name, run = %run.id, job = %run.job, attempt = run.attempt, "claimed");
        summary.claimed += 1;
        // Everything logged while the run runs says which run, job and project it is about
        // (`coco log --run ID`).
        let span =
            tracing::info_span!("run", run = %run.id, job = %run.job, project = %run.project);
        let (stop, stop_rx) = watch::channel(None);
        running.insert(
            run.id.clone(),
            Running {
                stop,
                job: run.job.clone(),
            },
        );
        let (store, name, run_settings, gate) = (
            Arc::clone(&self.store),
            self.name.clone(),
            self.settings.run.clone(),
            gate.clone(),
        );
        tasks.spawn(
            async move {
                run::execute(
                    store.as_ref(),
                    &name,
                    claimed,
                    &run_settings,
                    stop_rx,
                    &gate,
                )
                .await
            }
            .instrument(span),
        );
    }

    /// Book-keeping for a run task that ended; returns the next run it claimed, if any.
    fn ended(
        &self,
        joined: Result<StoreResult<Executed>, tokio::task::JoinError>,
        running: &mut HashMap<String, Running>,
        summary: &mut Summary,
    ) -> Option<Claimed> {
        match joined {
            Ok(Ok(executed)) => {
                running.remove(&executed.id);
                self.followed(&executed);
                match &executed.finished {
                    Some(run) if run.reason == Some(Reason::Shutdown) => {
                        summary.handed_back += 1;
                        tracing::info!(worker = %self.name, run = %run.id, job = %run.job, state = %run.state, "handed back");
                    }
                    Some(run) => {
                        summary.finished += 1;
                        tracing::info!(worker = %self.name, run = %run.id, job = %run.job, state = %run.state, "finished");
                    }
                    None => summary.handed_back += 1,
                }
                executed.next
            }
            Ok(Err(error)) => {
                // The run's end could not be written: it stays running until its heartbeat
                // goes stale and a reaper takes it back.
                tracing::error!(worker = %self.name, "finishing a run: {error}");
                self.forget_finished(running);
                None
            }
            Err(error) => {
                tracing::error!(worker = %self.name, "a run task failed: {error}");
                self.forget_finished(running);
                None
            }
        }
    }

    /// Give back a run claimed but never started (pending again, the attempt not spent).
    async fn hand_back_unstarted(&self, run: RunRecord, summary: &mut Summary) {
        summary.claimed += 1;
        summary.handed_back += 1;
        let end = RunEnd {
            note: Some(format!(
                "handed back unstarted: worker {} stopped",
                self.name
            )),
            ..run.end(Outcome::HandedBack, None, Utc::now())
        };
        match self.store.finish_run(&run.id, &self.name, &end).await {
            Ok(_) => {
                tracing::info!(worker = %self.name, run = %run.id, job = %run.job, "handed back unstarted");
            }
            Err(error) => {
                tracing::warn!(worker = %self.name, run = %run.id, job = %run.job, "handing back a run: {error}");
            }
        }
    }

    /// Log the `then:` followers of a completed run, and wake this host's other workers for
    /// those enqueued.
    fn followed(&self, executed: &Executed) {
        let mut queued = false;
        for follower in &executed.followers {
            match follower {
                Followed::Queued { job, run } => {
                    queued = true;
                    tracing::info!(worker = %self.name, parent = %executed.id, %job, %run, "enqueued a follower");
                }
                Followed::Duplicate { job, run } => {
                    tracing::info!(worker = %self.name, parent = %executed.id, %job, %run, "follower already waiting: not enqueued again");
                }
                Followed::Skipped { job, why } => {
                    tracing::warn!(worker = %self.name, parent = %executed.id, %job, "follower not enqueued: {why}");
                }
            }
        }
        if queued && let Some(dir) = &self.settings.wake_dir {
            wake::poke_dir(dir, wake::Poke::Queue);
        }
    }

    /// Drop the entries whose task is gone (their stop channel has no receiver any more).
    fn forget_finished(&self, running: &mut HashMap<String, Running>) {
        running.retain(|_, run| !run.stop.is_closed());
    }

    /// One heartbeat tick: renew the runs, then record this worker (`coco alive`).
    async fn beat(
        &self,
        started: DateTime<Utc>,
        slots: usize,
        running: &HashMap<String, Running>,
        switches: &Switches,
        fence: &fence::Fence,
    ) {
        self.heartbeat(running, fence).await;
        self.announce(started, slots, running, switches).await;
    }

    /// Heartbeat the running runs (bounded by the time left before the fence's deadline);
    /// stop those the store no longer lists as ours. When the store takes it, the fence and
    /// the guard's deadline are renewed.
    async fn heartbeat(&self, running: &HashMap<String, Running>, fence: &fence::Fence) {
        let ids: Vec<String> = running.keys().cloned().collect();
        let began = Instant::now();
        let within = if running.is_empty() {
            self.settings.zombie_after
        } else {
            fence.remaining()
        }
        .max(Duration::from_millis(100));
        let answer =
            tokio::time::timeout(within, self.store.heartbeat(&self.name, &ids, Utc::now())).await;
        match answer {
            Ok(Ok(alive)) => {
                // With no runs the store was not asked anything: no sign it answers.
                if !ids.is_empty() {
                    crate::store::outage::answered(began.into_std());
                }
                self.renewed(fence, began, !running.is_empty());
                for (id, run) in running {
                    if !alive.contains(id) {
                        tracing::info!(worker = %self.name, run = %id, job = %run.job, "no longer ours (killed, or taken back): stopping it");
                        let _ = run.stop.send(Some(Stop::Lost));
                    }
                }
            }
            Ok(Err(error)) => {
                crate::store::outage::failed(&error, || {
                    tracing::warn!(worker = %self.name, "heartbeat: {error}");
                });
            }
            Err(_) => {
                tracing::debug!(worker = %self.name, "heartbeat: no answer in time");
            }
        }
    }

    /// The runs were renewed by a store call that began at `at`: move the fence, and tell
    /// the guard the new deadline (or, with nothing running, that there is none).
    fn renewed(&self, fence: &fence::Fence, at: Instant, runs: bool) {
        fence.renew(at);
        if let Some(guard) = &self.settings.run.guard {
            if runs {
                let key = crate::process::guard::FenceKey::Runs;
                guard.renewed(key, fence.remaining(), self.settings.run.grace);
            } else {
                guard.clear(crate::process::guard::FenceKey::Runs);
            }
        }
    }

    /// The fence's deadline passed unrenewed: stop every run before another host may take
    /// it back (each is handed back if the store still lists it as ours).
    fn fence(&self, running: &HashMap<String, Running>, fence: &fence::Fence) {
        fence.end();
        tracing::warn!(
            worker = %self.name,
            runs = running.len(),
            silent = %crate::fields::duration(fence.renewed().elapsed()),
            "cannot renew the runs' heartbeat in the store: ending them before another host may take them back"
        );
        for run in running.values() {
            let _ = run.stop.send(Some(Stop::Fenced));
        }
    }

    async fn take_back_zombies(&self) {
        match self
            .store
            .take_back_zombies(
                Utc::now(),
                self.settings.zombie_after,
                self.settings.max_lost,
            )
            .await
        {
            Ok(taken) => {
                for run in taken {
                    tracing::warn!(worker = %self.name, run = %run.id, job = %run.job, lost = run.worker.as_deref().unwrap_or("-"), state = %run.state, "took back a zombie run");
                    // End what the lost try started on this host before anything claims
                    // the retry (see crate::process::sweep).
                    // Blocking (it reads /proc and waits for cgroups to empty): off the runtime.
                    let id = run.id.clone();
                    let killed = tokio::task::spawn_blocking(move || {
                        crate::process::sweep::kill_run_orphans(&id)
                    })
                    .await
                    .unwrap_or(0);
                    if killed > 0 {
                        tracing::warn!(worker = %self.name, run = %run.id, job = %run.job, killed, "ended processes the lost worker left behind");
                    }
                }
            }
            Err(error) => crate::store::outage::failed(
                &error,
                || tracing::warn!(worker = %self.name, "taking back zombies: {error}"),
            ),
        }
        self.forget_silent_members().await;
    }

    /// Drop the records of workers and daemons silent for [`FORGET_MEMBERS_AFTER`] (killed
    /// without a chance to say goodbye).
    async fn forget_silent_members(&self) {
        let Ok(members) = self.store.list_members().await else {
            return;
        };
        let now = Utc::now();
        for member in members {
            let silent = (now - member.heartbeat).to_std().unwrap_or_default();
            if silent > FORGET_MEMBERS_AFTER {
                let _ = self.store.remove_member(&member.name).await;
            }
        }
    }
}
