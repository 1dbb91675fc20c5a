//! The MongoDB store's documents: records to BSON and back, through serde.
//!
//! Each record is encoded by a mirror of it (`#[serde(remote = "…")]`) that says how a
//! field is stored where that differs from the record's own serde form (what the embedded
//! store writes): timestamps as BSON dates, `_id` for the key, unsigned numbers as int64
//! (saturating), integers read back from int32, int64 or a whole double. A field added to a
//! record does not compile until its mirror has it too. JSON values (manifest, definition,
//! args) are kept as they are by [`put_json`] and [`read_json`], not by serde.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::*;
use crate::access::Role;
use crate::queue::state::Reason;
use crate::store::{MemberKind, TokenRecord};

/// Whether every MongoDB-compatible server stores `value` as is (see the module docs).
pub(super) fn portable(value: &serde_json::Value, in_array: bool) -> bool {
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
pub(super) fn bson_number(n: &serde_json::Number) -> Option<Bson> {
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
pub(super) fn bson_of(value: &serde_json::Value) -> Bson {
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
pub(super) fn put_json(doc: &mut Document, field: &str, value: &serde_json::Value) {
    if portable(value, false) {
        doc.insert(field, bson_of(value));
    } else {
        doc.insert(format!("{field}_json"), value.to_string());
    }
}

/// The JSON value [`put_json`] put into `doc` under `field`.
pub(super) fn read_json(doc: &Document, what: &str, field: &str) -> StoreResult<serde_json::Value> {
    let text_field = format!("{field}_json");
    if let Ok(text) = doc.get_str(&text_field) {
        return serde_json::from_str(text)
            .map_err(|e| StoreError::corrupt(what, Context::new(text_field, e)));
    }
    let value = doc
        .get(field)
        .ok_or_else(|| StoreError::corrupt(what, format!("field {field:?} is missing")))?;
    bson::from_bson(value.clone()).map_err(|e| StoreError::corrupt(what, Context::new(field, e)))
}

pub(super) fn time(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_chrono(t))
}

pub(super) fn opt_time(t: Option<DateTime<Utc>>) -> Bson {
    t.map_or(Bson::Null, time)
}

/// A record kept as a document: how its mirror encodes it, and its JSON field if it has one.
pub(super) trait Stored: Sized {
    /// What the record is called in errors (`run`, `job`, …).
    const KIND: &'static str;
    fn encode_with<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    fn decode_with<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
    /// The field kept by [`put_json`] (not by serde), and its value.
    fn json_field(&self) -> Option<(&'static str, &serde_json::Value)> {
        None
    }
    fn json_field_mut(&mut self) -> Option<(&'static str, &mut serde_json::Value)> {
        None
    }
}

/// `record` as its document.
pub(super) fn encode<T: Stored>(record: &T) -> StoreResult<Document> {
    let doing = || format!("encoding a {} document", T::KIND);
    let mut doc = match record.encode_with(bson::Serializer::new()) {
        Ok(Bson::Document(doc)) => doc,
        Ok(other) => {
            return Err(StoreError::invalid(
                doing(),
                format!("not a document: {other}"),
            ));
        }
        Err(e) => return Err(StoreError::invalid(doing(), e)),
    };
    if let Some((field, value)) = record.json_field() {
        put_json(&mut doc, field, value);
    }
    Ok(doc)
}

/// The record `doc` holds.
pub(super) fn decode<T: Stored>(doc: &Document) -> StoreResult<T> {
    let what = what::<T>(doc);
    let mut record = T::decode_with(bson::Deserializer::new(Bson::Document(doc.clone())))
        .map_err(|e| StoreError::corrupt(&what, e))?;
    if let Some((field, value)) = record.json_field_mut() {
        *value = read_json(doc, &what, field)?;
    }
    Ok(record)
}

/// `{kind} {_id}`: the record `doc` holds, as errors name it.
fn what<T: Stored>(doc: &Document) -> String {
    format!("{} {}", T::KIND, doc.get_str("_id").unwrap_or("?"))
}

macro_rules! stored {
    ($record:ty => $mirror:ident, $kind:literal $(, json $field:ident)?) => {
        impl Stored for $record {
            const KIND: &'static str = $kind;
            fn encode_with<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $mirror::serialize(self, serializer)
            }
            fn decode_with<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $mirror::deserialize(deserializer)
            }
            $(
                fn json_field(&self) -> Option<(&'static str, &serde_json::Value)> {
                    Some((stringify!($field), &self.$field))
                }
                fn json_field_mut(&mut self) -> Option<(&'static str, &mut serde_json::Value)> {
                    Some((stringify!($field), &mut self.$field))
                }
            )?
        }
    };
}

