//! Whose SQLite file is this? The embedded store's file identity, read without writing, and
//! the pure decision what coco may do with the file: initialise it, use it, migrate it, or
//! refuse it.
//!
//! coco marks its files with `PRAGMA application_id` = [`APPLICATION_ID`] and keeps its schema
//! version in `PRAGMA user_version`. Stores made before the mark (schema versions 1 to 3, no
//! application id) are recognised by their tables: every table is one of coco's
//! ([`crate::store::COLLECTIONS`]), and `projects` and `fires`, where present, have coco's columns
//! (the two tables a migration or a reader of an unmarked store relies on). Anything else with tables in it
//! is another program's file: coco refuses it and never drops, alters or adds to it. A file
//! marked by a newer coco (a schema version above `SCHEMA_VERSION` (`schema.rs`)) is
//! refused too, since this coco cannot know what that schema means.

use rusqlite::Connection;

use crate::store::COLLECTIONS;

/// coco's mark in the SQLite header (`PRAGMA application_id`): the ASCII bytes `coco`.
pub const APPLICATION_ID: i64 = 0x636F_636F;

/// The columns of coco's `projects` table, in any order: how a store made before the
/// application id is told from another program's file.
const PROJECT_COLUMNS: &[&str] = &["name", "hash", "source", "active", "applied_at", "manifest"];

/// The columns `fires` had from schema version 1 on (the migration to 3 adds two).
const FIRES_COLUMNS: &[&str] = &["job", "instant", "fired_at"];

/// What the header and the table list of a file say, as read by [`read_identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub application_id: i64,
    pub user_version: i64,
    /// Every table that is not SQLite's own, sorted.
    pub tables: Vec<String>,
    /// The columns of the `projects` table, if there is one.
    pub project_columns: Vec<String>,
    /// The columns of the `fires` table, if there is one.
    pub fires_columns: Vec<String>,
    /// Whether a `queue` table exists and holds rows.
    pub queue_has_rows: bool,
}

/// What coco may do with a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No tables and no mark: a new file, to be initialised.
    Empty,
    /// coco's mark and this coco's schema version.
    Current,
    /// coco's store at an older schema version (marked or made before the mark): to be
    /// migrated by a command that writes. A store at the current version without the mark
    /// only needs the mark.
    Older { version: i64 },
    /// Refused: not coco's file, or a schema this coco does not know.
    Refused(FileProblem),
}

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    #[error(
        "this SQLite file belongs to another program (application_id {application_id:#x}, \
         not coco's); coco does not touch it: point folder.state (or --state) elsewhere"
    )]
    OtherApplication { application_id: i64 },
    #[error(
        "this SQLite file is not a coco store (it holds tables coco does not keep: {tables}); \
         coco does not touch it: point folder.state (or --state) elsewhere"
    )]
    ForeignTables { tables: String },
    #[error(
        "this SQLite file is not a coco store (it holds tables, {tables}, but no coco schema \
         version); coco does not touch it: point folder.state (or --state) elsewhere"
    )]
    NoVersion { tables: String },
    #[error(
        "this SQLite file is not a coco store (its `{table}` table does not have coco's \
         columns); coco does not touch it: point folder.state (or --state) elsewhere"
    )]
    ForeignColumns { table: String },
    #[error(
        "this store has schema version {version}, newer than this coco's {supported}: it was \
         written by a newer coco; upgrade coco to use it"
    )]
    Newer { version: i64, supported: i64 },
    #[error(
        "this store has schema version {version}, older than this coco's {supported}: run a \
         command that writes (`coco apply`, `coco worker`, `coco daemon`) once to migrate it"
    )]
    NeedsMigration { version: i64, supported: i64 },
    #[error(
        "this SQLite file's `queue` table holds rows, which no coco of schema version 1 wrote: \
         it is not a coco store; coco does not touch it: point folder.state (or --state) elsewhere"
    )]
    ForeignRows,
    #[error(
        "this SQLite file has no tables but schema version {version}: it is not a coco store; \
         coco does not touch it: point folder.state (or --state) elsewhere"
    )]
    VersionWithoutTables { version: i64 },
}

/// Read the identity of the open file. Only reads: no pragma is set, nothing is created.
pub fn read_identity(conn: &Connection) -> rusqlite::Result<Identity> {
    let application_id = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let user_version = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let names = |sql: &str| -> rusqlite::Result<Vec<String>> {
        let mut statement = conn.prepare(sql)?;
        let rows = statement.query_map([], |row| row.get(0))?;
        rows.collect()
    };
    let tables = names(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' ORDER BY name",
    )?;
    let project_columns = names("SELECT name FROM pragma_table_info('projects') ORDER BY cid")?;
    let fires_columns = names("SELECT name FROM pragma_table_info('fires') ORDER BY cid")?;
    let queue_has_rows = tables.iter().any(|t| t == "queue")
        && conn.query_row("SELECT EXISTS (SELECT 1 FROM queue)", [], |row| row.get(0))?;
    Ok(Identity {
        application_id,
        user_version,
        tables,
        project_columns,
        fires_columns,
        queue_has_rows,
    })
}

