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
//!   final state. A marker whose run is final, or missing for over [`STALE_DEDUPE`], is
//!   stale (a crash between two writes) and is removed by the next enqueue of that key.
//! - `slot:{job}:{k}` for `k < max_parallel` (fields `run`, `seq`, `at`): a job slot, taken
//!   before claiming, released when the try ends.
//! - `claim:{run}:{seq}`: its inserter alone moves the run from claimable to `running`
//!   (`seq + 1`), then deletes the marker (a late claimer that read `seq` can no longer
//!   match the run).
//! - `end:{run}:{seq}`: the one that ends the try — the worker finishing it or a reaper
//!   taking it back — alone moves the run out of `running`, then deletes the marker.
//! - `live:{run}`: heartbeat, pid and progress of the running try, written by its worker,
//!   so those frequent writes never touch (and can never undo) the run document; they are
//!   copied into the run document when the try ends.
//!
//! A process that dies between two of these writes leaves a lock behind; the reaper
//! ([`Queue::take_back_zombies`]) cleans up locks older than `zombie_after`: frees slots
//! whose try is not running, and moves a run still at a dead claimer's `seq` on (marker
//! `orphan:{run}:{seq}`) so it can be claimed again. Only a claimer or ender that stalls
//! for longer than `zombie_after` between its marker and its update could race the reaper.

mod catalog;
mod fires;
mod fleet;
mod journal;
mod queue;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use crate::queue::state::RunState;
use crate::redact::redact;
use crate::store::{
    AppRecord, AppStatus, COLLECTIONS, Cancel, Cancelled, Control, Enqueued, Fire, JobRecord,
    LiveReport, LogFilter, LogRecord, MemberRecord, Paused, Problems, ProjectRecord, ReleaseRecord,
    RunEnd, RunFilter, RunRecord, StateChange, Store, StoreError, StoreResult,
};

/// How long an operation waits for a usable server before failing (unless the URL sets
/// `serverSelectionTimeoutMS`).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening one TCP connection may take (unless the URL sets `connectTimeoutMS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Server error codes this module reacts to.
const DUPLICATE_KEY: i32 = 11000;
const NAMESPACE_EXISTS: i32 = 48;

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
        (
            "fires",
            "settled_fired_at",
            doc! { "settled": 1, "fired_at": 1 },
            false,
        ),
        ("locks", "expires", doc! { "expires": 1 }, false),
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
        let shown = redact(url);
        let mut options = ClientOptions::parse(url)
            .await
            .map_err(mongo_err(&shown, "parsing the connection URL"))?;
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

fn corrupt(what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.to_string(),
        message: message.to_string(),
    }
}

/// Whether every MongoDB-compatible server stores `value` as is (see the module docs).
fn portable(value: &serde_json::Value, in_array: bool) -> bool {
    use serde_json::Value;
    let key_ok = |k: &str| !k.starts_with('$') && !k.contains(['.', '\0']);
    match value {
        Value::Null | Value::Bool(_) => true,
        Value::Number(n) => bson_number(n).is_some(),
        Value::String(s) => !s.contains('\0'),
        Value::Array(items) => !in_array && items.iter().all(|v| portable(v, true)),
        Value::Object(map) => map.iter().all(|(k, v)| key_ok(k) && portable(v, false)),
    }
}

/// The BSON number that reads back as exactly `n` (its text kept: `serde_json`'s
/// `arbitrary_precision`), if there is one: an integer within `i64`, or a float written as
/// its shortest form. Others (`1e2`, `2.50`, integers beyond `i64`, `-0.0`) are not
/// [`portable`].
fn bson_number(n: &serde_json::Number) -> Option<Bson> {
    let text = n.to_string();
    if let Some(i) = n.as_i64().filter(|i| i.to_string() == text) {
        return Some(Bson::Int64(i));
    }
    // FerretDB reads a stored -0.0 back as 0.0.
    let f = n
        .as_f64()
        .filter(|f| f.is_finite() && !(*f == 0.0 && f.is_sign_negative()))?;
    let back = serde_json::Number::from_f64(f)?;
    (back.to_string() == text).then_some(Bson::Double(f))
}

