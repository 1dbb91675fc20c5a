//! MongoDB store: the official `mongodb` driver; many hosts share one database.
//!
//! Records are documents whose `_id` is the record's key (project name, job id, app id);
//! timestamps are BSON DateTimes (millisecond precision, UTC). `manifest` and `definition`
//! are embedded documents converted from/to `serde_json::Value` — unless the JSON has a shape
//! some servers refuse (FerretDB 1.x: nested arrays, keys with `.` or a leading `$`, NUL in
//! strings; any server: integers above `i64::MAX`) or holds a number no BSON number gives
//! back as written (`2.50`, `1e+2`, `-0.0`: JSON numbers keep their text); such a document
//! is kept as JSON text in `manifest_json` / `definition_json` (`args_json` for a run)
//! instead, so every document round-trips on every server.
//!
//! Only widely implemented operations are used — `insert_one`, `replace_one` with upsert,
//! `find` with a sort, `create`/`createIndexes`, `ping` — no transactions or change streams,
//! so MongoDB-compatible servers (FerretDB) work too. Uniqueness that matters across hosts
//! (one fire per `(job, instant)`) rests on unique keys, never on read-then-write.
//!
//! ## The queue
//!
//! FerretDB's single-document updates and find-and-modify are not atomic under concurrent
//! clients (measured: double claims, lost `$inc`s); an `insert_one` into a unique `_id` and
//! `delete_one`'s count are. So every step that must happen once is won by inserting a
//! marker document into `locks`, and a run document only ever has one writer at a time.
//! Each run document carries a sequence number `seq`, bumped by every claim and every end
//! of a try, and every write of it is a `replace_one` filtered on the `seq` it was read at:
//!
//! - `dedupe:{key}` (field `run`): inserted before the run, deleted when the run reaches a
//!   final state. A marker whose run is final, or missing for over `STALE_DEDUPE` (`queue.rs`), is
//!   stale (a crash between two writes) and is removed by the next enqueue of that key.
//! - `slot:{job}:{k}` for `k < max_parallel` (fields `run`, `seq`, `at`): a job slot, taken
//!   before claiming, released when the try ends.
//! - `claim:{run}:{seq}`: its inserter alone moves the run from claimable to `running`
//!   (`seq + 1`). The marker is deleted with the try's other locks when the try ends (a
//!   late claimer that read `seq` can no longer match the run anyway).
//! - `end:{run}:{seq}`: the one that ends the try — the worker finishing it or a reaper
//!   taking it back — alone moves the run out of `running`, then deletes, in one
//!   `delete_many`, the try's live document, slot, claim marker, this marker and (once the
//!   run is final) its dedupe marker.
//! - `live:{run}`: heartbeat, pid and progress of the running try, written by its worker,
//!   so those frequent writes never touch (and can never undo) the run document; they are
//!   copied into the run document when the try ends.
//!
//! A process that dies between two of these writes leaves a lock behind; the reaper
//! ([`Queue::take_back_zombies`](crate::store::Queue::take_back_zombies)) cleans up locks older than `zombie_after`: frees slots
//! whose try is not running, and moves a run still at a dead claimer's `seq` on (marker
//! `orphan:{run}:{seq}`, one reaper each, deleted once the run moved on; a dead reaper's is
//! cleaned up like the others) so it can be claimed again. Only a claimer or ender that
//! stalls for longer than `zombie_after` between its marker and its update could race the
//! reaper.
//!
//! A fire taken over from a dead scheduler ([`Fires::retake_fire`](crate::store::Fires::retake_fire)) is won by inserting
//! `fire:{fire}:{generation}` (fields `fire`, `at`), the generation being the `fired_at`
//! the taker read; the take-over moves `fired_at` on. The marker only stops takers that
//! read that generation, so [`Fires::prune_fires`](crate::store::Fires::prune_fires) deletes those older than the fires it
//! keeps. Nothing relies on a TTL index (not every compatible server runs one): every
//! marker is deleted by the step that makes it useless, or by the reaper or pruning.

mod access;
mod catalog;
mod codec;
mod fires;
mod fleet;
mod journal;
mod marker;
mod queue;
pub mod schema;

use codec::*;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use crate::queue::run::{Cancel, LiveReport, RunEnd, RunRecord, StateChange};
use crate::queue::state::RunState;
use crate::redact::redact;
use crate::store::Context;
use crate::store::{
    AppRecord, AppStatus, COLLECTIONS, Cancelled, Control, Enqueued, Fire, JobRecord, LogFilter,
    LogRecord, MemberRecord, Paused, Problems, ProjectRecord, ReleaseRecord, RunFilter, Store,
    StoreError, StoreResult,
};

