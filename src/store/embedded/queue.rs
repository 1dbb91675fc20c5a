//! The embedded store's part of [`Queue`]: the queue: enqueue, claim, heartbeat, report, finish, take back zombies, kill/remove; run output tails.

use super::*;
use crate::store::Queue;
use crate::store::rules::{ClaimPass, check_end, holds, slot_free};

#[async_trait]
impl Queue for EmbeddedStore {
    async fn enqueue(&self, run: &RunRecord) -> StoreResult<Enqueued> {
        let r = run.clone().truncated_to_ms();
        self.run("enqueueing a run", move |conn| {
            // The write lock is taken up front, so the check and the insert are one step for
            // every other connection.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let enqueued = enqueue_in(&tx, r)?;
            tx.commit()?;
            Ok(enqueued)
        })
        .await
    }

    async fn enqueue_all(&self, runs: &[RunRecord]) -> StoreResult<Vec<Enqueued>> {
        let runs: Vec<RunRecord> = runs.iter().map(|r| r.clone().truncated_to_ms()).collect();
        self.run("enqueueing runs", move |conn| {
            // One write transaction: each check and insert sees the ones before it.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let enqueued = runs
                .into_iter()
                .map(|r| enqueue_in(&tx, r))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(enqueued)
        })
        .await
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<RunRecord>> {
        let id = id.to_string();
        self.run("reading a run", move |conn| read_run(conn, &id))
            .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        let filter = filter.clone();
        self.run("listing runs", move |conn| {
            let (condition, values) = run_filter_sql(&filter);
            let mut sql = format!("SELECT doc FROM queue{condition}");
            sql += " ORDER BY created DESC, id DESC";
            if let Some(limit) = filter.limit {
                sql += &format!(" LIMIT {limit}");
            }
            let mut stmt = conn.prepare_cached(&sql)?;
            let docs = stmt
                .query_map(params_from_iter(values), |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            docs.iter().map(|doc| decode_run(doc)).collect()
        })
        .await
    }

    async fn count_runs(&self, filter: &RunFilter) -> StoreResult<u64> {
        let filter = filter.clone();
        self.run("counting runs", move |conn| {
            let (condition, values) = run_filter_sql(&filter);
            let sql = format!("SELECT COUNT(*) FROM queue{condition}");
            let count: i64 = conn
                .prepare_cached(&sql)?
                .query_row(params_from_iter(values), |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or_default())
        })
        .await
    }

    async fn claim_run(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        paused: &Paused,
    ) -> StoreResult<Option<RunRecord>> {
        let (worker, paused) = (worker.to_string(), paused.clone());
        self.run_hot("claiming a run", move |conn| {
            // Under the write lock: no other connection sees the run before it is running,
            // nor counts the job's running runs in between.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let claimed = claim_in(&tx, &worker, now, &paused)?;
            if let Some(run) = &claimed {
                update_run(&tx, run)?;
                tx.commit()?;
            }
            Ok(claimed)
        })
        .await
    }

    async fn heartbeat(
        &self,
        worker: &str,
        runs: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let (worker, runs) = (worker.to_string(), runs.to_vec());
        self.run("recording a heartbeat", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut alive = Vec::new();
            for id in runs {
                let Some(mut run) = read_run(&tx, &id)? else {
                    continue;
                };
                if !holds(&worker, &run) {
                    continue;
                }
                run.heartbeat = Some(now);
                update_run(&tx, &run.truncated_to_ms())?;
                alive.push(id);
            }
            tx.commit()?;
            Ok(alive)
        })
        .await
    }

    async fn report_run(
        &self,
        id: &str,
        worker: &str,
        report: &LiveReport,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (id, worker, report) = (id.to_string(), worker.to_string(), report.clone());
        self.run_hot("recording a run's progress", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut run) = read_run(&tx, &id)? else {
                return Ok(false);
            };
            if !holds(&worker, &run) {
                return Ok(false);
            }
            run.heartbeat = Some(now);
            run.apply(&report);
            update_run(&tx, &run.truncated_to_ms())?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn finish_run(
        &self,
        id: &str,
        worker: &str,
        end: &RunEnd,
    ) -> StoreResult<Option<RunRecord>> {
        check_end(id, end)?;
        let (id, worker, end) = (id.to_string(), worker.to_string(), end.clone());
        self.run("finishing a run", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ended = finish_in(&tx, &id, &worker, &end)?;
            if ended.is_some() {
                tx.commit()?;
            }
            Ok(ended)
        })
        .await
    }

    async fn finish_and_claim(
        &self,
        worker: &str,
        finish: Option<(&str, &RunEnd)>,
        claim: Option<(DateTime<Utc>, &Paused)>,
    ) -> StoreResult<Stepped> {
        if let Some((id, end)) = finish {
            check_end(id, end)?;
        }
        let worker = worker.to_string();
        let finish = finish.map(|(id, end)| (id.to_string(), end.clone()));
        let claim = claim.map(|(now, paused)| (now, paused.clone()));
        let path = self.path.clone();
        let manifests = Arc::clone(&self.manifests);
        let (finished, claimed) = self
            .run_hot("finishing a run and claiming the next", move |conn| {
                // One write transaction for both: a busy worker's one round trip per run.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let finished = match &finish {
                    Some((id, end)) => finish_in(&tx, id, &worker, end)?,
                    None => None,
                };
                let claimed = match &claim {
                    Some((now, paused)) => {
                        claim_with_definitions_in(&tx, &manifests, &worker, *now, paused)
                    }
                    None => Ok(None),
                };
                if claimed.is_ok() {
                    tx.commit()?;
                    return Ok((finished, claimed));
                }
                // The claim failed: roll it all back, and end the try on its own.
                drop(tx);
                let finished = match &finish {
                    Some((id, end)) => {
                        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                        let finished = finish_in(&tx, id, &worker, end)?;
                        tx.commit()?;
                        finished
                    }
                    None => None,
                };
                Ok((finished, claimed))
            })
            .await?;
        let claimed = claimed
            .map_err(sql(&path, "claiming the next run"))
            .and_then(|claimed| claimed.map(ClaimedRows::decode).transpose());
        Ok(Stepped { finished, claimed })
    }

