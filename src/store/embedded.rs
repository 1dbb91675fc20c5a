//! Embedded store: one SQLite file (WAL mode), zero setup.
//!
//! Several coco processes (the CLI and a running daemon) open the same file at once. That is
//! safe because every trait method is one short statement (or one `BEGIN IMMEDIATE`
//! transaction), WAL lets readers run beside the single writer, and `busy_timeout` makes a
//! writer wait for the lock instead of failing with "database is locked".
//!
//! SQLite calls block, so each runs on tokio's blocking pool (`spawn_blocking`) holding this
//! store's one connection behind a mutex; concurrency comes from opening more connections
//! (more processes or more [`EmbeddedStore`]s), not from sharing one.
//!
//! Layout: a table per name in [`COLLECTIONS`]. Queried fields are real columns
//! (timestamps as INTEGER milliseconds since the Unix epoch, UTC; booleans as 0/1); JSON
//! documents (`manifest`, `definition`, `doc`) are TEXT. A `queue` row's `doc` is the whole
//! [`RunRecord`]; its columns repeat the fields queries need and are rewritten with it.
//!
//! Each queue method is one `BEGIN IMMEDIATE` transaction (read, decide, write), so checks
//! such as "no blocking run with this dedupe key" or "fewer than `max_parallel` running"
//! hold across every connection and process.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};

use super::embedded_file::{self, FileProblem, Verdict, read_identity};