/// How long an operation waits for a usable server before failing (unless the URL sets
/// `serverSelectionTimeoutMS`).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening one TCP connection may take (unless the URL sets `connectTimeoutMS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Server error codes this module reacts to.
const DUPLICATE_KEY: i32 = 11000;
const NAMESPACE_EXISTS: i32 = 48;
const INDEX_NOT_FOUND: i32 = 27;

/// Indexes earlier versions created that nothing uses any more: (collection, index name).
/// `locks.expires` was on a field nothing writes.
const RETIRED_INDEXES: [(&str, &str); 1] = [("locks", "expires")];

/// Indexes per collection: (collection, index name, keys, unique).
fn indexes() -> Vec<(&'static str, &'static str, Document, bool)> {
    vec![
        ("jobs", "project", doc! { "project": 1 }, false),
        (
            "jobs",
            "active_next_fire",
            doc! { "active": 1, "next_fire": 1 },
            false,
        ),
        ("apps", "project", doc! { "project": 1 }, false),
        (
            "fires",
            "job_instant",
            doc! { "job": 1, "instant": 1 },
            true,
        ),
        (
            "queue",
            "state_priority_created",
            doc! { "state": 1, "priority": 1, "created": 1 },
            false,
        ),
        ("queue", "job", doc! { "job": 1 }, false),
        ("queue", "job_state", doc! { "job": 1, "state": 1 }, false),
        (
            "queue",
            "project_created",
            doc! { "project": 1, "created": 1 },
            false,
        ),
        ("queue", "created", doc! { "created": 1 }, false),
        (
            "queue",
            "claimable",
            doc! { "state": 1, "not_before": 1 },
            false,
        ),
        ("locks", "kind_run", doc! { "kind": 1, "run": 1 }, false),
        ("locks", "kind_at", doc! { "kind": 1, "at": 1 }, false),
        ("workers", "heartbeat", doc! { "heartbeat": 1 }, false),
        ("log", "at", doc! { "at": 1 }, false),
        ("tokens", "hash", doc! { "hash": 1 }, true),
        (
            "fires",
            "settled_fired_at",
            doc! { "settled": 1, "fired_at": 1 },
            false,
        ),
    ]
}

/// The MongoDB-backed [`Store`].
#[derive(Debug, Clone)]
pub struct MongoStore {
    db: Database,
    /// The connection URL with its password redacted: the only form that is ever shown.
    url: String,
}

impl MongoStore {
    /// Connect to `url` and check that a server answers (`ping`) in `database`.
    /// Does not create collections: see [`Store::ensure_schema`].
    pub async fn connect(url: &str, database: &str) -> StoreResult<Self> {
        Self::connect_with(url, database, |_| {}).await
    }

    /// [`MongoStore::connect`], with the client's options changed by `configure` first (a
    /// test's command event handler, say).
    pub async fn connect_with(
        url: &str,
        database: &str,
        configure: impl FnOnce(&mut ClientOptions),
    ) -> StoreResult<Self> {
        let shown = redact(url);
        let mut options = ClientOptions::parse(url)
            .await
            .map_err(mongo_err(&shown, "parsing the connection URL"))?;
        configure(&mut options);
        let selection = *options
            .server_selection_timeout
            .get_or_insert(SERVER_SELECTION_TIMEOUT);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.app_name.get_or_insert_with(|| "coco".to_string());
        let client =
            Client::with_options(options).map_err(mongo_err(&shown, "creating the client"))?;
        let db = client.database(database);
        db.run_command(doc! { "ping": 1 }).await.map_err(mongo_err(
            &shown,
            &format!(
                "connecting to database {database} (no answer within {}s?)",
                selection.as_secs()
            ),
        ))?;
        Ok(Self { db, url: shown })
    }

    /// Drop the whole database (for tests that use a fresh database each).
    pub async fn drop_database(&self) -> StoreResult<()> {
        self.db
            .drop()
            .await
            .map_err(mongo_err(&self.url, "dropping the database"))
    }