    async fn take_back_zombies(
        &self,
        now: DateTime<Utc>,
        zombie_after: Duration,
        max_lost: u32,
    ) -> StoreResult<Vec<RunRecord>> {
        let cutoff =
            to_ms(now).saturating_sub(i64::try_from(zombie_after.as_millis()).unwrap_or(i64::MAX));
        self.run("taking back zombie runs", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let docs = tx
                .prepare_cached(
                    "SELECT doc FROM queue WHERE state = 'running' AND COALESCE(heartbeat, 0) < ?1
                     ORDER BY id",
                )?
                .query_map([cutoff], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            let mut taken = Vec::new();
            for doc in docs {
                let run = decode_run(&doc)?;
                let end = run.zombie_end(now, max_lost);
                let ended = run.ended(&end);
                update_run(&tx, &ended)?;
                raise_output_fence(&tx, &ended.id, u64::from(ended.claims) + 1)?;
                taken.push(ended);
            }
            tx.commit()?;
            Ok(taken)
        })
        .await
    }

    async fn cancel_run(
        &self,
        id: &str,
        cancel: Cancel,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancelled> {
        let id = id.to_string();
        self.run("cancelling a run", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(run) = read_run(&tx, &id)? else {
                return Ok(Cancelled::Missing);
            };
            if !cancel.applies_to(run.state) {
                return Ok(Cancelled::Refused(run));
            }
            let done = if run.state == RunState::Running {
                let end = run.kill_end(now);
                run.ended(&end)
            } else {
                run.cancelled(cancel, now)
            };
            update_run(&tx, &done)?;
            tx.commit()?;
            Ok(Cancelled::Done(done))
        })
        .await
    }

    async fn put_output(&self, id: &str, fence: u64, text: &str) -> StoreResult<bool> {
        let (id, text) = (id.to_string(), text.to_string());
        let fence = i64::try_from(fence).unwrap_or(i64::MAX);
        self.run_hot("keeping an output", move |conn| {
            let written = conn
                .prepare_cached(
                    "INSERT INTO outputs (id, text, fence) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET text = excluded.text, fence = excluded.fence
                     WHERE outputs.fence <= excluded.fence",
                )?
                .execute(params![id, text, fence])?;
            Ok(written == 1)
        })
        .await
    }