stored!(ProjectRecord => ProjectDoc, "project", json manifest);
stored!(JobRecord => JobDoc, "job", json definition);
stored!(AppRecord => AppDoc, "app", json definition);
stored!(RunRecord => RunDoc, "run", json args);
stored!(ReleaseRecord => ReleaseDoc, "release");
stored!(MemberRecord => MemberDoc, "worker");
stored!(Problems => ProblemsDoc, "problems");
stored!(LogRecord => LogDoc, "log record");
stored!(Fire => FireDoc, "fire");
stored!(TokenRecord => TokenDoc, "token");

use bson::serde_helpers::chrono_datetime_as_bson_datetime as date;
use bson::serde_helpers::chrono_datetime_as_bson_datetime_optional as opt_date;

#[derive(Serialize, Deserialize)]
#[serde(remote = "ProjectRecord")]
struct ProjectDoc {
    #[serde(rename = "_id")]
    name: String,
    hash: String,
    #[serde(skip)]
    manifest: serde_json::Value,
    source: String,
    active: bool,
    #[serde(with = "date")]
    applied_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "JobRecord")]
struct JobDoc {
    #[serde(rename = "_id")]
    id: String,
    project: String,
    name: String,
    #[serde(skip)]
    definition: serde_json::Value,
    hash: String,
    active: bool,
    #[serde(with = "opt_date", default)]
    next_fire: Option<DateTime<Utc>>,
    #[serde(with = "opt_date", default)]
    last_fire: Option<DateTime<Utc>>,
    #[serde(with = "date")]
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "AppRecord")]
struct AppDoc {
    #[serde(rename = "_id")]
    id: String,
    project: String,
    name: String,
    #[serde(skip)]
    definition: serde_json::Value,
    hash: String,
    active: bool,
    #[serde(with = "date")]
    updated_at: DateTime<Utc>,
}

/// A `queue` document also holds `seq` (see [`run_doc`]).
#[derive(Serialize, Deserialize)]
#[serde(remote = "RunRecord")]
struct RunDoc {
    #[serde(rename = "_id")]
    id: String,
    job: String,
    project: String,
    #[serde(skip)]
    args: serde_json::Value,
    dedupe: String,
    state: RunState,
    #[serde(with = "int")]
    priority: i32,
    #[serde(with = "int")]
    attempt: u32,
    #[serde(with = "int")]
    attempts: u32,
    #[serde(with = "int")]
    max_parallel: u32,
    #[serde(with = "int")]
    retry_delay_ms: u64,
    // Absent from runs stored before these fields existed.
    #[serde(with = "int", default = "crate::queue::run::default_defer_delay_ms")]
    defer_delay_ms: u64,
    #[serde(with = "int", default = "crate::queue::run::default_defer_max_ms")]
    defer_max_ms: u64,
    #[serde(with = "opt_int", default)]
    timeout_ms: Option<u64>,
    #[serde(with = "date")]
    created: DateTime<Utc>,
    #[serde(with = "date")]
    not_before: DateTime<Utc>,
    #[serde(with = "opt_date", default)]
    started: Option<DateTime<Utc>>,
    #[serde(with = "opt_date", default)]
    finished: Option<DateTime<Utc>>,
    worker: Option<String>,
    #[serde(with = "opt_int", default)]
    pid: Option<u32>,
    #[serde(with = "opt_date", default)]
    heartbeat: Option<DateTime<Utc>>,
    progress: Option<f64>,
    progress_message: Option<String>,
    #[serde(with = "opt_int", default)]
    exit_code: Option<i32>,
    reason: Option<Reason>,
    parent: Option<String>,
    restart_of: Option<String>,
    force: bool,
    #[serde(with = "history")]
    history: Vec<StateChange>,
    #[serde(with = "int", default)]
    history_folded: u64,
    #[serde(with = "int", default)]
    lost: u32,
    #[serde(with = "int", default)]
    claims: u32,
    #[serde(with = "int", default)]
    deferrals: u32,
    #[serde(with = "opt_date", default)]
    deferred_since: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "StateChange")]
