//! The MongoDB store's part of [`Queue`]: the queue: enqueue, claim, heartbeat, report, finish, take back zombies, kill/remove; run output tails.

use super::marker::{LockId, RECOVERABLE_KINDS, SLOT_KIND};
use super::*;
use crate::store::Queue;
use crate::store::Stepped;
use crate::store::roles::finish_then_claim;
use crate::store::rules::{ClaimPass, check_end, holds, job_slots, slot_free};

#[async_trait]
impl Queue for MongoStore {
    async fn enqueue(&self, run: &RunRecord) -> StoreResult<Enqueued> {
        let doing = "enqueueing a run";
        let run = run.clone().truncated_to_ms();
        let dedupe = LockId::dedupe(&run.dedupe);
        let marker_id = dedupe.to_string();
        // A stale marker is removed and the insert retried; a few rounds cover concurrent
        // enqueuers removing it too.
        for _ in 0..5 {
            let marker = doc! {
                "_id": &marker_id, "kind": dedupe.kind(), "run": &run.id, "at": time(Utc::now()),
            };
            if self.insert_marker(marker, doing).await? {
                let inserted = self.collection("queue").insert_one(run_doc(&run, 0)?).await;
                if let Err(e) = inserted {
                    self.delete_lock(doc! { "_id": &marker_id, "run": &run.id }, doing)
                        .await?;
                    return Err(self.err(doing)(e));
                }
                return Ok(Enqueued::Queued(run.id));
            }
            let Some(marker) = self.find_by_id("locks", &marker_id, doing).await? else {
                continue; // removed meanwhile: try again
            };
            let holder = marker
                .get_str("run")
                .map_err(|e| corrupt(&marker_id, e))?
                .to_string();
            let stale = match self.find_by_id("queue", &holder, doing).await? {
                Some(doc) => !run_record(&doc)?.0.state.blocks_duplicate(),
                None => marker
                    .get_datetime("at")
                    .map_or(true, |at| at.to_chrono() + STALE_DEDUPE < Utc::now()),
            };
            if !stale {
                return Ok(Enqueued::Duplicate(holder));
            }
            self.delete_lock(doc! { "_id": &marker_id, "run": &holder }, doing)
                .await?;
        }
        Err(corrupt(
            &marker_id,
            "dedupe marker kept changing while enqueueing; try again",
        ))
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<RunRecord>> {
        Ok(self.read_run(id, "reading a run").await?.map(|(r, _)| r))
    }

    async fn count_runs(&self, filter: &RunFilter) -> StoreResult<u64> {
        self.collection("queue")
            .count_documents(run_filter_doc(filter))
            .await
            .map_err(self.err("counting runs"))
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        let doing = "listing runs";
        if filter.limit == Some(0) {
            return Ok(Vec::new()); // to a server, limit 0 means none
        }
        let limit = filter.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let docs = self
            .find_all(
                "queue",
                run_filter_doc(filter),
                doc! { "created": -1, "_id": -1 },
                limit,
                doing,
            )
            .await?;
        Ok(self
            .runs_with_live(&docs, doing)
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    async fn claim_run(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        paused: &Paused,
    ) -> StoreResult<Option<RunRecord>> {
        let doing = "claiming a run";
        let claimable: Vec<&str> = RunState::CLAIMABLE.iter().map(|s| s.as_str()).collect();
        let mut filter = doc! {
            "state": { "$in": claimable },
            "not_before": { "$lte": time(now) },
        };
        if paused.all {
            filter.insert("force", true);
        }
        // Concurrent claimers read the same candidates in the same order; after losing one
        // to another claimer, skip a few at random so they spread out, and look again from
        // the top until a pass loses nothing (only then is there nothing to claim).
        // The first passes read the first CLAIM_CANDIDATES only (see there).
        let mut limit = Some(CLAIM_CANDIDATES);
        for _ in 0..MAX_CLAIM_PASSES {
            let queue = self.collection("queue");
            let mut find = queue
                .find(filter.clone())
                .sort(doc! { "priority": -1, "created": 1, "_id": 1 });
            if let Some(limit) = limit {
                // One batch of them: the server closes the cursor once it sent them.
                find = find.limit(i64::from(limit)).batch_size(limit);
            }
            let mut cursor = find.await.map_err(self.err(doing))?;
            let mut pass = ClaimPass::new(paused);
            let (mut lost, mut skip, mut seen) = (false, 0, 0);
            while cursor.advance().await.map_err(self.err(doing))? {
                seen += 1;
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let doc: Document = cursor.deserialize_current().map_err(self.err(doing))?;
                let (run, seq) = run_record(&doc)?;
                if !pass.considers(&run) {
                    continue;
                }
                let max = job_slots(&run);
                let first = (random() % u64::from(max)) as u32;
                match self.try_claim(&run, seq, worker, now, first).await? {
                    Claim::Won(claimed) => return Ok(Some(*claimed)),
                    Claim::Lost => (lost, skip) = (true, random() % 8),
                    Claim::Full => pass.job_full(run.job),
                }
            }
            if !lost {
                if limit.is_some_and(|limit| seen >= limit) {
                    limit = None; // there may be more beyond them
                    continue;
                }
                return Ok(None);
            }
        }
        Ok(None)
    }

    async fn finish_and_claim(
        &self,
        worker: &str,
        finish: Option<(&str, &RunEnd)>,
        claim: Option<(DateTime<Utc>, &Paused)>,
    ) -> StoreResult<Stepped> {
        finish_then_claim(self, worker, finish, claim).await
    }

    async fn heartbeat(
        &self,
        worker: &str,
        runs: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let mut alive = Vec::new();
        for id in runs {
            let updated = self
                .locks()
                .update_one(
                    doc! { "_id": live_id(id), "worker": worker },
                    doc! { "$set": { "heartbeat": time(now) } },
                )
                .await
                .map_err(self.err("recording a heartbeat"))?;
            if updated.matched_count == 1 {
                alive.push(id.clone());
            }
        }
        Ok(alive)
    }

    async fn report_run(
        &self,
        id: &str,
        worker: &str,
        report: &LiveReport,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut set = doc! { "heartbeat": time(now) };
        if let Some(pid) = report.pid {
            set.insert("pid", i64::from(pid));
        }
        if let Some(progress) = report.progress {
            set.insert("progress", progress);
        }
        if let Some(message) = &report.progress_message {
            set.insert("progress_message", message);
        }
        let updated = self
            .locks()
            .update_one(
                doc! { "_id": live_id(id), "worker": worker },
                doc! { "$set": set },
            )
            .await
            .map_err(self.err("recording a run's progress"))?;
        Ok(updated.matched_count == 1)
    }

    async fn finish_run(
        &self,
        id: &str,
        worker: &str,
        end: &RunEnd,
    ) -> StoreResult<Option<RunRecord>> {
        check_end(id, end)?;
        let doing = "finishing a run";
        let Some((run, seq)) = self.read_running_run(id, doing).await? else {
            return Ok(None);
        };
        if !holds(worker, &run) {
            return Ok(None);
        }
        self.end_try(run, seq, end, doing).await
    }

    async fn take_back_zombies(
        &self,
        now: DateTime<Utc>,
        zombie_after: Duration,
        max_lost: u32,
    ) -> StoreResult<Vec<RunRecord>> {
        let doing = "taking back zombie runs";
        let cutoff = chrono::TimeDelta::from_std(zombie_after)
            .ok()
            .and_then(|after| now.checked_sub_signed(after))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let docs = self
            .find_all(
                "queue",
                doc! { "state": "running" },
                doc! { "_id": 1 },
                None,
                doing,
            )
            .await?;
        let mut taken = Vec::new();
        for (run, seq) in self.runs_with_live(&docs, doing).await? {
            if run.heartbeat.is_some_and(|t| t >= cutoff) {
                continue;
            }
            let end = run.zombie_end(now, max_lost);
            if let Some(ended) = self.end_try(run, seq, &end, doing).await? {
                self.raise_output_fence(&ended.id, u64::from(ended.claims) + 1)
                    .await?;
                taken.push(ended);
            }
        }
        self.recover_stale_locks(cutoff, now).await?;
        Ok(taken)
    }

    async fn cancel_run(
        &self,
        id: &str,
        cancel: Cancel,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancelled> {
        let doing = "cancelling a run";
        // A claimer or the run's worker may win the run's next step first: read again and
        // retry while the run is still in a state this applies to.
        for _ in 0..MAX_CLAIM_PASSES {
            let Some((run, seq)) = self.read_run(id, doing).await? else {
                return Ok(Cancelled::Missing);
            };
            if !cancel.applies_to(run.state) {
                return Ok(Cancelled::Refused(run));
            }
            let done = if run.state == RunState::Running {
                let end = run.kill_end(now);
                self.end_try(run, seq, &end, doing).await?
            } else {
                self.cancel_waiting(&run, seq, cancel, now).await?
            };
            if let Some(run) = done {
                return Ok(Cancelled::Done(run));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(StoreError::invalid(
            format!("cancelling run {id}"),
            "the run kept changing state; try again",
        ))
    }

    async fn put_output(&self, id: &str, fence: u64, text: &str) -> StoreResult<bool> {
        let doing = format!("keeping the output {id}");
        let fence = i64::try_from(fence).unwrap_or(i64::MAX);
        let filter = doc! {
            "_id": id,
            "$or": [ { "fence": { "$lte": fence } }, { "fence": { "$exists": false } } ],
        };
        let update = doc! { "$set": { "text": text, "fence": fence } };
        // No match inserts, and an insert of an existing `_id` fails: the stored output is
        // under a higher fence — or a concurrent first write won, so try once more.
        for _ in 0..2 {
            match self
                .collection("outputs")
                .update_one(filter.clone(), update.clone())
                .upsert(true)
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(self.err(&doing)(e)),
            }
        }
        Ok(false)
    }

    async fn get_output(&self, id: &str) -> StoreResult<Option<String>> {
        let doing = format!("reading the output of run {id}");
        let Some(doc) = self.find_by_id("outputs", id, &doing).await? else {
            return Ok(None);
        };
        match doc.get_str("text") {
            // Only a raised fence, nothing written yet.
            Ok("") => Ok(None),
            Ok(text) => Ok(Some(text.to_string())),
            Err(e) => Err(StoreError::corrupt(format!("outputs {id}"), e)),
        }
    }

    async fn run_ids_starting_with(&self, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        let doing = "looking up run ids by prefix";
        if limit == 0 {
            return Ok(Vec::new()); // to a server, limit 0 means none
        }
        let mut cursor = self
            .collection("queue")
            .find(doc! { "_id": { "$gte": prefix, "$lt": crate::store::prefix_end(prefix) } })
            .projection(doc! { "_id": 1 })
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(self.err(doing))?;
        let mut ids = Vec::new();
        while cursor.advance().await.map_err(self.err(doing))? {
            let doc: Document = cursor.deserialize_current().map_err(self.err(doing))?;
            match doc.get_str("_id") {
                Ok(id) => ids.push(id.to_string()),
                Err(e) => {
                    return Err(StoreError::corrupt("queue _id", e));
                }
            }
        }
        Ok(ids)
    }
}

/// A dedupe marker whose run does not exist yet is taken as being enqueued right now for
/// this long; after that it is stale.
pub(super) const STALE_DEDUPE: Duration = Duration::from_secs(60);

/// How many times one `claim_run` looks through the candidates while it keeps losing them
/// to other claimers.
pub(super) const MAX_CLAIM_PASSES: usize = 50;

/// Candidates a claim pass reads first, in one batch, so that the server closes the cursor
/// itself: a claim that wins one leaves no open cursor behind (whose `killCursors` is a round
/// trip more; 1 claim in 3 with 150 claimable runs). A pass that reads them all and may take
/// none, losing none to another claimer, looks again at all of them.
pub(super) const CLAIM_CANDIDATES: u32 = 101;

/// Job slots tried before counting whether the job has any free (see `take_slot`).
pub(super) const SLOT_PROBES: u32 = 4;

/// What became of one claim attempt.
pub(super) enum Claim {
    Won(Box<RunRecord>),
    /// Another claimer got the run first.
    Lost,
    /// Every slot of the run's job is taken.
    Full,
}

/// A random number (for spreading concurrent claimers).
pub(super) fn random() -> u64 {
    ulid::Ulid::new().random() as u64
}

/// The query for the state, project and job of `filter` (its limit is the caller's).
pub(super) fn run_filter_doc(filter: &RunFilter) -> Document {
    let mut query = doc! {};
    if let Some(state) = filter.state {
        query.insert("state", state.as_str());
    }
    if let Some(project) = &filter.project {
        query.insert("project", project);
    }
    if let Some(job) = &filter.job {
        query.insert("job", job);
    }
    if let Some(before) = &filter.before {
        query.insert(
            "$or",
            vec![
                doc! { "created": { "$lt": time(before.created) } },
                doc! { "created": time(before.created), "_id": { "$lt": &before.id } },
            ],
        );
    }
    query
}

pub(super) fn live_id(run: &str) -> String {
    LockId::live(run).to_string()
}

impl MongoStore {
    pub(super) fn locks(&self) -> Collection<Document> {
        self.collection("locks")
    }

    /// Insert a marker into `locks`: true if this call created it, false if it existed.
    pub(super) async fn insert_marker(&self, marker: Document, doing: &str) -> StoreResult<bool> {
        match self.locks().insert_one(marker).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(self.err(doing)(e)),
        }
    }

    /// Every document of `collection` matching `filter`, sorted by `sort`, at most `limit`.
    pub(super) async fn find_all(
        &self,
        collection: &str,
        filter: Document,
        sort: Document,
        limit: Option<i64>,
        doing: &str,
    ) -> StoreResult<Vec<Document>> {
        let coll = self.collection(collection);
        let mut find = coll.find(filter).sort(sort);
        if let Some(limit) = limit {
            find = find.limit(limit);
        }
        let mut cursor = find.await.map_err(self.err(doing))?;
        let mut docs = Vec::new();
        while cursor.advance().await.map_err(self.err(doing))? {
            docs.push(cursor.deserialize_current().map_err(self.err(doing))?);
        }
        Ok(docs)
    }

    /// Runs from their documents, with the live fields of running ones filled in.
    pub(super) async fn runs_with_live(
        &self,
        docs: &[Document],
        doing: &str,
    ) -> StoreResult<Vec<(RunRecord, i64)>> {
        let runs = docs
            .iter()
            .map(run_record)
            .collect::<StoreResult<Vec<_>>>()?;
        let running: Vec<String> = runs
            .iter()
            .filter(|(r, _)| r.state == RunState::Running)
            .map(|(r, _)| live_id(&r.id))
            .collect();
        if running.is_empty() {
            return Ok(runs);
        }
        let live: HashMap<String, Document> = if let [only] = running.as_slice() {
            // By `_id` alone: the one filter every server looks up instead of scanning.
            self.find_by_id("locks", only, doing)
                .await?
                .map(|d| (only.clone(), d))
                .into_iter()
                .collect()
        } else {
            self.find_all(
                "locks",
                doc! { "_id": { "$in": running } },
                doc! { "_id": 1 },
                None,
                doing,
            )
            .await?
            .into_iter()
            .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d)))
            .collect()
        };
        Ok(runs
            .into_iter()
            .map(|(mut run, seq)| {
                let key = live_id(&run.id);
                overlay_live(&mut run, seq, live.get(&key));
                (run, seq)
            })
            .collect())
    }

    pub(super) async fn read_run(
        &self,
        id: &str,
        doing: &str,
    ) -> StoreResult<Option<(RunRecord, i64)>> {
        let Some(doc) = self.find_by_id("queue", id, doing).await? else {
            return Ok(None);
        };
        Ok(self.runs_with_live(&[doc], doing).await?.pop())
    }

    /// [`MongoStore::read_run`] for a run expected to be running: its document and its live
    /// document read at once (two round trips in the time of one).
    pub(super) async fn read_running_run(
        &self,
        id: &str,
        doing: &str,
    ) -> StoreResult<Option<(RunRecord, i64)>> {
        let live_key = live_id(id);
        let (doc, live) = tokio::try_join!(
            self.find_by_id("queue", id, doing),
            self.find_by_id("locks", &live_key, doing),
        )?;
        let Some(doc) = doc else {
            return Ok(None);
        };
        let (mut run, seq) = run_record(&doc)?;
        overlay_live(&mut run, seq, live.as_ref());
        Ok(Some((run, seq)))
    }

    /// Take a free slot of `run`'s job for the try that will have sequence number `seq`,
    /// trying slot `first` first: `Some(slot id)`, or `None` when all `max_parallel` are
    /// taken. After [`SLOT_PROBES`] taken slots it counts the job's running runs before
    /// trying the rest (a count scans the collection on servers without indexes, so it is
    /// not done for a job with slots to spare).
    pub(super) async fn take_slot(
        &self,
        run: &RunRecord,
        seq: i64,
        first: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        let max = job_slots(run);
        for i in 0..max {
            if i == SLOT_PROBES {
                let running = self
                    .collection("queue")
                    .count_documents(doc! { "job": &run.job, "state": "running" })
                    .await
                    .map_err(self.err("counting a job's running runs"))?;
                if !slot_free(running, run) {
                    return Ok(None);
                }
            }
            let marker = LockId::slot(&run.job, (first + i) % max);
            let id = marker.to_string();
            let slot = doc! {
                "_id": &id, "kind": marker.kind(), "job": &run.job, "run": &run.id,
                "seq": seq, "at": time(now),
            };
            if self.insert_marker(slot, "taking a job slot").await? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    pub(super) async fn delete_lock(&self, filter: Document, doing: &str) -> StoreResult<()> {
        self.locks()
            .delete_many(filter)
            .await
            .map(|_| ())
            .map_err(self.err(doing))
    }

    /// Replace run `id` by `doc` if its sequence number is still `seq`: whether it was.
    pub(super) async fn replace_run(
        &self,
        id: &str,
        seq: i64,
        doc: Document,
        doing: &str,
    ) -> StoreResult<bool> {
        let updated = self
            .collection("queue")
            .replace_one(doc! { "_id": id, "seq": seq }, doc)
            .await
            .map_err(self.err(doing))?;
        Ok(updated.matched_count == 1)
    }

    /// Try to claim `run` (read at sequence number `seq`) for `worker`, taking a job slot
    /// from `first_slot` on.
    pub(super) async fn try_claim(
        &self,
        run: &RunRecord,
        seq: i64,
        worker: &str,
        now: DateTime<Utc>,
        first_slot: u32,
    ) -> StoreResult<Claim> {
        let doing = "claiming a run";
        let Some(slot) = self.take_slot(run, seq + 1, first_slot, now).await? else {
            return Ok(Claim::Full);
        };
        let claim = LockId::claim(&run.id, seq);
        let marker_id = claim.to_string();
        let marker = doc! {
            "_id": &marker_id, "kind": claim.kind(), "run": &run.id, "seq": seq,
            "worker": worker, "at": time(now),
        };
        let won = self.insert_marker(marker, doing).await?;
        let claimed = run.clone().claimed(worker, now);
        if !won
            || !self
                .replace_run(&run.id, seq, run_doc(&claimed, seq + 1)?, doing)
                .await?
        {
            if won {
                // The run moved on since it was read (claimed and ended meanwhile).
                self.delete_lock(doc! { "_id": &marker_id }, doing).await?;
            }
            self.delete_lock(
                doc! { "_id": &slot, "run": &run.id, "seq": seq + 1 },
                "releasing a job slot",
            )
            .await?;
            return Ok(Claim::Lost);
        }
        let live = LiveDoc::claimed(run, seq + 1, worker, now).encode()?;
        self.upsert("locks", live, doing).await?;
        // Once the run's `seq` has moved on, a late claimer that read `seq` can no longer
        // match it: the marker has done its job. It is deleted with the try's other locks
        // when the try ends (one round trip fewer per run), or by the reaper before that.
        Ok(Claim::Won(Box::new(claimed)))
    }

    /// End the running try of `run` (read at sequence number `seq`) with `end`, if this call
    /// wins `end:{run}:{seq}`; then release what the try held.
    pub(super) async fn end_try(
        &self,
        run: RunRecord,
        seq: i64,
        end: &RunEnd,
        doing: &str,
    ) -> StoreResult<Option<RunRecord>> {
        let end_marker = LockId::end(&run.id, seq);
        let marker_id = end_marker.to_string();
        let marker = doc! {
            "_id": &marker_id, "kind": end_marker.kind(), "run": &run.id, "seq": seq, "at": time(end.at),
        };
        if !self.insert_marker(marker, doing).await? {
            return Ok(None);
        }
        let ended = run.ended(end);
        if !self
            .replace_run(&ended.id, seq, run_doc(&ended, seq + 1)?, doing)
            .await?
        {
            self.delete_lock(doc! { "_id": &marker_id }, doing).await?;
            return Ok(None);
        }
        // What the try held, in one round trip: its live document and job slot, the marker
        // that claimed it and this one, and the dedupe key once the run is final.
        let mut held = vec![
            Bson::Document(doc! { "_id": live_id(&ended.id), "seq": seq }),
            Bson::Document(doc! { "kind": SLOT_KIND, "run": &ended.id, "seq": seq }),
            Bson::Document(doc! { "_id": LockId::claim(&ended.id, seq - 1).to_string() }),
            Bson::Document(doc! { "_id": &marker_id }),
        ];
        if ended.state.is_final() {
            held.push(Bson::Document(
                doc! { "_id": LockId::dedupe(&ended.dedupe).to_string(), "run": &ended.id },
            ));
        }
        self.delete_lock(doc! { "$or": held }, "releasing what a try held")
            .await?;
        Ok(Some(ended))
    }

    /// Take waiting run `run` (read at sequence number `seq`) out of the queue, if this call
    /// wins `claim:{run}:{seq}` against every claimer: whether it did.
    pub(super) async fn cancel_waiting(
        &self,
        run: &RunRecord,
        seq: i64,
        cancel: Cancel,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<RunRecord>> {
        let doing = "cancelling a run";
        let claim = LockId::claim(&run.id, seq);
        let marker_id = claim.to_string();
        let marker = doc! {
            "_id": &marker_id, "kind": claim.kind(), "run": &run.id, "seq": seq,
            "worker": "operator", "at": time(now),
        };
        if !self.insert_marker(marker, doing).await? {
            return Ok(None);
        }
        let cancelled = run.clone().cancelled(cancel, now);
        let replaced = self
            .replace_run(&run.id, seq, run_doc(&cancelled, seq + 1)?, doing)
            .await?;
        if replaced {
            self.delete_lock(
                doc! { "_id": LockId::dedupe(&cancelled.dedupe).to_string(), "run": &cancelled.id },
                "releasing a dedupe key",
            )
            .await?;
        }
        self.delete_lock(doc! { "_id": &marker_id }, doing).await?;
        Ok(replaced.then_some(cancelled))
    }

    /// Clean up after processes that died between two writes, for locks older than
    /// `cutoff`: free job slots whose try is not running; delete claim and end markers
    /// whose run moved on; and where a run is still at a dead claimer's (or ender's)
    /// sequence number, move it on so it can be claimed (taken back) again.
    pub(super) async fn recover_stale_locks(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let doing = "recovering stale locks";
        let stale = self
            .find_all(
                "locks",
                doc! {
                    "kind": { "$in": RECOVERABLE_KINDS.to_vec() },
                    "at": { "$lt": time(cutoff) },
                },
                doc! { "_id": 1 },
                None,
                doing,
            )
            .await?;
        for lock in stale {
            let Ok(LockDoc {
                id,
                run: run_id,
                seq,
            }) = decode_plain("lock", &lock)
            else {
                continue;
            };
            // Told apart by the `_id` itself: a document of another program is left alone.
            let Ok(marker) = id.parse::<LockId>() else {
                continue;
            };
            let run = match self.find_by_id("queue", &run_id, doing).await? {
                Some(doc) => Some(run_record(&doc)?),
                None => None,
            };
            let in_use = match (&marker, &run) {
                // A slot is held by the running try with its sequence number.
                (LockId::Slot { .. }, Some((r, s))) => r.state == RunState::Running && *s == seq,
                // A claim marker whose run is still claimable at its sequence number: the
                // claimer died before updating the run.
                (LockId::Claim { .. }, Some((r, s))) if *s == seq && r.state.is_claimable() => {
                    let orphan_marker = LockId::orphan(&run_id, seq);
                    let orphan_id = orphan_marker.to_string();
                    let orphan = doc! {
                        "_id": &orphan_id, "kind": orphan_marker.kind(),
                        "run": &run_id, "seq": seq, "at": time(now),
                    };
                    if self.insert_marker(orphan, doing).await? {
                        self.replace_run(&run_id, seq, run_doc(r, seq + 1)?, doing)
                            .await?;
                        // As with a claim marker: once the run's `seq` moved on, no one
                        // who read `seq` can match it.
                        self.delete_lock(doc! { "_id": &orphan_id }, doing).await?;
                    }
                    false
                }
                // An end marker whose run is still running at its sequence number: the ender
                // died before updating the run; removing the marker lets a reaper end it.
                // An orphan marker left by a reaper that died after inserting it.
                _ => false,
            };
            if !in_use {
                self.delete_lock(doc! { "_id": &id, "run": &run_id, "seq": seq }, doing)
                    .await?;
            }
        }
        Ok(())
    }
}
