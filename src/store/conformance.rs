//! The conformance suite every [`Store`] backend must pass.
//!
//! One `pub async fn` per case, each taking a store whose schema is already ensured and
//! panicking (with a message) on the first violation. `tests/it/store.rs` runs every case as
//! its own named test against each backend; [`CASES`] lists them all (the test checks that it
//! runs exactly these) and [`run_all`] runs them in turn on one store.
//!
//! Cases do not assume an empty store: each names its records with a fresh unique tag, so
//! they can share one database and run in any order.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, TimeZone, Timelike, Utc};
use serde_json::json;

use super::{AppRecord, JobRecord, ProjectRecord, Store};

/// A boxed conformance case.
pub type Case = for<'a> fn(&'a dyn Store) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name.
        pub const CASES: &[(&str, Case)] = &[$((stringify!($name), |s| Box::pin($name(s)))),*];
    };
}

cases!(
    ensure_schema_is_idempotent,
    get_missing_is_none,
    project_round_trip,
    project_replace,
    projects_sorted_by_name,
    job_round_trip,
    job_replace_clears_fire_times,
    jobs_listed_by_project,
    app_round_trip,
    apps_listed_by_project,
    timestamps_kept_to_the_millisecond,
    json_of_any_shape_round_trips,
    record_fire_once_per_key,
    record_fire_concurrent_single_winner,
);

/// Run every case, in order, on `store`.
pub async fn run_all(store: &dyn Store) {
    for (_, case) in CASES {
        case(store).await;
    }
}

/// A fresh tag so each case's records are its own.
fn tag() -> String {
    format!("t{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A timestamp with millisecond precision (what every backend keeps).
fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("valid test timestamp")
}

/// A nested JSON document exercising every JSON type, in shapes every server stores as is.
fn nested(n: i64) -> serde_json::Value {
    json!({
        "version": "1.2.3",
        "n": n,
        "negative": -42,
        "big": 9_007_199_254_740_993_i64,
        "float": 0.1,
        "whole_float": 2.0,
        "yes": true,
        "no": false,
        "nothing": null,
        "text": "unicode: ü € 日本 — \"quoted\" \\ back\nslash",
        "empty_object": {},
        "empty_array": [],
        "list": [1, "two", 3.5, null, {"four": [4]}],
        "jobs": {
            "hello": {"cron": "*/5 * * * *", "command": ["echo", "hi"], "env": {"A": "1"}},
            "deep": {"a": {"b": {"c": {"d": [{}, {"e": "f"}, [], 1]}}}},
        },
    })
}

fn project(name: &str, n: i64) -> ProjectRecord {
    ProjectRecord {
        name: name.to_string(),
        hash: format!("hash-{name}-{n}"),
        manifest: nested(n),
        source: format!("/home/coco/{name}/coco.yaml"),
        active: true,
        applied_at: at(1_700_000_000_123 + n),
    }
}

fn job(project: &str, name: &str, n: i64) -> JobRecord {
    JobRecord {
        id: format!("{project}.{name}"),
        project: project.to_string(),
        name: name.to_string(),
        definition: json!({"command": ["run", name], "n": n, "nested": nested(n)}),
        hash: format!("hash-{name}-{n}"),
        active: true,
        next_fire: Some(at(1_700_000_300_000 + n)),
        last_fire: Some(at(1_700_000_000_000 + n)),
        updated_at: at(1_700_000_000_999 + n),
    }
}

fn app(project: &str, name: &str, n: i64) -> AppRecord {
    AppRecord {
        id: format!("{project}.{name}"),
        project: project.to_string(),
        name: name.to_string(),
        definition: json!({"command": ["serve", name], "port": 8000 + n, "nested": nested(n)}),
        hash: format!("hash-{name}-{n}"),
        active: true,
        updated_at: at(1_700_000_000_456 + n),
    }
}

fn ids<T>(records: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    records.iter().map(|r| id(r).to_string()).collect()
}

/// `ensure_schema` may run again, and from several processes at once, without error or
/// losing data.
pub async fn ensure_schema_is_idempotent(store: &dyn Store) {
    let p = project(&tag(), 1);
    store.put_project(&p).await.expect("put_project");
    store
        .ensure_schema()
        .await
        .expect("ensure_schema, second time");
    let (a, b) = tokio::join!(store.ensure_schema(), store.ensure_schema());
    a.expect("ensure_schema, concurrent 1");
    b.expect("ensure_schema, concurrent 2");
    assert!(
        store
            .record_fire(&p.name, at(1_000))
            .await
            .expect("record_fire"),
        "record_fire works after ensure_schema ran again"
    );
    assert_eq!(
        store.get_project(&p.name).await.expect("get_project"),
        Some(p),
        "records survive ensure_schema"
    );
}

/// Reading a key that was never written gives `None`, not an error.
pub async fn get_missing_is_none(store: &dyn Store) {
    let t = tag();
    assert_eq!(store.get_project(&t).await.expect("get_project"), None);
    assert_eq!(
        store.get_job(&format!("{t}.x")).await.expect("get_job"),
        None
    );
    assert_eq!(
        store.get_app(&format!("{t}.x")).await.expect("get_app"),
        None
    );
    assert!(
        store
            .list_jobs(Some(&t))
            .await
            .expect("list_jobs")
            .is_empty()
    );
    assert!(
        store
            .list_apps(Some(&t))
            .await
            .expect("list_apps")
            .is_empty()
    );
}

/// Every field of a project, including the nested manifest, comes back as written.
pub async fn project_round_trip(store: &dyn Store) {
    let mut p = project(&tag(), 7);
    p.active = false;
    store.put_project(&p).await.expect("put_project");
    let got = store.get_project(&p.name).await.expect("get_project");
    assert_eq!(got.as_ref(), Some(&p), "get_project returns what was put");
    let listed = store.list_projects().await.expect("list_projects");
    assert_eq!(
        listed.iter().find(|r| r.name == p.name),
        Some(&p),
        "list_projects returns what was put"
    );
}

/// Putting a project again replaces it whole.
pub async fn project_replace(store: &dyn Store) {
    let name = tag();
    store.put_project(&project(&name, 1)).await.expect("put 1");
    let mut second = project(&name, 2);
    second.manifest = json!({"only": "this"});
    second.active = false;
    store.put_project(&second).await.expect("put 2");
    assert_eq!(store.get_project(&name).await.expect("get"), Some(second));
    let count = store
        .list_projects()
        .await
        .expect("list_projects")
        .iter()
        .filter(|r| r.name == name)
        .count();
    assert_eq!(count, 1, "a replaced project is listed once");
}

/// `list_projects` sorts by name, bytewise (as Rust's `str` order), active or not.
pub async fn projects_sorted_by_name(store: &dyn Store) {
    let t = tag();
    let names: Vec<String> = ["b", "a", "B", "a-2", "a.1", "z", "ü", "A", "10", "9"]
        .iter()
        .map(|s| format!("{t}-{s}"))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let mut p = project(name, i as i64);
        p.active = i % 2 == 0;
        store.put_project(&p).await.expect("put_project");
    }
    let mut expected = names.clone();
    expected.sort();
    let listed = store.list_projects().await.expect("list_projects");
    let got: Vec<String> = ids(&listed, |r| &r.name)
        .into_iter()
        .filter(|n| n.starts_with(&t))
        .collect();
    assert_eq!(got, expected, "projects sorted by name");
}

