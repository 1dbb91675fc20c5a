//! The MongoDB store's schema version and its migrations, done once by one host.
//!
//! `meta` holds `{_id: "schema", version}`. A writer opening the store ([`Store::ensure_schema`])
//! reads it: a newer version than [`SCHEMA_VERSION`] is refused with a clear message (a host
//! running an older coco must not write records it does not understand); the same version
//! only makes sure of the collections and indexes; an older one (or none: a store made before
//! versions were kept, version 1) is migrated — by whichever host wins the insert of
//! `{_id: "migration"}` (the migration lock); the others wait for the version to change. A
//! lock older than [`ABANDONED`] was left by a host that died mid-way and is taken over.
//! Readers (`open_to_read`) never migrate.
//!
//! Versions: 1 — everything before issue 14; 2 — app holds carry a fencing `token` (set to
//! 0 on the records of version 1, which the next claim raises).

use std::time::Duration;

use chrono::Utc;
use mongodb::bson::doc;

use super::{MongoStore, is_duplicate_key, time};
use crate::store::{StoreError, StoreResult};

/// The schema this coco reads and writes.
pub const SCHEMA_VERSION: i64 = 2;

/// A migration lock older than this was abandoned.
const ABANDONED: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// How long a host waits for another's migration before it gives up.
const WAIT_FOR_MIGRATION: Duration = Duration::from_secs(120);

/// What `ensure_schema` must do about the stored `version` (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Same version: nothing beyond the indexes.
    Current,
    /// Older: migrate from it.
    Migrate { from: i64 },
    /// Newer than this coco understands: refuse.
    Refuse { found: i64 },
}

pub(super) fn step(stored: Option<i64>) -> Step {
    match stored.unwrap_or(1) {
        found if found > SCHEMA_VERSION => Step::Refuse { found },
        SCHEMA_VERSION => Step::Current,
        from => Step::Migrate { from },
    }
}

impl MongoStore {
    /// The stored schema version, if any.
    pub(super) async fn stored_schema_version(&self) -> StoreResult<Option<i64>> {
        Ok(self
            .collection("meta")
            .find_one(doc! { "_id": "schema" })
            .await
            .map_err(self.err("reading the schema version"))?
            .and_then(|doc| doc.get_i64("version").ok()))
    }

    /// Refuse a newer schema; migrate an older one once, under the migration lock. Returns
    /// when the store is at [`SCHEMA_VERSION`].
    pub(super) async fn settle_schema_version(&self) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_MIGRATION;
        loop {
            let from = match step(self.stored_schema_version().await?) {
                Step::Current => return Ok(()),
                Step::Refuse { found } => {
                    return Err(StoreError::invalid(
                        format!("opening the {}", crate::store::Store::describe(self)),
                        format!(
                            "its schema version {found} is newer than this coco ({}) \
                             understands ({SCHEMA_VERSION}): upgrade coco on this host before \
                             it joins the fleet",
                            env!("CARGO_PKG_VERSION")
                        ),
                    ));
                }
                Step::Migrate { from } => from,
            };
            let meta = self.collection("meta");
            let now = Utc::now();
            let lock = doc! {
                "_id": "migration", "at": time(now), "from": from, "to": SCHEMA_VERSION,
                "by": format!("{}-{}", crate::host::name(), std::process::id()),
            };
            match meta.insert_one(lock).await {
                Ok(_) => {
                    let migrated = self.migrate(from).await;
                    let _ = meta.delete_one(doc! { "_id": "migration" }).await;
                    return migrated;
                }
                Err(e) if is_duplicate_key(&e) => {
                    // Another host migrates: wait for it (or take over a lock it abandoned).
                    let _ = meta
                        .delete_one(doc! {
                            "_id": "migration", "at": { "$lt": time(now - ABANDONED) },
                        })
                        .await;
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StoreError::invalid(
                            "migrating the store's schema",
                            "another host has held the migration lock (meta `migration`) for \
                             two minutes: is it still migrating?",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(self.err("taking the migration lock")(e)),
            }
        }
    }

    /// Migrate from `from` to [`SCHEMA_VERSION`] (the lock held), then record the version.
    async fn migrate(&self, from: i64) -> StoreResult<()> {
        if from < 2 {
            self.collection("app_status")
                .update_many(
                    doc! { "token": { "$exists": false } },
                    doc! { "$set": { "token": 0_i64 } },
                )
                .await
                .map_err(self.err("migrating app holds to fencing tokens"))?;
        }
        self.collection("meta")
            .update_one(
                doc! { "_id": "schema" },
                doc! { "$set": { "version": SCHEMA_VERSION, "at": time(Utc::now()) } },
            )
            .upsert(true)
            .await
            .map_err(self.err("recording the schema version"))?;
        tracing::info!(from, to = SCHEMA_VERSION, "migrated the store's schema");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_schema_is_refused_an_older_or_unversioned_one_migrated() {
        assert_eq!(step(Some(SCHEMA_VERSION)), Step::Current);
        assert_eq!(step(None), Step::Migrate { from: 1 });
        assert_eq!(step(Some(1)), Step::Migrate { from: 1 });
        assert_eq!(
            step(Some(SCHEMA_VERSION + 1)),
            Step::Refuse {
                found: SCHEMA_VERSION + 1
            }
        );
    }
}
