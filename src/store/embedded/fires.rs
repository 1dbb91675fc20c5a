//! The embedded store's part of [`Fires`]: the scheduler's fires: each `(job, instant)` recorded once, settled, taken over; a job's fire times.

use super::*;
use crate::store::{FireOutcome, FireTimes, Fires};

#[async_trait]
impl Fires for EmbeddedStore {
    async fn set_fire_times(
        &self,
        id: &str,
        hash: &str,
        last_fire: Option<DateTime<Utc>>,
        next_fire: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let (id, hash) = (id.to_string(), hash.to_string());
        self.run("recording a job's fire times", move |conn| {
            set_fire_times_in(conn, &id, &hash, last_fire, next_fire)
        })
        .await
    }

    async fn set_fire_times_all(&self, jobs: &[FireTimes]) -> StoreResult<Vec<bool>> {
        let jobs = jobs.to_vec();
        self.run("recording jobs' fire times", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let written = jobs
                .iter()
                .map(|times| {
                    set_fire_times_in(
                        &tx,
                        &times.job,
                        &times.hash,
                        times.last_fire,
                        times.next_fire,
                    )
                })
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(written)
        })
        .await
    }

    async fn record_fires(&self, fires: &[(String, DateTime<Utc>)]) -> StoreResult<Vec<bool>> {
        let fires = fires.to_vec();
        let fired_at = Utc::now();
        self.run("recording fires", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let recorded = fires
                .iter()
                .map(|(job, instant)| record_fire_in(&tx, job, *instant, fired_at))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(recorded)
        })
        .await
    }

    async fn settle_fires(
        &self,
        fires: &[(String, DateTime<Utc>, FireOutcome)],
    ) -> StoreResult<()> {
        let fires: Vec<(String, DateTime<Utc>, String)> = fires
            .iter()
            .map(|(job, instant, outcome)| (job.clone(), *instant, outcome.to_string()))
            .collect();
        self.run("settling fires", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (job, instant, outcome) in &fires {
                settle_fire_in(&tx, job, *instant, outcome)?;
            }
            tx.commit()
        })
        .await
    }

    async fn record_fire(&self, job: &str, instant: DateTime<Utc>) -> StoreResult<bool> {
        let job = job.to_string();
        let fired_at = Utc::now();
        self.run("recording a fire", move |conn| {
            record_fire_in(conn, &job, instant, fired_at)
        })
        .await
    }

    async fn settle_fire(
        &self,
        job: &str,
        instant: DateTime<Utc>,
        outcome: &FireOutcome,
    ) -> StoreResult<()> {
        let (job, outcome) = (job.to_string(), outcome.to_string());
        self.run("settling a fire", move |conn| {
            settle_fire_in(conn, &job, instant, &outcome)
        })
        .await
    }

    async fn unsettled_fires(&self, recorded_before: DateTime<Utc>) -> StoreResult<Vec<Fire>> {
        let before = to_ms(recorded_before);
        let rows = self
            .run("listing unsettled fires", move |conn| {
                conn.prepare_cached(
                    "SELECT job, instant, fired_at FROM fires
                     WHERE settled = 0 AND fired_at < ?1 ORDER BY fired_at LIMIT 100",
                )?
                .query_map([before], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(job, instant, fired_at)| {
                Ok(Fire {
                    job,
                    instant: from_ms("fire", instant)?,
                    fired_at: from_ms("fire", fired_at)?,
                })
            })
            .collect()
    }

    async fn prune_fires(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = to_ms(before);
        self.run("pruning fires", move |conn| {
            conn.prepare_cached("DELETE FROM fires WHERE settled = 1 AND instant < ?1")?
                .execute([before])
                .map(|n| n as u64)
        })
        .await
    }

    async fn retake_fire(&self, fire: &Fire, now: DateTime<Utc>) -> StoreResult<bool> {
        let (job, instant, seen, now) = (
            fire.job.clone(),
            to_ms(fire.instant),
            to_ms(fire.fired_at),
            to_ms(now),
        );
        self.run("taking over a fire", move |conn| {
            // One statement: only the caller that still sees the old `fired_at` changes it.
            let changed = conn
                .prepare_cached(
                    "UPDATE fires SET fired_at = ?4
                     WHERE job = ?1 AND instant = ?2 AND fired_at = ?3 AND settled = 0",
                )?
                .execute(params![job, instant, seen, now])?;
            Ok(changed == 1)
        })
        .await
    }
}

/// [`Fires::set_fire_times`] on `conn`.
fn set_fire_times_in(
    conn: &Connection,
    id: &str,
    hash: &str,
    last_fire: Option<DateTime<Utc>>,
    next_fire: Option<DateTime<Utc>>,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE jobs SET last_fire = ?1, next_fire = ?2 WHERE id = ?3 AND hash = ?4",
        )?
        .execute(params![
            last_fire.map(to_ms),
            next_fire.map(to_ms),
            id,
            hash
        ])?;
    Ok(changed == 1)
}

/// [`Fires::record_fire`] on `conn`, the fire recorded at `fired_at`.
fn record_fire_in(
    conn: &Connection,
    job: &str,
    instant: DateTime<Utc>,
    fired_at: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    // The primary key (job, instant) makes exactly one insert succeed; the others change
    // nothing.
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO fires (job, instant, fired_at, settled) VALUES (?1, ?2, ?3, 0)",
        )?
        .execute(params![job, to_ms(instant), to_ms(fired_at)])?;
    Ok(inserted == 1)
}

/// [`Fires::settle_fire`] on `conn`, the outcome as text.
fn settle_fire_in(
    conn: &Connection,
    job: &str,
    instant: DateTime<Utc>,
    outcome: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE fires SET settled = 1, outcome = ?3 WHERE job = ?1 AND instant = ?2",
    )?
    .execute(params![job, to_ms(instant), outcome])?;
    Ok(())
}
