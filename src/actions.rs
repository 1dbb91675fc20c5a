//! What the CLI and the API both do to runs, decided once: a restart, and the words for a
//! kill or remove done or refused. Each returns a typed outcome; the caller says it (the CLI
//! on stderr, the API as a status) and wakes this host's workers.

use chrono::{DateTime, Utc};

use crate::queue::run::{Cancel, RunRecord};
use crate::queue::{self, NewRun, state::RunState};
use crate::store::{Cancelled, Enqueued, Store, StoreError};

/// What a restart did.
#[derive(Debug, Clone, PartialEq)]
pub enum Restarted {
    /// The new run's id.
    Queued(String),
    /// Nothing to restart, and why (pending or running, job no longer applied, changed
    /// meanwhile).
    Refused(String),
    /// A run of the same job and arguments is still waiting or running.
    Duplicate { existing: String, message: String },
}

/// Why a restart could not be tried.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the stored definition of job {job}: {source}")]
    Definition {
        job: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Enqueue `old` again (same job and arguments, the job's current definition, linked by
/// `restart_of`) at `now`. A failed or deferred run is killed first, so the new one takes its
/// place; a finished one is left as it is; a pending or running one is not restarted.
pub async fn restart(
    store: &dyn Store,
    old: &RunRecord,
    now: DateTime<Utc>,
) -> Result<Restarted, ActionError> {
    if matches!(old.state, RunState::Pending | RunState::Running) {
        return Ok(Restarted::Refused(format!(
            "run {} of {} is {}: nothing to restart (kill it first with `coco kill {}`)",
            old.id, old.job, old.state, old.id
        )));
    }
    let record = match store.get_job(&old.job).await? {
        Some(record) if record.active => record,
        _ => {
            return Ok(Restarted::Refused(format!(
                "job {} is no longer applied (removed from its manifest): run {} cannot be restarted",
                old.job, old.id
            )));
        }
    };
    let job = record.job().map_err(|source| ActionError::Definition {
        job: record.id.clone(),
        source,
    })?;
    if old.state.blocks_duplicate() {
        // Failed or deferred: it would run again by itself; the restart replaces it.
        match store.cancel_run(&old.id, Cancel::Kill, now).await? {
            Cancelled::Done(_) => {}
            Cancelled::Refused(changed) => {
                return Ok(Restarted::Refused(format!(
                    "run {} changed to {} meanwhile; look again with `coco detail {}`",
                    old.id, changed.state, old.id
                )));
            }
            Cancelled::Missing => {
                return Ok(Restarted::Refused(format!(
                    "run {} disappeared meanwhile",
                    old.id
                )));
            }
        }
    }
    let mut new = queue::new_run(
        &job,
        NewRun {
            restart_of: Some(old.id.clone()),
            force: old.force,
            ..NewRun::new(&record.id, &record.project, old.args.clone(), now)
        },
    );
    new.priority = old.priority;
    Ok(match store.enqueue(&new).await? {
        Enqueued::Queued(id) => Restarted::Queued(id),
        Enqueued::Duplicate(existing) => Restarted::Duplicate {
            message: format!(
                "not restarted: run {existing} of {} with the same arguments is already waiting or running; see `coco detail {existing}`",
                old.job
            ),
            existing,
        },
    })
}

/// The state a run was in before its latest change.
pub fn previous_state(run: &RunRecord) -> Option<RunState> {
    let n = run.history.len();
    (n >= 2).then(|| run.history[n - 2].state)
}

/// What a kill or remove did to `run` (pure).
pub fn cancel_done(run: &RunRecord, was_running: bool) -> String {
    let verb = run.state.as_str();
    if was_running {
        let worker = run.worker.as_deref().unwrap_or("its worker");
        format!(
            "{verb} run {} of {} (attempt {}): {worker} ends its process group",
            run.id, run.job, run.attempt
        )
    } else if run.attempt == 0 {
        format!("{verb} run {} of {} before it started", run.id, run.job)
    } else {
        format!("{verb} run {} of {} before its next try", run.id, run.job)
    }
}

/// Why a kill or remove did nothing to `run` (pure).
pub fn cancel_refused(run: &RunRecord, cancel: Cancel) -> String {
    match (cancel, run.state) {
        (Cancel::Remove, RunState::Running) => format!(
            "run {} of {} is running: stop it with `coco kill {}`",
            run.id, run.job, run.id
        ),
        (_, state) => format!(
            "run {} of {} is {state} already: only {} runs can be {}",
            run.id,
            run.job,
            match cancel {
                Cancel::Kill => "pending, running, failed or deferred",
                Cancel::Remove => "pending, failed or deferred",
            },
            match cancel {
                Cancel::Kill => "killed",
                Cancel::Remove => "removed",
            }
        ),
    }
}
