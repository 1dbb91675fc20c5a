//! One claimed run, from its stored definition to its end in the store.
//!
//! `execute` takes the run with its project and job (read in the claim) in three steps:
//! `prepare` builds the process spec (`super::env`); `observe` runs it with
//! [`process::run_to_end`] (the job's timeout, a grace period, a stop signal from the
//! worker); `conclude` stores the end `verdict` decides. While the process runs, `observe`:
//!
//! - keeps the newest output lines in a [`TailBuffer`], each as `HH:MM:SS.mmm out|err|log
//!   text` (UTC; `::log::` lines as `log LEVEL message`, `::progress::` lines not at all) and
//!   stores it with [`Queue::put_output`](crate::store::Queue::put_output) at most every `output_every` while new lines
//!   arrive, and at the end — so `coco logs --follow` reads it while the run goes on;
//! - reports the pid and progress with [`Queue::report_run`](crate::store::Queue::report_run) at most every `report_every`,
//!   the first time one interval after the start (a reporter future polled next to the
//!   process; the spawn and event callbacks only record what is new).
//!
//! The end is stored with [`Queue::finish_and_claim`](crate::store::Queue::finish_and_claim), which also claims the worker's next
//! run while the `ClaimGate` is open. A run that ends `complete` enqueues the `then:`
//! followers of its job as it ran ([`chain`]).
//!
//! The try's end is mapped by `verdict` (pure) to a [`Outcome`](crate::queue::state::Outcome): exit 0 complete,
//! exit 75 deferred, other exits failed/error (reason `exit`), a signal nobody coco sent
//! `signal`, the timeout `timeout`, a worker shutdown `shutdown` (handed back: pending again,
//! the attempt not spent). A run whose command cannot be worked out or started ends like a
//! failed exit with reason `setup` and the cause in the history note. A run the store says
//! is no longer ours (`Stop::Lost`) is stopped and not finished: its new owner or reaper
//! already decided its fate.
//!
//! Each claimed run's wait and each try this worker ended (the state it left the run in,
//! how long it ran) are counted in the process's metrics ([`crate::metrics`]).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::chain::{self, Followed};
use super::env;
use crate::manifest::Job;
use crate::process::{self, Event, LineKind, LogLevel, RunError, Stream, TailBuffer, guard};
use crate::queue::run::{LiveReport, RunEnd, RunRecord};
use crate::queue::state::{Outcome, Reason, RunState};
use crate::store::Queue;
use crate::store::{Claimed, JobRecord, Paused, ProjectRecord, Store, StoreResult};

/// Exit code recorded for a run whose command could not be worked out or started (as a shell
/// would for "command not found").
pub(crate) const EXIT_SETUP: i32 = 127;

/// How runs are executed.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// After SIGTERM (timeout, shutdown), how long the group has before SIGKILL.
    pub grace: Duration,
    /// Progress is reported to the store at most this often.
    pub report_every: Duration,
    /// Output is stored at most this often while the run goes on.
    pub output_every: Duration,
    /// Bytes of output tail kept per run (`worker.max_output`).
    pub tail_bytes: usize,
    /// The process guard jobs are put under; `None`: each gets the death signal.
    pub guard: Option<guard::Handle>,
    /// The worker's fence (set by the worker's loop): a try that died by a signal after its
    /// deadline passed was ended by the guard, not by a failure of its own.
    pub fence: Option<Arc<super::fence::Fence>>,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            grace: Duration::from_secs(5),
            report_every: Duration::from_millis(100),
            output_every: Duration::from_secs(1),
            tail_bytes: TailBuffer::DEFAULT_MAX_BYTES,
            guard: None,
            fence: None,
        }
    }
}

/// Why the worker stops a running run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The store no longer lists it as ours (taken back, killed): stop, do not finish.
    Lost,
    /// The worker shuts down: stop, and hand it back to be retried.
    Shutdown,
    /// The worker could not renew its runs' heartbeat in time (`super::fence`): stop, and
    /// hand it back (if the store still lists it as ours) before it may be taken back.
    Fenced,
}

/// What became of one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Executed {
    pub id: String,
    /// The run as finished; `None` when it was no longer ours to finish.
    pub finished: Option<RunRecord>,
    /// Its `then:` followers, when it completed.
    pub followers: Vec<Followed>,
    /// The next run, claimed for this worker as this one was finished (see `ClaimGate`).
    pub next: Option<Claimed>,
}

