//! The MongoDB store's part of [`Queue`]: the queue: enqueue, claim, heartbeat, report, finish, take back zombies, kill/remove; run output tails.

use super::*;
use crate::store::Queue;
use crate::store::Stepped;
use crate::store::roles::finish_then_claim;

#[async_trait]
impl Queue for MongoStore {
    async fn enqueue(&self, run: &RunRecord) -> StoreResult<Enqueued> {
        let doing = "enqueueing a run";
        let run = run.clone().truncated_to_ms();
        let marker_id = format!("dedupe:{}", run.dedupe);
        // A stale marker is removed and the insert retried; a few rounds cover concurrent
        // enqueuers removing it too.
        for _ in 0..5 {
            let marker = doc! {
                "_id": &marker_id, "kind": "dedupe", "run": &run.id, "at": time(Utc::now()),
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
        for _ in 0..MAX_CLAIM_PASSES {
            let mut cursor = self
                .collection("queue")
                .find(filter.clone())
                .sort(doc! { "priority": -1, "created": 1, "_id": 1 })
                .await
                .map_err(self.err(doing))?;
            let mut full: HashSet<String> = HashSet::new();
            let (mut lost, mut skip) = (false, 0);
            while cursor.advance().await.map_err(self.err(doing))? {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let doc: Document = cursor.deserialize_current().map_err(self.err(doing))?;
                let (run, seq) = run_record(&doc)?;
                if !paused.allows(&run) || full.contains(&run.job) {
                    continue;
                }
                let max = run.max_parallel.max(1);
                let first = (random() % u64::from(max)) as u32;
                match self.try_claim(&run, seq, worker, now, first).await? {
                    Claim::Won(claimed) => return Ok(Some(*claimed)),
                    Claim::Lost => (lost, skip) = (true, random() % 8),
                    Claim::Full => {
                        full.insert(run.job);
                    }
                }
            }
            if !lost {
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
        end.check(id)?;
        let doing = "finishing a run";
        let Some((run, seq)) = self.read_run(id, doing).await? else {
            return Ok(None);
        };
        if run.state != RunState::Running || run.worker.as_deref() != Some(worker) {
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
        Err(StoreError::Invalid {
            doing: format!("cancelling run {id}"),
            message: "the run kept changing state; try again".to_string(),
        })
    }

    async fn put_output(&self, id: &str, text: &str) -> StoreResult<()> {
        self.upsert(
            "outputs",
            doc! { "_id": id, "text": text },
            &format!("keeping the output of run {id}"),
        )
        .await
    }

    async fn get_output(&self, id: &str) -> StoreResult<Option<String>> {
        let doing = format!("reading the output of run {id}");
        let Some(doc) = self.find_by_id("outputs", id, &doing).await? else {
            return Ok(None);
        };
        match doc.get_str("text") {
            Ok(text) => Ok(Some(text.to_string())),
            Err(e) => Err(StoreError::Corrupt {
                what: format!("outputs {id}"),
                message: e.to_string(),
            }),
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
                    return Err(StoreError::Corrupt {
                        what: "queue _id".into(),
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(ids)
    }
}