use super::{
    AppRecord, AppStatus, Cancel, Cancelled, Claimed, Control, Enqueued, Fire, JobRecord,
    LiveReport, LogFilter, LogRecord, MemberRecord, Paused, Problems, ProjectRecord, ReleaseRecord,
    RunEnd, RunFilter, RunRecord, Stepped, Store, StoreError, StoreResult,
};
use crate::queue::state::RunState;

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Bumped when the DDL below changes incompatibly (kept in `PRAGMA user_version`; the file is
/// marked as coco's by `PRAGMA application_id`, see [`embedded_file`]).
/// 2: the `queue` table got its real columns (version 1's was never written to, so it is
/// dropped and recreated).
/// 3: `fires` got `settled` and `outcome` (fires recorded before count as settled).
pub const SCHEMA_VERSION: i64 = 3;

/// Every table and index, `IF NOT EXISTS` so re-running is a no-op.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projects (
    name       TEXT PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL,
    source     TEXT NOT NULL,
    active     INTEGER NOT NULL,
    applied_at INTEGER NOT NULL,
    manifest   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id         TEXT PRIMARY KEY NOT NULL,
    project    TEXT NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    active     INTEGER NOT NULL,
    next_fire  INTEGER,
    last_fire  INTEGER,
    updated_at INTEGER NOT NULL,
    definition TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_project ON jobs (project);
CREATE INDEX IF NOT EXISTS jobs_active_next_fire ON jobs (active, next_fire);
CREATE TABLE IF NOT EXISTS apps (
    id         TEXT PRIMARY KEY NOT NULL,
    project    TEXT NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    active     INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    definition TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS apps_project ON apps (project);
CREATE TABLE IF NOT EXISTS fires (
    job      TEXT NOT NULL,
    instant  INTEGER NOT NULL,
    fired_at INTEGER NOT NULL,
    settled  INTEGER NOT NULL DEFAULT 1,
    outcome  TEXT,
    PRIMARY KEY (job, instant)
);
CREATE INDEX IF NOT EXISTS fires_unsettled ON fires (fired_at) WHERE settled = 0;
CREATE TABLE IF NOT EXISTS outputs (
    id   TEXT PRIMARY KEY NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    id         TEXT PRIMARY KEY NOT NULL,
    job        TEXT NOT NULL,
    project    TEXT NOT NULL,
    state      TEXT NOT NULL,
    priority   INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    dedupe     TEXT NOT NULL,
    worker     TEXT,
    heartbeat  INTEGER,
    forced     INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_state_priority_created ON queue (state, priority, created);
CREATE INDEX IF NOT EXISTS queue_job_state ON queue (job, state);
CREATE INDEX IF NOT EXISTS queue_dedupe_state ON queue (dedupe, state);
CREATE INDEX IF NOT EXISTS queue_project_created ON queue (project, created);
CREATE INDEX IF NOT EXISTS queue_created ON queue (created);
CREATE INDEX IF NOT EXISTS queue_claimable ON queue (priority DESC, created, id)
    WHERE state IN ('pending','failed','deferred');
CREATE INDEX IF NOT EXISTS queue_claimable_undelayed ON queue (priority DESC, created, id)
    WHERE state IN ('pending','failed','deferred') AND not_before <= created;
CREATE INDEX IF NOT EXISTS queue_claimable_delayed ON queue (not_before)
    WHERE state IN ('pending','failed','deferred') AND not_before > created;
CREATE TABLE IF NOT EXISTS workers (
    id        TEXT PRIMARY KEY NOT NULL,
    heartbeat INTEGER NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS workers_heartbeat ON workers (heartbeat);
CREATE TABLE IF NOT EXISTS releases (
    project TEXT NOT NULL,
    version TEXT NOT NULL,
    at      INTEGER NOT NULL,
    doc     TEXT NOT NULL,
    PRIMARY KEY (project, version)
);
CREATE TABLE IF NOT EXISTS problems (
    source TEXT PRIMARY KEY NOT NULL,
    doc    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS app_status (
    id        TEXT PRIMARY KEY NOT NULL,
    owner     TEXT NOT NULL,
    heartbeat INTEGER NOT NULL,
    doc       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    id  TEXT PRIMARY KEY NOT NULL,
    at  INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_at ON log (at);
CREATE TABLE IF NOT EXISTS locks (
    id      TEXT PRIMARY KEY NOT NULL,
    owner   TEXT NOT NULL,
    expires INTEGER NOT NULL,
    doc     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS locks_expires ON locks (expires);
CREATE TABLE IF NOT EXISTS control (
    key TEXT PRIMARY KEY NOT NULL,
    at  INTEGER NOT NULL
);
";

/// The SQLite-backed [`Store`].
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl EmbeddedStore {
    /// Open (creating it and its parent directories if missing) the SQLite file at `path`
    /// and configure the connection. Does not create tables: see [`Store::ensure_schema`].
    /// Another program's file, or a store of a newer coco, is refused before anything is
    /// written to it (see [`embedded_file`]).
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| StoreError::Io {
                    path: parent.to_path_buf(),
                    doing: "creating the state directory".into(),
                    source,
                })?;
        }
        let owned = path.to_path_buf();
        let conn = blocking(path, move || {
            let conn = Connection::open(&owned).map_err(sql(&owned, "opening"))?;
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(sql(&owned, "configuring the connection"))?;
            // Before WAL is switched on (which writes the file's header).
            if let Verdict::Refused(problem) = judge_file(&conn, &owned)? {
                return Err(refused(&owned, problem));
            }
            configure(&conn).map_err(sql(&owned, "configuring the connection"))?;
            Ok(conn)
        })
        .await?;
        Ok(Self::with(path, conn))
    }

    /// Open the file at `path` for a command that only reads: read-only, never creating,
    /// initialising or migrating anything. A missing or empty file reads as an empty store
    /// (kept in memory); another program's file, a newer schema and an older one (which a
    /// command that writes migrates) are refused.
    pub async fn open_to_read(path: &Path) -> StoreResult<Self> {
        let owned = path.to_path_buf();
        let conn = blocking(path, move || {
            let exists = owned.try_exists().map_err(|source| StoreError::Io {
                path: owned.clone(),
                doing: "looking for the store file".into(),
                source,
            })?;
            if !exists {
                return empty_in_memory(&owned);
            }
            let conn = Connection::open_with_flags(&owned, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(sql(&owned, "opening to read"))?;
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(sql(&owned, "configuring the connection"))?;
            match judge_file(&conn, &owned)? {
                Verdict::Empty => empty_in_memory(&owned),
                Verdict::Current => Ok(conn),
                // Made before the mark, with this coco's tables: readable as it is.
                Verdict::Older { version } if version == SCHEMA_VERSION => Ok(conn),
                Verdict::Older { version } => Err(refused(
                    &owned,
                    FileProblem::NeedsMigration {
                        version,
                        supported: SCHEMA_VERSION,
                    },
                )),
                Verdict::Refused(problem) => Err(refused(&owned, problem)),
            }
        })
        .await?;
        Ok(Self::with(path, conn))
    }

    fn with(path: &Path, conn: Connection) -> Self {
        Self {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    /// The SQLite file this store uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` with the connection on the blocking pool; SQLite errors are reported as
    /// happening while `doing`.
    async fn run<T, F>(&self, doing: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let path = self.path.clone();
        blocking(&self.path, move || {
            // A panic while holding the lock cannot leave a transaction open (rusqlite rolls
            // back on drop), so a poisoned connection is still usable.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn).map_err(sql(&path, doing))
        })
        .await
    }
}

/// What coco may do with the open file at `path` (see [`embedded_file::judge`]).
/// Read in one transaction, so all of it comes from one snapshot: read one by one, the
/// version could be read before another process's `ensure_schema` commits and its tables
/// after, which looks like another program's file.
fn judge_file(conn: &Connection, path: &Path) -> StoreResult<Verdict> {
    let doing = "reading whose file it is";
    let snapshot = conn.unchecked_transaction().map_err(sql(path, doing))?;
    let identity = read_identity(&snapshot).map_err(sql(path, doing))?;
    snapshot.rollback().map_err(sql(path, doing))?;
    Ok(embedded_file::judge(&identity, SCHEMA_VERSION))
}

fn refused(path: &Path, problem: FileProblem) -> StoreError {
    StoreError::Refused {
        path: path.to_path_buf(),
        problem,
    }
}

/// An empty store in memory with coco's tables: what a read sees before any store exists.
fn empty_in_memory(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_in_memory().map_err(sql(path, "opening an empty store"))?;
    conn.execute_batch(SCHEMA)
        .map_err(sql(path, "opening an empty store"))?;
    Ok(conn)
}

/// Per-connection settings. WAL is persistent in the file; the rest is per connection.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Switching a fresh file to WAL needs a moment of exclusive access; when another process
    // is doing the same at that instant SQLite may answer BUSY without calling the busy
    // handler, so retry for a while.
    let mut waited = Duration::ZERO;
    loop {
        match conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        {
            Ok(_) => break,
            Err(e) if is_busy(&e) && waited < BUSY_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
                waited += Duration::from_millis(20);
            }
            Err(e) => return Err(e),
        }
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Run blocking `f` on tokio's blocking pool.
async fn blocking<T, F>(path: &Path, f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Io {
            path: path.to_path_buf(),
            doing: "running a blocking SQLite call".into(),
            source: std::io::Error::other(e),
        }),
    }
}

/// Map a rusqlite error to a [`StoreError::Sqlite`] naming the file and the operation.
fn sql(path: &Path, doing: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    let doing = doing.to_string();
    move |source| StoreError::Sqlite {
        path,
        doing,
        source,
    }
}

fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(what: &str, ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt {
        what: what.to_string(),
        message: format!("timestamp {ms} ms is out of range"),
    })
}

fn to_json(value: &serde_json::Value) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings).
    value.to_string()
}

fn from_json(what: &str, text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        message: format!("invalid JSON document: {e}"),
    })
}

/// A `projects` row as stored; [`ProjectRow::decode`] checks and converts it.
struct ProjectRow {
    name: String,
    hash: String,
    source: String,
    active: bool,
    applied_at: i64,
    manifest: String,
}

const PROJECT_COLUMNS: &str = "name, hash, source, active, applied_at, manifest";