/// Whether a run task may claim the next run as it finishes its own (in the same store
/// step, [`Queue::finish_and_claim`](crate::store::Queue::finish_and_claim)), and under which pauses: the worker's loop opens it
/// with the pauses of each turn and closes it when it stops claiming.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimGate(Arc<Mutex<Option<Paused>>>);

impl ClaimGate {
    /// Let finishing runs claim the next, leaving `paused` alone.
    pub fn open(&self, paused: &Paused) {
        let mut gate = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if gate.as_ref() != Some(paused) {
            *gate = Some(paused.clone());
        }
    }

    /// No more claims by finishing runs.
    pub fn close(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The pauses to claim under, `None`: claim nothing.
    pub fn paused(&self) -> Option<Paused> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the event callback collects and the reporter sends.
#[derive(Debug, Default)]
struct Live {
    tail: TailBuffer,
    report: LiveReport,
    /// A report is due.
    dirty: bool,
    /// Lines arrived since the output was last stored.
    new_output: bool,
    /// Output may be kept from an earlier try of the run (so even nothing must replace it),
    /// or was stored during this one.
    output_stored: bool,
    /// The try's claim count: the fence its output is written under.
    fence: u64,
}

/// A job's `::log:: LEVEL message` line, logged at its level with the run's context, for
/// the daemon's log and the store's (`coco log --run ID`).
fn job_log((run, job, project): &(String, String, String), level: LogLevel, message: &str) {
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(target: "coco::job", $level, %run, %job, %project, "{message}")
        };
    }
    match level {
        LogLevel::Trace => at!(tracing::Level::TRACE),
        LogLevel::Debug => at!(tracing::Level::DEBUG),
        LogLevel::Info => at!(tracing::Level::INFO),
        LogLevel::Warn => at!(tracing::Level::WARN),
        LogLevel::Error => at!(tracing::Level::ERROR),
    }
}

/// Run `claimed` (claimed by `worker`) to its end and finish it in the store, claiming the
/// next run in the same step if `gate` is open; `stop` tells it to stop early (see
/// `Stop`). Three steps: [`prepare`] the process, [`observe`] it to its end, [`conclude`].
pub(crate) async fn execute(
    store: &dyn Store,
    worker: &str,
    claimed: Claimed,
    settings: &RunSettings,
    stop: watch::Receiver<Option<Stop>>,
    gate: &ClaimGate,
) -> StoreResult<Executed> {
    let Claimed { run, project, job } = claimed;
    crate::metrics::run_started(waited(&run));
    let executed = match prepare(&run, project.as_ref(), job.as_ref(), settings) {
        Ok(prepared) => {
            let observed = observe(store, worker, &run, &prepared, settings, stop).await;
            conclude(store, worker, run, prepared, observed, settings, gate).await?
        }
        Err(message) => {
            tracing::warn!(run = %run.id, "{message}");
            let finished = finish_setup_failure(store, worker, &run, &message).await?;
            Executed::without_followers(run.id, finished)
        }
    };
    count_end(executed.finished.as_ref());
    Ok(executed)
}

/// How long the claimed `run` waited since it could be claimed: since it was enqueued, or
/// due again (a retry, a deferral), whichever is later (pure).
fn waited(run: &RunRecord) -> Duration {
    run.started
        .and_then(|started| (started - run.created.max(run.not_before)).to_std().ok())
        .unwrap_or_default()
}

/// Count the end of a try in this process's metrics ([`crate::metrics::run_ended`]): the
/// state it left the run in and how long it ran. A try the store refused to end (the run was
/// killed or taken back meanwhile) is not this worker's to count.
fn count_end(finished: Option<&RunRecord>) {
    let Some(run) = finished else {
        return;
    };
    let job = crate::manifest::JobId::split(&run.job).map_or(run.job.as_str(), |(_, job)| job);
    let ran = run
        .started
        .zip(run.finished)
        .and_then(|(started, ended)| (ended - started).to_std().ok());
    crate::metrics::run_ended(&run.project, job, run.state.as_str(), ran);
}

/// What a run executes: its process (held by the guard, if any), its timeout, and the job's
/// definition as it ran (for its `then:` followers).
struct Prepared {
    spec: process::Spec,
    timeout: Option<Duration>,
    job: Job,
}