/// Every field of a job comes back as written, with fire times set or not.
pub async fn job_round_trip(store: &dyn Store) {
    let t = tag();
    let both = job(&t, "both", 1);
    let mut neither = job(&t, "neither", 2);
    neither.next_fire = None;
    neither.last_fire = None;
    neither.active = false;
    let mut next_only = job(&t, "next_only", 3);
    next_only.last_fire = None;
    let mut last_only = job(&t, "last_only", 4);
    last_only.next_fire = None;
    for j in [&both, &neither, &next_only, &last_only] {
        store.put_job(j).await.expect("put_job");
        assert_eq!(
            store.get_job(&j.id).await.expect("get_job").as_ref(),
            Some(j),
            "get_job {} returns what was put",
            j.id
        );
    }
    let mut expected = vec![both, neither, next_only, last_only];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        store.list_jobs(Some(&t)).await.expect("list_jobs"),
        expected
    );
}

/// Replacing a job whose fire times were set with one where they are not clears them.
pub async fn job_replace_clears_fire_times(store: &dyn Store) {
    let t = tag();
    let first = job(&t, "j", 1);
    store.put_job(&first).await.expect("put 1");
    let mut second = job(&t, "j", 2);
    second.next_fire = None;
    second.last_fire = None;
    second.active = false;
    second.definition = json!({"replaced": true});
    store.put_job(&second).await.expect("put 2");
    assert_eq!(
        store.get_job(&second.id).await.expect("get"),
        Some(second.clone())
    );
    second.next_fire = Some(at(1_800_000_000_000));
    store.put_job(&second).await.expect("put 3");
    assert_eq!(
        store.get_job(&second.id).await.expect("get"),
        Some(second.clone())
    );
    assert_eq!(store.list_jobs(Some(&t)).await.expect("list"), vec![second]);
}