struct StateChangeDoc {
    state: RunState,
    #[serde(with = "date")]
    at: DateTime<Utc>,
    note: Option<String>,
}

/// A run's history: a list of [`StateChangeDoc`]s.
mod history {
    use super::*;

    struct Entry<'a>(&'a StateChange);

    impl Serialize for Entry<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            StateChangeDoc::serialize(self.0, serializer)
        }
    }

    struct Owned(StateChange);

    impl<'de> Deserialize<'de> for Owned {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            StateChangeDoc::deserialize(deserializer).map(Owned)
        }
    }

    pub(super) fn serialize<S: Serializer>(
        history: &[StateChange],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(history.iter().map(Entry))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<StateChange>, D::Error> {
        Ok(Vec::<Owned>::deserialize(deserializer)?
            .into_iter()
            .map(|Owned(change)| change)
            .collect())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "ReleaseRecord")]
struct ReleaseDoc {
    project: String,
    version: String,
    commit: String,
    #[serde(with = "date")]
    at: DateTime<Utc>,
    by: String,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "MemberRecord")]
struct MemberDoc {
    #[serde(rename = "_id")]
    name: String,
    kind: MemberKind,
    host: String,
    #[serde(with = "int")]
    pid: u32,
    #[serde(with = "date")]
    started: DateTime<Utc>,
    #[serde(with = "date")]
    heartbeat: DateTime<Utc>,
    #[serde(with = "int")]
    slots: u32,
    running: Vec<String>,
    holding: Option<String>,
    #[serde(default)]
    version: String,
    #[serde(with = "int", default)]
    lease_ms: u64,
    #[serde(skip)]
    apps: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "TokenRecord")]
struct TokenDoc {
    #[serde(rename = "_id")]
    name: String,
    role: Role,
    projects: Vec<String>,
    hash: String,
    #[serde(with = "date")]
    created: DateTime<Utc>,
    #[serde(with = "opt_date", default)]
    expires: Option<DateTime<Utc>>,
    #[serde(with = "opt_date", default)]
    last_used: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Problems")]
struct ProblemsDoc {
    #[serde(rename = "_id")]
    source: String,
    #[serde(with = "date")]
    at: DateTime<Utc>,
    problems: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "LogRecord")]
struct LogDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(with = "date")]
    at: DateTime<Utc>,
    level: String,
    #[serde(with = "int")]
    levelno: u8,
    message: String,
    host: String,
    source: String,
    project: Option<String>,
    job: Option<String>,
    run: Option<String>,
    app: Option<String>,
}

/// A `fires` document also holds `_id`, `settled` and (once settled) `outcome`.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Fire")]
struct FireDoc {
    job: String,
    #[serde(with = "date")]
    instant: DateTime<Utc>,
    #[serde(with = "date")]
    fired_at: DateTime<Utc>,
}

/// A `live:{run}` document in `locks` (see the module docs of [`super`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct LiveDoc {
    #[serde(rename = "_id")]
    pub(super) id: String,
    pub(super) kind: String,
    pub(super) run: String,
    pub(super) seq: i64,
    pub(super) worker: String,
    #[serde(with = "date")]
    pub(super) heartbeat: DateTime<Utc>,
    #[serde(with = "opt_int", default)]
    pub(super) pid: Option<u32>,
    #[serde(default)]
    pub(super) progress: Option<f64>,
    #[serde(default)]
    pub(super) progress_message: Option<String>,
}

impl LiveDoc {
    /// The live document of the try of `run` with sequence number `seq`, just claimed.
    pub(super) fn claimed(run: &RunRecord, seq: i64, worker: &str, now: DateTime<Utc>) -> Self {
        let id = super::marker::LockId::live(&run.id);
        LiveDoc {
            id: id.to_string(),
            kind: id.kind().to_owned(),
            run: run.id.clone(),
            seq,
            worker: worker.to_string(),
            heartbeat: now,
            pid: None,
            progress: None,
            progress_message: None,
        }
    }

    pub(super) fn encode(&self) -> StoreResult<Document> {
        bson::to_document(self).map_err(|e| StoreError::invalid("encoding a live document", e))
    }
}

/// A marker in `locks` as [`MongoStore::recover_stale_locks`] reads it.
#[derive(Debug, Deserialize)]
pub(super) struct LockDoc {
    #[serde(rename = "_id")]
    pub(super) id: String,
    pub(super) run: String,
    #[serde(with = "int")]
    pub(super) seq: i64,
}

