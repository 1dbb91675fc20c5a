//! The job queue: runs (one [`RunRecord`] each) move through [`state::RunState`]s.
//!
//! - [`state`]: the pure state machine (what happens when a try ends).
//! - [`run`]: the run record and its transitions (claimed, ended, cancelled, …), which the
//!   store applies in its atomic steps (enqueue with dedupe, claim, heartbeat, finish,
//!   zombie take-back: the store's `Queue` role). The store depends on this module, never
//!   the reverse.
//! - This module builds new runs from a job definition ([`new_run`]) and their dedupe key.
//! - [`history`]: a run's state history, bounded.

pub mod history;
pub mod run;
pub mod state;

/// The arguments of a run: the job's `defaults` with `given` on top, a later key winning
/// (pure): `coco enqueue --arg`, `coco run --arg` and the API's `{"args": {…}}`.
pub fn overlay_args(
    defaults: &std::collections::BTreeMap<String, serde_json::Value>,
    given: impl IntoIterator<Item = (String, serde_json::Value)>,
) -> serde_json::Value {
    let mut merged: serde_json::Map<String, serde_json::Value> = defaults
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    merged.extend(given);
    serde_json::Value::Object(merged)
}

/// Wake the idle workers of this host now (they poll otherwise): call after an enqueue.
/// Returns how many workers were reached. See [`crate::wake`].
pub fn wake(state_dir: &std::path::Path) -> usize {
    crate::wake::poke(state_dir, crate::wake::Poke::Queue)
}

/// Tell the workers of this host that a run was killed or the pauses or halt changed, so
/// they act now rather than at their next heartbeat. Returns how many were reached.
pub fn wake_control(state_dir: &std::path::Path) -> usize {
    crate::wake::poke(state_dir, crate::wake::Poke::Control)
}

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::manifest::{Concurrency, Job};
use run::{RunRecord, StateChange};
use state::RunState;

/// The key two runs share when they are "the same work": SHA-256 over the job id and the
/// canonical JSON of its arguments (object keys sorted, so `{"a":1,"b":2}` and
/// `{"b":2,"a":1}` are the same).
pub fn dedupe_key(job: &str, args: &serde_json::Value) -> String {
    let canonical = serde_json::json!([job, canonical(args)]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// `value` with every object's keys sorted (serde_json's `Map` keeps insertion order only
/// with the `preserve_order` feature; sort explicitly so the key never depends on it).
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// What a new run is made from, besides the job definition.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// `project.job`.
    pub job_id: &'a str,
    pub project: &'a str,
    /// Arguments (a JSON object).
    pub args: serde_json::Value,
    pub now: DateTime<Utc>,
    /// Earliest start; `None`: now.
    pub not_before: Option<DateTime<Utc>>,
    /// The run that enqueued this one (a `then:` chain), if any.
    pub parent: Option<String>,
    /// The run this one restarts, if any.
    pub restart_of: Option<String>,
    /// Claimable even while its project or the whole queue is paused.
    pub force: bool,
    /// The schedule instant this run was fired for, if the scheduler enqueued it.
    pub scheduled_for: Option<DateTime<Utc>>,
}

impl<'a> NewRun<'a> {
    /// A run of `job_id` (of `project`) with `args`, created `now`, startable at once, with
    /// no parent, not a restart, not forced.
    pub fn new(
        job_id: &'a str,
        project: &'a str,
        args: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Self {
        NewRun {
            job_id,
            project,
            args,
            now,
            not_before: None,
            parent: None,
            restart_of: None,
            force: false,
            scheduled_for: None,
        }
    }
}

/// The id of the run the scheduler enqueues for `job`'s `instant`: a ULID whose time is
/// the instant and whose random part comes from the job id, the same in every process, so
/// a scheduler taking over an unsettled fire can tell whether its run exists (pure).
pub fn scheduled_run_id(job: &str, instant: DateTime<Utc>) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(job.as_bytes());
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&digest[..10]);
    let ms = u64::try_from(instant.timestamp_millis()).unwrap_or(0);
    ulid::Ulid::from_parts(ms, u128::from_be_bytes(random)).to_string()
}