/// `list_jobs` filters by project exactly (not by prefix) and sorts by id; `None` lists all.
pub async fn jobs_listed_by_project(store: &dyn Store) {
    let t = tag();
    let (p1, p2, p_prefix) = (format!("{t}-p1"), format!("{t}-p2"), format!("{t}-p"));
    let mut inactive = job(&p1, "c", 3);
    inactive.active = false;
    let all = [
        job(&p1, "b", 1),
        job(&p2, "a", 2),
        inactive,
        job(&p1, "a", 4),
        job(&p_prefix, "a", 5),
    ];
    for j in &all {
        store.put_job(j).await.expect("put_job");
    }
    let listed = store.list_jobs(Some(&p1)).await.expect("list_jobs p1");
    assert_eq!(
        ids(&listed, |j| &j.id),
        [format!("{p1}.a"), format!("{p1}.b"), format!("{p1}.c")],
        "jobs of one project, sorted by id, inactive included"
    );
    assert!(listed.iter().all(|j| j.project == p1));
    assert_eq!(
        ids(&store.list_jobs(Some(&p2)).await.expect("list p2"), |j| &j
            .id),
        [format!("{p2}.a")]
    );
    let every = store.list_jobs(None).await.expect("list_jobs all");
    let mine: Vec<String> = ids(&every, |j| &j.id)
        .into_iter()
        .filter(|id| id.starts_with(&t))
        .collect();
    let mut expected = ids(&all, |j| &j.id);
    expected.sort();
    assert_eq!(mine, expected, "list_jobs(None) lists every project's jobs");
    let mut sorted = ids(&every, |j| &j.id);
    sorted.sort();
    assert_eq!(
        ids(&every, |j| &j.id),
        sorted,
        "list_jobs(None) sorted by id"
    );
}

/// Every field of an app comes back as written; putting it again replaces it.
pub async fn app_round_trip(store: &dyn Store) {
    let t = tag();
    let mut a = app(&t, "web", 1);
    store.put_app(&a).await.expect("put_app");
    assert_eq!(
        store.get_app(&a.id).await.expect("get_app").as_ref(),
        Some(&a)
    );
    a.active = false;
    a.hash = "other".into();
    a.definition = json!(["a", "list", "now"]);
    a.updated_at = at(1_900_000_000_001);
    store.put_app(&a).await.expect("put_app again");
    assert_eq!(
        store.get_app(&a.id).await.expect("get_app").as_ref(),
        Some(&a)
    );
    assert_eq!(store.list_apps(Some(&t)).await.expect("list_apps"), vec![a]);
}

/// `list_apps` filters by project exactly and sorts by id; `None` lists all.
pub async fn apps_listed_by_project(store: &dyn Store) {
    let t = tag();
    let (p1, p2) = (format!("{t}-p1"), format!("{t}-p2"));
    let mut inactive = app(&p1, "a", 3);
    inactive.active = false;
    let all = [
        app(&p1, "z", 1),
        app(&p2, "m", 2),
        inactive,
        app(&p1, "b", 4),
    ];
    for a in &all {
        store.put_app(a).await.expect("put_app");
    }
    let listed = store.list_apps(Some(&p1)).await.expect("list_apps p1");
    assert_eq!(
        ids(&listed, |a| &a.id),
        [format!("{p1}.a"), format!("{p1}.b"), format!("{p1}.z")],
        "apps of one project, sorted by id, inactive included"
    );
    let every = store.list_apps(None).await.expect("list_apps all");
    let mine: Vec<String> = ids(&every, |a| &a.id)
        .into_iter()
        .filter(|id| id.starts_with(&t))
        .collect();
    let mut expected = ids(&all, |a| &a.id);
    expected.sort();
    assert_eq!(mine, expected, "list_apps(None) lists every project's apps");
}

/// Timestamps keep millisecond precision, in UTC; anything finer is dropped (truncated).
pub async fn timestamps_kept_to_the_millisecond(store: &dyn Store) {
    let t = tag();
    let fine = Utc
        .with_ymd_and_hms(2031, 12, 31, 23, 59, 58)
        .unwrap()
        .with_nanosecond(987_654_321)
        .unwrap();
    let coarse = at(fine.timestamp_millis());
    assert_eq!(coarse.nanosecond(), 987_000_000);
    let mut p = project(&t, 0);
    p.applied_at = fine;
    let mut j = job(&t, "j", 0);
    (j.next_fire, j.last_fire, j.updated_at) = (Some(fine), Some(at(0)), fine);
    let mut a = app(&t, "a", 0);
    a.updated_at = fine;
    store.put_project(&p).await.expect("put_project");
    store.put_job(&j).await.expect("put_job");
    store.put_app(&a).await.expect("put_app");
    let p = store.get_project(&t).await.expect("get").expect("project");
    let j = store.get_job(&j.id).await.expect("get").expect("job");
    let a = store.get_app(&a.id).await.expect("get").expect("app");
    assert_eq!(p.applied_at, coarse);
    assert_eq!(
        (j.next_fire, j.last_fire, j.updated_at),
        (Some(coarse), Some(at(0)), coarse)
    );
    assert_eq!(a.updated_at, coarse);
}

