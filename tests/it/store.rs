//! The store conformance suite (`tests/it/conformance.rs`) against both backends, each case
//! a named test: `store::embedded::<case>` and `store::mongo::<case>`.
//!
//! The MongoDB tests use the server at `COCO_TEST_MONGO_URL` (start one with
//! `eval "$(tests/mongo_server.sh start)"`), a fresh database per test, dropped afterwards.
//! Without that variable they fail, unless `COCO_TEST_SKIP_MONGO=1` says to skip them: a CI
//! run never passes by silently testing nothing.
//!
//! Plus embedded-only tests: several connections and several processes on one file (fires
//! and claims).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use chrono::DateTime;
use coco::manifest::Job;
use coco::queue::state::{Outcome, RunState};
use coco::queue::{NewRun, new_run};
use coco::store::embedded::EmbeddedStore;
use coco::store::mongo::MongoStore;
use coco::store::{Fires, Paused, Queue, RunFilter, Store, StoreError};

use crate::conformance;
use tempfile::TempDir;

/// A fresh embedded store in its own temporary directory (removed on drop).
pub(crate) struct EmbeddedFixture {
    pub(crate) store: EmbeddedStore,
    _dir: TempDir,
}

pub(crate) async fn embedded_store() -> EmbeddedFixture {
    let dir = TempDir::new().expect("temp dir");
    let store = EmbeddedStore::open(&dir.path().join("state/coco.db"))
        .await
        .expect("open embedded store");
    store.ensure_schema().await.expect("ensure_schema");
    EmbeddedFixture { store, _dir: dir }
}

/// A MongoDB store on a fresh database, dropped when this is dropped (even after a panic).
pub(crate) struct MongoFixture {
    pub(crate) store: MongoStore,
    url: String,
}

impl Drop for MongoFixture {
    fn drop(&mut self) {
        // The test's runtime may be unwinding; drop the database from a runtime of our own.
        let (url, database) = (self.url.clone(), self.store.database().to_string());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                MongoStore::connect(&url, &database)
                    .await?
                    .drop_database()
                    .await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("note: could not drop the test database: {e}");
        }
    }
}

/// The MongoDB test store, or `None` when `COCO_TEST_SKIP_MONGO=1` and no URL is set.
pub(crate) async fn mongo_store() -> Option<MongoFixture> {
    let Ok(url) = std::env::var("COCO_TEST_MONGO_URL") else {
        if std::env::var("COCO_TEST_SKIP_MONGO").as_deref() == Ok("1") {
            eprintln!("skipped: COCO_TEST_SKIP_MONGO=1 and COCO_TEST_MONGO_URL is not set");
            return None;
        }
        panic!(
            "COCO_TEST_MONGO_URL is not set, so the MongoDB store tests cannot run. Start a \
             test server with `eval \"$(tests/mongo_server.sh start)\"` (stop it with \
             `eval \"$(tests/mongo_server.sh stop)\"`), or set COCO_TEST_SKIP_MONGO=1 to skip them."
        );
    };
    let database = format!("coco_test_{}", ulid::Ulid::new().to_string().to_lowercase());
    let store = MongoStore::connect(&url, &database)
        .await
        .unwrap_or_else(|e| panic!("connect to COCO_TEST_MONGO_URL: {e}"));
    let fixture = MongoFixture { store, url };
    fixture.store.ensure_schema().await.expect("ensure_schema");
    Some(fixture)
}

/// One `#[tokio::test]` per conformance case per backend (the cases named by
/// `conformance_cases!`, the same list as `conformance::CASES`).
macro_rules! conformance_tests {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let fixture = super::embedded_store().await;
                    crate::conformance::$case(&fixture.store).await;
                }
            )*
        }

        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(fixture) = super::mongo_store().await {
                        crate::conformance::$case(&fixture.store).await;
                    }
                }
            )*
        }
    };
}

conformance_cases!(conformance_tests);

