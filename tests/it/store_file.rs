//! The embedded store's file through the `coco` binary: another program's SQLite file is
//! refused and left as it was, a newer schema is refused, a store of an earlier coco still
//! opens (and is migrated only by a command that writes), and commands that only read create
//! nothing.

use std::path::PathBuf;

use rusqlite::Connection;

use crate::support::{Sandbox, stderr, stdout};

const HELLO: &str = "\
jobs:
  hello:
    command: [echo, hi]
";

/// `~/state/coco.db`, where the sandbox's local.yaml puts the store.
fn store_file(sandbox: &Sandbox) -> PathBuf {
    sandbox.dir.path().join("state/coco.db")
}

fn pragma(path: &PathBuf, name: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, name, |row| row.get(0))
        .unwrap()
}

#[test]
fn another_programs_sqlite_file_is_refused_and_left_intact() {
    let sandbox = Sandbox::new();
    sandbox.project("greet", HELLO);
    let path = store_file(&sandbox);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE queue (id INTEGER PRIMARY KEY, item TEXT NOT NULL);
             INSERT INTO queue (item) VALUES ('first'), ('second'), ('third');",
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();

    for args in [
        &["list"][..],
        &["list", "--json"],
        &["status"],
        &["apply"],
        &["enqueue", "greet.hello"],
    ] {
        let output = sandbox.coco(args);
        assert_eq!(output.status.code(), Some(1), "coco {args:?}: {output:?}");
        let message = stderr(&output);
        assert!(
            message.contains("not a coco store") && message.contains(&path.display().to_string()),
            "coco {args:?}: {message}"
        );
        assert!(!message.contains("panicked"), "{message}");
    }

    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file is unchanged"
    );
    let conn = Connection::open(&path).unwrap();
    let items: Vec<String> = conn
        .prepare("SELECT item FROM queue ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(items, ["first", "second", "third"]);
    let journal: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "delete", "not switched to WAL");
}

#[test]
fn a_store_of_a_newer_schema_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.project("greet", HELLO);
    sandbox.apply();
    let path = store_file(&sandbox);
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();

    for args in [
        &["list"][..],
        &["jobs"],
        &["apply"],
        &["enqueue", "greet.hello"],
    ] {
        let output = sandbox.coco(args);
        assert_eq!(output.status.code(), Some(1), "coco {args:?}: {output:?}");
        let message = stderr(&output);
        assert!(
            message.contains("schema version 999, newer than this coco's"),
            "coco {args:?}: {message}"
        );
    }
    assert_eq!(pragma(&path, "user_version"), 999, "left as it was");
}

#[test]
fn a_file_with_a_version_and_no_tables_is_refused() {
    let sandbox = Sandbox::new();
    let path = store_file(&sandbox);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    for args in [&["list"][..], &["apply"]] {
        let output = sandbox.coco(args);
        assert_eq!(output.status.code(), Some(1), "coco {args:?}: {output:?}");
        assert!(
            stderr(&output).contains("not a coco store"),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(pragma(&path, "user_version"), 999);
}

/// A store of the previous coco (schema 3, no application id) is read as it is, and marked
/// by the next command that writes; one of schema 2 is refused by reads (nothing migrated)
/// until a command that writes migrates it, runs kept.
#[test]
fn stores_of_earlier_versions_still_open() {
    let sandbox = Sandbox::new();
    sandbox.project("greet", HELLO);
    sandbox.apply();
    let id = sandbox.enqueue(&["greet.hello"]);
    let path = store_file(&sandbox);
    assert_eq!(pragma(&path, "application_id"), 0x636F_636F, "marked");
    // What coco wrote before the mark: the same tables, application_id 0.
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "application_id", 0)
        .unwrap();

    let runs = sandbox.list_json(&[]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], id.as_str());
    assert_eq!(pragma(&path, "application_id"), 0, "a read marks nothing");
    sandbox.apply();
    assert_eq!(pragma(&path, "application_id"), 0x636F_636F);

    // Schema 2: `fires` without `settled` and `outcome`, no mark (and, as schema 3 too,
    // `outputs` without `fence`, `app_status` without `token`).
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP INDEX fires_unsettled;
             ALTER TABLE fires DROP COLUMN settled;
             ALTER TABLE fires DROP COLUMN outcome;
             ALTER TABLE outputs DROP COLUMN fence;
             ALTER TABLE app_status DROP COLUMN token;
             PRAGMA application_id = 0;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let list = sandbox.coco(&["list"]);
    assert_eq!(list.status.code(), Some(1), "{list:?}");
    assert!(
        stderr(&list).contains("schema version 2, older than this coco's")
            && stderr(&list).contains("to migrate it"),
        "{}",
        stderr(&list)
    );
    assert_eq!(pragma(&path, "user_version"), 2, "a read migrates nothing");

    sandbox.apply();
    assert_eq!(pragma(&path, "user_version"), 4);
    assert_eq!(pragma(&path, "application_id"), 0x636F_636F);
    let runs = sandbox.list_json(&[]);
    assert_eq!(runs.len(), 1, "the run survived the migration");
    assert_eq!(runs[0]["id"], id.as_str());
}

/// Commands that only read, on a state folder where no store exists yet, see an empty store
/// and create nothing (no folder, no file, no schema).
#[test]
fn read_commands_create_no_store() {
    let sandbox = Sandbox::new();
    sandbox.project("greet", HELLO);
    let state = sandbox.dir.path().join("state");
    // `plan` exits 2: the project is not applied yet.
    for (args, code) in [
        (&["list"][..], 0),
        (&["list", "--json"], 0),
        (&["status"], 0),
        (&["status", "--json"], 0),
        (&["plan"], 2),
        (&["jobs"], 0),
        (&["projects"], 0),
        (&["apps"], 0),
        (&["alive"], 0),
        (&["log"], 0),
    ] {
        let output = sandbox.coco(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "coco {args:?}: {}",
            stderr(&output)
        );
        assert!(!state.exists(), "coco {args:?} created {}", state.display());
    }
    assert_eq!(stdout(&sandbox.coco(&["list"])), "No runs.\n");
    let detail = sandbox.coco(&["detail", "01JAAAAAAAAAAAAAAAAAAAAAAA"]);
    assert_eq!(detail.status.code(), Some(1));
    assert!(stderr(&detail).contains("no run with id"), "{detail:?}");
    assert!(!state.exists());

    // An empty file (made by hand, or a store being created) reads as empty too, untouched.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(store_file(&sandbox), b"").unwrap();
    assert_eq!(sandbox.list_json(&[]), Vec::<serde_json::Value>::new());
    assert_eq!(std::fs::read(store_file(&sandbox)).unwrap(), b"");
}

/// A read while another process creates the store sees it whole or not at all: never the
/// tables without the mark (which looks like another program's file). A race: each round
/// reads in a loop while `coco apply` creates a fresh store.
#[test]
fn a_read_during_the_stores_creation_sees_it_whole_or_not_at_all() {
    for _ in 0..30 {
        let sandbox = Sandbox::new();
        sandbox.project("greet", HELLO);
        let store = store_file(&sandbox);
        let mut apply = sandbox.spawn(&["apply"]);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    // Until the store is there with its mark, reading all along.
                    while !store.exists() || pragma(&store, "user_version") == 0 {
                        let read = sandbox.coco(&["list", "--json"]);
                        assert_eq!(read.status.code(), Some(0), "{}", stderr(&read));
                    }
                });
            }
        });
        assert_eq!(apply.wait_exit(), Some(0), "{}", apply.log());
    }
}