/// JSON that some servers refuse as a document (nested arrays, keys with `.` or a leading
/// `$`, NUL characters, integers beyond `i64`) still comes back exactly as written.
pub async fn json_of_any_shape_round_trips(store: &dyn Store) {
    let t = tag();
    let awkward = [
        json!({"matrix": [[1, 2], [3, [4]]], "empty": [[]]}),
        json!({"log.level": "debug", "a": {"b.c": 1}}),
        json!({"$ref": "x", "ok": {"$inc": 1}}),
        json!({"nul": "a\u{0}b", "k\u{0}": 1}),
        json!({"big": u64::MAX, "small": i64::MIN}),
        json!([[1], [2]]),
        json!("just a string"),
        json!(42),
        json!(null),
        json!(-0.0),
        json!({"fine": [1, 2, {"x": [3]}]}),
    ];
    for (i, value) in awkward.iter().enumerate() {
        let mut p = project(&format!("{t}-{i}"), 0);
        p.manifest = value.clone();
        let mut j = job(&t, &format!("j{i}"), 0);
        j.definition = value.clone();
        let mut a = app(&t, &format!("a{i}"), 0);
        a.definition = value.clone();
        store.put_project(&p).await.expect("put_project");
        store.put_job(&j).await.expect("put_job");
        store.put_app(&a).await.expect("put_app");
        assert_eq!(
            store.get_project(&p.name).await.expect("get").as_ref(),
            Some(&p),
            "{value}"
        );
        assert_eq!(
            store.get_job(&j.id).await.expect("get").as_ref(),
            Some(&j),
            "{value}"
        );
        assert_eq!(
            store.get_app(&a.id).await.expect("get").as_ref(),
            Some(&a),
            "{value}"
        );
    }
    // Replacing an awkward document with a plain one (and back) leaves no trace of the other.
    let mut j = job(&t, "switch", 0);
    for value in [json!([[1]]), json!({"plain": true}), json!({"a.b": [[]]})] {
        j.definition = value;
        store.put_job(&j).await.expect("put_job");
        assert_eq!(store.get_job(&j.id).await.expect("get").as_ref(), Some(&j));
    }
}

/// The first `record_fire` of a `(job, instant)` wins; repeats lose; other keys are separate.
pub async fn record_fire_once_per_key(store: &dyn Store) {
    let t = tag();
    let (job_a, job_b) = (format!("{t}.a"), format!("{t}.b"));
    let instant = at(1_700_000_060_000);
    let fire = |job: String, instant| async move {
        store.record_fire(&job, instant).await.expect("record_fire")
    };
    assert!(fire(job_a.clone(), instant).await, "first fire wins");
    assert!(
        !fire(job_a.clone(), instant).await,
        "same (job, instant) again loses"
    );
    assert!(!fire(job_a.clone(), instant).await, "and again");
    assert!(
        fire(job_a.clone(), at(1_700_000_120_000)).await,
        "another instant wins"
    );
    assert!(
        fire(job_a.clone(), at(1_700_000_060_001)).await,
        "1 ms later is another instant"
    );
    assert!(
        fire(job_b.clone(), instant).await,
        "another job, same instant wins"
    );
    assert!(!fire(job_b, instant).await, "then loses");
    // Job ids that could collide if keys were joined naively.
    assert!(fire(format!("{t}.a@1"), at(2)).await);
    assert!(fire(format!("{t}.a"), at(12)).await);
    assert!(fire(format!("{t}.a@12"), at(0)).await);
}

/// Eight concurrent `record_fire`s of one key: exactly one wins.
pub async fn record_fire_concurrent_single_winner(store: &dyn Store) {
    for round in 0..5 {
        let job = format!("{}.c", tag());
        let instant = at(1_700_000_000_000 + round);
        let fire = || async { store.record_fire(&job, instant).await.expect("record_fire") };
        let results = tokio::join!(
            fire(),
            fire(),
            fire(),
            fire(),
            fire(),
            fire(),
            fire(),
            fire()
        );
        let results = [
            results.0, results.1, results.2, results.3, results.4, results.5, results.6, results.7,
        ];
        let winners = results.iter().filter(|won| **won).count();
        assert_eq!(
            winners, 1,
            "round {round}: exactly one winner, got {results:?}"
        );
    }
}