/// Work out the process of `run` from its applied project and job; the error is the cause
/// of a setup failure.
fn prepare(
    run: &RunRecord,
    project: Option<&ProjectRecord>,
    job: Option<&JobRecord>,
    settings: &RunSettings,
) -> Result<Prepared, String> {
    let (project, job) = env::decode(run, project, job).map_err(|error| error.to_string())?;
    let mut spec = env::build_spec(&project, &job, run).map_err(|error| error.to_string())?;
    if let Some(guard) = &settings.guard {
        guard.hold(&mut spec, &crate::process::cgroup::run_unit_prefix(&run.id));
    }
    Ok(Prepared {
        spec,
        timeout: run.timeout_ms.map(Duration::from_millis),
        job,
    })
}

/// How the process went: its end, why the worker stopped it (if it did), what it printed
/// and reported.
struct Observed {
    result: Result<process::Outcome, RunError>,
    stop: Option<Stop>,
    live: Arc<Mutex<Live>>,
}

/// Run the prepared process to its end, collecting its output and progress and reporting
/// them to the store as it goes (see [`with_reports`]); `stop` stops it early.
async fn observe(
    store: &dyn Store,
    worker: &str,
    run: &RunRecord,
    prepared: &Prepared,
    settings: &RunSettings,
    mut stop: watch::Receiver<Option<Stop>>,
) -> Observed {
    let tries = run
        .history
        .iter()
        .filter(|change| change.state == RunState::Running)
        .count();
    let live = Arc::new(Mutex::new(Live {
        tail: TailBuffer::new(settings.tail_bytes),
        output_stored: tries > 1,
        fence: u64::from(run.claims),
        ..Live::default()
    }));
    let on_event = {
        let live = Arc::clone(&live);
        let run_context = (run.id.clone(), run.job.clone(), run.project.clone());
        move |event: Event| {
            let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
            match event.kind {
                LineKind::Output(line) => {
                    let tag = match event.stream {
                        Stream::Stdout => "out",
                        Stream::Stderr => "err",
                    };
                    live.tail.push(&crate::tail::line(event.at, tag, &line));
                    live.new_output = true;
                }
                LineKind::Log { level, message } => {
                    job_log(&run_context, level, &message);
                    live.tail.push(&crate::tail::line(
                        event.at,
                        "log",
                        &format!("{level} {message}"),
                    ));
                    live.new_output = true;
                }
                LineKind::Progress { fraction, message } => {
                    live.report.progress = Some(fraction);
                    live.report.progress_message = message;
                    live.dirty = true;
                }
            }
        }
    };
    let stopped = async {
        match stop.wait_for(Option::is_some).await {
            Ok(reason) => *reason,
            // The worker is gone without saying why: treat as a shutdown.
            Err(_) => Some(Stop::Shutdown),
        }
    };
    let stop_reason: Arc<Mutex<Option<Stop>>> = Arc::default();
    let cancel = {
        let stop_reason = Arc::clone(&stop_reason);
        async move {
            let reason = stopped.await;
            *stop_reason.lock().unwrap_or_else(PoisonError::into_inner) = reason;
        }
    };
    let on_spawn = |pid| {
        let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
        live.report.pid = Some(pid);
        live.dirty = true;
    };
    let process = process::run_to_end_observed(
        &prepared.spec,
        prepared.timeout,
        settings.grace,
        cancel,
        on_spawn,
        on_event,
    );
    let result = with_reports(store, worker, &run.id, &live, settings, process).await;
    let mut stop = *stop_reason.lock().unwrap_or_else(PoisonError::into_inner);
    let signalled = matches!(&result, Ok(ended) if ended.exit.code.is_none());
    if stop.is_none() && signalled && settings.fence.as_ref().is_some_and(|f| f.expired()) {
        // The guard ended it: the worker had not renewed its runs in time.
        stop = Some(Stop::Fenced);
    }
    Observed { result, stop, live }
}

/// What the worker does with a try that ended (see `verdict`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The run is no longer ours: stopped, not finished.
    Lost,
    /// The process could not be started: end the try as a setup failure with this cause.
    Setup(String),
    /// Finish the try with this outcome, exit code and history note.
    Finish {
        outcome: Outcome,
        exit_code: Option<i32>,
        note: Option<String>,
    },
}