/// `value` as BSON; only for [`portable`] values. (Not `bson::to_bson`: with
/// `arbitrary_precision` a number serializes as a private struct, not a number.)
fn bson_of(value: &serde_json::Value) -> Bson {
    use serde_json::Value;
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => bson_number(n).unwrap_or_else(|| Bson::String(n.to_string())),
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(bson_of).collect()),
        Value::Object(map) => {
            Bson::Document(map.iter().map(|(k, v)| (k.clone(), bson_of(v))).collect())
        }
    }
}

/// Put JSON `value` into `doc` as embedded BSON under `field`, or as JSON text under
/// `<field>_json` when it is not [`portable`].
fn put_json(doc: &mut Document, field: &str, value: &serde_json::Value) -> StoreResult<()> {
    if portable(value, false) {
        doc.insert(field, bson_of(value));
    } else {
        doc.insert(format!("{field}_json"), value.to_string());
    }
    Ok(())
}

fn time(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_chrono(t))
}

fn opt_time(t: Option<DateTime<Utc>>) -> Bson {
    t.map_or(Bson::Null, time)
}

/// Typed access to a stored document, with errors naming the record.
struct Reader<'a> {
    what: String,
    doc: &'a Document,
}

impl<'a> Reader<'a> {
    fn new(kind: &str, doc: &'a Document) -> Self {
        let key = doc.get_str("_id").unwrap_or("?");
        Self {
            what: format!("{kind} {key}"),
            doc,
        }
    }

    fn str(&self, field: &str) -> StoreResult<String> {
        self.doc
            .get_str(field)
            .map(str::to_string)
            .map_err(|e| corrupt(&self.what, e))
    }

    fn bool(&self, field: &str) -> StoreResult<bool> {
        self.doc.get_bool(field).map_err(|e| corrupt(&self.what, e))
    }

    fn time(&self, field: &str) -> StoreResult<DateTime<Utc>> {
        self.doc
            .get_datetime(field)
            .map(|t| t.to_chrono())
            .map_err(|e| corrupt(&self.what, e))
    }

    fn opt_time(&self, field: &str) -> StoreResult<Option<DateTime<Utc>>> {
        match self.doc.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(_) => self.time(field).map(Some),
        }
    }

    fn opt_str(&self, field: &str) -> StoreResult<Option<String>> {
        match self.doc.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(_) => self.str(field).map(Some),
        }
    }

    fn state(&self, field: &str) -> StoreResult<RunState> {
        let name = self.str(field)?;
        RunState::parse(&name)
            .ok_or_else(|| corrupt(&self.what, format!("{field}: unknown run state {name:?}")))
    }

    /// An integer field (stored as int32, int64 or a whole double) as `T`.
    fn int<T: TryFrom<i64>>(&self, field: &str) -> StoreResult<T> {
        self.opt_int(field)?
            .ok_or_else(|| corrupt(&self.what, format!("field {field:?} is missing")))
    }

    fn opt_int<T: TryFrom<i64>>(&self, field: &str) -> StoreResult<Option<T>> {
        let n = match self.doc.get(field) {
            None | Some(Bson::Null) => return Ok(None),
            Some(Bson::Int32(n)) => i64::from(*n),
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Double(d)) if d.fract() == 0.0 => *d as i64,
            Some(other) => {
                return Err(corrupt(
                    &self.what,
                    format!("{field}: expected an integer, found {other}"),
                ));
            }
        };
        T::try_from(n)
            .map(Some)
            .map_err(|_| corrupt(&self.what, format!("{field}: {n} is out of range")))
    }

    fn opt_f64(&self, field: &str) -> StoreResult<Option<f64>> {
        match self.doc.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::Double(d)) => Ok(Some(*d)),
            Some(Bson::Int32(n)) => Ok(Some(f64::from(*n))),
            Some(Bson::Int64(n)) => Ok(Some(*n as f64)),
            Some(other) => Err(corrupt(
                &self.what,
                format!("{field}: expected a number, found {other}"),
            )),
        }
    }

    fn json(&self, field: &str) -> StoreResult<serde_json::Value> {
        if let Ok(text) = self.doc.get_str(format!("{field}_json")) {
            return serde_json::from_str(text)
                .map_err(|e| corrupt(&self.what, format!("{field}_json: {e}")));
        }
        let value = self
            .doc
            .get(field)
            .ok_or_else(|| corrupt(&self.what, format!("field {field:?} is missing")))?;
        bson::from_bson(value.clone()).map_err(|e| corrupt(&self.what, format!("{field}: {e}")))
    }
}

