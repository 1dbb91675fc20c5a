//! `then:` chains: when a run completes, enqueue the jobs its job names, each with the
//! completed run as `parent` (the child process sees it as `COCO_PARENT_RUN`).
//!
//! A follower is enqueued like `coco enqueue` would (its job's default arguments, its
//! priority, the same dedupe rule); one that cannot be (unknown or removed job, a duplicate
//! still waiting) is reported and skipped, never failing the run that completed.

use chrono::{DateTime, Utc};

use crate::manifest::Job;
use crate::queue::run::RunRecord;
use crate::queue::{NewRun, new_run};
use crate::store::{Enqueued, Store, StoreResult};

/// What became of one follower of a completed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// Enqueued as this run.
    Queued { job: String, run: String },
    /// Not enqueued: a run of the same job and arguments is still waiting or running.
    Duplicate { job: String, run: String },
    /// Not enqueued, and why (unknown or inactive job, unreadable definition).
    Skipped { job: String, why: String },
}

/// Enqueue the followers of `completed` (a run that just ended `complete`) that `job` (its
/// definition as it ran) names, as of `now`.
pub async fn enqueue_followers(
    store: &dyn Store,
    completed: &RunRecord,
    job: &Job,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Followed>> {
    let mut followed = Vec::new();
    for target in job.followers(&completed.project) {
        let follower = match store.get_job(&target).await? {
            Some(record) if record.active => record,
            Some(_) => {
                followed.push(Followed::Skipped {
                    job: target,
                    why: "the job was removed from its manifest".into(),
                });
                continue;
            }
            None => {
                followed.push(Followed::Skipped {
                    job: target,
                    why: "no applied job has that name".into(),
                });
                continue;
            }
        };
        let definition = match follower.job() {
            Ok(definition) => definition,
            Err(error) => {
                followed.push(Followed::Skipped {
                    job: target,
                    why: format!("its stored definition is unreadable: {error}"),
                });
                continue;
            }
        };
        let run = new_run(
            &definition,
            NewRun {
                parent: Some(completed.id.clone()),
                ..NewRun::new(
                    &follower.id,
                    &follower.project,
                    serde_json::to_value(&definition.args).unwrap_or_default(),
                    now,
                )
            },
        );
        followed.push(match store.enqueue(&run).await? {
            Enqueued::Queued(run) => Followed::Queued { job: target, run },
            Enqueued::Duplicate(run) => Followed::Duplicate { job: target, run },
        });
    }
    Ok(followed)
}