impl ProjectRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get(0)?,
            hash: row.get(1)?,
            source: row.get(2)?,
            active: row.get(3)?,
            applied_at: row.get(4)?,
            manifest: row.get(5)?,
        })
    }

    fn decode(self) -> StoreResult<ProjectRecord> {
        let what = format!("project {}", self.name);
        Ok(ProjectRecord {
            manifest: from_json(&what, &self.manifest)?,
            applied_at: from_ms(&what, self.applied_at)?,
            name: self.name,
            hash: self.hash,
            source: self.source,
            active: self.active,
        })
    }
}

/// A `jobs` row as stored.
struct JobRow {
    id: String,
    project: String,
    name: String,
    hash: String,
    active: bool,
    next_fire: Option<i64>,
    last_fire: Option<i64>,
    updated_at: i64,
    definition: String,
}

const JOB_COLUMNS: &str =
    "id, project, name, hash, active, next_fire, last_fire, updated_at, definition";

impl JobRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            project: row.get(1)?,
            name: row.get(2)?,
            hash: row.get(3)?,
            active: row.get(4)?,
            next_fire: row.get(5)?,
            last_fire: row.get(6)?,
            updated_at: row.get(7)?,
            definition: row.get(8)?,
        })
    }

    fn decode(self) -> StoreResult<JobRecord> {
        let what = format!("job {}", self.id);
        Ok(JobRecord {
            definition: from_json(&what, &self.definition)?,
            next_fire: self.next_fire.map(|ms| from_ms(&what, ms)).transpose()?,
            last_fire: self.last_fire.map(|ms| from_ms(&what, ms)).transpose()?,
            updated_at: from_ms(&what, self.updated_at)?,
            id: self.id,
            project: self.project,
            name: self.name,
            hash: self.hash,
            active: self.active,
        })
    }
}

/// An `apps` row as stored.
struct AppRow {
    id: String,
    project: String,
    name: String,
    hash: String,
    active: bool,
    updated_at: i64,
    definition: String,
}

const APP_COLUMNS: &str = "id, project, name, hash, active, updated_at, definition";

impl AppRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            project: row.get(1)?,
            name: row.get(2)?,
            hash: row.get(3)?,
            active: row.get(4)?,
            updated_at: row.get(5)?,
            definition: row.get(6)?,
        })
    }

    fn decode(self) -> StoreResult<AppRecord> {
        let what = format!("app {}", self.id);
        Ok(AppRecord {
            definition: from_json(&what, &self.definition)?,
            updated_at: from_ms(&what, self.updated_at)?,
            id: self.id,
            project: self.project,
            name: self.name,
            hash: self.hash,
            active: self.active,
        })
    }
}

/// Rows of `table` (optionally only those of `project`), sorted by `order`.
fn select_all<R>(
    conn: &Connection,
    table: &str,
    columns: &str,
    order: &str,
    project: Option<&str>,
    read: fn(&Row<'_>) -> rusqlite::Result<R>,
) -> rusqlite::Result<Vec<R>> {
    match project {
        Some(project) => {
            let sql = format!("SELECT {columns} FROM {table} WHERE project = ?1 ORDER BY {order}");
            conn.prepare_cached(&sql)?
                .query_map([project], read)?
                .collect()
        }
        None => {
            let sql = format!("SELECT {columns} FROM {table} ORDER BY {order}");
            conn.prepare_cached(&sql)?.query_map([], read)?.collect()
        }
    }
}

/// The row of `table` whose `key_column` is `key`.
fn select_one<R>(
    conn: &Connection,
    table: &str,
    columns: &str,
    key_column: &str,
    key: &str,
    read: fn(&Row<'_>) -> rusqlite::Result<R>,
) -> rusqlite::Result<Option<R>> {
    let sql = format!("SELECT {columns} FROM {table} WHERE {key_column} = ?1");
    conn.prepare_cached(&sql)?.query_row([key], read).optional()
}

/// `'a','b'`: the stored names of `states`, for an SQL `IN (...)`.
fn state_list(states: &[RunState]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A run from its `doc` column.
fn decode_run(text: &str) -> rusqlite::Result<RunRecord> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The ` WHERE …` clause (empty without conditions) and its values for the state, project
/// and job of `filter` (its limit is the caller's).
fn run_filter_sql(filter: &RunFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let columns = [
        (
            "state",
            filter.state.map(|state| state.as_str().to_string()),
        ),
        ("project", filter.project.clone()),
        ("job", filter.job.clone()),
    ];
    for (column, value) in columns {
        if let Some(value) = value {
            values.push(Value::Text(value));
            conditions.push(format!("{column} = ?{}", values.len()));
        }
    }
    if conditions.is_empty() {
        (String::new(), values)
    } else {
        (format!(" WHERE {}", conditions.join(" AND ")), values)
    }
}

/// The run with this id.
fn read_run(conn: &Connection, id: &str) -> rusqlite::Result<Option<RunRecord>> {
    conn.prepare_cached("SELECT doc FROM queue WHERE id = ?1")?
        .query_row([id], |row| row.get::<_, String>(0))
        .optional()?
        .map(|doc| decode_run(&doc))
        .transpose()
}

/// The `doc` column of `r`: the whole record as JSON.
fn run_doc(r: &RunRecord) -> rusqlite::Result<String> {
    serde_json::to_string(r).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Insert the new run `r`: its queried fields as columns and the whole record as `doc`.
fn insert_run(conn: &Connection, r: &RunRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO queue (id, job, project, state, priority, created, not_before, dedupe,
                            worker, heartbeat, forced, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        r.id,
        r.job,
        r.project,
        r.state.as_str(),
        r.priority,
        to_ms(r.created),
        to_ms(r.not_before),
        r.dedupe,
        r.worker,
        r.heartbeat.map(to_ms),
        r.force,
        run_doc(r)?
    ])?;
    Ok(())
}

/// Write the stored run `r` back after a change of its life: state, `not_before`, worker,
/// heartbeat and `doc`. The other columns (job, project, priority, created, dedupe, forced)
/// are fixed at enqueue, so their indexes are left alone (an UPDATE of these columns, not a
/// REPLACE of the row, which would rewrite all seven).
fn update_run(conn: &Connection, r: &RunRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE queue SET state = ?2, not_before = ?3, worker = ?4, heartbeat = ?5, doc = ?6
         WHERE id = ?1",
    )?
    .execute(params![
        r.id,
        r.state.as_str(),
        to_ms(r.not_before),
        r.worker,
        r.heartbeat.map(to_ms),
        run_doc(r)?
    ])?;
    Ok(())
}

/// Pick and claim the next run (see [`Store::claim_run`]) inside the caller's transaction.
fn claim_in(
    conn: &Connection,
    worker: &str,
    now: DateTime<Utc>,
    paused: &Paused,
) -> rusqlite::Result<Option<RunRecord>> {
    let forced_only = if paused.all { "AND forced = 1" } else { "" };
    let claimable = state_list(&RunState::CLAIMABLE);
    // Runs whose start was put off (a retry delay, a deferral, a later start) are the ones
    // the ordered walk would pass over while they are not due: when none of them is due, walk
    // only the others, so however many wait, a claim costs the same.
    let delayed_due: bool = conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM queue INDEXED BY queue_claimable_delayed
             WHERE state IN ({claimable}) AND not_before > created AND not_before <= ?1)"
        ))?
        .query_row([to_ms(now)], |row| row.get(0))?;
    let (index, undelayed_only) = if delayed_due {
        ("queue_claimable", "")
    } else {
        ("queue_claimable_undelayed", "AND not_before <= created")
    };
    let sql = format!(
        "SELECT id FROM queue INDEXED BY {index} WHERE state IN ({claimable}) {undelayed_only}
         AND not_before <= ?1 {forced_only}
         ORDER BY priority DESC, created ASC, id ASC"
    );
    let mut candidates = conn.prepare_cached(&sql)?;
    let mut rows = candidates.query([to_ms(now)])?;
    let mut count_running =
        conn.prepare_cached("SELECT COUNT(*) FROM queue WHERE job = ?1 AND state = 'running'")?;
    let mut full: HashSet<String> = HashSet::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let Some(run) = read_run(conn, &id)? else {
            continue;
        };
        if !paused.allows(&run) || full.contains(&run.job) {
            continue;
        }
        let running: i64 = count_running.query_row([&run.job], |row| row.get(0))?;
        if running >= i64::from(run.max_parallel.max(1)) {
            full.insert(run.job);
            continue;
        }
        return Ok(Some(run.claimed(worker, now)));
    }
    Ok(None)
}