fn project_doc(r: &ProjectRecord) -> StoreResult<Document> {
    let mut doc = doc! {
        "_id": &r.name,
        "hash": &r.hash,
        "source": &r.source,
        "active": r.active,
        "applied_at": time(r.applied_at),
    };
    put_json(&mut doc, "manifest", &r.manifest)?;
    Ok(doc)
}

fn project_record(doc: &Document) -> StoreResult<ProjectRecord> {
    let r = Reader::new("project", doc);
    Ok(ProjectRecord {
        name: r.str("_id")?,
        hash: r.str("hash")?,
        manifest: r.json("manifest")?,
        source: r.str("source")?,
        active: r.bool("active")?,
        applied_at: r.time("applied_at")?,
    })
}

fn job_doc(r: &JobRecord) -> StoreResult<Document> {
    let mut doc = doc! {
        "_id": &r.id,
        "project": &r.project,
        "name": &r.name,
        "hash": &r.hash,
        "active": r.active,
        "next_fire": opt_time(r.next_fire),
        "last_fire": opt_time(r.last_fire),
        "updated_at": time(r.updated_at),
    };
    put_json(&mut doc, "definition", &r.definition)?;
    Ok(doc)
}

fn job_record(doc: &Document) -> StoreResult<JobRecord> {
    let r = Reader::new("job", doc);
    Ok(JobRecord {
        id: r.str("_id")?,
        project: r.str("project")?,
        name: r.str("name")?,
        definition: r.json("definition")?,
        hash: r.str("hash")?,
        active: r.bool("active")?,
        next_fire: r.opt_time("next_fire")?,
        last_fire: r.opt_time("last_fire")?,
        updated_at: r.time("updated_at")?,
    })
}

fn app_doc(r: &AppRecord) -> StoreResult<Document> {
    let mut doc = doc! {
        "_id": &r.id,
        "project": &r.project,
        "name": &r.name,
        "hash": &r.hash,
        "active": r.active,
        "updated_at": time(r.updated_at),
    };
    put_json(&mut doc, "definition", &r.definition)?;
    Ok(doc)
}

fn app_record(doc: &Document) -> StoreResult<AppRecord> {
    let r = Reader::new("app", doc);
    Ok(AppRecord {
        id: r.str("_id")?,
        project: r.str("project")?,
        name: r.str("name")?,
        definition: r.json("definition")?,
        hash: r.str("hash")?,
        active: r.bool("active")?,
        updated_at: r.time("updated_at")?,
    })
}

fn project_filter(project: Option<&str>) -> Document {
    match project {
        Some(p) => doc! { "project": p },
        None => doc! {},
    }
}

/// A dedupe marker whose run does not exist yet is taken as being enqueued right now for
/// this long; after that it is stale.
const STALE_DEDUPE: Duration = Duration::from_secs(60);

/// How many times one `claim_run` looks through the candidates while it keeps losing them
/// to other claimers.
const MAX_CLAIM_PASSES: usize = 50;

/// Job slots tried before counting whether the job has any free (see `take_slot`).
const SLOT_PROBES: u32 = 4;

/// What became of one claim attempt.
enum Claim {
    Won(Box<RunRecord>),
    /// Another claimer got the run first.
    Lost,
    /// Every slot of the run's job is taken.
    Full,
}

/// A random number (for spreading concurrent claimers).
fn random() -> u64 {
    ulid::Ulid::new().random() as u64
}

fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn opt_str(s: Option<&str>) -> Bson {
    s.map_or(Bson::Null, |s| Bson::String(s.to_string()))
}

