//! MongoDB store: the official `mongodb` driver; many hosts share one database.
//!
//! Records are documents whose `_id` is the record's key (project name, job id, app id);
//! timestamps are BSON DateTimes (millisecond precision, UTC). `manifest` and `definition`
//! are embedded documents converted from/to `serde_json::Value` — unless the JSON has a shape
//! some servers refuse (FerretDB 1.x: nested arrays, keys with `.` or a leading `$`, NUL in
//! strings; any server: integers above `i64::MAX`); such a document is kept as JSON text in
//! `manifest_json` / `definition_json` instead, so every manifest round-trips on every server.
//!
//! Only widely implemented operations are used — `insert_one`, `replace_one` with upsert,
//! `find` with a sort, `create`/`createIndexes`, `ping` — no transactions or change streams,
//! so MongoDB-compatible servers (FerretDB) work too. Uniqueness that matters across hosts
//! (one fire per `(job, instant)`) rests on unique keys, never on read-then-write.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use super::{AppRecord, COLLECTIONS, JobRecord, ProjectRecord, Store, StoreError, StoreResult};
use crate::redact::redact;

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
        ("workers", "heartbeat", doc! { "heartbeat": 1 }, false),
        ("log", "at", doc! { "at": 1 }, false),
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
        Value::Number(n) => n.is_i64() || n.is_f64(),
        Value::String(s) => !s.contains('\0'),
        Value::Array(items) => !in_array && items.iter().all(|v| portable(v, true)),
        Value::Object(map) => map.iter().all(|(k, v)| key_ok(k) && portable(v, false)),
    }
}

/// Put JSON `value` into `doc` as embedded BSON under `field`, or as JSON text under
/// `<field>_json` when it is not [`portable`].
fn put_json(doc: &mut Document, field: &str, value: &serde_json::Value) -> StoreResult<()> {
    if portable(value, false) {
        let bson = bson::to_bson(value)
            .map_err(|e| corrupt(field, format!("cannot convert JSON to BSON: {e}")))?;
        doc.insert(field, bson);
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

    async fn list_projects(&self) -> StoreResult<Vec<ProjectRecord>> {
        self.find_sorted("projects", doc! {}, "listing projects")
            .await?
            .iter()
            .map(project_record)
            .collect()
    }

    async fn get_project(&self, name: &str) -> StoreResult<Option<ProjectRecord>> {
        self.find_by_id("projects", name, "reading a project")
            .await?
            .as_ref()
            .map(project_record)
            .transpose()
    }

    async fn put_project(&self, record: &ProjectRecord) -> StoreResult<()> {
        self.upsert("projects", project_doc(record)?, "writing a project")
            .await
    }

    async fn list_jobs(&self, project: Option<&str>) -> StoreResult<Vec<JobRecord>> {
        self.find_sorted("jobs", project_filter(project), "listing jobs")
            .await?
            .iter()
            .map(job_record)
            .collect()
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        self.find_by_id("jobs", id, "reading a job")
            .await?
            .as_ref()
            .map(job_record)
            .transpose()
    }

    async fn put_job(&self, record: &JobRecord) -> StoreResult<()> {
        self.upsert("jobs", job_doc(record)?, "writing a job").await
    }

    async fn list_apps(&self, project: Option<&str>) -> StoreResult<Vec<AppRecord>> {
        self.find_sorted("apps", project_filter(project), "listing apps")
            .await?
            .iter()
            .map(app_record)
            .collect()
    }

    async fn get_app(&self, id: &str) -> StoreResult<Option<AppRecord>> {
        self.find_by_id("apps", id, "reading an app")
            .await?
            .as_ref()
            .map(app_record)
            .transpose()
    }

    async fn put_app(&self, record: &AppRecord) -> StoreResult<()> {
        self.upsert("apps", app_doc(record)?, "writing an app")
            .await
    }

    async fn record_fire(&self, job: &str, instant: DateTime<Utc>) -> StoreResult<bool> {
        // `_id` is unique on every server even before `ensure_schema` ran; the unique
        // (job, instant) index says the same for queries. The job id comes first and the
        // all-digit instant last, so distinct pairs never share an `_id`.
        let fire = doc! {
            "_id": format!("{job}@{}", instant.timestamp_millis()),
            "job": job,
            "instant": time(instant),
            "fired_at": time(Utc::now()),
        };
        match self.collection("fires").insert_one(fire).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(self.err("recording a fire")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::portable;

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
}