/// A `control` document: `halt` (with `before`), `pause`, `pause:{project}` or
/// `restart:{app}` (with `before`).
#[derive(Debug, Deserialize)]
pub(super) struct ControlDoc {
    #[serde(rename = "_id")]
    pub(super) key: String,
    #[serde(with = "opt_date", default)]
    pub(super) before: Option<DateTime<Utc>>,
}

/// Decode a document that is not a record (a marker, a switch).
pub(super) fn decode_plain<T: serde::de::DeserializeOwned>(
    kind: &str,
    doc: &Document,
) -> StoreResult<T> {
    bson::from_document(doc.clone()).map_err(|e| {
        StoreError::corrupt(format!("{kind} {}", doc.get_str("_id").unwrap_or("?")), e)
    })
}

/// Integers: written as serde writes them to BSON (int32 up to `i32`/`u16`, int64 above;
/// a `u64` beyond `i64::MAX` as `i64::MAX`), read from int32, int64 or a whole double.
mod int {
    use super::*;

    pub(super) fn serialize<S: Serializer, T: Copy + Stores>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.store(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        let bson = Bson::deserialize(deserializer)?;
        whole(&bson)
    }

    /// `bson` as an integer `T`.
    pub(super) fn whole<E: serde::de::Error, T: TryFrom<i64>>(bson: &Bson) -> Result<T, E> {
        let n = match bson {
            Bson::Int32(n) => i64::from(*n),
            Bson::Int64(n) => *n,
            Bson::Double(d) if d.fract() == 0.0 => *d as i64,
            other => return Err(E::custom(format!("expected an integer, found {other}"))),
        };
        T::try_from(n).map_err(|_| E::custom(format!("{n} is out of range")))
    }

    /// How an integer type is written.
    pub(super) trait Stores {
        fn store<S: Serializer>(self, serializer: S) -> Result<S::Ok, S::Error>;
    }

    impl Stores for u64 {
        fn store<S: Serializer>(self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_i64(i64::try_from(self).unwrap_or(i64::MAX))
        }
    }

    macro_rules! as_serde {
        ($($t:ty),*) => {$(
            impl Stores for $t {
                fn store<S: Serializer>(self, serializer: S) -> Result<S::Ok, S::Error> {
                    self.serialize(serializer)
                }
            }
        )*};
    }
    as_serde!(u8, i32, u32, i64);
}

/// `Option`al integers, as [`int`] (`null` for `None`; read as `None` when null or absent).
mod opt_int {
    use super::int::Stores;
    use super::*;

    pub(super) fn serialize<S: Serializer, T: Copy + Stores>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => value.store(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        match Bson::deserialize(deserializer)? {
            Bson::Null => Ok(None),
            bson => int::whole(&bson).map(Some),
        }
    }
}

/// The `queue` document of `r`, with its sequence number.
pub(super) fn run_doc(r: &RunRecord, seq: i64) -> StoreResult<Document> {
    let mut doc = encode(r)?;
    doc.insert("seq", seq);
    Ok(doc)
}

/// A run and its sequence number from its `queue` document.
pub(super) fn run_record(doc: &Document) -> StoreResult<(RunRecord, i64)> {
    let run: RunRecord = decode(doc)?;
    let seq = doc
        .get("seq")
        .ok_or_else(|| StoreError::corrupt(what::<RunRecord>(doc), "field \"seq\" is missing"))
        .and_then(|seq| {
            int::whole::<bson::de::Error, i64>(seq)
                .map_err(|e| StoreError::corrupt(what::<RunRecord>(doc), Context::new("seq", e)))
        })?;
    Ok((run, seq))
}

/// Copy the running try's live fields (heartbeat, pid, progress) from its `live:` document,
/// if that belongs to the current try (sequence number `seq`).
pub(super) fn overlay_live(run: &mut RunRecord, seq: i64, live: Option<&Document>) {
    let Some(live) = live.and_then(|doc| decode_plain::<LiveDoc>("live", doc).ok()) else {
        return;
    };
    let current = live.seq == seq && run.worker.as_deref() == Some(live.worker.as_str());
    if run.state != RunState::Running || !current {
        return;
    }
    run.heartbeat = Some(live.heartbeat);
    run.pid = live.pid;
    run.progress = live.progress;
    run.progress_message = live.progress_message;
}