/// The `queue` document of `r`, with its sequence number.
fn run_doc(r: &RunRecord, seq: i64) -> StoreResult<Document> {
    let history: Vec<Bson> = r
        .history
        .iter()
        .map(|c| {
            Bson::Document(doc! {
                "state": c.state.as_str(),
                "at": time(c.at),
                "note": opt_str(c.note.as_deref()),
            })
        })
        .collect();
    let mut doc = doc! {
        "_id": &r.id,
        "job": &r.job,
        "project": &r.project,
        "dedupe": &r.dedupe,
        "state": r.state.as_str(),
        "priority": r.priority,
        "attempt": i64::from(r.attempt),
        "attempts": i64::from(r.attempts),
        "max_parallel": i64::from(r.max_parallel),
        "retry_delay_ms": ms_i64(r.retry_delay_ms),
        "defer_delay_ms": ms_i64(r.defer_delay_ms),
        "defer_max_ms": ms_i64(r.defer_max_ms),
        "timeout_ms": r.timeout_ms.map_or(Bson::Null, |t| Bson::Int64(ms_i64(t))),
        "created": time(r.created),
        "not_before": time(r.not_before),
        "started": opt_time(r.started),
        "finished": opt_time(r.finished),
        "worker": opt_str(r.worker.as_deref()),
        "pid": r.pid.map_or(Bson::Null, |p| Bson::Int64(i64::from(p))),
        "heartbeat": opt_time(r.heartbeat),
        "progress": r.progress.map_or(Bson::Null, Bson::Double),
        "progress_message": opt_str(r.progress_message.as_deref()),
        "exit_code": r.exit_code.map_or(Bson::Null, Bson::Int32),
        "reason": opt_str(r.reason.as_deref()),
        "parent": opt_str(r.parent.as_deref()),
        "restart_of": opt_str(r.restart_of.as_deref()),
        "force": r.force,
        "history": history,
        "history_folded": i64::try_from(r.history_folded).unwrap_or(i64::MAX),
        "lost": i64::from(r.lost),
        "deferrals": i64::from(r.deferrals),
        "deferred_since": opt_time(r.deferred_since),
        "seq": seq,
    };
    put_json(&mut doc, "args", &r.args)?;
    Ok(doc)
}

