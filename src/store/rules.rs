//! The store's decisions, pure, written once: both backends call these and only carry out
//! what they decide (in a SQLite transaction, or by MongoDB marker inserts).
//!
//! - The claim: which candidate run a claim may take ([`ClaimPass`]: the pauses, and the
//!   jobs whose slots this pass found full) and whether a job has a free slot
//!   ([`slot_free`], of [`job_slots`]). Both backends also narrow their query for speed
//!   (SQLite through the `queue_claimable` index, MongoDB by its filter: claimable, due,
//!   only forced runs while the whole queue is paused); the pure rule is the one decision
//!   both then apply to every candidate row they read.
//! - The app take-over ([`app_claim`]): a daemon may write an app's status when nobody
//!   holds it, when it holds it itself, or when the holder's heartbeat is stale.
//! - A worker writes (heartbeat, report, finish) only its own running try ([`holds`]).
//! - A try's end ([`check_end`]): the states no try may end in are refused.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{Paused, StoreError, StoreResult};
use crate::queue::run::{RunEnd, RunRecord};
use crate::queue::state::RunState;

/// One pass of a claim over the candidate runs, in claim order: what it may still try.
#[derive(Debug)]
pub(crate) struct ClaimPass<'a> {
    paused: &'a Paused,
    /// Jobs found with every slot taken in this pass: their other runs are skipped.
    full: HashSet<String>,
}

impl<'a> ClaimPass<'a> {
    pub(crate) fn new(paused: &'a Paused) -> Self {
        ClaimPass {
            paused,
            full: HashSet::new(),
        }
    }

    /// Is `run` (claimable and due) worth trying: allowed under the pauses (or forced),
    /// and its job not found full earlier in this pass?
    pub(crate) fn considers(&self, run: &RunRecord) -> bool {
        self.paused.allows(run) && !self.full.contains(&run.job)
    }

    /// Every slot of `job` is taken: skip its runs for the rest of the pass.
    pub(crate) fn job_full(&mut self, job: String) {
        self.full.insert(job);
    }
}

/// How many runs of `run`'s job may run at once, across all workers (0 is taken as 1).
pub(crate) fn job_slots(run: &RunRecord) -> u32 {
    run.max_parallel.max(1)
}

/// With `running` runs of its job running, may `run` take a slot?
pub(crate) fn slot_free(running: u64, run: &RunRecord) -> bool {
    running < u64::from(job_slots(run))
}

/// Is `run` a running try of `worker` (the only runs it may heartbeat, report on or
/// finish)?
pub(crate) fn holds(worker: &str, run: &RunRecord) -> bool {
    run.state == RunState::Running && run.worker.as_deref() == Some(worker)
}

/// Who holds an app's status record, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppHolder<'a> {
    pub(crate) owner: &'a str,
    /// The holder's latest heartbeat; `None` if unreadable (never taken as stale).
    pub(crate) heartbeat: Option<DateTime<Utc>>,
}

/// What a daemon's claim of an app may do ([`app_claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppClaim {
    /// Nobody holds it: take it.
    Free,
    /// The claimant holds it already: write its status again.
    Renew,
    /// Another daemon holds it but stopped heartbeating: take it over.
    TakeOver,
    /// A live daemon holds it: leave it.
    Held,
}

impl AppClaim {
    /// May the claimant write its status?
    pub(crate) fn wins(self) -> bool {
        self != AppClaim::Held
    }
}

/// The take-over rule: `claimant` may hold an app held by `holder` if it is the holder, or
/// the holder's heartbeat is older than `stale_before`.
pub(crate) fn app_claim(
    holder: Option<AppHolder<'_>>,
    claimant: &str,
    stale_before: DateTime<Utc>,
) -> AppClaim {
    match holder {
        None => AppClaim::Free,
        Some(holder) if holder.owner == claimant => AppClaim::Renew,
        Some(AppHolder {
            heartbeat: Some(heartbeat),
            ..
        }) if heartbeat < stale_before => AppClaim::TakeOver,
        Some(_) => AppClaim::Held,
    }
}

/// The fencing token of a new hold of an app (pure): above the token it was held under
/// and the fence its output was last written under, so no earlier owner's write matches.
pub(crate) fn next_app_token(held: u64, output_fence: u64) -> u64 {
    held.max(output_fence).saturating_add(1)
}

