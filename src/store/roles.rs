//! The store's roles: one trait per concern, and [`Store`], all of them at once.
//! Callers take the narrowest role they need (the worker's run a `&dyn Queue`, reconcile a
//! `&dyn Catalog`, the log shipper a `&dyn Journal`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::queue::run::{Cancel, LiveReport, RunEnd, RunRecord};

/// [`Queue::finish_and_claim`] as separate calls: [`Queue::finish_run`], then
/// [`claim_with_definitions`] (for a backend without a transaction spanning both).
pub(crate) async fn finish_then_claim<S: Queue + Catalog + ?Sized>(
    store: &S,
    worker: &str,
    finish: Option<(&str, &RunEnd)>,
    claim: Option<(DateTime<Utc>, &Paused)>,
) -> StoreResult<Stepped> {
    let finished = match finish {
        Some((id, end)) => store.finish_run(id, worker, end).await?,
        None => None,
    };
    let claimed = match claim {
        Some((now, paused)) => claim_with_definitions(store, worker, now, paused).await,
        None => Ok(None),
    };
    Ok(Stepped { finished, claimed })
}

/// [`Queue::claim_run`], then the claimed run's project and job.
async fn claim_with_definitions<S: Queue + Catalog + ?Sized>(
    store: &S,
    worker: &str,
    now: DateTime<Utc>,
    paused: &Paused,
) -> StoreResult<Option<Claimed>> {
    let Some(run) = store.claim_run(worker, now, paused).await? else {
        return Ok(None);
    };
    let (project, job) = store.get_project_and_job(&run.project, &run.job).await?;
    Ok(Some(Claimed { run, project, job }))
}

/// The catalog: applied projects, jobs, apps and releases.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// All projects, active or not, sorted by name.
    async fn list_projects(&self) -> StoreResult<Vec<ProjectRecord>>;
    async fn get_project(&self, name: &str) -> StoreResult<Option<ProjectRecord>>;
    /// Insert or replace the project with this name.
    async fn put_project(&self, record: &ProjectRecord) -> StoreResult<()>;

    /// Jobs (active or not) sorted by id, optionally only those of one project.
    async fn list_jobs(&self, project: Option<&str>) -> StoreResult<Vec<JobRecord>>;
    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>>;
    /// Insert or replace the job with this id.
    async fn put_job(&self, record: &JobRecord) -> StoreResult<()>;

    /// Project `project` and job `job` at once: what a worker reads to start a run (one
    /// round trip where the backend allows). The project's manifest comes with its `jobs`
    /// emptied ([`ProjectRecord::manifest_without_jobs`]: each job is in its own record),
    /// so the read does not grow with the project's jobs; the rest is as stored.
    async fn get_project_and_job(
        &self,
        project: &str,
        job: &str,
    ) -> StoreResult<(Option<ProjectRecord>, Option<JobRecord>)> {
        let project = self
            .get_project(project)
            .await?
            .map(|record| ProjectRecord {
                manifest: record.manifest_without_jobs(),
                ..record
            });
        Ok((project, self.get_job(job).await?))
    }

    /// How many jobs are stored and their latest `updated_at`: a cheap sign that some job
    /// changed (every apply writes `updated_at`), for the scheduler's periodic look.
    async fn jobs_marker(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)>;

    /// Apps (active or not) sorted by id, optionally only those of one project.
    async fn list_apps(&self, project: Option<&str>) -> StoreResult<Vec<AppRecord>>;
    async fn get_app(&self, id: &str) -> StoreResult<Option<AppRecord>>;
    /// Insert or replace the app with this id.
    async fn put_app(&self, record: &AppRecord) -> StoreResult<()>;

    /// Record a release; a second record of the same project and version replaces it.
    async fn put_release(&self, release: &ReleaseRecord) -> StoreResult<()>;

    /// Releases, newest first, of one project or all.
    async fn list_releases(&self, project: Option<&str>) -> StoreResult<Vec<ReleaseRecord>>;
}

/// The scheduler's fires: each `(job, instant)` recorded once, settled, taken over; a job's fire times.
#[async_trait]
pub trait Fires: Send + Sync {
    /// Set a job's `last_fire` and `next_fire` (nothing else), only while its definition
    /// still has `hash`. Returns false, changing nothing, when the job is missing or was
    /// re-applied with another definition (whose fire times apply computed anew).
    async fn set_fire_times(
        &self,
        id: &str,
        hash: &str,
        last_fire: Option<DateTime<Utc>>,
        next_fire: Option<DateTime<Utc>>,
    ) -> StoreResult<bool>;