/// A run and its sequence number from its `queue` document.
fn run_record(doc: &Document) -> StoreResult<(RunRecord, i64)> {
    let r = Reader::new("run", doc);
    let history = doc
        .get_array("history")
        .map_err(|e| corrupt(&r.what, e))?
        .iter()
        .map(|entry| {
            let entry = entry
                .as_document()
                .ok_or_else(|| corrupt(&r.what, "history entry is not a document"))?;
            let e = Reader {
                what: r.what.clone(),
                doc: entry,
            };
            Ok(StateChange {
                state: e.state("state")?,
                at: e.time("at")?,
                note: e.opt_str("note")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let record = RunRecord {
        id: r.str("_id")?,
        job: r.str("job")?,
        project: r.str("project")?,
        args: r.json("args")?,
        dedupe: r.str("dedupe")?,
        state: r.state("state")?,
        priority: r.int("priority")?,
        attempt: r.int("attempt")?,
        attempts: r.int("attempts")?,
        max_parallel: r.int("max_parallel")?,
        retry_delay_ms: r.int("retry_delay_ms")?,
        // Absent from runs stored before these fields existed.
        defer_delay_ms: r
            .opt_int("defer_delay_ms")?
            .unwrap_or_else(super::default_defer_delay_ms),
        defer_max_ms: r
            .opt_int("defer_max_ms")?
            .unwrap_or_else(super::default_defer_max_ms),
        timeout_ms: r.opt_int("timeout_ms")?,
        created: r.time("created")?,
        not_before: r.time("not_before")?,
        started: r.opt_time("started")?,
        finished: r.opt_time("finished")?,
        worker: r.opt_str("worker")?,
        pid: r.opt_int("pid")?,
        heartbeat: r.opt_time("heartbeat")?,
        progress: r.opt_f64("progress")?,
        progress_message: r.opt_str("progress_message")?,
        exit_code: r.opt_int("exit_code")?,
        reason: r.opt_str("reason")?,
        parent: r.opt_str("parent")?,
        restart_of: r.opt_str("restart_of")?,
        force: r.bool("force")?,
        lost: r.opt_int("lost")?.unwrap_or(0),
        deferrals: r.opt_int("deferrals")?.unwrap_or(0),
        deferred_since: r.opt_time("deferred_since")?,
        history,
        history_folded: r.opt_int("history_folded")?.unwrap_or(0),
    };
    Ok((record, r.int("seq")?))
}

/// Copy the running try's live fields (heartbeat, pid, progress) from its `live:` document,
/// if that belongs to the current try (sequence number `seq`).
fn overlay_live(run: &mut RunRecord, seq: i64, live: Option<&Document>) {
    let Some(live) = live else { return };
    let r = Reader::new("live", live);
    let current = r.opt_int::<i64>("seq").ok().flatten() == Some(seq)
        && live.get_str("worker").ok() == run.worker.as_deref();
    if run.state != RunState::Running || !current {
        return;
    }
    if let Ok(t) = live.get_datetime("heartbeat") {
        run.heartbeat = Some(t.to_chrono());
    }
    run.pid = r.opt_int("pid").ok().flatten();
    run.progress = r.opt_f64("progress").ok().flatten();
    run.progress_message = r.opt_str("progress_message").ok().flatten();
}

/// The query for the state, project and job of `filter` (its limit is the caller's).
fn run_filter_doc(filter: &RunFilter) -> Document {
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
    query
}

fn live_id(run: &str) -> String {
    format!("live:{run}")
}

impl MongoStore {
    fn locks(&self) -> Collection<Document> {
        self.collection("locks")
    }

    /// Insert a marker into `locks`: true if this call created it, false if it existed.
    async fn insert_marker(&self, marker: Document, doing: &str) -> StoreResult<bool> {
        match self.locks().insert_one(marker).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(self.err(doing)(e)),
        }
    }

    /// Every document of `collection` matching `filter`, sorted by `sort`, at most `limit`.
    async fn find_all(
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
    async fn runs_with_live(
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

    async fn read_run(&self, id: &str, doing: &str) -> StoreResult<Option<(RunRecord, i64)>> {
        let Some(doc) = self.find_by_id("queue", id, doing).await? else {
            return Ok(None);
        };
        Ok(self.runs_with_live(&[doc], doing).await?.pop())
    }

    /// Take a free slot of `run`'s job for the try that will have sequence number `seq`,
    /// trying slot `first` first: `Some(slot id)`, or `None` when all `max_parallel` are
    /// taken. After [`SLOT_PROBES`] taken slots it counts the job's running runs before
    /// trying the rest (a count scans the collection on servers without indexes, so it is
    /// not done for a job with slots to spare).
    async fn take_slot(
        &self,
        run: &RunRecord,
        seq: i64,
        first: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        let max = run.max_parallel.max(1);
        for i in 0..max {
            if i == SLOT_PROBES {
                let running = self
                    .collection("queue")
                    .count_documents(doc! { "job": &run.job, "state": "running" })
                    .await
                    .map_err(self.err("counting a job's running runs"))?;
                if running >= u64::from(max) {
                    return Ok(None);
                }
            }
            let id = format!("slot:{}:{}", run.job, (first + i) % max);
            let slot = doc! {
                "_id": &id, "kind": "slot", "job": &run.job, "run": &run.id,
                "seq": seq, "at": time(now),
            };
            if self.insert_marker(slot, "taking a job slot").await? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    async fn delete_lock(&self, filter: Document, doing: &str) -> StoreResult<()> {
        self.locks()
            .delete_many(filter)
            .await
            .map(|_| ())
            .map_err(self.err(doing))
    }

    /// Replace run `id` by `doc` if its sequence number is still `seq`: whether it was.
    async fn replace_run(
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
    async fn try_claim(
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
        let marker_id = format!("claim:{}:{seq}", run.id);
        let marker = doc! {
            "_id": &marker_id, "kind": "claim", "run": &run.id, "seq": seq,
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
        let live = doc! {
            "_id": live_id(&run.id), "kind": "live", "run": &run.id, "seq": seq + 1,
            "worker": worker, "heartbeat": time(now), "pid": Bson::Null,
            "progress": Bson::Null, "progress_message": Bson::Null,
        };
        self.upsert("locks", live, doing).await?;
        // Once the run's `seq` has moved on, a late claimer that read `seq` can no longer
        // match it: the marker has done its job.
        self.delete_lock(doc! { "_id": &marker_id }, doing).await?;
        Ok(Claim::Won(Box::new(claimed)))
    }

    /// End the running try of `run` (read at sequence number `seq`) with `end`, if this call
    /// wins `end:{run}:{seq}`; then release what the try held.
    async fn end_try(
        &self,
        run: RunRecord,
        seq: i64,
        end: &RunEnd,
        doing: &str,
    ) -> StoreResult<Option<RunRecord>> {
        let marker_id = format!("end:{}:{seq}", run.id);
        let marker = doc! {
            "_id": &marker_id, "kind": "end", "run": &run.id, "seq": seq, "at": time(end.at),
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
        self.delete_lock(
            doc! { "_id": live_id(&ended.id), "seq": seq },
            "removing a run's live document",
        )
        .await?;
        self.delete_lock(
            doc! { "kind": "slot", "run": &ended.id, "seq": seq },
            "releasing a job slot",
        )
        .await?;
        if ended.state.is_final() {
            self.delete_lock(
                doc! { "_id": format!("dedupe:{}", ended.dedupe), "run": &ended.id },
                "releasing a dedupe key",
            )
            .await?;
        }
        self.delete_lock(doc! { "_id": &marker_id }, doing).await?;
        Ok(Some(ended))
    }

    /// Take waiting run `run` (read at sequence number `seq`) out of the queue, if this call
    /// wins `claim:{run}:{seq}` against every claimer: whether it did.
    async fn cancel_waiting(
        &self,
        run: &RunRecord,
        seq: i64,
        cancel: Cancel,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<RunRecord>> {
        let doing = "cancelling a run";
        let marker_id = format!("claim:{}:{seq}", run.id);
        let marker = doc! {
            "_id": &marker_id, "kind": "claim", "run": &run.id, "seq": seq,
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
                doc! { "_id": format!("dedupe:{}", cancelled.dedupe), "run": &cancelled.id },
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
    async fn recover_stale_locks(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let doing = "recovering stale locks";
        let stale = self
            .find_all(
                "locks",
                doc! { "kind": { "$in": ["slot", "claim", "end"] }, "at": { "$lt": time(cutoff) } },
                doc! { "_id": 1 },
                None,
                doing,
            )
            .await?;
        for lock in stale {
            let r = Reader::new("lock", &lock);
            let (Ok(id), Ok(kind), Ok(run_id), Ok(seq)) = (
                r.str("_id"),
                r.str("kind"),
                r.str("run"),
                r.int::<i64>("seq"),
            ) else {
                continue;
            };
            let run = match self.find_by_id("queue", &run_id, doing).await? {
                Some(doc) => Some(run_record(&doc)?),
                None => None,
            };
            let in_use = match (kind.as_str(), &run) {
                // A slot is held by the running try with its sequence number.
                ("slot", Some((r, s))) => r.state == RunState::Running && *s == seq,
                // A claim marker whose run is still claimable at its sequence number: the
                // claimer died before updating the run.
                ("claim", Some((r, s))) if *s == seq && r.state.is_claimable() => {
                    let orphan = doc! {
                        "_id": format!("orphan:{run_id}:{seq}"), "kind": "orphan",
                        "run": &run_id, "seq": seq, "at": time(now),
                    };
                    if self.insert_marker(orphan, doing).await? {
                        self.replace_run(&run_id, seq, run_doc(r, seq + 1)?, doing)
                            .await?;
                    }
                    false
                }
                // An end marker whose run is still running at its sequence number: the ender
                // died before updating the run; removing the marker lets a reaper end it.
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

#[async_trait]
impl Store for MongoStore {
    fn describe(&self) -> String {
        format!("MongoDB store {} database {}", self.url, self.db.name())
    }

    async fn ensure_schema(&self) -> StoreResult<()> {
        for name in COLLECTIONS {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{portable, run_doc, run_record};

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
        let run = crate::store::tests::plain_run();
        let mut doc = run_doc(&run, 3).unwrap();
        for key in crate::store::tests::ADDED {
            assert!(doc.remove(key).is_some(), "{key}");
        }
        assert_eq!(run_record(&doc).unwrap(), (run, 3));
    }
}