/// The outcome of a try (pure): `result` is how its process ended, `stop` why the worker
/// stopped it (if it did), `timeout` the job's, `worker` the worker's name (for the note of
/// a run handed back).
pub(crate) fn verdict(
    result: &Result<process::Outcome, RunError>,
    stop: Option<Stop>,
    timeout: Option<Duration>,
    worker: &str,
) -> Verdict {
    let ended = match result {
        Ok(ended) => ended,
        Err(RunError::Spawn(error)) => return Verdict::Setup(error.to_string()),
        Err(error @ RunError::Process { .. }) => {
            return Verdict::Finish {
                outcome: Outcome::Signalled,
                exit_code: None,
                note: Some(error.to_string()),
            };
        }
    };
    let note = Some(ended.exit.to_string());
    let fenced = stop == Some(Stop::Fenced) && ended.exit.code.is_none();
    let (outcome, exit_code, note) = if ended.cancelled || fenced {
        match stop {
            Some(Stop::Lost) => return Verdict::Lost,
            Some(Stop::Fenced) => (
                Outcome::HandedBack,
                None,
                Some(format!(
                    "handed back: worker {worker} could not renew its runs in the store in time"
                )),
            ),
            _ => (
                Outcome::HandedBack,
                None,
                Some(format!("handed back: worker {worker} shut down")),
            ),
        }
    } else if ended.timed_out {
        let timeout = timeout.unwrap_or_default();
        let note = format!("timed out after {}", humantime::format_duration(timeout));
        (Outcome::TimedOut, ended.exit.code, Some(note))
    } else if let Some(code) = ended.exit.code {
        (Outcome::from_exit_code(code), Some(code), note)
    } else {
        (Outcome::Signalled, None, note)
    };
    Verdict::Finish {
        outcome,
        exit_code,
        note,
    }
}

/// Store the try's end as `verdict` decides, claim the next run while `gate` is open, and
/// enqueue the followers of a complete run.
async fn conclude(
    store: &dyn Store,
    worker: &str,
    run: RunRecord,
    prepared: Prepared,
    observed: Observed,
    settings: &RunSettings,
    gate: &ClaimGate,
) -> StoreResult<Executed> {
    let now = Utc::now();
    let Observed { result, stop, live } = observed;
    let id = run.id.clone();
    let (outcome, exit_code, note) = match verdict(&result, stop, prepared.timeout, worker) {
        Verdict::Lost => {
            tracing::info!(run = %id, "no longer ours: stopped, not finished");
            store_output(store, &id, &live).await;
            return Ok(Executed::without_followers(id, None));
        }
        Verdict::Setup(message) => {
            tracing::warn!(run = %id, "{message}");
            store_output(store, &id, &live).await;
            let finished = finish_setup_failure(store, worker, &run, &message).await?;
            return Ok(Executed::without_followers(id, finished));
        }
        Verdict::Finish {
            outcome,
            exit_code,
            note,
        } => (outcome, exit_code, note),
    };
    if let Err(error @ RunError::Process { .. }) = &result {
        tracing::warn!(run = %id, "{error}");
    }
    // What the reporter has not sent yet goes with the end (one write fewer for short runs).
    let report = match &result {
        Ok(ended) => LiveReport {
            pid: Some(ended.pid),
            ..live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .report
                .clone()
        },
        Err(_) => LiveReport::default(),
    };
    store_output(store, &id, &live).await;
    let end = RunEnd {
        note,
        report,
        ..run.end(outcome, exit_code, now)
    };
    // A run handed back at shutdown claims nothing (the gate is closed by then anyway).
    let claim_under = gate.paused().filter(|_| outcome != Outcome::HandedBack);
    let stepped = finish_through_outage(
        store,
        worker,
        &id,
        &end,
        || claim_under.as_ref().map(|paused| (Utc::now(), paused)),
        settings,
    )
    .await?;
    let next = stepped.claimed.unwrap_or_else(|error| {
        tracing::warn!(worker, "claiming the next run: {error}");
        None
    });
    let mut followers = Vec::new();
    if let Some(done) = stepped
        .finished
        .as_ref()
        .filter(|r| r.state == RunState::Complete)
    {
        // The run is complete whatever happens here: a failure is logged, not returned.
        match chain::enqueue_followers(store, done, &prepared.job, Utc::now()).await {
            Ok(followed) => followers = followed,
            Err(error) => tracing::warn!(run = %id, "enqueueing its `then` jobs: {error}"),
        }
    }
    Ok(Executed {
        id,
        finished: stepped.finished,
        followers,
        next,
    })
}