/// End the try of run `id` (see [`Store::finish_run`]) inside the caller's transaction.
fn finish_in(
    conn: &Connection,
    id: &str,
    worker: &str,
    end: &RunEnd,
) -> rusqlite::Result<Option<RunRecord>> {
    let Some(run) = read_run(conn, id)? else {
        return Ok(None);
    };
    if run.state != RunState::Running || run.worker.as_deref() != Some(worker) {
        return Ok(None);
    }
    let ended = run.ended(end);
    update_run(conn, &ended)?;
    Ok(Some(ended))
}

/// A claimed run with its project's and job's rows, read in the claim's transaction.
struct ClaimedRows {
    run: RunRecord,
    project: Option<ProjectRow>,
    job: Option<JobRow>,
}

impl ClaimedRows {
    fn decode(self) -> StoreResult<Claimed> {
        Ok(Claimed {
            run: self.run,
            project: self.project.map(ProjectRow::decode).transpose()?,
            job: self.job.map(JobRow::decode).transpose()?,
        })
    }
}

/// Claim the next run (as [`claim_in`]), write it, and read its project and job, inside the
/// caller's transaction.
fn claim_with_definitions_in(
    conn: &Connection,
    worker: &str,
    now: DateTime<Utc>,
    paused: &Paused,
) -> rusqlite::Result<Option<ClaimedRows>> {
    let Some(run) = claim_in(conn, worker, now, paused)? else {
        return Ok(None);
    };
    update_run(conn, &run)?;
    let (project, job) = project_and_job_in(conn, &run.project, &run.job)?;
    Ok(Some(ClaimedRows { run, project, job }))
}

/// The rows of project `project` and job `job`.
fn project_and_job_in(
    conn: &Connection,
    project: &str,
    job: &str,
) -> rusqlite::Result<(Option<ProjectRow>, Option<JobRow>)> {
    let project = select_one(
        conn,
        "projects",
        PROJECT_COLUMNS,
        "name",
        project,
        ProjectRow::read,
    )?;
    let job = select_one(conn, "jobs", JOB_COLUMNS, "id", job, JobRow::read)?;
    Ok((project, job))
}