/// `run_all` runs the cases one after the other on one store (they do not interfere).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_run_all_on_one_store() {
    let fixture = embedded_store().await;
    conformance::run_all(&fixture.store).await;
    conformance::run_all(&fixture.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_run_all_on_one_store() {
    if let Some(fixture) = mongo_store().await {
        conformance::run_all(&fixture.store).await;
    }
}

/// The embedded store's fire bookkeeping: its `fires` rows of the tag's jobs and any row of
/// `locks` (a table it does not use).
struct EmbeddedFires(PathBuf);

impl conformance::FireBookkeeping for EmbeddedFires {
    fn kept<'a>(&'a self, tag: &'a str) -> conformance::Count<'a> {
        Box::pin(async move {
            let conn = rusqlite::Connection::open(&self.0).expect("open the store file");
            let count = |sql: &str| -> u64 {
                conn.query_row(sql, [format!("{tag}%")], |row| row.get::<_, i64>(0))
                    .map(|n| u64::try_from(n).expect("a count"))
                    .expect(sql)
            };
            count("SELECT count(*) FROM fires WHERE job LIKE ?1")
                + count("SELECT count(*) FROM locks WHERE ?1 IS NOT NULL")
        })
    }
}

/// The MongoDB store's fire bookkeeping: its `fires` documents of the tag's jobs and every
/// document of `locks` (the test's database is its own).
struct MongoFires {
    db: mongodb::Database,
}

impl conformance::FireBookkeeping for MongoFires {
    fn kept<'a>(&'a self, tag: &'a str) -> conformance::Count<'a> {
        use mongodb::bson::{Document, doc};
        Box::pin(async move {
            let fires = self
                .db
                .collection::<Document>("fires")
                .count_documents(doc! { "job": { "$gte": tag, "$lt": format!("{tag}\u{7f}") } })
                .await
                .expect("count fires");
            let locks = self
                .db
                .collection::<Document>("locks")
                .count_documents(doc! {})
                .await
                .expect("count locks");
            fires + locks
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_fire_bookkeeping_stays_bounded() {
    let fixture = embedded_store().await;
    let file = fixture._dir.path().join("state/coco.db");
    conformance::fire_bookkeeping_stays_bounded(&fixture.store, &EmbeddedFires(file)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_fire_bookkeeping_stays_bounded() {
    if let Some(fixture) = mongo_store().await {
        let client = mongodb::Client::with_uri_str(&fixture.url)
            .await
            .expect("connect");
        let db = client.database(fixture.store.database());
        conformance::fire_bookkeeping_stays_bounded(&fixture.store, &MongoFires { db }).await;
    }
}

/// Commands a MongoDB client sent, by name, as its command event handler sees them.
#[derive(Clone, Default)]
struct CommandCounter(Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>);

impl CommandCounter {
    fn handler(&self) -> mongodb::event::EventHandler<mongodb::event::command::CommandEvent> {
        let counts = Arc::clone(&self.0);
        mongodb::event::EventHandler::callback(move |event| {
            if let mongodb::event::command::CommandEvent::Started(started) = event {
                *counts
                    .lock()
                    .expect("counts")
                    .entry(started.command_name)
                    .or_default() += 1;
            }
        })
    }

    /// The counts since the last call, and their total.
    fn take(&self) -> (u64, std::collections::BTreeMap<String, u64>) {
        let counts = std::mem::take(&mut *self.0.lock().expect("counts"));
        (counts.values().sum(), counts)
    }
}

/// Store round trips per run on MongoDB, as a busy worker makes them: the enqueue, then one
/// `finish_and_claim` per run (finishing the previous run, claiming the next with its
/// project and job). Each command the driver starts is one round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_round_trips_per_run() {
    use coco::queue::state::Outcome;
    use coco::store::Catalog;
    // More than a claim reads at first (101): no claim leaves a cursor to kill behind.
    const RUNS: u64 = 110;
    let Some(fixture) = mongo_store().await else {
        return;
    };
    let counter = CommandCounter::default();
    let handler = counter.handler();
    let store = MongoStore::connect_with(&fixture.url, fixture.store.database(), move |o| {
        o.command_event_handler = Some(handler);
    })
    .await
    .expect("connect");
    let now = chrono::Utc::now();
    let job = Job::with_command(&["true"]);
    store
        .put_project(&conformance::project("p", 1))
        .await
        .expect("project");
    store
        .put_job(&conformance::job("p", "j", 1))
        .await
        .expect("job");
    counter.take();
    for i in 0..RUNS {
        let run = new_run(
            &job,
            NewRun::new("p.j", "p", serde_json::json!({ "i": i }), now),
        );
        store.enqueue(&run).await.expect("enqueue");
    }
    let (enqueue, enqueue_by) = counter.take();
    let paused = Paused::default();
    let mut previous: Option<coco::queue::run::RunRecord> = None;
    let mut finished = 0;
    loop {
        let end = previous
            .as_ref()
            .map(|run| run.end(Outcome::Exited(0), Some(0), chrono::Utc::now()));
        let finish = previous
            .as_ref()
            .zip(end.as_ref())
            .map(|(r, e)| (r.id.as_str(), e));
        let stepped = store
            .finish_and_claim("w1", finish, Some((chrono::Utc::now(), &paused)))
            .await
            .expect("step");
        finished += u64::from(stepped.finished.is_some());
        match stepped.claimed.expect("claim") {
            Some(claimed) => {
                assert!(claimed.project.is_some() && claimed.job.is_some());
                previous = Some(claimed.run);
            }
            None => break,
        }
    }
    let (steps, steps_by) = counter.take();
    assert_eq!(finished, RUNS);
    // The last step finds nothing to claim: a sorted find.
    let per_run = (steps - 1) as f64 / RUNS as f64;
    eprintln!(
        "MongoDB round trips per run: enqueue {:.1} {enqueue_by:?}; finish + claim + definitions {per_run:.1} {steps_by:?}",
        enqueue as f64 / RUNS as f64
    );
    assert_eq!(enqueue, 2 * RUNS, "enqueue: the dedupe marker and the run");
    // 16 before the try's locks were released in one `delete_many` with its claim marker
    // (and 1 in 3 claims left a `killCursors` behind with over 101 claimable runs).
    assert!(per_run <= 12.0, "{per_run} round trips per run");
    assert!(!steps_by.contains_key("killCursors"), "{steps_by:?}");
}

/// A claimer that died between its claim marker and the run's update, and a reaper that died
/// after its orphan marker: the next reaper frees the run for claiming and leaves no marker
/// of either behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_dead_claimers_and_reapers_leave_no_markers() {
    use mongodb::bson::{Document, doc};
    let Some(fixture) = mongo_store().await else {
        return;
    };
    let store = &fixture.store;
    let now = chrono::Utc::now();
    let run = new_run(
        &Job::with_command(&["true"]),
        NewRun::new("p.j", "p", serde_json::json!({}), now),
    );
    store.enqueue(&run).await.expect("enqueue");
    let client = mongodb::Client::with_uri_str(&fixture.url)
        .await
        .expect("connect");
    let locks = client
        .database(store.database())
        .collection::<Document>("locks");
    let long_ago = mongodb::bson::DateTime::from_chrono(now - chrono::TimeDelta::hours(1));
    locks
        .insert_many([
            doc! {
                "_id": format!("claim:{}:0", run.id), "kind": "claim", "run": &run.id,
                "seq": 0_i64, "worker": "dead", "at": long_ago,
            },
            doc! {
                "_id": "orphan:01JOTHER:3", "kind": "orphan", "run": "01JOTHER",
                "seq": 3_i64, "at": long_ago,
            },
        ])
        .await
        .expect("markers");
    store
        .take_back_zombies(now, Duration::from_secs(60), 3)
        .await
        .expect("reap");
    let left = locks
        .count_documents(doc! { "kind": { "$in": ["claim", "orphan"] } })
        .await
        .expect("count");
    assert_eq!(left, 0, "claim and orphan markers left behind");
    let claimed = store
        .claim_run("w1", now, &Paused::default())
        .await
        .expect("claim")
        .expect("the run is claimable again");
    assert_eq!(claimed.id, run.id);
}

/// Record fires for keys `0..n` of one job from its own connection and runtime.
fn fire_all(path: &Path, n: i64, start: &Barrier) -> Vec<bool> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = EmbeddedStore::open(path).await.expect("open");
        store.ensure_schema().await.expect("ensure_schema");
        start.wait();
        let mut won = Vec::new();
        for i in 0..n {
            let instant = DateTime::from_timestamp_millis(60_000 * i).expect("instant");
            won.push(
                store
                    .record_fire("race.job", instant)
                    .await
                    .expect("record_fire"),
            );
        }
        won
    })
}

/// Two connections on one file (each its own thread and runtime, both opening a fresh file
/// and ensuring the schema at once) race for the same 200 keys: no "database is locked",
/// exactly one winner per key.
#[test]
fn embedded_two_connections_race_for_fires() {
    const N: i64 = 200;
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("coco.db");
    let start = Arc::new(Barrier::new(2));
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (path, start) = (path.clone(), Arc::clone(&start));
            std::thread::spawn(move || fire_all(&path, N, &start))
        })
        .collect();
    let results: Vec<Vec<bool>> = racers
        .into_iter()
        .map(|r| r.join().expect("racer panicked"))
        .collect();
    assert_eq!(
        (results[0].len(), results[1].len()),
        (N as usize, N as usize)
    );
    for (i, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        assert!(a ^ b, "key {i}: exactly one winner, got {a} and {b}");
    }
}