impl Executed {
    fn without_followers(id: String, finished: Option<RunRecord>) -> Self {
        Executed {
            id,
            finished,
            followers: Vec::new(),
            next: None,
        }
    }
}

/// Poll `process` while reporting new progress at most every `report_every` and storing new
/// output at most every `output_every`.
async fn with_reports<T>(
    store: &dyn Queue,
    worker: &str,
    id: &str,
    live: &Mutex<Live>,
    settings: &RunSettings,
    process: impl Future<Output = T>,
) -> T {
    let outputs = async {
        let mut tick = tokio::time::interval(settings.output_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: nothing to store yet.
        tick.tick().await;
        loop {
            tick.tick().await;
            let due = std::mem::take(
                &mut live
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .new_output,
            );
            if due {
                store_output(store, id, live).await;
            }
        }
    };
    let reporter = async {
        // Not at once: a run that ends within `report_every` sends its pid with its end (one
        // store write fewer per short run).
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + settings.report_every,
            settings.report_every,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let report = {
                let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
                if !std::mem::take(&mut live.dirty) {
                    continue;
                }
                live.report.clone()
            };
            if let Err(error) = store.report_run(id, worker, &report, Utc::now()).await {
                tracing::warn!(run = %id, "reporting progress: {error}");
            }
        }
    };
    tokio::select! {
        result = process => result,
        never = reporter => never,
        never = outputs => never,
    }
}

/// Store the output tail (a failure is logged: the run's end matters more).
/// A first try that printed nothing stores nothing (one write fewer for a silent run).
async fn store_output(store: &dyn Queue, id: &str, live: &Mutex<Live>) {
    let (fence, text) = {
        let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
        if live.tail.is_empty() && live.tail.dropped_lines() == 0 && !live.output_stored {
            return;
        }
        live.output_stored = true;
        let mut text = String::new();
        if live.tail.dropped_lines() > 0 {
            text.push_str(&format!(
                "[{} earlier lines not kept]\n",
                live.tail.dropped_lines()
            ));
        }
        text.push_str(&live.tail.text());
        (live.fence, text)
    };
    match store.put_output(id, fence, &text).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(run = %id, "not keeping the output: a later try of the run owns it")
        }
        Err(error) => tracing::warn!(run = %id, "keeping the output: {error}"),
    }
}

/// Store the try's end (and claim the next run under `claim`): while the store does not
/// answer, try again with capped, jittered back-off for as long as the run is still this
/// worker's to end — until the fence's deadline (`super::fence`), after which another host
/// may take it back and its end is no longer this worker's to write. A try that ended in
/// an outage is thus recorded once, not run again.
async fn finish_through_outage<'p>(
    store: &dyn Store,
    worker: &str,
    id: &str,
    end: &RunEnd,
    claim: impl Fn() -> Option<(chrono::DateTime<Utc>, &'p Paused)>,
    settings: &RunSettings,
) -> StoreResult<crate::store::Stepped> {
    let fence = settings.fence.as_deref();
    let mut wait = Duration::from_millis(100);
    loop {
        match store
            .finish_and_claim(worker, Some((id, end)), claim())
            .await
        {
            Err(error) if error.is_unreachable() && fence.is_some_and(|f| !f.expired()) => {
                tracing::debug!(run = %id, "storing the end waits for the store: {error}");
                let left = fence.map_or(wait, super::fence::Fence::remaining);
                tokio::time::sleep(wait.min(left)).await;
                wait = crate::store::outage::retry_after(wait, crate::store::outage::jitter());
            }
            other => return other,
        }
    }
}