/// Bring coco's store at schema `version` to [`SCHEMA_VERSION`]'s tables (the `CREATE ... IF
/// NOT EXISTS` of [`SCHEMA`] then adds what is missing). Only for files
/// [`embedded_file::judge`] found to be coco's.
fn migrate(tx: &Connection, version: i64) -> rusqlite::Result<()> {
    if version < 2 {
        // Version 1's `queue` had other columns and was never written to (judged empty).
        tx.execute_batch("DROP TABLE IF EXISTS queue")?;
    }
    if version < 3 {
        let has_fires: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'fires'",
            [],
            |row| row.get(0),
        )?;
        let has_settled: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('fires') WHERE name = 'settled'",
            [],
            |row| row.get(0),
        )?;
        if has_fires && !has_settled {
            tx.execute_batch(
                "ALTER TABLE fires ADD COLUMN settled INTEGER NOT NULL DEFAULT 1;
                 ALTER TABLE fires ADD COLUMN outcome TEXT;",
            )?;
        }
    }
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded store {}", self.path.display())
    }

    async fn ensure_schema(&self) -> StoreResult<()> {
        let verdict = self
            .run("creating the schema", |conn| {
                // IMMEDIATE takes the write lock up front, so two processes running this at
                // once simply take turns (waiting up to the busy timeout) instead of
                // deadlocking; the file is judged again under that lock.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let verdict = embedded_file::judge(&read_identity(&tx)?, SCHEMA_VERSION);
                match &verdict {
                    Verdict::Refused(_) => return Ok(verdict),
                    Verdict::Empty | Verdict::Current => {}
                    Verdict::Older { version } => migrate(&tx, *version)?,
                }
                tx.execute_batch(SCHEMA)?;
                if verdict != Verdict::Current {
                    tx.pragma_update(None, "application_id", embedded_file::APPLICATION_ID)?;
                    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                }
                tx.commit()?;
                Ok(verdict)
            })
            .await?;
        match verdict {
            Verdict::Refused(problem) => Err(refused(&self.path, problem)),
            _ => Ok(()),
        }
    }

    async fn list_projects(&self) -> StoreResult<Vec<ProjectRecord>> {
        self.run("listing projects", |conn| {
            select_all(
                conn,
                "projects",
                PROJECT_COLUMNS,
                "name",
                None,
                ProjectRow::read,
            )
        })
        .await?
        .into_iter()
        .map(ProjectRow::decode)
        .collect()
    }

    async fn get_project(&self, name: &str) -> StoreResult<Option<ProjectRecord>> {
        let name = name.to_string();
        self.run("reading a project", move |conn| {
            select_one(
                conn,
                "projects",
                PROJECT_COLUMNS,
                "name",
                &name,
                ProjectRow::read,
            )
        })
        .await?
        .map(ProjectRow::decode)
        .transpose()
    }

    async fn put_project(&self, record: &ProjectRecord) -> StoreResult<()> {
        let r = record.clone();
        let manifest = to_json(&r.manifest);
        self.run("writing a project", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO projects (name, hash, source, active, applied_at, manifest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                r.name,
                r.hash,
                r.source,
                r.active,
                to_ms(r.applied_at),
                manifest
            ])?;
            Ok(())
        })
        .await
    }

    async fn list_jobs(&self, project: Option<&str>) -> StoreResult<Vec<JobRecord>> {
        let project = project.map(str::to_string);
        self.run("listing jobs", move |conn| {
            select_all(
                conn,
                "jobs",
                JOB_COLUMNS,
                "id",
                project.as_deref(),
                JobRow::read,
            )
        })
        .await?
        .into_iter()
        .map(JobRow::decode)
        .collect()
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        let id = id.to_string();
        self.run("reading a job", move |conn| {
            select_one(conn, "jobs", JOB_COLUMNS, "id", &id, JobRow::read)
        })
        .await?
        .map(JobRow::decode)
        .transpose()
    }

    async fn get_project_and_job(
        &self,
        project: &str,
        job: &str,
    ) -> StoreResult<(Option<ProjectRecord>, Option<JobRecord>)> {
        let (project, job) = (project.to_string(), job.to_string());
        let (project, job) = self
            .run("reading a run's project and job", move |conn| {
                project_and_job_in(conn, &project, &job)
            })
            .await?;
        Ok((
            project.map(ProjectRow::decode).transpose()?,
            job.map(JobRow::decode).transpose()?,
        ))
    }

    async fn put_job(&self, record: &JobRecord) -> StoreResult<()> {
        let r = record.clone();
        let definition = to_json(&r.definition);
        self.run("writing a job", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO jobs
                   (id, project, name, hash, active, next_fire, last_fire, updated_at, definition)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                r.id,
                r.project,
                r.name,
                r.hash,
                r.active,
                r.next_fire.map(to_ms),
                r.last_fire.map(to_ms),
                to_ms(r.updated_at),
                definition
            ])?;
            Ok(())
        })
        .await
    }

    async fn jobs_marker(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let (count, latest) = self
            .run("reading the jobs' marker", |conn| {
                conn.prepare_cached("SELECT COUNT(*), MAX(updated_at) FROM jobs")?
                    .query_row([], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
                    })
            })
            .await?;
        let latest = latest.map(|ms| from_ms("jobs", ms)).transpose()?;
        Ok((u64::try_from(count).unwrap_or(0), latest))
    }

    async fn set_fire_times(
        &self,
        id: &str,
        hash: &str,
        last_fire: Option<DateTime<Utc>>,
        next_fire: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let (id, hash) = (id.to_string(), hash.to_string());
        self.run("recording a job's fire times", move |conn| {
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
        })
        .await
    }

    async fn list_apps(&self, project: Option<&str>) -> StoreResult<Vec<AppRecord>> {
        let project = project.map(str::to_string);
        self.run("listing apps", move |conn| {
            select_all(
                conn,
                "apps",
                APP_COLUMNS,
                "id",
                project.as_deref(),
                AppRow::read,
            )
        })
        .await?
        .into_iter()
        .map(AppRow::decode)
        .collect()
    }

    async fn get_app(&self, id: &str) -> StoreResult<Option<AppRecord>> {
        let id = id.to_string();
        self.run("reading an app", move |conn| {
            select_one(conn, "apps", APP_COLUMNS, "id", &id, AppRow::read)
        })
        .await?
        .map(AppRow::decode)
        .transpose()
    }

    async fn put_app(&self, record: &AppRecord) -> StoreResult<()> {
        let r = record.clone();
        let definition = to_json(&r.definition);
        self.run("writing an app", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO apps
                   (id, project, name, hash, active, updated_at, definition)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.id,
                r.project,
                r.name,
                r.hash,
                r.active,
                to_ms(r.updated_at),
                definition
            ])?;
            Ok(())
        })
        .await
    }

    async fn record_fire(&self, job: &str, instant: DateTime<Utc>) -> StoreResult<bool> {
        let job = job.to_string();
        let fired_at = to_ms(Utc::now());
        self.run("recording a fire", move |conn| {
            // The primary key (job, instant) makes exactly one insert succeed; the others
            // change nothing.
            let inserted = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO fires (job, instant, fired_at, settled) VALUES (?1, ?2, ?3, 0)",
                )?
                .execute(params![job, to_ms(instant), fired_at])?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn settle_fire(
        &self,
        job: &str,
        instant: DateTime<Utc>,
        outcome: &str,
    ) -> StoreResult<()> {
        let (job, outcome) = (job.to_string(), outcome.to_string());
        self.run("settling a fire", move |conn| {
            conn.prepare_cached(
                "UPDATE fires SET settled = 1, outcome = ?3 WHERE job = ?1 AND instant = ?2",
            )?
            .execute(params![job, to_ms(instant), outcome])?;
            Ok(())
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

    async fn enqueue(&self, run: &RunRecord) -> StoreResult<Enqueued> {
        let r = run.clone().truncated_to_ms();
        self.run("enqueueing a run", move |conn| {
            // The write lock is taken up front, so the check and the insert are one step for
            // every other connection.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let sql = format!(
                "SELECT id FROM queue WHERE dedupe = ?1 AND state IN ({}) ORDER BY created LIMIT 1",
                state_list(&RunState::BLOCKING)
            );
            let existing: Option<String> = tx
                .prepare_cached(&sql)?
                .query_row([&r.dedupe], |row| row.get(0))
                .optional()?;
            if let Some(id) = existing {
                return Ok(Enqueued::Duplicate(id));
            }
            insert_run(&tx, &r)?;
            tx.commit()?;
            Ok(Enqueued::Queued(r.id))
        })
        .await
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<RunRecord>> {
        let id = id.to_string();
        self.run("reading a run", move |conn| read_run(conn, &id))
            .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        let filter = filter.clone();
        self.run("listing runs", move |conn| {
            let (condition, values) = run_filter_sql(&filter);
            let mut sql = format!("SELECT doc FROM queue{condition}");
            sql += " ORDER BY created DESC, id DESC";
            if let Some(limit) = filter.limit {
                sql += &format!(" LIMIT {limit}");
            }
            let mut stmt = conn.prepare_cached(&sql)?;
            let docs = stmt
                .query_map(params_from_iter(values), |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            docs.iter().map(|doc| decode_run(doc)).collect()
        })
        .await
    }

    async fn count_runs(&self, filter: &RunFilter) -> StoreResult<u64> {
        let filter = filter.clone();
        self.run("counting runs", move |conn| {
            let (condition, values) = run_filter_sql(&filter);
            let sql = format!("SELECT COUNT(*) FROM queue{condition}");
            let count: i64 = conn
                .prepare_cached(&sql)?
                .query_row(params_from_iter(values), |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or_default())
        })
        .await
    }

    async fn claim_run(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        paused: &Paused,
    ) -> StoreResult<Option<RunRecord>> {
        let (worker, paused) = (worker.to_string(), paused.clone());
        self.run("claiming a run", move |conn| {
            // Under the write lock: no other connection sees the run before it is running,
            // nor counts the job's running runs in between.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let claimed = claim_in(&tx, &worker, now, &paused)?;
            if let Some(run) = &claimed {
                update_run(&tx, run)?;
                tx.commit()?;
            }
            Ok(claimed)
        })
        .await
    }

    async fn heartbeat(
        &self,
        worker: &str,
        runs: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let (worker, runs) = (worker.to_string(), runs.to_vec());
        self.run("recording a heartbeat", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut alive = Vec::new();
            for id in runs {
                let Some(mut run) = read_run(&tx, &id)? else {
                    continue;
                };
                if run.state != RunState::Running || run.worker.as_deref() != Some(&worker) {
                    continue;
                }
                run.heartbeat = Some(now);
                update_run(&tx, &run.truncated_to_ms())?;
                alive.push(id);
            }
            tx.commit()?;
            Ok(alive)
        })
        .await
    }

    async fn report_run(
        &self,
        id: &str,
        worker: &str,
        report: &LiveReport,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (id, worker, report) = (id.to_string(), worker.to_string(), report.clone());
        self.run("recording a run's progress", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut run) = read_run(&tx, &id)? else {
                return Ok(false);
            };
            if run.state != RunState::Running || run.worker.as_deref() != Some(&worker) {
                return Ok(false);
            }
            run.heartbeat = Some(now);
            run.apply(&report);
            update_run(&tx, &run.truncated_to_ms())?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn finish_run(
        &self,
        id: &str,
        worker: &str,
        end: &RunEnd,
    ) -> StoreResult<Option<RunRecord>> {
        end.check(id)?;
        let (id, worker, end) = (id.to_string(), worker.to_string(), end.clone());
        self.run("finishing a run", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ended = finish_in(&tx, &id, &worker, &end)?;
            if ended.is_some() {
                tx.commit()?;
            }
            Ok(ended)
        })
        .await
    }

    async fn finish_and_claim(
        &self,
        worker: &str,
        finish: Option<(&str, &RunEnd)>,
        claim: Option<(DateTime<Utc>, &Paused)>,
    ) -> StoreResult<Stepped> {
        if let Some((id, end)) = finish {
            end.check(id)?;
        }
        let worker = worker.to_string();
        let finish = finish.map(|(id, end)| (id.to_string(), end.clone()));
        let claim = claim.map(|(now, paused)| (now, paused.clone()));
        let path = self.path.clone();
        let (finished, claimed) = self
            .run("finishing a run and claiming the next", move |conn| {
                // One write transaction for both: a busy worker's one round trip per run.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let finished = match &finish {
                    Some((id, end)) => finish_in(&tx, id, &worker, end)?,
                    None => None,
                };
                let claimed = match &claim {
                    Some((now, paused)) => claim_with_definitions_in(&tx, &worker, *now, paused),
                    None => Ok(None),
                };
                if claimed.is_ok() {
                    tx.commit()?;
                    return Ok((finished, claimed));
                }
                // The claim failed: roll it all back, and end the try on its own.
                drop(tx);
                let finished = match &finish {
                    Some((id, end)) => {
                        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                        let finished = finish_in(&tx, id, &worker, end)?;
                        tx.commit()?;
                        finished
                    }
                    None => None,
                };
                Ok((finished, claimed))
            })
            .await?;
        let claimed = claimed
            .map_err(sql(&path, "claiming the next run"))
            .and_then(|claimed| claimed.map(ClaimedRows::decode).transpose());
        Ok(Stepped { finished, claimed })
    }

    async fn take_back_zombies(
        &self,
        now: DateTime<Utc>,
        zombie_after: Duration,
        max_lost: u32,
    ) -> StoreResult<Vec<RunRecord>> {
        let cutoff =
            to_ms(now).saturating_sub(i64::try_from(zombie_after.as_millis()).unwrap_or(i64::MAX));
        self.run("taking back zombie runs", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let docs = tx
                .prepare_cached(
                    "SELECT doc FROM queue WHERE state = 'running' AND COALESCE(heartbeat, 0) < ?1
                     ORDER BY id",
                )?
                .query_map([cutoff], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            let mut taken = Vec::new();
            for doc in docs {
                let run = decode_run(&doc)?;
                let end = run.zombie_end(now, max_lost);
                let ended = run.ended(&end);
                update_run(&tx, &ended)?;
                taken.push(ended);
            }
            tx.commit()?;
            Ok(taken)
        })
        .await
    }

    async fn cancel_run(
        &self,
        id: &str,
        cancel: Cancel,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancelled> {
        let id = id.to_string();
        self.run("cancelling a run", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(run) = read_run(&tx, &id)? else {
                return Ok(Cancelled::Missing);
            };
            if !cancel.applies_to(run.state) {
                return Ok(Cancelled::Refused(run));
            }
            let done = if run.state == RunState::Running {
                let end = run.kill_end(now);
                run.ended(&end)
            } else {
                run.cancelled(cancel, now)
            };
            update_run(&tx, &done)?;
            tx.commit()?;
            Ok(Cancelled::Done(done))
        })
        .await
    }

    async fn control(&self) -> StoreResult<Control> {
        self.run("reading pauses and halts", |conn| {
            let rows = conn
                .prepare_cached("SELECT key, at FROM control ORDER BY key")?
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut control = Control::default();
            for (key, at) in rows {
                match key.as_str() {
                    "halt" => control.halt_before = DateTime::from_timestamp_millis(at),
                    "pause" => control.paused_all = true,
                    _ => {
                        if let Some(project) = key.strip_prefix("pause:") {
                            control.paused_projects.push(project.to_string());
                        }
                    }
                }
            }
            Ok(control)
        })
        .await
    }

    async fn set_paused(&self, project: Option<&str>, paused: bool) -> StoreResult<()> {
        let key = project.map_or_else(|| "pause".to_string(), |p| format!("pause:{p}"));
        let at = to_ms(Utc::now());
        self.run("pausing or resuming", move |conn| {
            if paused {
                conn.prepare_cached("INSERT OR REPLACE INTO control (key, at) VALUES (?1, ?2)")?
                    .execute(params![key, at])?;
            } else {
                conn.prepare_cached("DELETE FROM control WHERE key = ?1")?
                    .execute([key])?;
            }
            Ok(())
        })
        .await
    }

    async fn halt(&self, before: DateTime<Utc>) -> StoreResult<()> {
        let at = to_ms(before);
        self.run("recording a halt", move |conn| {
            conn.prepare_cached("INSERT OR REPLACE INTO control (key, at) VALUES ('halt', ?1)")?
                .execute([at])?;
            Ok(())
        })
        .await
    }

    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()> {
        let doc = serde_json::to_string(member).map_err(|e| StoreError::Invalid {
            doing: "recording a worker".into(),
            message: e.to_string(),
        })?;
        let (name, heartbeat) = (member.name.clone(), to_ms(member.heartbeat));
        self.run("recording a worker", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO workers (id, heartbeat, doc) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![name, heartbeat, doc])?;
            Ok(())
        })
        .await
    }

    async fn remove_member(&self, name: &str) -> StoreResult<()> {
        let name = name.to_string();
        self.run("forgetting a worker", move |conn| {
            conn.prepare_cached("DELETE FROM workers WHERE id = ?1")?
                .execute([name])?;
            Ok(())
        })
        .await
    }

    async fn list_members(&self) -> StoreResult<Vec<MemberRecord>> {
        let docs = self
            .run("listing workers", |conn| {
                conn.prepare_cached("SELECT doc FROM workers ORDER BY id")?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        docs.iter()
            .map(|doc| {
                serde_json::from_str::<MemberRecord>(doc).map_err(|e| StoreError::Corrupt {
                    what: "workers".into(),
                    message: e.to_string(),
                })
            })
            .map(|member| member.map(MemberRecord::truncated_to_ms))
            .collect()
    }

    async fn claim_app(
        &self,
        status: &AppStatus,
        stale_before: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let status = status.clone().truncated_to_ms();
        let doc = serde_json::to_string(&status).map_err(|e| StoreError::Invalid {
            doing: "recording an app's status".into(),
            message: e.to_string(),
        })?;
        self.run("claiming an app", move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let holder: Option<(String, i64)> = tx
                .prepare_cached("SELECT owner, heartbeat FROM app_status WHERE id = ?1")?
                .query_row([&status.id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let free = match holder {
                None => true,
                Some((owner, heartbeat)) => {
                    owner == status.owner || heartbeat < to_ms(stale_before)
                }
            };
            if free {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO app_status (id, owner, heartbeat, doc)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    status.id,
                    status.owner,
                    to_ms(status.heartbeat),
                    doc
                ])?;
                tx.commit()?;
            }
            Ok(free)
        })
        .await
    }

    async fn release_app(&self, id: &str, owner: &str) -> StoreResult<()> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.run("releasing an app", move |conn| {
            conn.prepare_cached("DELETE FROM app_status WHERE id = ?1 AND owner = ?2")?
                .execute([id, owner])?;
            Ok(())
        })
        .await
    }

    async fn list_app_status(&self) -> StoreResult<Vec<AppStatus>> {
        let docs = self
            .run("listing app statuses", |conn| {
                conn.prepare_cached("SELECT doc FROM app_status ORDER BY id")?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        docs.iter()
            .map(|doc| {
                serde_json::from_str::<AppStatus>(doc).map_err(|e| StoreError::Corrupt {
                    what: "app_status".into(),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    async fn put_problems(&self, problems: &Problems) -> StoreResult<()> {
        let mut problems = problems.clone();
        problems.at =
            DateTime::from_timestamp_millis(problems.at.timestamp_millis()).unwrap_or(problems.at);
        let doc = serde_json::to_string(&problems).map_err(|e| StoreError::Invalid {
            doing: "recording manifest problems".into(),
            message: e.to_string(),
        })?;
        self.run("recording manifest problems", move |conn| {
            if problems.problems.is_empty() {
                conn.prepare_cached("DELETE FROM problems WHERE source = ?1")?
                    .execute([&problems.source])?;
            } else {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO problems (source, doc) VALUES (?1, ?2)",
                )?
                .execute([&problems.source, &doc])?;
            }
            Ok(())
        })
        .await
    }

    async fn put_release(&self, release: &ReleaseRecord) -> StoreResult<()> {
        let mut release = release.clone();
        let at = to_ms(release.at);
        release.at = from_ms("release", at)?;
        let doc = serde_json::to_string(&release).map_err(|e| StoreError::Invalid {
            doing: "recording a release".into(),
            message: e.to_string(),
        })?;
        self.run("recording a release", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO releases (project, version, at, doc) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![release.project, release.version, at, doc])?;
            Ok(())
        })
        .await
    }

    async fn list_releases(&self, project: Option<&str>) -> StoreResult<Vec<ReleaseRecord>> {
        let project = project.map(str::to_string);
        let docs = self
            .run("listing releases", move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT doc FROM releases WHERE ?1 IS NULL OR project = ?1
                     ORDER BY at DESC, project, version DESC",
                )?;
                stmt.query_map([project], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        docs.iter()
            .map(|doc| {
                serde_json::from_str::<ReleaseRecord>(doc).map_err(|e| StoreError::Corrupt {
                    what: "release".into(),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    async fn append_log(&self, records: &[LogRecord]) -> StoreResult<()> {
        let rows = records
            .iter()
            .map(|record| {
                let at = record.at.timestamp_millis();
                let mut record = record.clone();
                record.at = DateTime::from_timestamp_millis(at).unwrap_or(record.at);
                serde_json::to_string(&record)
                    .map(|doc| (record.id, at, doc))
                    .map_err(|e| StoreError::Invalid {
                        doing: "storing log records".into(),
                        message: e.to_string(),
                    })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.run("storing log records", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO log (id, at, doc) VALUES (?1, ?2, ?3)",
                )?;
                for (id, at, doc) in &rows {
                    insert.execute(params![id, at, doc])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn list_log(&self, filter: &LogFilter) -> StoreResult<Vec<LogRecord>> {
        use rusqlite::types::Value;
        let filter = filter.clone();
        let docs = self
            .run("reading the log", move |conn| {
                let mut conditions = Vec::new();
                let mut values: Vec<Value> = Vec::new();
                for (field, value) in [
                    ("project", filter.project),
                    ("job", filter.job),
                    ("run", filter.run),
                    ("app", filter.app),
                ] {
                    if let Some(value) = value {
                        values.push(Value::Text(value));
                        conditions.push(format!(
                            "json_extract(doc, '$.{field}') = ?{}",
                            values.len()
                        ));
                    }
                }
                if let Some(levelno) = filter.min_levelno {
                    values.push(Value::Integer(levelno.into()));
                    conditions.push(format!(
                        "json_extract(doc, '$.levelno') >= ?{}",
                        values.len()
                    ));
                }
                if let Some(since) = filter.since {
                    values.push(Value::Integer(since.timestamp_millis()));
                    conditions.push(format!("at >= ?{}", values.len()));
                }
                let mut sql = "SELECT doc FROM log".to_string();
                if !conditions.is_empty() {
                    sql += &format!(" WHERE {}", conditions.join(" AND "));
                }
                sql += " ORDER BY at DESC, id DESC";
                if let Some(limit) = filter.limit {
                    sql += &format!(" LIMIT {limit}");
                }
                conn.prepare_cached(&sql)?
                    .query_map(params_from_iter(values), |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        let mut records = docs
            .iter()
            .map(|doc| {
                serde_json::from_str::<LogRecord>(doc).map_err(|e| StoreError::Corrupt {
                    what: "log record".into(),
                    message: e.to_string(),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        records.reverse();
        Ok(records)
    }

    async fn prune_log(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = before.timestamp_millis();
        self.run("pruning the log", move |conn| {
            conn.prepare_cached("DELETE FROM log WHERE at < ?1")?
                .execute([before])
                .map(|n| n as u64)
        })
        .await
    }

    async fn list_problems(&self) -> StoreResult<Vec<Problems>> {
        let docs = self
            .run("listing manifest problems", |conn| {
                conn.prepare_cached("SELECT doc FROM problems ORDER BY source")?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        docs.iter()
            .map(|doc| {
                serde_json::from_str::<Problems>(doc).map_err(|e| StoreError::Corrupt {
                    what: "problems".into(),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    async fn put_output(&self, id: &str, text: &str) -> StoreResult<()> {
        let (id, text) = (id.to_string(), text.to_string());
        self.run("keeping a run's output", move |conn| {
            conn.prepare_cached("INSERT OR REPLACE INTO outputs (id, text) VALUES (?1, ?2)")?
                .execute(params![id, text])?;
            Ok(())
        })
        .await
    }

    async fn get_output(&self, id: &str) -> StoreResult<Option<String>> {
        let id = id.to_string();
        self.run("reading a run's output", move |conn| {
            conn.prepare_cached("SELECT text FROM outputs WHERE id = ?1")?
                .query_row(params![id], |row| row.get(0))
                .optional()
        })
        .await
    }

    async fn run_ids_starting_with(&self, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        let (from, to) = (prefix.to_string(), super::prefix_end(prefix));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("looking up run ids by prefix", move |conn| {
            conn.prepare_cached(
                "SELECT id FROM queue WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![from, to, limit], |row| row.get(0))?
            .collect()
        })
        .await
    }
}
