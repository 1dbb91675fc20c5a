//! The MongoDB store's documents: records to BSON and back.

use super::*;

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
pub(super) fn put_json(
    doc: &mut Document,
    field: &str,
    value: &serde_json::Value,
) -> StoreResult<()> {
    if portable(value, false) {
        doc.insert(field, bson_of(value));
    } else {
        doc.insert(format!("{field}_json"), value.to_string());
    }
    Ok(())
}

pub(super) fn time(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_chrono(t))
}

pub(super) fn opt_time(t: Option<DateTime<Utc>>) -> Bson {
    t.map_or(Bson::Null, time)
}

/// Typed access to a stored document, with errors naming the record.
pub(super) struct Reader<'a> {
    pub(super) what: String,
    doc: &'a Document,
}

impl<'a> Reader<'a> {
    pub(super) fn new(kind: &str, doc: &'a Document) -> Self {
        let key = doc.get_str("_id").unwrap_or("?");
        Self {
            what: format!("{kind} {key}"),
            doc,
        }
    }

    pub(super) fn str(&self, field: &str) -> StoreResult<String> {
        self.doc
            .get_str(field)
            .map(str::to_string)
            .map_err(|e| corrupt(&self.what, e))
    }

    pub(super) fn bool(&self, field: &str) -> StoreResult<bool> {
        self.doc.get_bool(field).map_err(|e| corrupt(&self.what, e))
    }

    pub(super) fn time(&self, field: &str) -> StoreResult<DateTime<Utc>> {
        self.doc
            .get_datetime(field)
            .map(|t| t.to_chrono())
            .map_err(|e| corrupt(&self.what, e))
    }

    pub(super) fn opt_time(&self, field: &str) -> StoreResult<Option<DateTime<Utc>>> {
        match self.doc.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(_) => self.time(field).map(Some),
        }
    }

    pub(super) fn opt_str(&self, field: &str) -> StoreResult<Option<String>> {
        match self.doc.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(_) => self.str(field).map(Some),
        }
    }

    pub(super) fn state(&self, field: &str) -> StoreResult<RunState> {
        let name = self.str(field)?;
        RunState::parse(&name)
            .ok_or_else(|| corrupt(&self.what, format!("{field}: unknown run state {name:?}")))
    }

    /// An integer field (stored as int32, int64 or a whole double) as `T`.
    pub(super) fn int<T: TryFrom<i64>>(&self, field: &str) -> StoreResult<T> {
        self.opt_int(field)?
            .ok_or_else(|| corrupt(&self.what, format!("field {field:?} is missing")))
    }

    pub(super) fn opt_int<T: TryFrom<i64>>(&self, field: &str) -> StoreResult<Option<T>> {
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

    pub(super) fn opt_f64(&self, field: &str) -> StoreResult<Option<f64>> {
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

    pub(super) fn json(&self, field: &str) -> StoreResult<serde_json::Value> {
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

pub(super) fn project_doc(r: &ProjectRecord) -> StoreResult<Document> {
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

pub(super) fn project_record(doc: &Document) -> StoreResult<ProjectRecord> {
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

pub(super) fn job_doc(r: &JobRecord) -> StoreResult<Document> {
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

pub(super) fn job_record(doc: &Document) -> StoreResult<JobRecord> {
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

pub(super) fn app_doc(r: &AppRecord) -> StoreResult<Document> {
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

pub(super) fn app_record(doc: &Document) -> StoreResult<AppRecord> {
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

pub(super) fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub(super) fn opt_str(s: Option<&str>) -> Bson {
    s.map_or(Bson::Null, |s| Bson::String(s.to_string()))
}

/// The `queue` document of `r`, with its sequence number.
pub(super) fn run_doc(r: &RunRecord, seq: i64) -> StoreResult<Document> {
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
        "reason": opt_str(r.reason.map(String::from).as_deref()),
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
pub(super) fn run_record(doc: &Document) -> StoreResult<(RunRecord, i64)> {
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
            .unwrap_or_else(crate::queue::run::default_defer_delay_ms),
        defer_max_ms: r
            .opt_int("defer_max_ms")?
            .unwrap_or_else(crate::queue::run::default_defer_max_ms),
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
        reason: r
            .opt_str("reason")?
            .map(|text| text.parse())
            .transpose()
            .map_err(|e| corrupt(&r.what, e))?,
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
pub(super) fn overlay_live(run: &mut RunRecord, seq: i64, live: Option<&Document>) {
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