/// End a try whose command could not be worked out or started: like a failed exit (retried
/// while attempts are left), reason `setup`, the cause in the note.
async fn finish_setup_failure(
    store: &dyn Queue,
    worker: &str,
    run: &RunRecord,
    message: &str,
) -> StoreResult<Option<RunRecord>> {
    let mut end = run.end(Outcome::Exited(EXIT_SETUP), None, Utc::now());
    end.next.reason = Some(Reason::Setup);
    end.note = Some(message.to_string());
    store.finish_run(&run.id, worker, &end).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Exit, SpawnError};

    fn ended(code: Option<i32>, signal: Option<i32>) -> process::Outcome {
        process::Outcome {
            pid: 42,
            exit: Exit { code, signal },
            timed_out: false,
            cancelled: false,
            forced: false,
            output_complete: true,
        }
    }

    fn finish(outcome: Outcome, exit_code: Option<i32>, note: &str) -> Verdict {
        Verdict::Finish {
            outcome,
            exit_code,
            note: Some(note.to_owned()),
        }
    }

    #[test]
    fn exits_map_to_their_outcome_with_the_exit_as_note() {
        let verdict = |code| verdict(&Ok(ended(Some(code), None)), None, None, "w");
        assert_eq!(
            verdict(0),
            finish(Outcome::Exited(0), Some(0), "exit code 0")
        );
        assert_eq!(
            verdict(3),
            finish(Outcome::Exited(3), Some(3), "exit code 3")
        );
        assert_eq!(
            verdict(75),
            finish(Outcome::Deferred, Some(75), "exit code 75")
        );
    }

    #[test]
    fn a_signal_nobody_sent_is_signalled() {
        let result = Ok(ended(None, Some(9)));
        assert_eq!(
            verdict(&result, None, None, "w"),
            finish(Outcome::Signalled, None, "killed by SIGKILL")
        );
    }

    #[test]
    fn a_timeout_names_its_length_and_keeps_the_exit_code() {
        let mut timed_out = ended(None, Some(15));
        timed_out.timed_out = true;
        let timeout = Some(Duration::from_secs(90));
        assert_eq!(
            verdict(&Ok(timed_out), None, timeout, "w"),
            finish(Outcome::TimedOut, None, "timed out after 1m 30s")
        );
        timed_out.exit = Exit {
            code: Some(1),
            signal: None,
        };
        assert_eq!(
            verdict(&Ok(timed_out), None, timeout, "w"),
            finish(Outcome::TimedOut, Some(1), "timed out after 1m 30s")
        );
    }

    #[test]
    fn a_stopped_run_is_handed_back_at_shutdown_and_left_alone_when_lost() {
        let mut cancelled = ended(None, Some(15));
        cancelled.cancelled = true;
        let result = Ok(cancelled);
        assert_eq!(verdict(&result, Some(Stop::Lost), None, "w"), Verdict::Lost);
        for stop in [Some(Stop::Shutdown), None] {
            assert_eq!(
                verdict(&result, stop, None, "w1"),
                Verdict::Finish {
                    outcome: Outcome::HandedBack,
                    exit_code: None,
                    note: Some("handed back: worker w1 shut down".to_owned()),
                }
            );
        }
    }

    #[test]
    fn a_fenced_run_is_handed_back_even_when_the_guard_ended_it_but_not_after_an_exit_of_its_own() {
        let fenced = Verdict::Finish {
            outcome: Outcome::HandedBack,
            exit_code: None,
            note: Some(
                "handed back: worker w1 could not renew its runs in the store in time".to_owned(),
            ),
        };
        let mut cancelled = ended(None, Some(15));
        cancelled.cancelled = true;
        assert_eq!(
            verdict(&Ok(cancelled), Some(Stop::Fenced), None, "w1"),
            fenced
        );
        // SIGTERM from the guard while the worker was stalled: nobody in the worker sent it.
        let by_guard = ended(None, Some(15));
        assert_eq!(
            verdict(&Ok(by_guard), Some(Stop::Fenced), None, "w1"),
            fenced
        );
        // It completed just as the deadline passed: its end is written if still ours.
        let completed = ended(Some(0), None);
        assert_eq!(
            verdict(&Ok(completed), Some(Stop::Fenced), None, "w1"),
            finish(Outcome::Exited(0), Some(0), "exit code 0")
        );
    }

    #[test]
    fn a_process_that_did_not_start_is_a_setup_failure() {
        let result = Err(RunError::Spawn(SpawnError::EmptyCommand {
            cwd: "/p".into(),
        }));
        assert_eq!(
            verdict(&result, None, None, "w"),
            Verdict::Setup("nothing to run in /p: the command is empty".to_owned())
        );
    }

    #[test]
    fn a_process_lost_from_sight_is_signalled_with_the_cause() {
        let result = Err(RunError::Process {
            program: "sleep".to_owned(),
            pid: 7,
            doing: "waiting",
            source: std::io::Error::other("gone"),
        });
        assert_eq!(
            verdict(&result, None, None, "w"),
            finish(Outcome::Signalled, None, "`sleep` (pid 7): waiting: gone")
        );
    }
}