    /// Record that `job` fired for `instant`. Returns true for the first caller only, across
    /// every process and host sharing the store (a unique key on `(job, instant)`).
    /// The fire starts unsettled: see [`Fires::settle_fire`].
    async fn record_fire(&self, job: &str, instant: DateTime<Utc>) -> StoreResult<bool>;

    /// Say what became of a recorded fire (stored as its text: `enqueued RUN`, `skipped: …`).
    async fn settle_fire(
        &self,
        job: &str,
        instant: DateTime<Utc>,
        outcome: &FireOutcome,
    ) -> StoreResult<()>;

    /// [`Fires::set_fire_times`] of each of `jobs`; for each, in order, whether it was
    /// written. The embedded store does it in one transaction; the default, one after the
    /// other.
    async fn set_fire_times_all(&self, jobs: &[FireTimes]) -> StoreResult<Vec<bool>> {
        let mut written = Vec::with_capacity(jobs.len());
        for times in jobs {
            written.push(
                self.set_fire_times(&times.job, &times.hash, times.last_fire, times.next_fire)
                    .await?,
            );
        }
        Ok(written)
    }

    /// [`Fires::record_fire`] of each `(job, instant)` of `fires`; for each, in order,
    /// whether this caller recorded it (first across every process, as for one). The
    /// embedded store does it in one transaction; the default, one after the other.
    async fn record_fires(&self, fires: &[(String, DateTime<Utc>)]) -> StoreResult<Vec<bool>> {
        let mut recorded = Vec::with_capacity(fires.len());
        for (job, instant) in fires {
            recorded.push(self.record_fire(job, *instant).await?);
        }
        Ok(recorded)
    }

    /// [`Fires::settle_fire`] of each `(job, instant, outcome)` of `fires`. The embedded
    /// store does it in one transaction; the default, one after the other.
    async fn settle_fires(
        &self,
        fires: &[(String, DateTime<Utc>, FireOutcome)],
    ) -> StoreResult<()> {
        for (job, instant, outcome) in fires {
            self.settle_fire(job, *instant, outcome).await?;
        }
        Ok(())
    }

    /// Fires recorded (or taken over) before `recorded_before` and never settled, oldest
    /// first, at most 100.
    async fn unsettled_fires(&self, recorded_before: DateTime<Utc>) -> StoreResult<Vec<Fire>>;

    /// Delete settled fires of instants before `before`; returns how many. (A fire only
    /// matters while some scheduler may still handle its instant.)
    async fn prune_fires(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Take over an unsettled fire as read by [`Fires::unsettled_fires`]: true for one caller
    /// only (its `fired_at` becomes `now`, so a taker that stops too is taken over later).
    async fn retake_fire(&self, fire: &Fire, now: DateTime<Utc>) -> StoreResult<bool>;
}

/// The queue: enqueue, claim, heartbeat, report, finish, take back zombies, kill/remove; run output tails.
#[async_trait]
pub trait Queue: Send + Sync {
    // The queue. Every method is safe with many processes on many hosts at once.
    /// Add a `pending` run — unless a run with the same `dedupe` key is in a blocking state
    /// (pending, running, failed, deferred): then nothing is added and that run's id is
    /// returned. Of concurrent enqueues of one key exactly one is queued.
    async fn enqueue(&self, run: &RunRecord) -> StoreResult<Enqueued>;