/// Claim runs from `path` on a connection and runtime of its own until none is left.
fn claim_all(path: &Path, worker: &str, start: &Barrier) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = EmbeddedStore::open(path).await.expect("open");
        start.wait();
        let now = DateTime::from_timestamp_millis(1_800_000_000_000).expect("now");
        let mut mine = Vec::new();
        while let Some(run) = store
            .claim_run(worker, now, &Paused::default())
            .await
            .expect("claim_run")
        {
            mine.push(run.id);
        }
        mine
    })
}

/// Eight connections on one file (each its own thread and runtime) claim 100 runs of
/// three jobs at once: every run is claimed exactly once, and a job with `max_parallel` 2
/// never has more than 2 running.
#[test]
fn embedded_eight_connections_claim_each_run_once() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("coco.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = EmbeddedStore::open(&path).await.expect("open");
        store.ensure_schema().await.expect("ensure_schema");
        for i in 0..100 {
            let job = format!("race.j{}", i % 3);
            let args = serde_json::json!({ "i": i });
            let created = DateTime::from_timestamp_millis(1_700_000_000_000 + i).expect("t");
            let definition = Job {
                max_parallel: if i % 3 == 0 { 2 } else { 100 },
                ..Job::with_command(&["true"])
            };
            let run = new_run(&definition, NewRun::new(&job, "race", args, created));
            store.enqueue(&run).await.expect("enqueue");
        }
    });
    let start = Arc::new(Barrier::new(8));
    let claimers: Vec<_> = (0..8)
        .map(|n| {
            let (path, start) = (path.clone(), Arc::clone(&start));
            std::thread::spawn(move || claim_all(&path, &format!("w{n}"), &start))
        })
        .collect();
    let all: Vec<String> = claimers
        .into_iter()
        .flat_map(|c| c.join().expect("claimer panicked"))
        .collect();
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    // Job j0 (34 runs) has max_parallel 2 and nothing finishes: 2 of its runs are claimed.
    assert_eq!(all.len(), 2 + 33 + 33, "claims made");
    assert_eq!(unique.len(), all.len(), "each run claimed once");
}