    /// The database name.
    pub fn database(&self) -> &str {
        self.db.name()
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    fn err(&self, doing: &str) -> impl FnOnce(mongodb::error::Error) -> StoreError + use<> {
        mongo_err(
            &self.url,
            &format!("{doing} in database {}", self.db.name()),
        )
    }

    /// Every document of `collection` matching `filter`, sorted by `_id`.
    async fn find_sorted(
        &self,
        collection: &str,
        filter: Document,
        doing: &str,
    ) -> StoreResult<Vec<Document>> {
        let mut cursor = self
            .collection(collection)
            .find(filter)
            .sort(doc! { "_id": 1 })
            .await
            .map_err(self.err(doing))?;
        let mut docs = Vec::new();
        while cursor.advance().await.map_err(self.err(doing))? {
            docs.push(cursor.deserialize_current().map_err(self.err(doing))?);
        }
        Ok(docs)
    }

    async fn find_by_id(
        &self,
        collection: &str,
        id: &str,
        doing: &str,
    ) -> StoreResult<Option<Document>> {
        self.collection(collection)
            .find_one(doc! { "_id": id })
            .await
            .map_err(self.err(doing))
    }

    /// Insert or replace the document with `doc`'s `_id`.
    /// Refuse output writes to `id` under a fence below `fence` from now on (see
    /// [`crate::store::Queue::put_output`]).
    pub(super) async fn raise_output_fence(&self, id: &str, fence: u64) -> StoreResult<()> {
        let fence = i64::try_from(fence).unwrap_or(i64::MAX);
        let outputs = self.collection("outputs");
        let attempt = || {
            outputs
                .update_one(
                    doc! { "_id": id },
                    doc! { "$max": { "fence": fence }, "$setOnInsert": { "text": "" } },
                )
                .upsert(true)
        };
        let doing = format!("fencing the output {id}");
        match attempt().await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => attempt().await.map(|_| ()).map_err(self.err(&doing)),
            Err(e) => Err(self.err(&doing)(e)),
        }
    }

    async fn upsert(&self, collection: &str, doc: Document, doing: &str) -> StoreResult<()> {
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        let coll = self.collection(collection);
        let attempt = || {
            coll.replace_one(doc! { "_id": id.clone() }, &doc)
                .upsert(true)
        };
        match attempt().await {
            Ok(_) => Ok(()),
            // Two concurrent upserts of a missing `_id` may both try to insert; the loser
            // gets a duplicate key error, and retrying replaces the winner's document.
            Err(e) if is_duplicate_key(&e) => attempt().await.map(|_| ()).map_err(self.err(doing)),
            Err(e) => Err(self.err(doing)(e)),
        }
    }
}

/// Map a driver error to a [`StoreError::Mongo`] naming the (redacted) URL and the operation.
fn mongo_err(url: &str, doing: &str) -> impl FnOnce(mongodb::error::Error) -> StoreError + use<> {
    let url = url.to_string();
    let doing = doing.to_string();
    move |source| StoreError::Mongo {
        url,
        doing,
        source: Box::new(source),
    }
}

fn server_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    server_code(e) == Some(DUPLICATE_KEY)
}

/// A fire's `_id`: the job id first and the all-digit instant last, so distinct pairs never
/// share one.
fn fire_id(job: &str, instant: DateTime<Utc>) -> String {
    format!("{job}@{}", instant.timestamp_millis())
}

/// Is `e` an unordered insert whose only failures are duplicate ids?
fn only_duplicates(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(failure) => {
            failure.write_concern_error.is_none()
                && failure
                    .write_errors
                    .as_ref()
                    .is_some_and(|errors| errors.iter().all(|w| w.code == DUPLICATE_KEY))
        }
        _ => false,
    }
}

fn corrupt(what: &str, cause: impl Into<crate::store::Cause>) -> StoreError {
    StoreError::corrupt(what, cause)
}

fn project_filter(project: Option<&str>) -> Document {
    match project {
        Some(p) => doc! { "project": p },
        None => doc! {},
    }
}

#[async_trait]
impl Store for MongoStore {
    fn describe(&self) -> String {
        format!("MongoDB store {} database {}", self.url, self.db.name())
    }