    /// [`Queue::enqueue`] of each of `runs`, in order (each sees those before it: a second
    /// run with the first's dedupe key is its duplicate); what became of each. The embedded
    /// store does it in one transaction; the default, one enqueue after the other.
    async fn enqueue_all(&self, runs: &[RunRecord]) -> StoreResult<Vec<Enqueued>> {
        let mut enqueued = Vec::with_capacity(runs.len());
        for run in runs {
            enqueued.push(self.enqueue(run).await?);
        }
        Ok(enqueued)
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<RunRecord>>;

    /// Runs matching `filter`, newest (by `created`, then id) first.
    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>>;

    /// How many runs match the state, project and job of `filter` (its limit is ignored),
    /// without reading them.
    async fn count_runs(&self, filter: &RunFilter) -> StoreResult<u64>;

    /// Claim the next run for `worker`: among claimable runs (pending, failed, deferred)
    /// with `not_before <= now` that `paused` allows, the highest priority, then the oldest,
    /// whose job has fewer than `max_parallel` runs running. It becomes `running` (attempt
    /// + 1, worker, started and heartbeat `now`). Each claimable state is claimed exactly
    /// once, however many workers claim at once. `None`: nothing to do.
    async fn claim_run(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        paused: &Paused,
    ) -> StoreResult<Option<RunRecord>>;

    /// A worker's step between two runs: end the try `finish` (run id and end, exactly as
    /// [`Queue::finish_run`]) if given; then, if `claim` is given (`now` and the pauses),
    /// claim the next run for `worker` (exactly as [`Queue::claim_run`]) and read its
    /// project and job (as [`Catalog::get_project_and_job`] does). The embedded store does all of it in one transaction, one round trip
    /// per run for a busy worker; MongoDB does the calls one after the other
    /// ([`finish_then_claim`]). An error
    /// ending the try is returned as such; one claiming is returned in
    /// [`Stepped::claimed`], the end kept.
    async fn finish_and_claim(
        &self,
        worker: &str,
        finish: Option<(&str, &RunEnd)>,
        claim: Option<(DateTime<Utc>, &Paused)>,
    ) -> StoreResult<Stepped>;

    /// Record that `worker` is alive and still running `runs`; returns those of them that
    /// are indeed still running and owned by `worker` (a run missing from the answer was
    /// taken back or ended: stop it).
    async fn heartbeat(
        &self,
        worker: &str,
        runs: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>>;

    /// Record `report` (pid, progress) for run `id` and refresh its heartbeat, if it is still
    /// running and owned by `worker`: returns whether it was.
    async fn report_run(
        &self,
        id: &str,
        worker: &str,
        report: &LiveReport,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// End the try of run `id` if it is still running and owned by `worker`, releasing its
    /// job slot (an `end` in state pending or running is refused with
    /// [`StoreError::Invalid`]). Returns the updated run, or `None` when it was not (any more) `worker`'s
    /// to end (taken back as a zombie, ended already).
    async fn finish_run(
        &self,
        id: &str,
        worker: &str,
        end: &RunEnd,
    ) -> StoreResult<Option<RunRecord>>;

    /// Take back every running run whose latest heartbeat is older than `now -
    /// zombie_after` ([`RunRecord::zombie_end`]): `pending` again at once without spending
    /// an attempt, reason `zombie` — or, at its `max_lost`th loss in a row, `error`, reason
    /// `lost N times with its worker`. Each is taken back exactly once however many reapers
    /// run; returns the runs this call took back, updated.
    async fn take_back_zombies(
        &self,
        now: DateTime<Utc>,
        zombie_after: Duration,
        max_lost: u32,
    ) -> StoreResult<Vec<RunRecord>>;

    /// Kill or remove run `id` (see [`Cancel`]), exactly once even against a worker claiming
    /// or finishing it at the same moment. A killed running run keeps its worker's output;
    /// the worker notices at its next heartbeat and ends the process group.
    async fn cancel_run(
        &self,
        id: &str,
        cancel: Cancel,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancelled>;

    /// Keep `text` as the output (tail) `id` (a run's id, or `app:<app>`), replacing what
    /// was kept — unless it was kept under a higher `fence`: a run's try writes under its
    /// claim count (`RunRecord::claims`), an app's owner under its fencing token
    /// (`AppStatus::token`), and a take-back or take-over raises the fence past the writer
    /// it replaces, so a stalled writer never overwrites its successor's output. True if
    /// written.
    async fn put_output(&self, id: &str, fence: u64, text: &str) -> StoreResult<bool>;

    /// The output (tail) kept for run `id`, if any.
    async fn get_output(&self, id: &str) -> StoreResult<Option<String>>;

    /// The ids of runs that start with `prefix` (exactly: run ids are upper-case ULIDs),
    /// sorted, at most `limit` of them: how a short id the operator typed is resolved.
    async fn run_ids_starting_with(&self, prefix: &str, limit: usize) -> StoreResult<Vec<String>>;
}

/// The fleet: live members (workers, daemons), operator switches (pause, halt), app ownership.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// Take app `id` for `status.owner` if nobody holds it, or the holder's heartbeat is
    /// older than `stale_before`, or the holder is `status.owner` itself (an earlier task of
    /// it): write `status` under a new fencing token, higher than any the app had (and than
    /// its output's fence, which is raised to it), and return the token. `None`: a live
    /// daemon holds it. Of concurrent claims of a free app exactly one wins.
    async fn claim_app(
        &self,
        status: &AppStatus,
        stale_before: DateTime<Utc>,
    ) -> StoreResult<Option<u64>>;

    /// Write `status` (a heartbeat, a new state) if `status.owner` still holds the app under
    /// `status.token`; false once another daemon took it (or it was released): a stale owner
    /// never overwrites its successor's status.
    async fn renew_app(&self, status: &AppStatus) -> StoreResult<bool>;

    /// Forget app `id`'s status if `owner` holds it under `token` (the app was stopped or
    /// removed).
    async fn release_app(&self, id: &str, owner: &str, token: u64) -> StoreResult<()>;

    /// Every app status, by id.
    async fn list_app_status(&self) -> StoreResult<Vec<AppStatus>>;

    /// The operator switches (pauses, halt).
    async fn control(&self) -> StoreResult<Control>;

    /// Pause (`paused`) or resume starting new runs of `project`, or of everything (`None`).
    /// Resuming everything does not resume projects paused one by one.
    async fn set_paused(&self, project: Option<&str>, paused: bool) -> StoreResult<()>;

    /// Ask every worker and daemon started before `before` to stop.
    async fn halt(&self, before: DateTime<Utc>) -> StoreResult<()>;

    /// Ask whichever daemon runs app `id` to replace its process if it started before `at`
    /// ([`Control::app_restarts`]).
    async fn request_app_restart(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;

    /// Insert or replace the record of a live worker or daemon (by name).
    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()>;

    /// Forget a worker or daemon that stopped.
    async fn remove_member(&self, name: &str) -> StoreResult<()>;

    /// Every recorded worker and daemon, sorted by name.
    async fn list_members(&self) -> StoreResult<Vec<MemberRecord>>;
}

/// The journal: log records and each daemon's manifest problems.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Replace what `problems.source` recorded before; an empty list removes the record.
    async fn put_problems(&self, problems: &Problems) -> StoreResult<()>;

    /// Every daemon's current manifest problems, by source.
    async fn list_problems(&self) -> StoreResult<Vec<Problems>>;

    /// Append log records (ids unique; a record already stored is kept as it is).
    async fn append_log(&self, records: &[LogRecord]) -> StoreResult<()>;

    /// Log records per `filter`, oldest first.
    async fn list_log(&self, filter: &LogFilter) -> StoreResult<Vec<LogRecord>>;

    /// Delete log records older than `before`; returns how many.
    async fn prune_log(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Access: the API's tokens (stored by the SHA-256 of their secret, never the secret).
#[async_trait]
pub trait Access: Send + Sync {
    /// Record a new token; `false` (and nothing written) if one of that name, or with that
    /// hash, exists. Of several processes creating the same name at once, one wins.
    async fn create_token(&self, token: &TokenRecord) -> StoreResult<bool>;

    /// Every token, sorted by name.
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>>;

    /// The token whose secret has SHA-256 `hash`, expired or not.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;

    /// Record that token `name` was used at `at` (a later use is never overwritten by an
    /// earlier one); `false` if there is no such token.
    async fn touch_token(&self, name: &str, at: DateTime<Utc>) -> StoreResult<bool>;

    /// Forget token `name`: its secret is refused from then on. `false` if there was none.
    async fn revoke_token(&self, name: &str) -> StoreResult<bool>;
}

/// The whole store: every role, for the places that need everything (opening, the daemon).
/// Every method is one short, self-contained operation; none keeps state in memory between calls.
#[async_trait]
pub trait Store: Catalog + Fires + Queue + Fleet + Journal + Access {
    /// `"embedded"` or `"mongodb"`, and where: for messages (never contains a password).
    fn describe(&self) -> String;

    /// Create every collection/table and index coco needs. Idempotent: safe on every start
    /// and from several processes at once.
    async fn ensure_schema(&self) -> StoreResult<()>;
}