/// What coco may do with a file of `identity`, this coco's schema being `supported`.
pub fn judge(identity: &Identity, supported: i64) -> Verdict {
    let version = identity.user_version;
    if identity.application_id == APPLICATION_ID {
        return match version {
            v if v > supported => Verdict::Refused(FileProblem::Newer { version, supported }),
            v if v == supported => Verdict::Current,
            _ => Verdict::Older { version },
        };
    }
    if identity.application_id != 0 {
        return Verdict::Refused(FileProblem::OtherApplication {
            application_id: identity.application_id,
        });
    }
    if identity.tables.is_empty() {
        return match version {
            0 => Verdict::Empty,
            _ => Verdict::Refused(FileProblem::VersionWithoutTables { version }),
        };
    }
    let foreign: Vec<&str> = identity
        .tables
        .iter()
        .map(String::as_str)
        .filter(|table| !COLLECTIONS.contains(table))
        .collect();
    if !foreign.is_empty() {
        return Verdict::Refused(FileProblem::ForeignTables {
            tables: foreign.join(", "),
        });
    }
    if version == 0 {
        return Verdict::Refused(FileProblem::NoVersion {
            tables: identity.tables.join(", "),
        });
    }
    let has = |table: &str| identity.tables.iter().any(|t| t == table);
    if has("projects") && !same_columns(&identity.project_columns, PROJECT_COLUMNS) {
        return Verdict::Refused(FileProblem::ForeignColumns {
            table: "projects".into(),
        });
    }
    if has("fires") && !contains_columns(&identity.fires_columns, FIRES_COLUMNS) {
        return Verdict::Refused(FileProblem::ForeignColumns {
            table: "fires".into(),
        });
    }
    if version > supported {
        // Every coco that writes a version above this one also writes the mark.
        return Verdict::Refused(FileProblem::Newer { version, supported });
    }
    if version < 2 && identity.queue_has_rows {
        // Version 1's `queue` was never written to; the migration drops it.
        return Verdict::Refused(FileProblem::ForeignRows);
    }
    Verdict::Older { version }
}

/// Are `columns` exactly `expected`, in any order?
fn same_columns(columns: &[String], expected: &[&str]) -> bool {
    columns.len() == expected.len() && contains_columns(columns, expected)
}

/// Are all of `expected` among `columns`?
fn contains_columns(columns: &[String], expected: &[&str]) -> bool {
    expected.iter().all(|e| columns.iter().any(|c| c == e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(application_id: i64, user_version: i64, tables: &[&str]) -> Identity {
        Identity {
            application_id,
            user_version,
            tables: tables.iter().map(|t| t.to_string()).collect(),
            project_columns: if tables.contains(&"projects") {
                PROJECT_COLUMNS.iter().map(|c| c.to_string()).collect()
            } else {
                Vec::new()
            },
            fires_columns: Vec::new(),
            queue_has_rows: false,
        }
    }

    #[test]
    fn a_new_file_is_initialised_and_a_marked_one_used() {
        assert_eq!(judge(&identity(0, 0, &[]), 3), Verdict::Empty);
        assert_eq!(
            judge(&identity(APPLICATION_ID, 3, &["projects", "queue"]), 3),
            Verdict::Current
        );
        assert_eq!(
            judge(&identity(APPLICATION_ID, 2, &["projects"]), 3),
            Verdict::Older { version: 2 }
        );
    }

    #[test]
    fn stores_made_before_the_mark_are_recognised_by_their_tables() {
        for version in 1..=3 {
            assert_eq!(
                judge(&identity(0, version, &["jobs", "projects", "queue"]), 3),
                Verdict::Older { version }
            );
        }
    }

    #[test]
    fn other_programs_files_are_refused() {
        assert_eq!(
            judge(&identity(0, 0, &["queue"]), 3),
            Verdict::Refused(FileProblem::NoVersion {
                tables: "queue".into()
            })
        );
        assert!(matches!(
            judge(&identity(0, 2, &["projects", "customers"]), 3),
            Verdict::Refused(FileProblem::ForeignTables { tables }) if tables == "customers"
        ));
        let mut other_fires = identity(0, 2, &["fires"]);
        other_fires.fires_columns = vec!["id".into(), "flames".into()];
        assert_eq!(
            judge(&other_fires, 3),
            Verdict::Refused(FileProblem::ForeignColumns {
                table: "fires".into()
            })
        );
        let mut other_projects = identity(0, 1, &["projects", "queue"]);
        other_projects.project_columns = vec!["id".into(), "title".into()];
        assert_eq!(
            judge(&other_projects, 3),
            Verdict::Refused(FileProblem::ForeignColumns {
                table: "projects".into()
            })
        );
        let mut version_1_with_rows = identity(0, 1, &["projects", "queue"]);
        version_1_with_rows.queue_has_rows = true;
        assert_eq!(
            judge(&version_1_with_rows, 3),
            Verdict::Refused(FileProblem::ForeignRows)
        );
        assert_eq!(
            judge(&identity(0, 999, &[]), 3),
            Verdict::Refused(FileProblem::VersionWithoutTables { version: 999 })
        );
        assert!(matches!(
            judge(&identity(0x1234, 3, &["projects"]), 3),
            Verdict::Refused(FileProblem::OtherApplication {
                application_id: 0x1234
            })
        ));
    }

    #[test]
    fn newer_schemas_are_refused() {
        for identity in [
            identity(APPLICATION_ID, 999, &["projects"]),
            identity(0, 999, &["projects"]),
        ] {
            assert_eq!(
                judge(&identity, 3),
                Verdict::Refused(FileProblem::Newer {
                    version: 999,
                    supported: 3
                })
            );
        }
    }
}