/// The worker's calls per run are first tried on the calling thread without waiting for a
/// lock: while another connection holds the write lock they wait for it on the blocking pool
/// (no "database is locked"), on a multi-thread runtime as on a current-thread one.
#[test]
fn embedded_worker_calls_wait_for_another_connections_write_lock() {
    for multi_thread in [true, false] {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("coco.db");
        let rt = if multi_thread {
            tokio::runtime::Runtime::new()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("runtime");
        rt.block_on(async {
            let store = EmbeddedStore::open(&path).await.expect("open");
            store.ensure_schema().await.expect("ensure_schema");
            let created = DateTime::from_timestamp_millis(1_700_000_000_000).expect("t");
            let definition = Job::with_command(&["true"]);
            let run = new_run(
                &definition,
                NewRun::new("lock.job", "lock", serde_json::json!({}), created),
            );
            store.enqueue(&run).await.expect("enqueue");
            let (held, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
            let holder = {
                let (path, held, release) = (path.clone(), Arc::clone(&held), Arc::clone(&release));
                std::thread::spawn(move || {
                    let mut conn = rusqlite::Connection::open(&path).expect("open the file");
                    let tx = conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .expect("take the write lock");
                    held.wait();
                    release.wait();
                    std::thread::sleep(Duration::from_millis(300));
                    tx.commit().expect("commit");
                })
            };
            held.wait();
            release.wait();
            let claimed = store
                .claim_run("w1", created, &Paused::default())
                .await
                .expect("the claim waits for the lock instead of failing");
            assert_eq!(claimed.map(|r| r.id), Some(run.id.clone()));
            holder.join().expect("holder");
        });
    }
}

/// A busy worker's claims and finishes get the WAL copied into the database file by a
/// thread of the store's own (a passive checkpoint beside them, not in their way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_busy_workers_wal_is_checkpointed_beside_it() {
    let dir = TempDir::new().expect("temp dir");
    let store = EmbeddedStore::open(&dir.path().join("coco.db"))
        .await
        .expect("open");
    store.ensure_schema().await.expect("ensure_schema");
    let created = DateTime::from_timestamp_millis(1_700_000_000_000).expect("t");
    let definition = Job::with_command(&["true"]);
    let runs: Vec<_> = (0..300)
        .map(|i| {
            new_run(
                &definition,
                NewRun::new("busy.job", "busy", serde_json::json!({ "i": i }), created),
            )
        })
        .collect();
    store.enqueue_all(&runs).await.expect("enqueue");
    assert_eq!(store.background_checkpoints(), 0);
    let mut claimed = 0;
    while let Some(run) = store
        .claim_run("w1", created, &Paused::default())
        .await
        .expect("claim")
    {
        claimed += 1;
        let end = run.end(Outcome::Exited(0), None, created);
        store.finish_run(&run.id, "w1", &end).await.expect("finish");
    }
    assert_eq!(claimed, 300);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.background_checkpoints() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint beside 300 claims"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // What was copied is the store's: every run reads back complete.
    let done = store
        .count_runs(&RunFilter {
            state: Some(RunState::Complete),
            ..RunFilter::default()
        })
        .await
        .expect("count");
    assert_eq!(done, 300);
}

/// Env var telling a child copy of this test binary to act as one racing process.
const CHILD_DB: &str = "COCO_TEST_STORE_CHILD_DB";

/// Two OS processes open a fresh file at once and race for the same keys.
#[test]
#[allow(clippy::disallowed_methods)] // runs copies of this test binary
fn embedded_two_processes_race_for_fires() {
    let dir = TempDir::new().expect("temp dir");
    let db = dir.path().join("coco.db");
    let children: Vec<(PathBuf, std::process::Child)> = (0..2)
        .map(|n| {
            let out = dir.path().join(format!("child-{n}.txt"));
            let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args(["--exact", "store::embedded_race_child", "--test-threads=1"])
                .env(CHILD_DB, &db)
                .env("COCO_TEST_STORE_CHILD_OUT", &out)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn child test process");
            (out, child)
        })
        .collect();
    let results: Vec<Vec<String>> = children
        .into_iter()
        .map(|(out, mut child)| {
            assert!(child.wait().expect("wait child").success(), "child failed");
            std::fs::read_to_string(&out)
                .expect("child result")
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect();
    assert_eq!(results[0].len(), 200);
    assert_eq!(results[1].len(), 200);
    for (i, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        assert!(
            (a == "true") ^ (b == "true"),
            "key {i}: exactly one winner, got {a} and {b}"
        );
    }
}

/// The child half of [`embedded_two_processes_race_for_fires`]; does nothing on its own.
#[test]
fn embedded_race_child() {
    let Some(db) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let out = std::env::var_os("COCO_TEST_STORE_CHILD_OUT").expect("child output path");
    // No barrier across processes: both start right away and race from the first key.
    let won = fire_all(Path::new(&db), 200, &Barrier::new(1));
    let text: String = won.iter().map(|w| format!("{w}\n")).collect();
    std::fs::write(out, text).expect("write child result");
}

/// Reopening a file keeps what was written; a second `open` + `ensure_schema` is harmless.
#[tokio::test]
async fn embedded_reopen_keeps_records() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("a/b/coco.db");
    let first = EmbeddedStore::open(&path).await.expect("open");
    first.ensure_schema().await.expect("schema");
    assert!(
        first
            .record_fire("p.j", DateTime::UNIX_EPOCH)
            .await
            .unwrap()
    );
    drop(first);
    let second = EmbeddedStore::open(&path).await.expect("reopen");
    second.ensure_schema().await.expect("schema again");
    assert!(
        !second
            .record_fire("p.j", DateTime::UNIX_EPOCH)
            .await
            .unwrap()
    );
    assert!(second.describe().contains(&path.display().to_string()));
}

/// A store written before fires had `settled` (schema 2): its fires count as settled, so
/// no scheduler takes them over as lost.
#[tokio::test]
async fn embedded_fires_of_schema_2_are_settled() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("coco.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute_batch(
            "CREATE TABLE fires (job TEXT NOT NULL, instant INTEGER NOT NULL,
                 fired_at INTEGER NOT NULL, PRIMARY KEY (job, instant));
             INSERT INTO fires VALUES ('p.j', 60000, 61000);
             PRAGMA user_version = 2;",
        )
        .expect("schema 2");
    }
    let store = EmbeddedStore::open(&path).await.expect("open");
    store.ensure_schema().await.expect("upgrade");
    let far = DateTime::from_timestamp(4_000_000_000, 0).unwrap();
    assert_eq!(store.unsettled_fires(far).await.unwrap(), []);
    assert!(
        !store
            .record_fire("p.j", DateTime::from_timestamp_millis(60_000).unwrap())
            .await
            .unwrap(),
        "the old fire is kept"
    );
    assert_eq!(store.prune_fires(far).await.unwrap(), 1);
}