/// Refuse `end` for run `id` if no try can end that way (see [`RunEnd::check`]).
pub(crate) fn check_end(id: &str, end: &RunEnd) -> StoreResult<()> {
    end.check()
        .map_err(|refused| StoreError::invalid(format!("finishing run {id}"), refused))
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::manifest::Job;
    use crate::queue::state::{Next, Reason, Streaks};
    use crate::queue::{NewRun, new_run};

    fn run(project: &str, job: &str, max_parallel: u32, force: bool) -> RunRecord {
        let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let mut run = new_run(
            &Job::with_command(&["true"]),
            NewRun {
                force,
                ..NewRun::new(job, project, json!({}), now)
            },
        );
        run.max_parallel = max_parallel;
        run
    }

    #[test]
    fn a_claim_pass_follows_the_pauses_and_skips_full_jobs() {
        let free = Paused::default();
        let mut pass = ClaimPass::new(&free);
        assert!(pass.considers(&run("p", "p.a", 1, false)));
        pass.job_full("p.a".into());
        assert!(
            !pass.considers(&run("p", "p.a", 1, true)),
            "full, forced or not"
        );
        assert!(pass.considers(&run("p", "p.b", 1, false)));

        let project = Paused {
            all: false,
            projects: vec!["p".into()],
        };
        let pass = ClaimPass::new(&project);
        assert!(!pass.considers(&run("p", "p.a", 1, false)));
        assert!(pass.considers(&run("p", "p.a", 1, true)), "forced");
        assert!(pass.considers(&run("q", "q.a", 1, false)));

        let all = Paused {
            all: true,
            projects: vec![],
        };
        let pass = ClaimPass::new(&all);
        assert!(!pass.considers(&run("q", "q.a", 1, false)));
        assert!(pass.considers(&run("q", "q.a", 1, true)), "forced");
    }

    #[test]
    fn a_job_has_max_parallel_slots_and_zero_is_one() {
        assert_eq!(job_slots(&run("p", "p.a", 0, false)), 1);
        assert_eq!(job_slots(&run("p", "p.a", 3, false)), 3);
        let one = run("p", "p.a", 0, false);
        assert!(slot_free(0, &one));
        assert!(!slot_free(1, &one));
        let three = run("p", "p.a", 3, false);
        assert!(slot_free(2, &three));
        assert!(!slot_free(3, &three));
        assert!(!slot_free(7, &three));
    }

    #[test]
    fn a_worker_holds_only_its_own_running_tries() {
        let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let waiting = run("p", "p.a", 1, false);
        assert!(!holds("w1", &waiting));
        let running = waiting.claimed("w1", now);
        assert!(holds("w1", &running));
        assert!(!holds("w2", &running));
        let mut ended = running;
        ended.state = RunState::Complete;
        assert!(!holds("w1", &ended));
    }

    #[test]
    fn an_app_is_taken_when_free_own_or_stale() {
        let t = |ms| DateTime::from_timestamp_millis(ms).unwrap();
        let stale_before = t(10_000);
        let held = |owner, heartbeat| {
            Some(AppHolder {
                owner,
                heartbeat: Some(heartbeat),
            })
        };
        assert_eq!(app_claim(None, "a", stale_before), AppClaim::Free);
        assert_eq!(
            app_claim(held("a", t(1)), "a", stale_before),
            AppClaim::Renew
        );
        assert_eq!(
            app_claim(held("b", t(9_999)), "a", stale_before),
            AppClaim::TakeOver
        );
        assert_eq!(
            app_claim(held("b", t(10_000)), "a", stale_before),
            AppClaim::Held,
            "a heartbeat at the limit is not stale"
        );
        let unreadable = Some(AppHolder {
            owner: "b",
            heartbeat: None,
        });
        assert_eq!(app_claim(unreadable, "a", stale_before), AppClaim::Held);
        assert!(AppClaim::Free.wins() && AppClaim::Renew.wins() && AppClaim::TakeOver.wins());
        assert!(!AppClaim::Held.wins());
    }

    #[test]
    fn an_end_in_running_or_pending_is_refused_unless_handed_back() {
        let end = |state, reason| RunEnd {
            next: Next {
                state,
                attempt: 1,
                not_before: None,
                reason,
                streaks: Streaks::default(),
            },
            at: DateTime::from_timestamp_millis(0).unwrap(),
            exit_code: None,
            note: None,
            report: Default::default(),
        };
        assert!(check_end("r", &end(RunState::Complete, None)).is_ok());
        assert!(check_end("r", &end(RunState::Pending, Some(Reason::Shutdown))).is_ok());
        let refused = check_end("r", &end(RunState::Running, None)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "finishing run r: a try cannot end in state running"
        );
        assert!(check_end("r", &end(RunState::Pending, Some(Reason::Zombie))).is_err());
    }
}