/// A fresh `pending` run of `job`, with a new ULID and the job's limits copied in.
///
/// A scheduled run of a job with `concurrency: allow` gets a dedupe key of its own (the
/// instant is part of it), so it is queued beside the job's active runs; every other run is
/// "the same work" as a blocking run of the same job and arguments.
pub fn new_run(job: &Job, new: NewRun<'_>) -> RunRecord {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let dedupe = match new.scheduled_for {
        Some(instant) if job.concurrency == Concurrency::Allow => dedupe_key(
            new.job_id,
            &serde_json::json!({ "args": new.args, "scheduled_for": instant.timestamp_millis() }),
        ),
        _ => dedupe_key(new.job_id, &new.args),
    };
    let note = new
        .scheduled_for
        .map(|instant| format!("scheduled for {}", instant.to_rfc3339()));
    RunRecord {
        id: ulid::Ulid::new().to_string(),
        job: new.job_id.to_string(),
        project: new.project.to_string(),
        dedupe,
        args: new.args,
        state: RunState::Pending,
        priority: job.priority,
        attempt: 0,
        attempts: job.attempts,
        max_parallel: job.max_parallel,
        retry_delay_ms: ms(job.retry_delay.0),
        defer_delay_ms: ms(job.defer_delay.0),
        defer_max_ms: ms(job.defer_max.0),
        timeout_ms: job.timeout.map(|t| ms(t.0)),
        created: new.now,
        not_before: new.not_before.unwrap_or(new.now),
        started: None,
        finished: None,
        worker: None,
        pid: None,
        heartbeat: None,
        progress: None,
        progress_message: None,
        exit_code: None,
        reason: None,
        parent: new.parent,
        restart_of: new.restart_of,
        force: new.force,
        lost: 0,
        claims: 0,
        deferrals: 0,
        deferred_since: None,
        history_folded: 0,
        history: vec![StateChange {
            state: RunState::Pending,
            at: new.now,
            note,
        }],
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::DateTime;
    use serde_json::json;

    use super::{NewRun, dedupe_key, new_run};
    use crate::manifest::{HumanDuration, Job};
    use crate::queue::state::RunState;

    #[test]
    fn new_run_copies_the_job_limits() {
        let job = Job {
            attempts: 3,
            retry_delay: HumanDuration(Duration::from_secs(30)),
            timeout: Some(HumanDuration(Duration::from_millis(1500))),
            priority: 7,
            max_parallel: 2,
            ..Job::with_command(&["true"])
        };
        let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let run = new_run(
            &job,
            NewRun {
                parent: Some("parent".into()),
                force: true,
                ..NewRun::new("p.j", "p", json!({"n": 1}), now)
            },
        );
        assert_eq!(run.id.len(), 26, "a ULID");
        assert_eq!((run.job.as_str(), run.project.as_str()), ("p.j", "p"));
        assert_eq!(run.dedupe, dedupe_key("p.j", &json!({"n": 1})));
        assert_eq!(run.state, RunState::Pending);
        assert_eq!((run.attempt, run.attempts, run.max_parallel), (0, 3, 2));
        assert_eq!(
            (run.priority, run.retry_delay_ms, run.timeout_ms),
            (7, 30_000, Some(1500))
        );
        assert_eq!((run.created, run.not_before), (now, now));
        assert_eq!(run.parent.as_deref(), Some("parent"));
        assert!(run.force);
        assert_eq!(run.history.len(), 1);
    }

    #[test]
    fn dedupe_key_ignores_key_order_but_not_values_or_job() {
        let a = dedupe_key("p.j", &json!({"a": 1, "b": {"x": [1, 2], "y": null}}));
        let b = dedupe_key("p.j", &json!({"b": {"y": null, "x": [1, 2]}, "a": 1}));
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            dedupe_key("p.k", &json!({"a": 1, "b": {"x": [1, 2], "y": null}}))
        );
        assert_ne!(
            a,
            dedupe_key("p.j", &json!({"a": 1, "b": {"x": [2, 1], "y": null}}))
        );
        assert_ne!(
            dedupe_key("p.j", &json!({"a": "1"})),
            dedupe_key("p.j", &json!({"a": 1}))
        );
        assert_ne!(
            dedupe_key("p.j", &json!({})),
            dedupe_key("p.j", &json!(null))
        );
    }
}