    async fn get_output(&self, id: &str) -> StoreResult<Option<String>> {
        let id = id.to_string();
        self.run("reading a run's output", move |conn| {
            conn.prepare_cached("SELECT text FROM outputs WHERE id = ?1 AND text != ''")?
                .query_row(params![id], |row| row.get(0))
                .optional()
        })
        .await
    }

    async fn run_ids_starting_with(&self, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        let (from, to) = (prefix.to_string(), crate::store::prefix_end(prefix));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("looking up run ids by prefix", move |conn| {
            conn.prepare_cached(
                "SELECT id FROM queue WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![from, to, limit], |row| row.get(0))?
            .collect()
        })
        .await
    }
}

/// `'a','b'`: the stored names of `states`, for an SQL `IN (...)`.
/// Enqueue `r` (as [`Queue::enqueue`] says) in the caller's write transaction.
fn enqueue_in(tx: &Connection, r: RunRecord) -> rusqlite::Result<Enqueued> {
    let sql = format!(
        "SELECT id FROM queue WHERE dedupe = ?1 AND state IN ({}) ORDER BY created LIMIT 1",
        state_list(&RunState::BLOCKING)
    );
    let existing: Option<String> = tx
        .prepare_cached(&sql)?
        .query_row([&r.dedupe], |row| row.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(Enqueued::Duplicate(id));
    }
    insert_run(tx, &r)?;
    Ok(Enqueued::Queued(r.id))
}

pub(super) fn state_list(states: &[RunState]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A run from its `doc` column.
pub(super) fn decode_run(text: &str) -> rusqlite::Result<RunRecord> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The ` WHERE …` clause (empty without conditions) and its values for the state, project
/// and job of `filter` (its limit is the caller's).
pub(super) fn run_filter_sql(filter: &RunFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let columns = [
        (
            "state",
            filter.state.map(|state| state.as_str().to_string()),
        ),
        ("project", filter.project.clone()),
        ("job", filter.job.clone()),
    ];
    for (column, value) in columns {
        if let Some(value) = value {
            values.push(Value::Text(value));
            conditions.push(format!("{column} = ?{}", values.len()));
        }
    }
    if let Some(before) = &filter.before {
        values.push(Value::Integer(to_ms(before.created)));
        let created = values.len();
        values.push(Value::Text(before.id.clone()));
        let id = values.len();
        conditions.push(format!(
            "(created < ?{created} OR (created = ?{created} AND id < ?{id}))"
        ));
    }
    if conditions.is_empty() {
        (String::new(), values)
    } else {
        (format!(" WHERE {}", conditions.join(" AND ")), values)
    }
}

/// The run with this id.
pub(super) fn read_run(conn: &Connection, id: &str) -> rusqlite::Result<Option<RunRecord>> {
    conn.prepare_cached("SELECT doc FROM queue WHERE id = ?1")?
        .query_row([id], |row| row.get::<_, String>(0))
        .optional()?
        .map(|doc| decode_run(&doc))
        .transpose()
}

/// The `doc` column of `r`: the whole record as JSON.
pub(super) fn run_doc(r: &RunRecord) -> rusqlite::Result<String> {
    serde_json::to_string(r).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Insert the new run `r`: its queried fields as columns and the whole record as `doc`.
pub(super) fn insert_run(conn: &Connection, r: &RunRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO queue (id, job, project, state, priority, created, not_before, dedupe,
                            worker, heartbeat, forced, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        r.id,
        r.job,
        r.project,
        r.state.as_str(),
        r.priority,
        to_ms(r.created),
        to_ms(r.not_before),
        r.dedupe,
        r.worker,
        r.heartbeat.map(to_ms),
        r.force,
        run_doc(r)?
    ])?;
    Ok(())
}

/// Write the stored run `r` back after a change of its life: state, `not_before`, worker,
/// heartbeat and `doc`. The other columns (job, project, priority, created, dedupe, forced)
/// are fixed at enqueue, so their indexes are left alone (an UPDATE of these columns, not a
/// REPLACE of the row, which would rewrite all seven).
pub(super) fn update_run(conn: &Connection, r: &RunRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE queue SET state = ?2, not_before = ?3, worker = ?4, heartbeat = ?5, doc = ?6
         WHERE id = ?1",
    )?
    .execute(params![
        r.id,
        r.state.as_str(),
        to_ms(r.not_before),
        r.worker,
        r.heartbeat.map(to_ms),
        run_doc(r)?
    ])?;
    Ok(())
}

/// Pick and claim the next run (see [`Queue::claim_run`]) inside the caller's transaction.
pub(super) fn claim_in(
    conn: &Connection,
    worker: &str,
    now: DateTime<Utc>,
    paused: &Paused,
) -> rusqlite::Result<Option<RunRecord>> {
    let forced_only = if paused.all { "AND forced = 1" } else { "" };
    let claimable = state_list(&RunState::CLAIMABLE);
    // Runs whose start was put off (a retry delay, a deferral, a later start) are the ones
    // the ordered walk would pass over while they are not due: when none of them is due, walk
    // only the others, so however many wait, a claim costs the same.
    let delayed_due: bool = conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM queue INDEXED BY queue_claimable_delayed
             WHERE state IN ({claimable}) AND not_before > created AND not_before <= ?1)"
        ))?
        .query_row([to_ms(now)], |row| row.get(0))?;
    let (index, undelayed_only) = if delayed_due {
        ("queue_claimable", "")
    } else {
        ("queue_claimable_undelayed", "AND not_before <= created")
    };
    let sql = format!(
        "SELECT id FROM queue INDEXED BY {index} WHERE state IN ({claimable}) {undelayed_only}
         AND not_before <= ?1 {forced_only}
         ORDER BY priority DESC, created ASC, id ASC"
    );
    let mut candidates = conn.prepare_cached(&sql)?;
    let mut rows = candidates.query([to_ms(now)])?;
    let mut count_running =
        conn.prepare_cached("SELECT COUNT(*) FROM queue WHERE job = ?1 AND state = 'running'")?;
    let mut pass = ClaimPass::new(paused);
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let Some(run) = read_run(conn, &id)? else {
            continue;
        };
        if !pass.considers(&run) {
            continue;
        }
        let running: i64 = count_running.query_row([&run.job], |row| row.get(0))?;
        if !slot_free(u64::try_from(running).unwrap_or(0), &run) {
            pass.job_full(run.job);
            continue;
        }
        return Ok(Some(run.claimed(worker, now)));
    }
    Ok(None)
}

