//! Embedded store: one SQLite file (WAL mode), zero setup.
//!
//! Several coco processes (the CLI and a running daemon) open the same file at once. That is
//! safe because every trait method is one short statement (or one `BEGIN IMMEDIATE`
//! transaction), WAL lets readers run beside the single writer, and `busy_timeout` makes a
//! writer wait for the lock instead of failing with "database is locked".
//!
//! SQLite calls block, so each runs on tokio's blocking pool (`spawn_blocking`) holding this
//! store's one connection behind a mutex; concurrency comes from opening more connections
//! (more processes or more [`EmbeddedStore`]s), not from sharing one. The worker's calls per
//! run (claim, finish and claim, progress, output) run on the calling thread instead
//! ([`EmbeddedStore::run_hot`]): they wait for the connection asynchronously (the mutex is
//! tokio's), then take SQLite's lock without waiting, which saves the two thread hops of a
//! pool call; only when another connection holds SQLite's write lock do they wait on the
//! pool like every other call. After every 256 hot calls a thread of its own copies the WAL
//! into the database file (a passive checkpoint, which never blocks the writer), so the
//! checkpoint SQLite makes in the committing connection finds little left to copy.
//!
//! Layout: a table per name in [`COLLECTIONS`](crate::store::COLLECTIONS). Queried fields are real columns
//! (timestamps as INTEGER milliseconds since the Unix epoch, UTC; booleans as 0/1); JSON
//! documents (`manifest`, `definition`, `doc`) are TEXT. A `queue` row's `doc` is the whole
//! [`RunRecord`]; its columns repeat the fields queries need and are rewritten with it.
//!
//! Each queue method is one `BEGIN IMMEDIATE` transaction (read, decide, write), so checks
//! such as "no blocking run with this dedupe key" or "fewer than `max_parallel` running"
//! hold across every connection and process.

mod access;
mod catalog;
mod checkpoint;
pub mod file;
mod fires;
mod fleet;
mod journal;
mod queue;
mod schema;

use catalog::*;
use schema::*;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};

use file::{FileProblem, Verdict, read_identity};

use crate::queue::run::{Cancel, LiveReport, RunEnd, RunRecord};
use crate::queue::state::RunState;
use crate::store::{
    AppRecord, AppStatus, Cancelled, Claimed, Context, Control, Enqueued, Fire, JobRecord,
    LogFilter, LogRecord, MemberRecord, Paused, Problems, ProjectRecord, ReleaseRecord, RunFilter,
    Stepped, Store, StoreError, StoreResult,
};

/// The WAL is copied into the database (and both are `fsync`ed) once it holds this many
/// pages (SQLite's default is 1,000): a busy worker writes ~10 pages per run, and a tenth
/// of the checkpoints copy the same hot index pages far fewer times (docs/benchmarks.md:
/// +3 % runs/s). The WAL file grows to about 40 MiB before it is reused from its start.
const WAL_CHECKPOINT_PAGES: i64 = 10_000;

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite-backed [`Store`].
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    path: PathBuf,
    /// tokio's mutex: the worker's hot calls wait for it without holding a runtime thread,
    /// pool calls with `blocking_lock`.
    conn: Arc<tokio::sync::Mutex<Connection>>,
    /// What claims read of a project's manifest, kept while its hash holds.
    manifests: Arc<catalog::ClaimManifests>,
    /// Checkpoints of the WAL beside the worker's hot calls ([`checkpoint`]).
    checkpointer: Arc<checkpoint::Checkpointer>,
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
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
            manifests: Arc::default(),
            checkpointer: Arc::new(checkpoint::Checkpointer::new(path.to_path_buf())),
        }
    }

    /// The SQLite file this store uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many checkpoints of the WAL a thread of this store's own made beside its hot
    /// calls (the worker's claims and finishes).
    pub fn background_checkpoints(&self) -> u64 {
        self.checkpointer.done()
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
            // back on drop), so the connection stays usable once the guard is dropped.
            let mut conn = conn.blocking_lock();
            f(&mut conn).map_err(sql(&path, doing))
        })
        .await
    }
}

impl EmbeddedStore {
    /// [`EmbeddedStore::run`] for a short call on the worker's path per run: `f` runs on the
    /// calling thread once this store's connection is free (waited for asynchronously, so
    /// another thread's call holds no runtime thread up), with SQLite's busy handler off for
    /// that try, so it waits for no other connection's write; if one holds SQLite's lock, `f`
    /// runs on the blocking pool as `run` does, waiting up to the busy timeout. `f` must be
    /// safe to start again after SQLite answered busy (all its writes in one transaction, or
    /// a single statement).
    async fn run_hot<T, F>(&self, doing: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        if let Some(tried) = self.without_waiting_for_sqlite(&f).await {
            self.checkpointer.note_hot_call();
            return tried.map_err(sql(&self.path, doing));
        }
        self.run(doing, move |conn| f(conn)).await
    }

    /// `f` on this thread with the connection, taking no SQLite lock that must be waited for;
    /// `None` when one must (nothing of `f` took effect then).
    async fn without_waiting_for_sqlite<T>(
        &self,
        f: &impl Fn(&mut Connection) -> rusqlite::Result<T>,
    ) -> Option<rusqlite::Result<T>> {
        let mut conn = self.conn.lock().await;
        if conn.busy_timeout(Duration::ZERO).is_err() {
            return None;
        }
        let tried = f(&mut conn);
        // Without it later calls would fail at once on a held lock instead of waiting (what
        // `f` did stands either way, so it is still answered).
        if let Err(error) = conn.busy_timeout(BUSY_TIMEOUT) {
            tracing::warn!(store = %self.path.display(), "restoring SQLite's busy timeout: {error}");
        }
        match tried {
            Err(error) if is_busy(&error) => None,
            done => Some(done),
        }
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
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
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
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::corrupt(what, format!("timestamp {ms} ms is out of range")))
}

fn to_json(value: &serde_json::Value) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings).
    value.to_string()
}

fn from_json(what: &str, text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::corrupt(what, Context::new("invalid JSON document", e)))
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