    async fn ensure_schema(&self) -> StoreResult<()> {
        // A newer schema is refused before anything is created or changed.
        if let schema::Step::Refuse { .. } = schema::step(self.stored_schema_version().await?) {
            return self.settle_schema_version().await;
        }
        for name in COLLECTIONS.iter().chain(&["meta"]) {
            match self.db.create_collection(*name).await {
                Ok(()) => {}
                // Already there (or created by another process just now).
                Err(e) if server_code(&e) == Some(NAMESPACE_EXISTS) => {}
                Err(e) => return Err(self.err(&format!("creating collection {name}"))(e)),
            }
        }
        for (collection, name, keys, unique) in indexes() {
            let model = IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_string())
                        .unique(unique.then_some(true))
                        .build(),
                )
                .build();
            // Creating an index that exists with the same name and keys is a no-op.
            self.collection(collection)
                .create_index(model)
                .await
                .map_err(self.err(&format!("creating index {collection}.{name}")))?;
        }
        for (collection, name) in RETIRED_INDEXES {
            match self.collection(collection).drop_index(name).await {
                Ok(()) => {}
                Err(e) if server_code(&e) == Some(INDEX_NOT_FOUND) => {}
                Err(e) => return Err(self.err(&format!("dropping index {collection}.{name}"))(e)),
            }
        }
        self.settle_schema_version().await
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{Bson, DateTime, Document, doc};
    use serde_json::json;

    use super::codec::{decode, encode};
    use super::{portable, run_doc, run_record};
    use crate::store::{
        Fire, JobRecord, LogRecord, MemberRecord, Problems, ProjectRecord, ReleaseRecord,
    };

    #[test]
    fn plain_json_is_portable() {
        let value = json!({"a": [1, "x", {"b": [2.5, null]}], "n": i64::MAX, "m": -1, "e": {}});
        assert!(portable(&value, false));
        assert!(portable(&json!([1, 2]), false));
    }

    #[test]
    fn shapes_some_servers_refuse_are_not() {
        for value in [
            json!({"a": [[1]]}),
            json!({"a.b": 1}),
            json!({"x": {"$set": 1}}),
            json!({"s": "a\u{0}b"}),
            json!({"n": u64::MAX}),
        ] {
            assert!(!portable(&value, false), "{value}");
        }
    }

    #[test]
    fn a_run_document_stored_before_the_added_fields_reads_with_their_defaults() {
        let run = crate::queue::run::tests::plain_run();
        let mut doc = run_doc(&run, 3).unwrap();
        for key in crate::queue::run::tests::ADDED {
            assert!(doc.remove(key).is_some(), "{key}");
        }
        assert_eq!(run_record(&doc).unwrap(), (run, 3));
    }

    fn at(ms: i64) -> Bson {
        Bson::DateTime(DateTime::from_millis(ms))
    }

    /// A document as the hand-written codec before serde wrote it: every field with its BSON
    /// type (`Document` equality ignores the order of fields).
    fn old_run() -> Document {
        doc! {
            "_id": "01JRUN", "job": "p.j", "project": "p", "dedupe": "k", "state": "running",
            "priority": 2_i32, "attempt": 1_i64, "attempts": 3_i64, "max_parallel": 2_i64,
            "retry_delay_ms": 1_000_i64, "defer_delay_ms": 5_000_i64,
            "defer_max_ms": 3_600_000_i64, "timeout_ms": 30_000_i64,
            "created": at(1_700_000_000_000), "not_before": at(1_700_000_000_000),
            "started": at(1_700_000_001_000), "finished": Bson::Null, "worker": "w1",
            "pid": 42_i64, "heartbeat": at(1_700_000_002_000), "progress": 0.5,
            "progress_message": "half", "exit_code": Bson::Null, "reason": Bson::Null,
            "parent": "01JPARENT", "restart_of": Bson::Null, "force": true,
            "history": [
                { "state": "pending", "at": at(1_700_000_000_000), "note": Bson::Null },
                { "state": "running", "at": at(1_700_000_001_000), "note": "attempt 1 on w1" },
            ],
            "history_folded": 0_i64, "lost": 1_i64, "deferrals": 0_i64,
            "deferred_since": Bson::Null, "seq": 7_i64,
            "args": { "n": 1_i64, "s": "x" },
        }
    }

    #[test]
    fn a_run_document_of_the_old_hand_codec_reads_back_and_is_written_alike() {
        let old = old_run();
        let (run, seq) = run_record(&old).unwrap();
        assert_eq!(seq, 7);
        assert_eq!(
            (run.pid, run.priority, run.timeout_ms, run.lost, run.force),
            (Some(42), 2, Some(30_000), 1, true)
        );
        assert_eq!(run.args, json!({"n": 1, "s": "x"}));
        assert_eq!(run.history[1].note.as_deref(), Some("attempt 1 on w1"));
        // Written back with the fields added since (their defaults), else alike.
        let mut written = old.clone();
        written.insert("claims", 0_i64);
        assert_eq!(run_doc(&run, seq).unwrap(), written);
    }

    #[test]
    fn whole_doubles_read_as_integers_and_oversized_delays_saturate() {
        let mut old = old_run();
        old.insert("attempt", 1.0);
        old.insert("max_parallel", 2_i32);
        let (mut run, _) = run_record(&old).unwrap();
        assert_eq!((run.attempt, run.max_parallel), (1, 2));
        old.insert("attempt", 1.5);
        assert!(run_record(&old).is_err());
        run.retry_delay_ms = u64::MAX;
        let doc = run_doc(&run, 0).unwrap();
        assert_eq!(doc.get("retry_delay_ms"), Some(&Bson::Int64(i64::MAX)));
    }

    #[test]
    fn records_of_the_old_hand_codec_read_back_and_are_written_alike() {
        fn same<T: super::codec::Stored + PartialEq + std::fmt::Debug>(old: Document) -> T {
            let record: T = decode(&old).unwrap();
            assert_eq!(encode(&record).unwrap(), old);
            record
        }
        let project: ProjectRecord = same(doc! {
            "_id": "p", "hash": "h", "source": "/home/p/coco.yaml", "active": true,
            "applied_at": at(1_700_000_000_000), "manifest": { "jobs": { "a": [1_i64, 2_i64] } },
        });
        assert_eq!(project.manifest, json!({"jobs": {"a": [1, 2]}}));
        // A definition no server stores as is (a nested array) is JSON text.
        let job: JobRecord = same(doc! {
            "_id": "p.j", "project": "p", "name": "j", "hash": "h", "active": false,
            "next_fire": at(1_700_000_060_000), "last_fire": Bson::Null,
            "updated_at": at(1_700_000_000_000), "definition_json": r#"{"a":[[1]]}"#,
        });
        assert_eq!(job.definition, json!({"a": [[1]]}));
        assert_eq!(job.last_fire, None);
        let member: MemberRecord = same(doc! {
            "_id": "w1", "kind": "worker", "host": "h", "pid": 7_i64,
            "started": at(1_700_000_000_000), "heartbeat": at(1_700_000_001_000),
            "slots": 2_i64, "running": ["01JRUN"], "holding": Bson::Null,
            "version": "0.9.0", "lease_ms": 10_000_i64,
        });
        assert_eq!(member.running, ["01JRUN"]);
        assert_eq!(
            (member.version.as_str(), member.lease_ms),
            ("0.9.0", 10_000)
        );
        // Recorded before versions and leases: read with neither.
        let older: MemberRecord = decode(&doc! {
            "_id": "w1", "kind": "worker", "host": "h", "pid": 7_i64,
            "started": at(1_700_000_000_000), "heartbeat": at(1_700_000_001_000),
            "slots": 2_i64, "running": ["01JRUN"], "holding": Bson::Null,
        })
        .unwrap();
        assert_eq!((older.version.as_str(), older.lease_ms), ("", 0));
        let _: Problems = same(doc! {
            "_id": "d1", "at": at(1_700_000_000_000), "problems": ["a.yaml:1:1: bad"],
        });
        let log: LogRecord = same(doc! {
            "_id": "01JLOG", "at": at(1_700_000_000_000), "level": "INFO", "levelno": 20_i32,
            "message": "m", "host": "h", "source": "w1", "project": "p", "job": Bson::Null,
            "run": Bson::Null, "app": Bson::Null,
        });
        assert_eq!(log.levelno, 20);
        // Releases and fires have an `_id` their record lacks: the callers add it.
        let mut release = doc! {
            "project": "p", "version": "1.0.0", "commit": "c0ffee",
            "at": at(1_700_000_000_000), "by": "A <a@b>",
        };
        let _: ReleaseRecord = same(release.clone());
        release.insert("_id", "p@1.0.0");
        assert!(decode::<ReleaseRecord>(&release).is_ok());
        let _: Fire = same(doc! {
            "job": "p.j", "instant": at(1_700_000_060_000), "fired_at": at(1_700_000_060_005),
        });
    }

    #[test]
    fn a_broken_document_is_corrupt_naming_the_record_and_keeping_the_cause() {
        let mut old = old_run();
        old.remove("created");
        let error = run_record(&old).unwrap_err();
        assert!(
            matches!(&error, crate::store::StoreError::Corrupt { what, .. } if what == "run 01JRUN"),
            "{error:?}"
        );
        let cause = error.cause().expect("a cause");
        assert!(cause.to_string().contains("created"), "{cause}");
        let shown = error.to_string();
        assert_eq!(shown, format!("store record run 01JRUN: {cause}"));
        // An error chain shows the cause once.
        assert_eq!(format!("{:#}", anyhow::Error::from(error)), shown);
    }
}
