//! The embedded store's SQLite schema, its version and the migrations from older versions.

use super::*;

/// Bumped when the DDL below changes incompatibly (kept in `PRAGMA user_version`; the file is
/// marked as coco's by `PRAGMA application_id`, see [`file`]).
/// 2: the `queue` table got its real columns (version 1's was never written to, so it is
/// dropped and recreated).
/// 3: `fires` got `settled` and `outcome` (fires recorded before count as settled).
/// 4: `outputs` got `fence` (the writer's claim count or fencing token; 0 before), and
/// `app_status` `token` (the owner's fencing token).
pub const SCHEMA_VERSION: i64 = 4;

/// Every table and index, `IF NOT EXISTS` so re-running is a no-op.
pub(super) const SCHEMA: &str = "
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
    id    TEXT PRIMARY KEY NOT NULL,
    text  TEXT NOT NULL,
    fence INTEGER NOT NULL DEFAULT 0
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
-- The newest runs in one state (`list_runs` with a state: the event stream's poller,
-- `GET runs?state=`, `coco list STATE`) without reading every run in that state.
CREATE INDEX IF NOT EXISTS queue_state_created ON queue (state, created);
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
    doc       TEXT NOT NULL,
    token     INTEGER NOT NULL DEFAULT 0
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
CREATE TABLE IF NOT EXISTS tokens (
    name      TEXT PRIMARY KEY NOT NULL,
    hash      TEXT NOT NULL UNIQUE,
    last_used INTEGER,
    doc       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS control (
    key TEXT PRIMARY KEY NOT NULL,
    at  INTEGER NOT NULL
);
";

/// Bring coco's store at schema `version` to [`SCHEMA_VERSION`]'s tables (the `CREATE ... IF
/// NOT EXISTS` of [`SCHEMA`] then adds what is missing). Only for files
/// [`file::judge`] found to be coco's.
pub(super) fn migrate(tx: &Connection, version: i64) -> rusqlite::Result<()> {
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
    if version < 4 && has_table(tx, "outputs")? && !has_column(tx, "outputs", "fence")? {
        tx.execute_batch("ALTER TABLE outputs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0")?;
    }
    if version < 4 && has_table(tx, "app_status")? && !has_column(tx, "app_status", "token")? {
        tx.execute_batch("ALTER TABLE app_status ADD COLUMN token INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

fn has_table(tx: &Connection, table: &str) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |row| row.get(0),
    )
}

fn has_column(tx: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get(0),
    )
}