/// End the try of run `id` (see [`Queue::finish_run`]) inside the caller's transaction.
pub(super) fn finish_in(
    conn: &Connection,
    id: &str,
    worker: &str,
    end: &RunEnd,
) -> rusqlite::Result<Option<RunRecord>> {
    let Some(run) = read_run(conn, id)? else {
        return Ok(None);
    };
    if !holds(worker, &run) {
        return Ok(None);
    }
    let ended = run.ended(end);
    update_run(conn, &ended)?;
    Ok(Some(ended))
}

/// A claimed run with its project's and job's rows, read in the claim's transaction.
pub(super) struct ClaimedRows {
    run: RunRecord,
    project: Option<ProjectRow>,
    job: Option<JobRow>,
}

impl ClaimedRows {
    pub(super) fn decode(self) -> StoreResult<Claimed> {
        Ok(Claimed {
            run: self.run,
            project: self.project.map(ProjectRow::decode).transpose()?,
            job: self.job.map(JobRow::decode).transpose()?,
        })
    }
}

/// Claim the next run (as [`claim_in`]), write it, and read its project and job, inside the
/// caller's transaction.
pub(super) fn claim_with_definitions_in(
    conn: &Connection,
    manifests: &ClaimManifests,
    worker: &str,
    now: DateTime<Utc>,
    paused: &Paused,
) -> rusqlite::Result<Option<ClaimedRows>> {
    let Some(run) = claim_in(conn, worker, now, paused)? else {
        return Ok(None);
    };
    update_run(conn, &run)?;
    let (project, job) = project_and_job_in(conn, manifests, &run.project, &run.job)?;
    Ok(Some(ClaimedRows { run, project, job }))
}

/// Refuse output writes to `id` under a fence below `fence` from now on (inside the caller's
/// transaction): what a take-back or take-over does before the successor writes anything.
pub(super) fn raise_output_fence(tx: &Connection, id: &str, fence: u64) -> rusqlite::Result<()> {
    let fence = i64::try_from(fence).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO outputs (id, text, fence) VALUES (?1, '', ?2)
         ON CONFLICT (id) DO UPDATE SET fence = MAX(outputs.fence, excluded.fence)",
    )?
    .execute(params![id, fence])?;
    Ok(())
}
