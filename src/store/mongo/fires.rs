//! The MongoDB store's part of [`Fires`]: the scheduler's fires: each `(job, instant)` recorded once, settled, taken over; a job's fire times.

use super::marker::{FIRE_KIND, LockId};
use super::*;
use crate::store::{FireOutcome, Fires};

#[async_trait]
impl Fires for MongoStore {
    async fn set_fire_times(
        &self,
        id: &str,
        hash: &str,
        last_fire: Option<DateTime<Utc>>,
        next_fire: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let result = self
            .collection("jobs")
            .update_one(
                doc! { "_id": id, "hash": hash },
                doc! { "$set": { "last_fire": opt_time(last_fire), "next_fire": opt_time(next_fire) } },
            )
            .await
            .map_err(self.err("recording a job's fire times"))?;
        Ok(result.matched_count == 1)
    }

    async fn record_fire(&self, job: &str, instant: DateTime<Utc>) -> StoreResult<bool> {
        // `_id` is unique on every server even before `ensure_schema` ran; the unique
        // (job, instant) index says the same for queries. The job id comes first and the
        // all-digit instant last, so distinct pairs never share an `_id`.
        let mut fire = encode(&Fire {
            job: job.to_string(),
            instant,
            fired_at: Utc::now(),
        })?;
        fire.insert("_id", fire_id(job, instant));
        fire.insert("settled", false);
        match self.collection("fires").insert_one(fire).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(self.err("recording a fire")(e)),
        }
    }

    async fn settle_fire(
        &self,
        job: &str,
        instant: DateTime<Utc>,
        outcome: &FireOutcome,
    ) -> StoreResult<()> {
        // Only the recorder (or the one taker) of a fire settles it: no concurrent writers.
        self.collection("fires")
            .update_one(
                doc! { "_id": fire_id(job, instant) },
                doc! { "$set": { "settled": true, "outcome": outcome.to_string() } },
            )
            .await
            .map(|_| ())
            .map_err(self.err("settling a fire"))
    }

    async fn unsettled_fires(&self, recorded_before: DateTime<Utc>) -> StoreResult<Vec<Fire>> {
        // Fires recorded before fires had `settled` lack the field, and so never match.
        let docs = self
            .find_all(
                "fires",
                doc! { "settled": false, "fired_at": { "$lt": time(recorded_before) } },
                doc! { "fired_at": 1 },
                Some(100),
                "listing unsettled fires",
            )
            .await?;
        docs.iter().map(decode).collect()
    }

    async fn prune_fires(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        // `settled: {$ne: false}`: fires recorded before fires had `settled` count as settled.
        let pruned = self
            .collection("fires")
            .delete_many(doc! { "settled": { "$ne": false }, "instant": { "$lt": time(before) } })
            .await
            .map(|result| result.deleted_count)
            .map_err(self.err("pruning fires"))?;
        // A take-over marker only stops a taker that read the generation it names, before
        // the take-over (at `at`) moved the fire on: one older than the kept fires guards
        // nothing any more.
        self.delete_lock(
            doc! { "kind": FIRE_KIND, "at": { "$lt": time(before) } },
            "pruning fire take-over markers",
        )
        .await?;
        Ok(pruned)
    }

    async fn retake_fire(&self, fire: &Fire, now: DateTime<Utc>) -> StoreResult<bool> {
        let doing = "taking over a fire";
        let id = fire_id(&fire.job, fire.instant);
        // The marker names the generation seen: one taker per generation, by a unique insert
        // (single-document updates are not atomic on every compatible server).
        let marker = LockId::fire(&id, fire.fired_at.timestamp_millis());
        let marker = doc! {
            "_id": marker.to_string(), "kind": marker.kind(), "fire": &id, "at": time(now),
        };
        if !self.insert_marker(marker, doing).await? {
            return Ok(false);
        }
        self.collection("fires")
            .update_one(
                doc! { "_id": &id },
                doc! { "$set": { "fired_at": time(now) } },
            )
            .await
            .map_err(self.err(doing))?;
        Ok(true)
    }
}
