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

mod catalog;
pub mod file;
mod fires;
mod fleet;
mod journal;
mod queue;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};

use file::{FileProblem, Verdict, read_identity};

use crate::queue::state::RunState;
use crate::store::{
    AppRecord, AppStatus, Cancel, Cancelled, Claimed, Control, Enqueued, Fire, JobRecord,
    LiveReport, LogFilter, LogRecord, MemberRecord, Paused, Problems, ProjectRecord, ReleaseRecord,
    RunEnd, RunFilter, RunRecord, Stepped, Store, StoreError, StoreResult,
};

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Bumped when the DDL below changes incompatibly (kept in `PRAGMA user_version`; the file is
/// marked as coco's by `PRAGMA application_id`, see [`file`]).
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
    /// written to it (see [`file`]).
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

/// What coco may do with the open file at `path` (see [`file::judge`]).
/// Read in one transaction, so all of it comes from one snapshot: read one by one, the
/// version could be read before another process's `ensure_schema` commits and its tables
/// after, which looks like another program's file.
fn judge_file(conn: &Connection, path: &Path) -> StoreResult<Verdict> {
    let doing = "reading whose file it is";
    let snapshot = conn.unchecked_transaction().map_err(sql(path, doing))?;
    let identity = read_identity(&snapshot).map_err(sql(path, doing))?;
    snapshot.rollback().map_err(sql(path, doing))?;
    Ok(file::judge(&identity, SCHEMA_VERSION))
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

/// Pick and claim the next run (see [`Queue::claim_run`]) inside the caller's transaction.
fn claim_in(
    conn: &Connection,
    worker: &str,
    now: DateTime<Utc>,
    paused: &Paused,
) -> rusqlite::Result<Option<RunRecord>> {
    let forced_only = if paused.all { "AND forced = 1" } else { "" };
    let sql = format!(
        "SELECT id FROM queue INDEXED BY queue_claimable WHERE state IN ({}) AND not_before <= ?1 {forced_only}
         ORDER BY priority DESC, created ASC, id ASC",
        state_list(&RunState::CLAIMABLE)
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

/// End the try of run `id` (see [`Queue::finish_run`]) inside the caller's transaction.
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
/// [`file::judge`] found to be coco's.
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
                let verdict = file::judge(&read_identity(&tx)?, SCHEMA_VERSION);
                match &verdict {
                    Verdict::Refused(_) => return Ok(verdict),
                    Verdict::Empty | Verdict::Current => {}
                    Verdict::Older { version } => migrate(&tx, *version)?,
                }
                tx.execute_batch(SCHEMA)?;
                if verdict != Verdict::Current {
                    tx.pragma_update(None, "application_id", file::APPLICATION_ID)?;
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
}