/// An unreachable server fails `connect` quickly, naming the URL without its password.
#[tokio::test]
async fn mongo_connect_failure_is_clear_and_redacted() {
    let url = "mongodb://coco:s3cret@127.0.0.1:9/?serverSelectionTimeoutMS=300";
    let err = MongoStore::connect(url, "coco_none")
        .await
        .expect_err("nothing listens on port 9");
    assert!(matches!(err, StoreError::Mongo { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("mongodb://coco:***@127.0.0.1:9"),
        "{message}"
    );
    assert!(message.contains("coco_none"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
}

/// `describe` names the server and database, never the password.
#[tokio::test]
async fn mongo_describe_is_redacted() {
    let Ok(url) = std::env::var("COCO_TEST_MONGO_URL") else {
        return; // covered by the conformance tests' failure when the URL is missing
    };
    let with_password = url.replacen("mongodb://", "mongodb://nobody:s3cret@", 1);
    // A server without auth may or may not accept unknown credentials; only the message
    // matters here, whichever way connect goes.
    let text = match MongoStore::connect(&with_password, "coco_describe").await {
        Ok(store) => store.describe(),
        Err(e) => e.to_string(),
    };
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("nobody:***@"), "{text}");
}

/// MongoDB: locks left by processes that died between two writes (a claim marker before the
/// run was updated, its job slot, an end marker before the run was ended) are cleaned up by
/// the reaper once older than `zombie_after`, so the run is claimed and taken back again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_locks_of_dead_processes_are_recovered() {
    use mongodb::bson::{Document, doc};
    let Some(fixture) = mongo_store().await else {
        return;
    };
    let store = &fixture.store;
    let url = std::env::var("COCO_TEST_MONGO_URL").expect("url");
    let client = mongodb::Client::with_uri_str(&url).await.expect("client");
    let locks = client
        .database(store.database())
        .collection::<Document>("locks");
    let t = |s: i64| DateTime::from_timestamp_millis(1_700_000_000_000 + 1000 * s).expect("t");
    let bson_t = |s: i64| mongodb::bson::DateTime::from_chrono(t(s));

    let args = serde_json::json!({});
    let created = t(0);
    let definition = Job {
        attempts: 3,
        ..Job::with_command(&["true"])
    };
    let run = new_run(&definition, NewRun::new("dead.job", "dead", args, created));
    store.enqueue(&run).await.expect("enqueue");
    // A claimer died after taking the slot and winning the claim marker.
    locks
        .insert_many([
            doc! { "_id": format!("claim:{}:0", run.id), "kind": "claim", "run": &run.id,
            "seq": 0_i64, "worker": "dead", "at": bson_t(0) },
            doc! { "_id": "slot:dead.job:0", "kind": "slot", "job": "dead.job", "run": &run.id,
            "seq": 1_i64, "at": bson_t(0) },
        ])
        .await
        .expect("insert dead claimer's locks");
    let claim = |s: i64| async move {
        store
            .claim_run("w", t(s), &Paused::default())
            .await
            .expect("claim_run")
    };
    assert!(claim(1).await.is_none(), "stuck behind the dead claimer");
    let reap = |s: i64| async move {
        store
            .take_back_zombies(t(s), Duration::from_secs(60), 3)
            .await
            .expect("take_back_zombies")
    };
    assert!(reap(30).await.is_empty(), "too early to recover");
    assert!(claim(31).await.is_none(), "still stuck");
    assert!(reap(120).await.is_empty());
    let claimed = claim(121).await.expect("claimable again");
    assert_eq!((claimed.id.as_str(), claimed.attempt), (run.id.as_str(), 1));

    // Its worker died after winning the end marker (seq 2: enqueue 0, recovery 1, claim 2).
    locks
        .insert_one(doc! { "_id": format!("end:{}:2", run.id), "kind": "end",
        "run": &run.id, "seq": 2_i64, "at": bson_t(121) })
        .await
        .expect("insert dead ender's marker");
    assert!(reap(200).await.is_empty(), "the end marker still blocks");
    let taken = reap(201).await;
    assert_eq!(
        taken.len(),
        1,
        "taken back once the dead end marker is gone"
    );
    assert_eq!(taken[0].reason_text().as_deref(), Some("zombie"));
    let again = claim(202).await.expect("retry claimed");
    assert_eq!(again.attempt, 1, "the lost worker spent no attempt");
    let end = again.end(coco::queue::state::Outcome::Exited(0), Some(0), t(203));
    let done = store
        .finish_run(&again.id, "w", &end)
        .await
        .expect("finish")
        .expect("finished");
    assert_eq!(done.state, RunState::Complete);
    let left: Vec<String> = locks
        .distinct("_id", doc! { "kind": { "$ne": "orphan" } })
        .await
        .expect("locks")
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    assert!(left.is_empty(), "no locks left behind: {left:?}");
}

/// A MongoDB store of a newer schema is refused (by `coco apply` and `coco daemon`, with a
/// message saying what to do) before anything is written; an older one is migrated once,
/// by one of the hosts opening it at the same time (the migration lock), the others
/// waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_newer_mongo_schema_is_refused_and_an_older_one_migrated_once() {
    let Some(fixture) = mongo_store().await else {
        return;
    };
    let database = format!("coco_test_{}", ulid::Ulid::new().to_string().to_lowercase());
    let client = mongodb::Client::with_uri_str(&fixture.url).await.unwrap();
    let db = client.database(&database);
    let store = MongoStore::connect(&fixture.url, &database).await.unwrap();
    store.ensure_schema().await.expect("a new store");
    let meta = db.collection::<mongodb::bson::Document>("meta");
    let version = || async {
        meta.find_one(mongodb::bson::doc! { "_id": "schema" })
            .await
            .unwrap()
            .and_then(|doc| doc.get_i64("version").ok())
    };
    let current = coco::store::mongo::schema::SCHEMA_VERSION;
    assert_eq!(version().await, Some(current));

    // Newer: refused, nothing written.
    meta.update_one(
        mongodb::bson::doc! { "_id": "schema" },
        mongodb::bson::doc! { "$set": { "version": current + 1 } },
    )
    .await
    .unwrap();
    let mut sandbox = crate::support::Sandbox::new();
    sandbox.store_args = vec![
        "--mongo-url".into(),
        fixture.url.clone(),
        "--mongo-database".into(),
        database.clone(),
    ];
    sandbox.project("shop", "jobs:\n  hello:\n    command: [echo, hi]\n");
    let newer = format!("its schema version {} is newer than this coco", current + 1);
    let apply = sandbox.coco(&["apply"]);
    assert_eq!(apply.status.code(), Some(1));
    let said = crate::support::stderr(&apply);
    assert!(
        said.contains(&newer) && said.contains("upgrade coco"),
        "{said}"
    );
    let mut daemon = sandbox.spawn(&["daemon"]);
    assert_ne!(daemon.wait_exit(), Some(0));
    assert!(daemon.log().contains(&newer), "{}", daemon.log());
    let projects = db.collection::<mongodb::bson::Document>("projects");
    assert_eq!(
        projects
            .count_documents(mongodb::bson::doc! {})
            .await
            .unwrap(),
        0
    );

    // Older (no version at all: before versions were kept), with an app held without a
    // fencing token: three hosts open it at once; one migrates.
    meta.delete_many(mongodb::bson::doc! {}).await.unwrap();
    db.collection::<mongodb::bson::Document>("app_status")
        .insert_one(mongodb::bson::doc! {
            "_id": "shop.web", "owner": "old-daemon", "heartbeat": mongodb::bson::DateTime::now(),
            "status_json": "{}",
        })
        .await
        .unwrap();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(MongoStore::connect(&fixture.url, &database).await.unwrap());
    }
    let (a, b, c) = tokio::join!(
        hosts[0].ensure_schema(),
        hosts[1].ensure_schema(),
        hosts[2].ensure_schema()
    );
    a.and(b)
        .and(c)
        .expect("every host opens the migrated store");
    assert_eq!(version().await, Some(current));
    assert!(
        meta.find_one(mongodb::bson::doc! { "_id": "migration" })
            .await
            .unwrap()
            .is_none(),
        "the migration lock is gone"
    );
    let held = db
        .collection::<mongodb::bson::Document>("app_status")
        .find_one(mongodb::bson::doc! { "_id": "shop.web" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.get_i64("token"), Ok(0));
    assert!(sandbox.coco(&["apply"]).status.success());
    let _ = db.drop().await;
}
