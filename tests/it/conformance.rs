//! The conformance suite every [`Store`] backend must pass.
//!
//! One `pub async fn` per case, each taking a store whose schema is already ensured and
//! panicking (with a message) on the first violation. `tests/it/store.rs` runs every case as
//! its own named test against each backend; [`CASES`] lists them all and [`run_all`] runs them
//! in turn on one store. Both come from one list, [`conformance_cases!`].
//!
//! Cases do not assume an empty store: each names its records with a fresh unique tag, so
//! they can share one database and run in any order. The queue cases (claims pick from the
//! whole queue) also leave no claimable or running run behind: each ends by draining the
//! queue ([`drain`]), so the next one starts with only final runs in it.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Timelike, Utc};
use serde_json::json;

use coco::access::Role;
use coco::manifest::{HumanDuration, Job};
use coco::queue::run::{Cancel, LiveReport, RunEnd, RunRecord, StateChange};
use coco::queue::state::{Outcome, RunState};
use coco::queue::{NewRun, new_run};
use coco::store::{
    AppRecord, AppState, AppStatus, Cancelled, Control, Enqueued, Fire, FireOutcome, FireTimes,
    JobRecord, LogFilter, LogRecord, MemberKind, MemberRecord, Paused, Problems, ProjectRecord,
    ReleaseRecord, RunCursor, RunFilter, Skipped, Store, TokenRecord,
};

/// A boxed conformance case.
pub type Case = for<'a> fn(&'a dyn Store) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Call macro `$then!` with the name of every case, once: [`CASES`] here and the tests of
/// `tests/it/store.rs` come from this one list.
macro_rules! conformance_cases {
    ($then:ident) => {
        $then!(
            ensure_schema_is_idempotent,
            get_missing_is_none,
            project_round_trip,
            project_replace,
            projects_sorted_by_name,
            job_round_trip,
            jobs_marker_moves_with_every_put,
            job_replace_clears_fire_times,
            fire_times_set_only_for_the_same_definition,
            jobs_listed_by_project,
            app_round_trip,
            apps_listed_by_project,
            timestamps_kept_to_the_millisecond,
            json_of_any_shape_round_trips,
            record_fire_once_per_key,
            fires_recorded_settled_and_timed_in_batches,
            record_fire_concurrent_single_winner,
            fires_settled_taken_over_once_and_pruned,
            app_owned_by_one_daemon_until_stale,
            app_claim_concurrent_single_winner,
            problems_replaced_and_cleared_per_source,
            log_appended_filtered_and_pruned,
            releases_recorded_and_listed,
            run_round_trip,
            duplicate_enqueue_refused_while_blocking,
            enqueue_all_as_one_enqueue_after_the_other,
            concurrent_duplicate_enqueue_single_winner,
            claim_order_priority_then_age,
            claim_honours_pauses,
            claim_looks_past_many_paused_runs,
            max_parallel_limits_running_runs,
            max_parallel_many_slots,
            finish_releases_the_slot,
            finish_only_by_its_worker,
            concurrent_claims_each_run_once,
            zombies_taken_back_once,
            heartbeat_keeps_a_run_alive,
            report_run_shows_progress,
            runs_listed_by_state_and_project,
            output_replaced_and_read_back,
            kill_ends_waiting_and_running_runs,
            remove_takes_only_waiting_runs,
            kill_racing_claims_changes_each_run_once,
            handed_back_run_is_pending_with_its_attempt,
            a_run_losing_its_worker_max_lost_times_in_a_row_errors,
            deferrals_back_off_and_end_after_defer_max,
            history_is_bounded_and_counts_what_it_folds,
            pauses_and_halt_round_trip,
            members_recorded_listed_and_forgotten,
            finish_keeps_the_last_report,
            finish_and_claim_in_one_step,
            a_runs_project_is_read_without_its_jobs,
            run_ids_found_by_prefix,
            tokens_created_found_touched_and_revoked,
            token_name_and_hash_each_taken_once,
            runs_paged_newest_first_by_cursor,
        );
    };
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name.
        pub const CASES: &[(&str, Case)] = &[$((stringify!($name), |s| Box::pin($name(s)))),*];
    };
}

conformance_cases!(cases);

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

pub(crate) fn project(name: &str, n: i64) -> ProjectRecord {
    ProjectRecord {
        name: name.to_string(),
        hash: format!("hash-{name}-{n}"),
        manifest: nested(n),
        source: format!("/home/coco/{name}/coco.yaml"),
        active: true,
        applied_at: at(1_700_000_000_123 + n),
    }
}

pub(crate) fn job(project: &str, name: &str, n: i64) -> JobRecord {
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

/// The jobs' marker counts the jobs and follows the latest `updated_at`; fire times do not
/// move it.
pub async fn jobs_marker_moves_with_every_put(store: &dyn Store) {
    let t = tag();
    let (count, latest) = store.jobs_marker().await.expect("marker");
    // Later than anything stored (the suite may run twice on one store).
    let later = latest.map_or(4_102_444_800_000, |l| {
        l.timestamp_millis().max(4_102_444_800_000)
    });
    let mut first = job(&t, "a", 1);
    first.updated_at = at(later + 1_000);
    store.put_job(&first).await.expect("put");
    let marker = store.jobs_marker().await.expect("marker");
    assert_eq!(marker, (count + 1, Some(first.updated_at)), "a new job");
    assert!(
        store
            .set_fire_times(&first.id, &first.hash, None, Some(at(1)))
            .await
            .expect("fire times")
    );
    assert_eq!(
        store.jobs_marker().await.expect("marker"),
        marker,
        "fire times"
    );
    first.updated_at = at(later + 1_001);
    first.active = false;
    store.put_job(&first).await.expect("put");
    assert_eq!(
        store.jobs_marker().await.expect("marker"),
        (count + 1, Some(first.updated_at)),
        "a job changed"
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

/// `set_fire_times` changes the two fire times and nothing else, and only while the job has
/// the hash the scheduler read.
pub async fn fire_times_set_only_for_the_same_definition(store: &dyn Store) {
    let t = tag();
    let mut stored = job(&t, "j", 1);
    store.put_job(&stored).await.expect("put");
    let (last, next) = (Some(at(1_800_000_000_000)), Some(at(1_800_000_060_000)));
    assert!(
        store
            .set_fire_times(&stored.id, &stored.hash, last, next)
            .await
            .expect("set")
    );
    (stored.last_fire, stored.next_fire) = (last, next);
    assert_eq!(
        store.get_job(&stored.id).await.expect("get"),
        Some(stored.clone())
    );
    assert!(
        store
            .set_fire_times(&stored.id, &stored.hash, last, None)
            .await
            .expect("clear next")
    );
    stored.next_fire = None;
    assert_eq!(
        store.get_job(&stored.id).await.expect("get"),
        Some(stored.clone())
    );
    assert!(
        !store
            .set_fire_times(&stored.id, "another-hash", None, Some(at(1)))
            .await
            .expect("stale hash"),
        "a re-applied job keeps the fire times apply gave it"
    );
    assert!(
        !store
            .set_fire_times(&format!("{t}.missing"), &stored.hash, None, None)
            .await
            .expect("missing")
    );
    assert_eq!(store.get_job(&stored.id).await.expect("get"), Some(stored));
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

/// The batch steps of the scheduler's fires say and do what the single ones do, in order:
/// a batch record wins exactly the keys nobody recorded (a key twice in one batch: the
/// first), a batch settle settles each, a batch of fire times writes each job whose
/// definition still has the hash.
pub async fn fires_recorded_settled_and_timed_in_batches(store: &dyn Store) {
    let t = tag();
    let (a, b) = (format!("{t}.a"), format!("{t}.b"));
    let (i1, i2) = (at(1_700_000_060_000), at(1_700_000_120_000));
    assert!(store.record_fire(&a, i1).await.expect("record_fire"));
    assert_eq!(
        store.record_fires(&[]).await.expect("record nothing"),
        Vec::<bool>::new()
    );
    let recorded = store
        .record_fires(&[
            (a.clone(), i1),
            (a.clone(), i2),
            (b.clone(), i1),
            (b.clone(), i1),
        ])
        .await
        .expect("record_fires");
    assert_eq!(recorded, [false, true, true, false]);
    assert!(
        !store.record_fire(&a, i2).await.expect("record_fire"),
        "recorded"
    );

    // Unsettled until settled, each.
    let unsettled = || {
        let t = t.clone();
        async move {
            let mut mine: Vec<(String, i64)> = store
                .unsettled_fires(at(32_503_680_000_000))
                .await
                .expect("unsettled_fires")
                .into_iter()
                .filter(|fire| fire.job.starts_with(&t))
                .map(|fire| (fire.job, fire.instant.timestamp_millis()))
                .collect();
            mine.sort();
            mine
        }
    };
    assert_eq!(unsettled().await.len(), 3);
    store
        .settle_fires(&[
            (
                a.clone(),
                i2,
                FireOutcome::Enqueued {
                    run: "R1".to_string(),
                },
            ),
            (b.clone(), i1, FireOutcome::Skipped(Skipped::Missed)),
        ])
        .await
        .expect("settle_fires");
    store.settle_fires(&[]).await.expect("settle nothing");
    assert_eq!(unsettled().await, [(a.clone(), i1.timestamp_millis())]);

    // Fire times: written while the definition has the hash; a missing job is not.
    let (mut ja, mut jb) = (job(&t, "a", 1), job(&t, "b", 2));
    store.put_job(&ja).await.expect("put_job");
    store.put_job(&jb).await.expect("put_job");
    let (last, next) = (Some(at(1_800_000_000_000)), Some(at(1_800_000_060_000)));
    let times = |job: &JobRecord, hash: &str| FireTimes {
        job: job.id.clone(),
        hash: hash.to_string(),
        last_fire: last,
        next_fire: next,
    };
    let missing = FireTimes {
        job: format!("{t}.missing"),
        ..times(&ja, &ja.hash)
    };
    let written = store
        .set_fire_times_all(&[times(&ja, &ja.hash), times(&jb, "another-hash"), missing])
        .await
        .expect("set_fire_times_all");
    assert_eq!(written, [true, false, false]);
    (ja.last_fire, ja.next_fire) = (last, next);
    assert_eq!(store.get_job(&ja.id).await.expect("get"), Some(ja));
    jb.next_fire = job(&t, "b", 2).next_fire;
    assert_eq!(store.get_job(&jb.id).await.expect("get"), Some(jb));
}

/// A recorded fire is unsettled until settled; an unsettled one is taken over once per
/// generation; pruning takes only settled fires of old instants.
pub async fn fires_settled_taken_over_once_and_pruned(store: &dyn Store) {
    let t = tag();
    let (done, lost) = (format!("{t}.done"), format!("{t}.lost"));
    let instant = at(1_700_000_060_000);
    assert!(store.record_fire(&done, instant).await.expect("record"));
    assert!(store.record_fire(&lost, instant).await.expect("record"));
    store
        .settle_fire(&done, instant, &FireOutcome::Enqueued { run: "R1".into() })
        .await
        .expect("settle");
    let later = Utc::now() + chrono::TimeDelta::seconds(1);
    let mine = |fires: Vec<Fire>| -> Vec<Fire> {
        fires
            .into_iter()
            .filter(|f| f.job.starts_with(&t))
            .collect()
    };
    let before_now = mine(
        store
            .unsettled_fires(Utc::now() - chrono::TimeDelta::seconds(60))
            .await
            .expect("unsettled"),
    );
    assert!(before_now.is_empty(), "recorded just now: {before_now:?}");
    let unsettled = mine(store.unsettled_fires(later).await.expect("unsettled"));
    assert_eq!(unsettled.len(), 1, "only the unsettled one: {unsettled:?}");
    let fire = unsettled[0].clone();
    assert_eq!((fire.job.as_str(), fire.instant), (lost.as_str(), instant));

    // Eight takers of one generation: one wins.
    let take = || async { store.retake_fire(&fire, later).await.expect("retake") };
    let won = tokio::join!(
        take(),
        take(),
        take(),
        take(),
        take(),
        take(),
        take(),
        take()
    );
    let won = [won.0, won.1, won.2, won.3, won.4, won.5, won.6, won.7];
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    // Taken over, it is a new generation, not older than `later`.
    assert!(
        mine(store.unsettled_fires(later).await.expect("unsettled")).is_empty(),
        "the taker's time is its new record time"
    );
    let next = mine(
        store
            .unsettled_fires(later + chrono::TimeDelta::seconds(1))
            .await
            .expect("unsettled"),
    );
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(store.retake_fire(&next[0], later).await.expect("retake"));
    assert!(
        !store.retake_fire(&fire, later).await.expect("retake"),
        "an old generation is not taken again"
    );
    store
        .settle_fire(&lost, instant, &FireOutcome::Skipped(Skipped::Missed))
        .await
        .expect("settle");
    assert!(
        mine(
            store
                .unsettled_fires(later + chrono::TimeDelta::days(1))
                .await
                .expect("unsettled")
        )
        .is_empty()
    );

    // Pruning: settled fires of instants before the cut, nothing else.
    let young = at(1_700_000_120_000);
    assert!(store.record_fire(&done, young).await.expect("record"));
    store
        .prune_fires(at(1_700_000_100_000))
        .await
        .expect("prune");
    assert!(
        store.record_fire(&done, instant).await.expect("record"),
        "the pruned instant's key is free again"
    );
    assert!(
        !store.record_fire(&done, young).await.expect("record"),
        "the young one is kept (and unsettled ones are never pruned)"
    );
}

/// What a backend keeps about the fires of jobs whose id starts with a tag: its fire records
/// and any markers about them (counted by the backend's test, which knows its tables).
pub trait FireBookkeeping {
    fn kept<'a>(&'a self, tag: &'a str) -> Count<'a>;
}

/// A count to come.
pub type Count<'a> = Pin<Box<dyn Future<Output = u64> + Send + 'a>>;

/// 1,000 fires of one job a minute apart, recorded, settled and pruned as the scheduler does
/// (every tenth one's recorder "dies" and another scheduler takes it over first, against a
/// second taker that loses): what the store keeps about them stays bounded by what the
/// pruning keeps, instead of growing with every fire. Not in [`CASES`]: it needs the
/// backend's own count (`tests/it/store.rs` runs it on both).
pub async fn fire_bookkeeping_stays_bounded(store: &dyn Store, bookkeeping: &dyn FireBookkeeping) {
    const FIRES: i64 = 1_000;
    const MINUTE: i64 = 60_000;
    /// Fires of instants this recent are kept by the pruning (the daemon keeps a day).
    const KEEP: i64 = 60 * MINUTE;
    const PRUNE_EVERY: i64 = 50;
    let t = tag();
    let job = format!("{t}.every_minute");
    let start = 1_800_000_000_000;
    let mut most = 0;
    for i in 0..FIRES {
        let instant = at(start + i * MINUTE);
        assert!(store.record_fire(&job, instant).await.expect("record"));
        if i % 10 == 0 {
            let seen = store
                .unsettled_fires(Utc::now() + chrono::TimeDelta::seconds(1))
                .await
                .expect("unsettled");
            let fire = seen
                .into_iter()
                .find(|f| f.job == job)
                .expect("the fire is unsettled");
            let now = instant + chrono::TimeDelta::seconds(30);
            assert!(store.retake_fire(&fire, now).await.expect("retake"));
            assert!(
                !store.retake_fire(&fire, now).await.expect("retake"),
                "one taker per generation"
            );
        }
        store
            .settle_fire(
                &job,
                instant,
                &FireOutcome::Enqueued {
                    run: format!("R{i}"),
                },
            )
            .await
            .expect("settle");
        if i % PRUNE_EVERY == PRUNE_EVERY - 1 {
            store
                .prune_fires(instant - chrono::TimeDelta::milliseconds(KEEP))
                .await
                .expect("prune");
            most = most.max(bookkeeping.kept(&t).await);
        }
    }
    // Kept at most: the fires of KEEP plus those recorded since the last prune, and a
    // marker for each tenth of them. Without pruning it would be 1,100.
    let bound = u64::try_from((KEEP / MINUTE + PRUNE_EVERY) * 11 / 10 + 1).expect("bound");
    assert!(
        most <= bound,
        "kept {most} documents about {FIRES} fires (bound {bound})"
    );
    assert!(
        !store
            .record_fire(&job, at(start + (FIRES - 1) * MINUTE))
            .await
            .expect("record"),
        "a kept fire is still recorded once"
    );
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

fn app_status(id: &str, owner: &str, heartbeat_ms: i64) -> AppStatus {
    AppStatus {
        id: id.to_string(),
        owner: owner.to_string(),
        host: "host-a".into(),
        owner_pid: 42,
        state: AppState::Healthy,
        hash: "hash-1".into(),
        pid: Some(4711),
        started: Some(at(heartbeat_ms - 5_000)),
        restarts: 2,
        health: Some("GET /: 200".into()),
        healthy: Some(true),
        checked: Some(at(heartbeat_ms - 1)),
        heartbeat: at(heartbeat_ms),
        token: 0,
    }
}

/// The first claim of an app wins it under a fencing token; others are refused while its
/// holder heartbeats, and take it over (under a higher token) once the holder's heartbeat
/// is older than they allow; a stale holder can neither renew, write its output, nor
/// release; a claim after a release still gets a higher token.
pub async fn app_owned_by_one_daemon_until_stale(store: &dyn Store) {
    let id = format!("{}.web", tag());
    let output = format!("app:{id}");
    let mine = |status: &AppStatus| status.id == id;
    let a = app_status(&id, "daemon-a", 1_700_000_010_000);
    let token_a = store
        .claim_app(&a, at(0))
        .await
        .expect("claim a")
        .expect("a wins the free app");
    assert!(token_a > 0);
    assert!(
        store
            .put_output(&output, token_a, "a's line\n")
            .await
            .unwrap()
    );
    let b = app_status(&id, "daemon-b", 1_700_000_011_000);
    assert_eq!(
        store
            .claim_app(&b, at(1_700_000_000_000))
            .await
            .expect("claim b"),
        None,
        "a's heartbeat is fresh"
    );
    let a2 = AppStatus {
        restarts: 3,
        token: token_a,
        ..app_status(&id, "daemon-a", 1_700_000_012_000)
    };
    assert!(store.renew_app(&a2).await.expect("a renews"));
    let wrong_token = AppStatus {
        token: token_a + 1,
        ..a2.clone()
    };
    assert!(
        !store.renew_app(&wrong_token).await.expect("renew"),
        "a renewal names the token it holds"
    );
    let listed: Vec<AppStatus> = store
        .list_app_status()
        .await
        .expect("list")
        .into_iter()
        .filter(mine)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&a2));
    // b allows 1 s of silence; a's heartbeat is 3 s old.
    let b2 = app_status(&id, "daemon-b", 1_700_000_015_000);
    let token_b = store
        .claim_app(&b2, at(1_700_000_014_000))
        .await
        .expect("b takes over")
        .expect("a is stale");
    assert!(token_b > token_a, "{token_b} after {token_a}");
    let b2 = AppStatus {
        token: token_b,
        ..b2
    };
    assert!(
        !store.renew_app(&a2).await.expect("a is out"),
        "a lost the app"
    );
    assert!(
        !store
            .put_output(&output, token_a, "a again\n")
            .await
            .unwrap(),
        "the stale owner's output is refused from the take-over on"
    );
    assert_eq!(
        store.get_output(&output).await.unwrap().as_deref(),
        Some("a's line\n")
    );
    assert!(
        store
            .put_output(&output, token_b, "b's line\n")
            .await
            .unwrap()
    );
    store
        .release_app(&id, "daemon-a", token_a)
        .await
        .expect("a releases");
    store
        .release_app(&id, "daemon-b", token_a)
        .await
        .expect("b with a's token");
    let listed: Vec<AppStatus> = store
        .list_app_status()
        .await
        .expect("list")
        .into_iter()
        .filter(mine)
        .collect();
    assert_eq!(listed, [b2], "only the holder releases, under its token");
    store
        .release_app(&id, "daemon-b", token_b)
        .await
        .expect("b releases");
    assert!(
        !store
            .list_app_status()
            .await
            .expect("list")
            .iter()
            .any(mine)
    );
    let c = app_status(&id, "daemon-c", 1_700_000_020_000);
    let token_c = store
        .claim_app(&c, at(0))
        .await
        .expect("claim c")
        .expect("free again");
    assert!(
        token_c > token_b,
        "{token_c} after {token_b}: above every earlier hold"
    );
    assert!(
        !store
            .put_output(&output, token_b, "b late\n")
            .await
            .unwrap()
    );
    store
        .release_app(&id, "daemon-c", token_c)
        .await
        .expect("c releases");
}

/// Of concurrent claims of a free app, exactly one wins.
pub async fn app_claim_concurrent_single_winner(store: &dyn Store) {
    for round in 0..5 {
        let id = format!("{}.web", tag());
        let claim = |owner: &'static str| {
            let status = app_status(&id, owner, 1_700_000_000_000 + round);
            async move {
                store
                    .claim_app(&status, at(0))
                    .await
                    .expect("claim_app")
                    .is_some()
            }
        };
        let results = tokio::join!(
            claim("d1"),
            claim("d2"),
            claim("d3"),
            claim("d4"),
            claim("d5"),
            claim("d6")
        );
        let results = [
            results.0, results.1, results.2, results.3, results.4, results.5,
        ];
        let winners = results.iter().filter(|won| **won).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
    }
    // A stale holder, replaced by daemons that all saw it stale: one takes over, and the
    // others leave the new holder alone (their claim names the heartbeat they judged).
    for round in 0..5 {
        let id = format!("{}.web", tag());
        let stale = app_status(&id, "gone", 1_600_000_000_000);
        store
            .claim_app(&stale, at(0))
            .await
            .expect("claim")
            .expect("free");
        let seen = at(1_600_000_000_001);
        let claim = |owner: &'static str| {
            let status = app_status(&id, owner, 1_700_000_000_000 + round);
            async move {
                store
                    .claim_app(&status, seen)
                    .await
                    .expect("claim_app")
                    .is_some()
            }
        };
        let results = tokio::join!(claim("d1"), claim("d2"), claim("d3"), claim("d4"));
        let results = [results.0, results.1, results.2, results.3];
        let winners = results.iter().filter(|won| **won).count();
        assert_eq!(winners, 1, "take-over round {round}: {results:?}");
    }
}

/// Each source's problems replace its earlier ones; an empty list clears them.
pub async fn problems_replaced_and_cleared_per_source(store: &dyn Store) {
    let t = tag();
    let (a, b) = (format!("{t}-a"), format!("{t}-b"));
    let mine = |p: &Problems| p.source == a || p.source == b;
    let first = Problems {
        source: a.clone(),
        at: at(1_700_000_000_000),
        problems: vec![
            "x/coco.yaml:1:2: bad".into(),
            "y/coco.yaml:3:4: worse".into(),
        ],
    };
    store.put_problems(&first).await.expect("put a");
    let other = Problems {
        source: b.clone(),
        at: at(1_700_000_000_001),
        problems: vec!["z/coco.yaml:5:6: b's".into()],
    };
    store.put_problems(&other).await.expect("put b");
    let replaced = Problems {
        at: at(1_700_000_000_002),
        problems: vec!["x/coco.yaml:9:9: now this".into()],
        ..first.clone()
    };
    store.put_problems(&replaced).await.expect("replace a");
    let listed: Vec<Problems> = store
        .list_problems()
        .await
        .expect("list")
        .into_iter()
        .filter(mine)
        .collect();
    assert_eq!(listed, [replaced, other.clone()]);
    store
        .put_problems(&Problems {
            problems: Vec::new(),
            ..first
        })
        .await
        .expect("clear a");
    let listed: Vec<Problems> = store
        .list_problems()
        .await
        .expect("list")
        .into_iter()
        .filter(mine)
        .collect();
    assert_eq!(listed, [other]);
}

/// Releases come back newest first, per project or all; the same version again replaces.
pub async fn releases_recorded_and_listed(store: &dyn Store) {
    let t = tag();
    let (a, b) = (format!("{t}a"), format!("{t}b"));
    let release = |project: &str, version: &str, ms: i64| ReleaseRecord {
        project: project.into(),
        version: version.into(),
        commit: format!("c{ms}"),
        at: at(ms),
        by: "ada@vm".into(),
    };
    store
        .put_release(&release(&a, "0.0.1", 1_000))
        .await
        .expect("put");
    store
        .put_release(&release(&a, "0.1.0", 3_000))
        .await
        .expect("put");
    store
        .put_release(&release(&b, "1.0.0", 2_000))
        .await
        .expect("put");
    store
        .put_release(&release(&a, "0.0.1", 4_000))
        .await
        .expect("replace");
    let of_a = store.list_releases(Some(&a)).await.expect("list");
    assert_eq!(
        of_a,
        [release(&a, "0.0.1", 4_000), release(&a, "0.1.0", 3_000)]
    );
    let all: Vec<ReleaseRecord> = store
        .list_releases(None)
        .await
        .expect("list")
        .into_iter()
        .filter(|r| r.project == a || r.project == b)
        .collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[2], release(&b, "1.0.0", 2_000));
}

/// Log records come back filtered (project, job, run, app, level, time), the newest `limit`
/// oldest first; a re-sent batch is no error and no duplicate; pruning takes only old ones.
pub async fn log_appended_filtered_and_pruned(store: &dyn Store) {
    let t = tag();
    let record = |n: u8, at_ms: i64, levelno: u8, job: Option<&str>| LogRecord {
        id: format!("{t}-{n:02}"),
        at: at(at_ms),
        level: match levelno {
            10 => "DEBUG",
            20 => "INFO",
            30 => "WARNING",
            _ => "ERROR",
        }
        .into(),
        levelno,
        message: format!("message {n}"),
        host: "host-1".into(),
        source: "daemon-1".into(),
        project: Some(t.clone()),
        job: job.map(|j| format!("{t}.{j}")),
        run: job.map(|_| format!("{t}-run")),
        app: None,
    };
    let records = vec![
        record(1, 500, 20, None),
        record(2, 1_700_000_000_000, 10, Some("a")),
        record(3, 1_700_000_000_001, 20, Some("a")),
        record(4, 1_700_000_000_002, 30, Some("b")),
        record(5, 1_700_000_000_003, 40, None),
    ];
    store.append_log(&records).await.expect("append");
    store
        .append_log(&records[3..])
        .await
        .expect("a re-sent batch is accepted");
    let ids = |filter: LogFilter| async move {
        store
            .list_log(&filter)
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.message)
            .collect::<Vec<_>>()
    };
    let mine = LogFilter {
        project: Some(t.clone()),
        ..LogFilter::default()
    };
    let all = store.list_log(&mine).await.expect("list");
    assert_eq!(all, records, "every record once, oldest first, as written");
    assert_eq!(
        ids(LogFilter {
            min_levelno: Some(30),
            ..mine.clone()
        })
        .await,
        ["message 4", "message 5"]
    );
    assert_eq!(
        ids(LogFilter {
            job: Some(format!("{t}.a")),
            ..mine.clone()
        })
        .await,
        ["message 2", "message 3"]
    );
    assert_eq!(
        ids(LogFilter {
            run: Some(format!("{t}-run")),
            limit: Some(2),
            ..mine.clone()
        })
        .await,
        ["message 3", "message 4"],
        "the newest two, oldest first"
    );
    assert_eq!(
        ids(LogFilter {
            since: Some(at(1_700_000_000_002)),
            ..mine.clone()
        })
        .await,
        ["message 4", "message 5"]
    );
    assert!(
        store.prune_log(at(1_000)).await.expect("prune") >= 1,
        "the record from 1970 is pruned"
    );
    assert_eq!(
        ids(mine).await,
        ["message 2", "message 3", "message 4", "message 5"]
    );
}

// ---------------------------------------------------------------------------------------
// The queue.

/// The start of every queue case's simulated clock.
const T0: i64 = 1_700_000_000_000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn later(ms: i64) -> DateTime<Utc> {
    at(T0 + ms)
}

/// A pending run of `project.job` with `args`, created `created_ms` after [`T0`]: 2
/// attempts, max_parallel 1, retry delay 10 s.
fn run(project: &str, job: &str, args: serde_json::Value, created_ms: i64) -> RunRecord {
    let job_id = format!("{project}.{job}");
    let definition = Job {
        attempts: 2,
        retry_delay: HumanDuration(secs(10)),
        ..Job::with_command(&["true"])
    };
    new_run(
        &definition,
        NewRun::new(&job_id, project, args, later(created_ms)),
    )
}

async fn enqueue_new(store: &dyn Store, r: &RunRecord) {
    assert_eq!(
        store.enqueue(r).await.expect("enqueue"),
        Enqueued::Queued(r.id.clone()),
        "enqueue {} ({})",
        r.id,
        r.job
    );
}

async fn claim(store: &dyn Store, worker: &str, now: DateTime<Utc>) -> Option<RunRecord> {
    store
        .claim_run(worker, now, &Paused::default())
        .await
        .expect("claim_run")
}

/// Claim as `worker` until nothing is left: the ids claimed.
async fn claim_all(store: &dyn Store, worker: &str, now: DateTime<Utc>) -> Vec<String> {
    let mut mine = Vec::new();
    while let Some(r) = claim(store, worker, now).await {
        assert_eq!(r.worker.as_deref(), Some(worker));
        mine.push(r.id);
    }
    mine
}

async fn claim_id(store: &dyn Store, worker: &str, now: DateTime<Utc>) -> Option<String> {
    claim(store, worker, now).await.map(|r| r.id)
}

/// End `run`'s try (as its worker) with `outcome` at `now`; it must still be its worker's.
async fn finish(
    store: &dyn Store,
    run: &RunRecord,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> RunRecord {
    let worker = run.worker.as_deref().expect("a claimed run has a worker");
    let exit_code = match outcome {
        Outcome::Exited(code) => Some(code),
        Outcome::Deferred => Some(75),
        _ => None,
    };
    store
        .finish_run(&run.id, worker, &run.end(outcome, exit_code, now))
        .await
        .expect("finish_run")
        .unwrap_or_else(|| panic!("finish_run {}: not running or not {worker}'s", run.id))
}

async fn get(store: &dyn Store, id: &str) -> RunRecord {
    store
        .get_run(id)
        .await
        .expect("get_run")
        .unwrap_or_else(|| panic!("run {id} exists"))
}

/// Bring every run in the store to a final state: finish running ones, claim and finish
/// the rest (far in the future, so every `not_before` has passed).
pub async fn drain(store: &dyn Store) {
    let future = at(32_503_680_000_000); // year 3000
    for _ in 0..10_000 {
        let running = store
            .list_runs(&RunFilter {
                state: Some(RunState::Running),
                ..RunFilter::default()
            })
            .await
            .expect("list_runs");
        for r in &running {
            finish(store, r, Outcome::Exited(0), future).await;
        }
        let forced = Paused::default();
        match store
            .claim_run("drain", future, &forced)
            .await
            .expect("claim")
        {
            Some(r) => {
                finish(store, &r, Outcome::Exited(0), future).await;
            }
            None if running.is_empty() => return,
            None => {}
        }
    }
    panic!("the queue does not drain");
}

/// Every field of a run comes back as enqueued (timestamps to the millisecond), awkward
/// arguments included; a missing run is `None`.
pub async fn run_round_trip(store: &dyn Store) {
    let t = tag();
    let mut r = run(&t, "job", json!({"n": 3, "nested": nested(1)}), 0);
    r.priority = -7;
    r.attempts = 5;
    r.max_parallel = 3;
    r.retry_delay_ms = u64::MAX / 4;
    r.timeout_ms = Some(90_000);
    r.not_before = later(60_000);
    r.parent = Some("01PARENT".into());
    r.force = true;
    r.created = Utc
        .timestamp_millis_opt(T0 + 5)
        .unwrap()
        .with_nanosecond(5_999_999)
        .unwrap();
    r.history.push(StateChange {
        state: RunState::Pending,
        at: later(6),
        note: Some("ünïcode note".into()),
    });
    enqueue_new(store, &r).await;
    let expected = r.clone().truncated_to_ms();
    assert_eq!(expected.created, later(5));
    assert_eq!(
        get(store, &r.id).await,
        expected,
        "get_run returns what was put"
    );
    let listed = store
        .list_runs(&RunFilter {
            project: Some(t.clone()),
            ..RunFilter::default()
        })
        .await
        .expect("list_runs");
    assert_eq!(listed, vec![expected]);

    let mut awkward = run(&t, "awkward", json!({"a.b": [[1]], "$x": "\u{0}"}), 1);
    awkward.args = json!({"a.b": [[1]], "$x": "nul \u{0}", "big": u64::MAX});
    enqueue_new(store, &awkward).await;
    assert_eq!(get(store, &awkward.id).await, awkward);
    assert_eq!(
        store
            .get_run(&format!("{t}-missing"))
            .await
            .expect("get_run"),
        None
    );
    drain(store).await;
}

/// A second enqueue of the same job and arguments is refused (naming the first run) while
/// that run is pending, running, failed or deferred, and allowed once it is complete,
/// error or killed. Other arguments or another job are separate.
/// [`Queue::enqueue_all`] is [`Queue::enqueue`] of each run in order: a run whose dedupe
/// key is blocking (stored, or earlier in the batch) is a duplicate of that run.
pub async fn enqueue_all_as_one_enqueue_after_the_other(store: &dyn Store) {
    let t = tag();
    let unclaimable = |mut r: RunRecord| {
        r.not_before = later(1_000_000_000);
        r
    };
    let stored = unclaimable(run(&t, "j", json!({"i": 0}), 0));
    enqueue_new(store, &stored).await;
    assert_eq!(
        store.enqueue_all(&[]).await.expect("enqueue nothing"),
        Vec::<Enqueued>::new()
    );
    let batch: Vec<RunRecord> = [
        run(&t, "j", json!({"i": 0}), 1),
        run(&t, "j", json!({"i": 1}), 2),
        run(&t, "j", json!({"i": 1}), 3),
        run(&t, "k", json!({"i": 0}), 4),
    ]
    .into_iter()
    .map(unclaimable)
    .collect();
    let enqueued = store.enqueue_all(&batch).await.expect("enqueue_all");
    assert_eq!(
        enqueued,
        [
            Enqueued::Duplicate(stored.id.clone()),
            Enqueued::Queued(batch[1].id.clone()),
            Enqueued::Duplicate(batch[1].id.clone()),
            Enqueued::Queued(batch[3].id.clone()),
        ]
    );
    for (r, kept) in batch.iter().zip([false, true, false, true]) {
        assert_eq!(
            store.get_run(&r.id).await.expect("get").is_some(),
            kept,
            "{} stored",
            r.id
        );
    }
    assert_eq!(
        store.get_run(&batch[1].id).await.expect("get"),
        Some(batch[1].clone().truncated_to_ms()),
        "as given"
    );
    for r in [&stored, &batch[1], &batch[3]] {
        store
            .cancel_run(&r.id, Cancel::Remove, later(0))
            .await
            .expect("remove");
    }
}

pub async fn duplicate_enqueue_refused_while_blocking(store: &dyn Store) {
    let t = tag();
    let args = json!({"x": 1, "y": [1, 2]});
    let same_args_reordered = json!({"y": [1, 2], "x": 1});
    let first = run(&t, "j", args.clone(), 0);
    enqueue_new(store, &first).await;
    let refused = |blocking: &RunRecord, state: &str| {
        let (blocking, state) = (blocking.id.clone(), state.to_string());
        let again = run(&t, "j", same_args_reordered.clone(), 1);
        async move {
            assert_eq!(
                store.enqueue(&again).await.expect("enqueue"),
                Enqueued::Duplicate(blocking),
                "refused while {state}"
            );
            assert_eq!(store.get_run(&again.id).await.expect("get"), None);
        }
    };
    refused(&first, "pending").await;
    // Other arguments, another job: not duplicates (and not claimable during this case).
    for mut other in [
        run(&t, "j", json!({"x": 2, "y": [1, 2]}), 2),
        run(&t, "other", args.clone(), 3),
    ] {
        other.not_before = later(1_000_000);
        enqueue_new(store, &other).await;
    }

    // Only `first` is claimable.
    let claimed = claim(store, "w1", later(0)).await.expect("claim first");
    assert_eq!(claimed.id, first.id);
    refused(&first, "running").await;
    let failed = finish(store, &claimed, Outcome::Exited(1), later(10)).await;
    assert_eq!(failed.state, RunState::Failed);
    refused(&first, "failed").await;
    // Claimable again 10 s (the retry delay) after it failed, and not before.
    assert_eq!(claim_id(store, "w1", later(10_009)).await, None);
    let claimed = claim(store, "w1", later(10_010))
        .await
        .expect("claim retry");
    assert_eq!(
        (claimed.id.as_str(), claimed.attempt),
        (first.id.as_str(), 2)
    );
    let deferred = finish(store, &claimed, Outcome::Deferred, later(10_020)).await;
    assert_eq!(
        (deferred.state, deferred.attempt),
        (RunState::Deferred, 1),
        "a deferral gives its attempt back"
    );
    refused(&first, "deferred").await;
    let claimed = claim(store, "w1", later(20_020))
        .await
        .expect("claim deferred");
    assert_eq!(claimed.id, first.id);
    finish(store, &claimed, Outcome::Exited(0), later(20_030)).await;

    // complete, error and killed all free the key.
    let mut previous = first.id.clone();
    for (outcome, state) in [
        (Outcome::Exited(0), RunState::Complete),
        (Outcome::Signalled, RunState::Error),
        (Outcome::Killed, RunState::Killed),
    ] {
        assert!(
            get(store, &previous).await.state.is_final(),
            "{previous} ended"
        );
        let mut next = run(&t, "j", same_args_reordered.clone(), 0);
        next.attempts = 1;
        next.priority = 100;
        enqueue_new(store, &next).await;
        let claimed = claim(store, "w2", later(30_000)).await.expect("claim");
        assert_eq!(claimed.id, next.id, "highest priority first");
        let ended = finish(store, &claimed, outcome, later(30_001)).await;
        assert_eq!(ended.state, state);
        previous = next.id;
    }
    enqueue_new(store, &run(&t, "j", args, 4)).await;
    drain(store).await;
}

/// Eight concurrent enqueues of the same job and arguments: exactly one is queued, the
/// others are refused naming it.
pub async fn concurrent_duplicate_enqueue_single_winner(store: &dyn Store) {
    for round in 0..3 {
        let t = tag();
        let runs: Vec<RunRecord> = (0..8)
            .map(|i| run(&t, "j", json!({"r": round}), i))
            .collect();
        let go = |i: usize| store.enqueue(&runs[i]);
        let results = tokio::join!(go(0), go(1), go(2), go(3), go(4), go(5), go(6), go(7));
        let results = [
            results.0, results.1, results.2, results.3, results.4, results.5, results.6, results.7,
        ]
        .map(|r| r.expect("enqueue"));
        let winners: Vec<&String> = results
            .iter()
            .filter_map(|r| match r {
                Enqueued::Queued(id) => Some(id),
                Enqueued::Duplicate(_) => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: one winner: {results:?}");
        let winner = winners[0].clone();
        for r in &results {
            if let Enqueued::Duplicate(id) = r {
                assert_eq!(id, &winner, "round {round}: refusals name the winner");
            }
        }
        let listed = store
            .list_runs(&RunFilter {
                project: Some(t),
                ..RunFilter::default()
            })
            .await
            .expect("list_runs");
        assert_eq!(ids(&listed, |r| &r.id), [winner], "round {round}");
    }
    drain(store).await;
}

/// Claims take the highest priority first, then the oldest; a run is not claimed before
/// its `not_before`. The claimed run is running: attempt + 1, worker, started, heartbeat.
pub async fn claim_order_priority_then_age(store: &dyn Store) {
    let t = tag();
    let mut runs = [
        run(&t, "a", json!({}), 1),
        run(&t, "b", json!({}), 3),
        run(&t, "c", json!({}), 2),
        run(&t, "d", json!({}), 0),
        run(&t, "e", json!({}), 0),
        run(&t, "f", json!({}), 4),
    ];
    runs[0].priority = 0;
    runs[1].priority = 5;
    runs[2].priority = 5;
    runs[3].priority = 9;
    runs[3].not_before = later(100);
    runs[4].priority = -1;
    runs[5].priority = 0;
    for r in &runs {
        enqueue_new(store, r).await;
    }
    let now = later(50);
    let mut order = Vec::new();
    while let Some(claimed) = claim(store, "w", now).await {
        assert_eq!(claimed.state, RunState::Running);
        assert_eq!(claimed.attempt, 1);
        assert_eq!(claimed.worker.as_deref(), Some("w"));
        assert_eq!((claimed.started, claimed.heartbeat), (Some(now), Some(now)));
        assert_eq!(
            claimed.history.last().map(|c| c.state),
            Some(RunState::Running)
        );
        assert_eq!(
            get(store, &claimed.id).await,
            claimed,
            "get_run shows the claim"
        );
        order.push(claimed.job.clone());
    }
    let job = |j: &str| format!("{t}.{j}");
    assert_eq!(order, [job("c"), job("b"), job("a"), job("f"), job("e")]);
    assert_eq!(
        claim(store, "w", later(100)).await.map(|r| r.job),
        Some(job("d")),
        "claimable from its not_before on"
    );
    drain(store).await;
}

/// Runs of a paused project are not claimed, nor any while everything is paused — unless
/// the run is forced.
pub async fn claim_honours_pauses(store: &dyn Store) {
    let t = tag();
    let (p1, p2) = (format!("{t}-p1"), format!("{t}-p2"));
    let a = run(&p1, "a", json!({}), 0);
    let b = run(&p2, "b", json!({}), 1);
    let mut forced = run(&p1, "forced", json!({}), 2);
    forced.force = true;
    for r in [&a, &b, &forced] {
        enqueue_new(store, r).await;
    }
    let now = later(10);
    let claim_paused = |paused: Paused| async move {
        store
            .claim_run("w", now, &paused)
            .await
            .expect("claim_run")
            .map(|r| r.id)
    };
    let all = Paused {
        all: true,
        projects: vec![],
    };
    assert_eq!(claim_paused(all.clone()).await, Some(forced.id.clone()));
    assert_eq!(
        claim_paused(all).await,
        None,
        "only forced runs while all paused"
    );
    let p1_paused = Paused {
        all: false,
        projects: vec![p1.clone()],
    };
    assert_eq!(claim_paused(p1_paused.clone()).await, Some(b.id.clone()));
    assert_eq!(claim_paused(p1_paused).await, None, "p1 is paused");
    assert_eq!(claim_paused(Paused::default()).await, Some(a.id.clone()));
    drain(store).await;
}

/// A run behind more paused ones than a claim reads at first (MongoDB: 101) is claimed.
pub async fn claim_looks_past_many_paused_runs(store: &dyn Store) {
    let t = tag();
    let (paused_project, open) = (format!("{t}-paused"), format!("{t}-open"));
    for i in 0..120 {
        enqueue_new(store, &run(&paused_project, "a", json!({ "i": i }), i)).await;
    }
    let last = run(&open, "b", json!({}), 200);
    enqueue_new(store, &last).await;
    let paused = Paused {
        all: false,
        projects: vec![paused_project],
    };
    let claimed = store
        .claim_run("w", later(1_000), &paused)
        .await
        .expect("claim_run")
        .map(|r| r.id);
    assert_eq!(claimed, Some(last.id));
    drain(store).await;
}

/// A job with `max_parallel` n has at most n runs running at once, across all workers;
/// other jobs' runs are claimed meanwhile.
/// A job with more slots than a claim probes before counting: all of them are used, and
/// never one more.
pub async fn max_parallel_many_slots(store: &dyn Store) {
    let t = tag();
    let runs: Vec<RunRecord> = (0..8)
        .map(|i| RunRecord {
            max_parallel: 6,
            ..run(&t, "six", json!({"i": i}), i)
        })
        .collect();
    for r in &runs {
        enqueue_new(store, r).await;
    }
    let now = later(100);
    let mut claimed = Vec::new();
    for i in 0..6 {
        let r = claim(store, &format!("w{i}"), now)
            .await
            .unwrap_or_else(|| panic!("slot {i} of 6 is free"));
        claimed.push(r);
    }
    assert_eq!(
        ids(&claimed, |r| &r.id),
        ids(&runs[..6], |r| &r.id),
        "oldest first"
    );
    assert_eq!(
        claim_id(store, "w7", now).await,
        None,
        "all six slots taken"
    );
    finish(store, &claimed[2], Outcome::Exited(0), later(200)).await;
    assert_eq!(
        claim_id(store, "w7", later(200)).await,
        Some(runs[6].id.clone()),
        "a freed slot is taken again"
    );
    assert_eq!(claim_id(store, "w8", later(200)).await, None);
    drain(store).await;
}

pub async fn max_parallel_limits_running_runs(store: &dyn Store) {
    let t = tag();
    let mut one = Vec::new();
    for i in 0..3 {
        let mut r = run(&t, "one", json!({"i": i}), i);
        r.priority = 10;
        one.push(r);
    }
    let mut two = Vec::new();
    for i in 0..3 {
        let mut r = run(&t, "two", json!({"i": i}), 10 + i);
        r.priority = 5;
        r.max_parallel = 2;
        two.push(r);
    }
    let other = run(&t, "other", json!({}), 20);
    for r in one.iter().chain(&two).chain([&other]) {
        enqueue_new(store, r).await;
    }
    let now = later(100);
    let mut claimed = Vec::new();
    for worker in ["w1", "w2", "w3", "w4", "w5"] {
        match claim(store, worker, now).await {
            Some(r) => claimed.push(r.id),
            None => break,
        }
    }
    assert_eq!(
        claimed,
        [
            one[0].id.clone(),
            two[0].id.clone(),
            two[1].id.clone(),
            other.id.clone()
        ],
        "one of job `one`, two of job `two`, then the other job"
    );
    assert_eq!(claim_id(store, "w6", now).await, None);
    drain(store).await;
}

/// Ending a try frees its job's slot: the job's next run becomes claimable — after a
/// finish and after a zombie take-back alike.
pub async fn finish_releases_the_slot(store: &dyn Store) {
    let t = tag();
    let runs: Vec<RunRecord> = (0..3).map(|i| run(&t, "j", json!({"i": i}), i)).collect();
    for r in &runs {
        enqueue_new(store, r).await;
    }
    let now = later(100);
    let first = claim(store, "w1", now).await.expect("claim");
    assert_eq!(first.id, runs[0].id);
    assert_eq!(
        claim_id(store, "w2", now).await,
        None,
        "the job's slot is taken"
    );
    finish(store, &first, Outcome::Exited(0), later(200)).await;
    let second = claim(store, "w2", later(200))
        .await
        .expect("claim after finish");
    assert_eq!(second.id, runs[1].id);
    assert_eq!(claim_id(store, "w1", later(200)).await, None);
    let taken = store
        .take_back_zombies(later(200 + 61_000), secs(60), 3)
        .await
        .expect("take_back_zombies");
    assert_eq!(ids(&taken, |r| &r.id), vec![second.id.clone()]);
    // The zombie is pending again at once and, older than the third run, takes the slot.
    let again = claim(store, "w3", later(200 + 61_000))
        .await
        .expect("claim");
    assert_eq!((again.id.as_str(), again.attempt), (runs[1].id.as_str(), 1));
    assert_eq!(claim_id(store, "w1", later(200 + 61_000)).await, None);
    finish(store, &again, Outcome::Exited(0), later(200 + 62_000)).await;
    let third = claim(store, "w3", later(200 + 62_000))
        .await
        .expect("claim");
    assert_eq!(third.id, runs[2].id);
    drain(store).await;
}

/// Only the worker that claimed a run can end it, once, while it runs.
pub async fn finish_only_by_its_worker(store: &dyn Store) {
    let t = tag();
    let r = run(&t, "j", json!({}), 0);
    enqueue_new(store, &r).await;
    let end = r.end(Outcome::Exited(0), Some(0), later(5));
    assert_eq!(
        store.finish_run(&r.id, "w1", &end).await.expect("finish"),
        None,
        "a pending run is not finished"
    );
    let claimed = claim(store, "w1", later(1)).await.expect("claim");
    let mut bogus = claimed.end(Outcome::Exited(0), Some(0), later(5));
    bogus.next.state = RunState::Running;
    let err = store
        .finish_run(&r.id, "w1", &bogus)
        .await
        .expect_err("a try cannot end running");
    assert!(
        matches!(err, coco::store::StoreError::Invalid { .. }),
        "{err:?}"
    );
    let end = claimed.end(Outcome::Exited(3), Some(3), later(5));
    assert_eq!(
        store.finish_run(&r.id, "w2", &end).await.expect("finish"),
        None,
        "another worker's run"
    );
    assert_eq!(
        store
            .finish_run(&format!("{t}-missing"), "w1", &end)
            .await
            .expect("finish"),
        None
    );
    let ended = store
        .finish_run(&r.id, "w1", &end)
        .await
        .expect("finish")
        .expect("its own worker ends it");
    assert_eq!(ended.state, RunState::Failed);
    assert_eq!(ended.exit_code, Some(3));
    assert_eq!(ended.reason_text().as_deref(), Some("exit"));
    assert_eq!(ended.finished, Some(later(5)));
    assert_eq!(ended.not_before, later(10_005));
    assert_eq!(get(store, &r.id).await, ended);
    assert_eq!(
        store.finish_run(&r.id, "w1", &end).await.expect("finish"),
        None,
        "ended once only"
    );
    drain(store).await;
}

/// Eight concurrent claimers over 100 runs (several jobs, ample `max_parallel`): every
/// run is claimed exactly once.
pub async fn concurrent_claims_each_run_once(store: &dyn Store) {
    const N: i64 = 100;
    let t = tag();
    for i in 0..N {
        let mut r = run(&t, &format!("j{}", i % 4), json!({"i": i}), i);
        r.max_parallel = 100;
        r.priority = (i % 3) as i32;
        enqueue_new(store, &r).await;
    }
    let now = later(1_000);
    let claimer = |worker| claim_all(store, worker, now);
    let got = tokio::join!(
        claimer("w0"),
        claimer("w1"),
        claimer("w2"),
        claimer("w3"),
        claimer("w4"),
        claimer("w5"),
        claimer("w6"),
        claimer("w7")
    );
    let all: Vec<String> = [got.0, got.1, got.2, got.3, got.4, got.5, got.6, got.7]
        .into_iter()
        .flatten()
        .collect();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), N as usize, "claims made");
    assert_eq!(unique.len(), N as usize, "each run claimed once");
    let running = store
        .list_runs(&RunFilter {
            state: Some(RunState::Running),
            project: Some(t),
            ..RunFilter::default()
        })
        .await
        .expect("list_runs");
    assert_eq!(running.len(), N as usize);
    assert!(running.iter().all(|r| r.attempt == 1));
    drain(store).await;
}

/// Running runs whose heartbeat is older than `zombie_after` are taken back exactly once
/// (two reapers at once): pending again at once without spending an attempt (one attempt
/// only, too), but errored at the `max_lost`th loss in a row; their worker can no longer
/// end them.
pub async fn zombies_taken_back_once(store: &dyn Store) {
    let t = tag();
    let mut retried = run(&t, "retried", json!({}), 0);
    retried.attempts = 1;
    let mut errored = run(&t, "errored", json!({}), 1);
    errored.lost = 2;
    let alive = run(&t, "alive", json!({}), 2);
    for r in [&retried, &errored, &alive] {
        enqueue_new(store, r).await;
    }
    let claimed_at = later(100);
    let mut claimed = Vec::new();
    for worker in ["w1", "w2", "w3"] {
        claimed.push(claim(store, worker, claimed_at).await.expect("claim"));
    }
    let alive_worker = claimed
        .iter()
        .find(|r| r.id == alive.id)
        .and_then(|r| r.worker.clone())
        .expect("alive claimed");
    let beat = store
        .heartbeat(
            &alive_worker,
            std::slice::from_ref(&alive.id),
            later(50_000),
        )
        .await
        .expect("heartbeat");
    assert_eq!(beat, vec![alive.id.clone()]);

    let now = later(100 + 70_000);
    let (a, b) = tokio::join!(
        store.take_back_zombies(now, secs(60), 3),
        store.take_back_zombies(now, secs(60), 3)
    );
    let mut taken: Vec<RunRecord> = a.expect("reaper a");
    taken.extend(b.expect("reaper b"));
    taken.sort_by(|x, y| x.job.cmp(&y.job));
    assert_eq!(
        ids(&taken, |r| &r.id),
        [errored.id.clone(), retried.id.clone()],
        "each zombie taken back once, the live run not at all"
    );
    let (e, r) = (&taken[0], &taken[1]);
    assert_eq!(
        (e.state, e.reason_text().as_deref(), e.attempt, e.lost),
        (RunState::Error, Some("lost 3 times with its worker"), 1, 3)
    );
    assert_eq!(
        (r.state, r.reason_text().as_deref(), r.attempt, r.lost),
        (RunState::Pending, Some("zombie"), 0, 1)
    );
    assert_eq!(r.not_before, now);
    assert_eq!(r.finished, Some(now));
    let loss = r.history.last().expect("history");
    assert_eq!((loss.state, loss.at), (RunState::Pending, now));
    assert!(
        loss.note
            .as_deref()
            .is_some_and(|note| note.contains("loss 1 of 3")),
        "{loss:?}"
    );
    assert_eq!(get(store, &r.id).await, *r);
    assert_eq!(get(store, &alive.id).await.state, RunState::Running);

    // The lost worker can neither heartbeat nor end it any more.
    let lost = claimed
        .iter()
        .find(|c| c.id == retried.id)
        .expect("claimed");
    let worker = lost.worker.as_deref().expect("worker");
    assert!(
        store
            .heartbeat(worker, std::slice::from_ref(&retried.id), now)
            .await
            .expect("heartbeat")
            .is_empty()
    );
    let end = lost.end(Outcome::Exited(0), Some(0), now);
    assert_eq!(
        store
            .finish_run(&lost.id, worker, &end)
            .await
            .expect("finish"),
        None
    );
    assert!(
        !store
            .put_output(&lost.id, u64::from(lost.claims), "stalled worker\n")
            .await
            .expect("put_output"),
        "nor write its output"
    );
    assert_eq!(store.get_output(&lost.id).await.unwrap(), None);
    // Nothing left to take back; the retry is claimed at once, on its first attempt again.
    assert!(
        store
            .take_back_zombies(now, secs(60), 3)
            .await
            .expect("reap")
            .is_empty()
    );
    let again = claim(store, "w4", now).await.expect("retry claimed");
    assert_eq!((again.id.as_str(), again.attempt), (retried.id.as_str(), 1));
    assert_eq!(again.claims, lost.claims + 1);
    assert!(
        store
            .put_output(&again.id, u64::from(again.claims), "retry\n")
            .await
            .expect("put_output"),
        "the retry writes its output"
    );
    // A try that ends otherwise resets the losses.
    let ended = finish(store, &again, Outcome::Exited(0), now).await;
    assert_eq!((ended.state, ended.lost), (RunState::Complete, 0));
    // The errored run freed its dedupe key.
    enqueue_new(store, &run(&t, "errored", json!({}), 3)).await;
    drain(store).await;
}

/// A heartbeat keeps a running run from being taken back; only its own worker's counts,
/// and `get_run` shows the latest.
pub async fn heartbeat_keeps_a_run_alive(store: &dyn Store) {
    let t = tag();
    let r = run(&t, "j", json!({}), 0);
    enqueue_new(store, &r).await;
    let claimed = claim(store, "w1", later(0)).await.expect("claim");
    let beat = |worker: &'static str, ms: i64| {
        let ids = vec![r.id.clone(), format!("{t}-missing")];
        async move {
            store
                .heartbeat(worker, &ids, later(ms))
                .await
                .expect("heartbeat")
        }
    };
    assert_eq!(beat("w1", 50_000).await, vec![r.id.clone()]);
    assert_eq!(get(store, &r.id).await.heartbeat, Some(later(50_000)));
    assert!(beat("w2", 100_000).await.is_empty(), "not w2's run");
    let reap = |ms: i64| async move {
        store
            .take_back_zombies(later(ms), secs(60), 3)
            .await
            .expect("take_back_zombies")
    };
    assert!(reap(100_000).await.is_empty(), "heartbeat 50 s ago");
    assert_eq!(get(store, &r.id).await.state, RunState::Running);
    assert_eq!(beat("w1", 150_000).await, vec![r.id.clone()]);
    assert!(reap(200_000).await.is_empty(), "heartbeat 50 s ago");
    let taken = reap(210_001).await;
    assert_eq!(
        ids(&taken, |r| &r.id),
        vec![claimed.id.clone()],
        "silent for 60 s"
    );
    assert_eq!(
        taken[0].heartbeat,
        Some(later(150_000)),
        "last heartbeat kept"
    );
    drain(store).await;
}

/// `list_runs` filters by state, project and job (exactly), newest first, up to a limit.
pub async fn runs_listed_by_state_and_project(store: &dyn Store) {
    let t = tag();
    let (p1, p2, prefix) = (format!("{t}-p1"), format!("{t}-p2"), format!("{t}-p"));
    let runs = [
        run(&p1, "a", json!({}), 3),
        run(&p1, "b", json!({}), 1),
        run(&p2, "a", json!({}), 2),
        run(&p1, "c", json!({}), 4),
        run(&prefix, "a", json!({}), 5),
    ];
    for r in &runs {
        enqueue_new(store, r).await;
    }
    let claimed = claim(store, "w", later(1)).await.expect("claim");
    assert_eq!(claimed.id, runs[1].id, "the oldest");
    let mine = &t;
    let list = |state: Option<RunState>, project: Option<&str>, limit: Option<usize>| {
        let filter = RunFilter {
            state,
            project: project.map(str::to_string),
            limit,
            ..RunFilter::default()
        };
        async move {
            let listed = store.list_runs(&filter).await.expect("list_runs");
            if let Some(state) = state {
                assert!(listed.iter().all(|r| r.state == state), "{filter:?}");
            }
            listed
                .into_iter()
                .filter(|r| r.project.starts_with(mine))
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let id = |i: usize| runs[i].id.clone();
    assert_eq!(list(None, Some(&p1), None).await, [id(3), id(0), id(1)]);
    assert_eq!(list(None, Some(&p1), Some(2)).await, [id(3), id(0)]);
    assert_eq!(list(None, Some(&p1), Some(0)).await, Vec::<String>::new());
    assert_eq!(
        list(Some(RunState::Pending), Some(&p1), None).await,
        [id(3), id(0)]
    );
    assert_eq!(
        list(Some(RunState::Running), Some(&p1), None).await,
        [id(1)]
    );
    assert_eq!(list(Some(RunState::Running), None, None).await, [id(1)]);
    assert_eq!(
        list(Some(RunState::Pending), None, None).await,
        [id(4), id(3), id(0), id(2)]
    );
    assert_eq!(
        list(Some(RunState::Complete), Some(&p1), None).await,
        Vec::<String>::new()
    );
    assert_eq!(list(None, Some(&p2), None).await, [id(2)]);
    assert_eq!(
        list(None, Some(&format!("{t}-none")), None).await,
        Vec::<String>::new()
    );
    // Counts, where the filter pins this case's runs (a project or a job of its own).
    let count = |state: Option<RunState>, project: Option<&str>, job: Option<&str>| {
        let filter = RunFilter {
            state,
            project: project.map(str::to_string),
            job: job.map(str::to_string),
            limit: Some(1),
            before: None,
        };
        async move { store.count_runs(&filter).await.expect("count_runs") }
    };
    assert_eq!(
        count(None, Some(&p1), None).await,
        3,
        "the limit is ignored"
    );
    assert_eq!(count(Some(RunState::Pending), Some(&p1), None).await, 2);
    assert_eq!(count(Some(RunState::Running), Some(&p1), None).await, 1);
    assert_eq!(count(Some(RunState::Complete), Some(&p1), None).await, 0);
    assert_eq!(count(None, None, Some(&runs[2].job)).await, 1);
    assert_eq!(
        count(Some(RunState::Running), None, Some(&runs[2].job)).await,
        0
    );
    assert_eq!(count(None, Some(&format!("{t}-none")), None).await, 0);
    let by_job = |job: String, limit: Option<usize>| async move {
        let filter = RunFilter {
            job: Some(job),
            limit,
            ..RunFilter::default()
        };
        let listed = store.list_runs(&filter).await.expect("list_runs by job");
        listed.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(by_job(runs[0].job.clone(), None).await, [id(0)]);
    assert_eq!(by_job(runs[2].job.clone(), Some(1)).await, [id(2)]);
    assert_eq!(
        by_job(format!("{p1}.none"), None).await,
        Vec::<String>::new()
    );
    drain(store).await;
}

/// A worker's report (pid, progress) shows in `get_run` and `list_runs`, refreshes the
/// heartbeat, and is kept when the try ends; a run not the worker's is refused.
pub async fn report_run_shows_progress(store: &dyn Store) {
    let t = tag();
    let r = run(&t, "j", json!({}), 0);
    enqueue_new(store, &r).await;
    let report = |worker: &'static str, report: LiveReport, ms: i64| {
        let id = r.id.clone();
        async move {
            store
                .report_run(&id, worker, &report, later(ms))
                .await
                .expect("report_run")
        }
    };
    let pid = LiveReport {
        pid: Some(4242),
        ..LiveReport::default()
    };
    assert!(!report("w1", pid.clone(), 1).await, "not running yet");
    let claimed = claim(store, "w1", later(0)).await.expect("claim");
    assert!(report("w1", pid, 10).await);
    assert!(!report("w2", LiveReport::default(), 10).await, "not w2's");
    let progress = LiveReport {
        pid: None,
        progress: Some(0.25),
        progress_message: Some("a quarter".into()),
    };
    assert!(report("w1", progress, 20).await);
    let got = get(store, &r.id).await;
    assert_eq!(
        (
            got.pid,
            got.progress,
            got.progress_message.as_deref(),
            got.heartbeat
        ),
        (Some(4242), Some(0.25), Some("a quarter"), Some(later(20)))
    );
    let listed = store
        .list_runs(&RunFilter {
            project: Some(t.clone()),
            ..RunFilter::default()
        })
        .await
        .expect("list_runs");
    assert_eq!(listed, vec![got.clone()]);
    let ended = finish(store, &claimed, Outcome::Exited(0), later(30)).await;
    assert_eq!(
        (ended.pid, ended.progress, ended.progress_message.as_deref()),
        (Some(4242), Some(0.25), Some("a quarter")),
        "kept at the end"
    );
    assert_eq!(get(store, &r.id).await, ended);
    assert!(!report("w1", LiveReport::default(), 40).await, "ended");
    drain(store).await;
}

/// A run's output is kept by id, replaced by the next `put_output` under the same or a
/// higher fence (never a lower one), and `None` when never put (or put empty).
pub async fn output_replaced_and_read_back(store: &dyn Store) {
    let id = ulid::Ulid::new().to_string();
    assert_eq!(store.get_output(&id).await.unwrap(), None);
    assert!(store.put_output(&id, 1, "first\n").await.unwrap());
    assert_eq!(
        store.get_output(&id).await.unwrap().as_deref(),
        Some("first\n")
    );
    let long = "é line\n".repeat(10_000);
    assert!(store.put_output(&id, 1, &long).await.unwrap());
    assert_eq!(store.get_output(&id).await.unwrap(), Some(long.clone()));
    assert!(store.put_output(&id, 2, "second try\n").await.unwrap());
    assert!(
        !store.put_output(&id, 1, "stale\n").await.unwrap(),
        "a lower fence is refused"
    );
    assert_eq!(
        store.get_output(&id).await.unwrap().as_deref(),
        Some("second try\n")
    );
    assert!(store.put_output(&id, 2, "").await.unwrap());
    assert_eq!(store.get_output(&id).await.unwrap(), None);
}

/// `cancel_run` with `cancel` at `now`, expecting it done.
async fn cancelled(store: &dyn Store, id: &str, cancel: Cancel, now: DateTime<Utc>) -> RunRecord {
    match store.cancel_run(id, cancel, now).await.expect("cancel_run") {
        Cancelled::Done(run) => run,
        other => panic!("{cancel:?} {id}: {other:?}"),
    }
}

/// Kill: a waiting run becomes `killed` at once (and no longer blocks the same work); a
/// running run's try ends `killed` and its worker can neither finish nor heartbeat it any
/// more; a final run is refused; an unknown id is missing.
pub async fn kill_ends_waiting_and_running_runs(store: &dyn Store) {
    let t = tag();
    let waiting = run(&t, "waiting", json!({}), 0);
    let busy = run(&t, "busy", json!({}), 1);
    enqueue_new(store, &waiting).await;
    enqueue_new(store, &busy).await;
    let killed = cancelled(store, &waiting.id, Cancel::Kill, later(5)).await;
    assert_eq!(killed.state, RunState::Killed);
    assert_eq!(killed.reason_text().as_deref(), Some("killed"));
    assert_eq!(killed.finished, Some(later(5)));
    assert_eq!(killed.attempt, 0, "it never ran");
    assert_eq!(get(store, &waiting.id).await, killed, "as stored");
    let again = run(&t, "waiting", json!({}), 2);
    enqueue_new(store, &again).await;

    let claimed = loop {
        let r = claim(store, "w1", later(10)).await.expect("a run to claim");
        if r.id == busy.id {
            break r;
        }
        finish(store, &r, Outcome::Exited(0), later(11)).await;
    };
    let killed = cancelled(store, &busy.id, Cancel::Kill, later(20)).await;
    assert_eq!(killed.state, RunState::Killed);
    assert_eq!((killed.attempt, killed.worker.as_deref()), (1, Some("w1")));
    let states: Vec<RunState> = killed.history.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [RunState::Pending, RunState::Running, RunState::Killed]
    );
    assert_eq!(get(store, &busy.id).await, killed, "as stored");
    assert!(
        store
            .heartbeat("w1", std::slice::from_ref(&busy.id), later(21))
            .await
            .expect("heartbeat")
            .is_empty(),
        "the worker learns it is no longer its run"
    );
    let end = claimed.end(Outcome::Exited(0), Some(0), later(22));
    assert_eq!(
        store
            .finish_run(&busy.id, "w1", &end)
            .await
            .expect("finish"),
        None,
        "a killed run is not finished again"
    );
    match store
        .cancel_run(&busy.id, Cancel::Kill, later(30))
        .await
        .expect("cancel")
    {
        Cancelled::Refused(run) => assert_eq!(run.state, RunState::Killed),
        other => panic!("a final run is refused: {other:?}"),
    }
    assert_eq!(
        store
            .cancel_run(&format!("{t}-missing"), Cancel::Kill, later(30))
            .await
            .expect("cancel"),
        Cancelled::Missing
    );
    drain(store).await;
}

/// Remove: pending, failed and deferred runs become `removed` (kept, final, never claimed,
/// not blocking the same work); running and final runs are refused.
pub async fn remove_takes_only_waiting_runs(store: &dyn Store) {
    let t = tag();
    let pending = run(&t, "pending", json!({}), 0);
    let mut failing = run(&t, "failing", json!({}), 1);
    failing.attempts = 3;
    failing.retry_delay_ms = 3_600_000;
    enqueue_new(store, &pending).await;
    enqueue_new(store, &failing).await;
    let removed = cancelled(store, &pending.id, Cancel::Remove, later(5)).await;
    assert_eq!(removed.state, RunState::Removed);
    assert_eq!(removed.reason_text().as_deref(), Some("removed"));
    assert!(removed.state.is_final());

    let claimed = claim(store, "w1", later(10)).await.expect("claim");
    assert_eq!(claimed.id, failing.id, "the removed run is not claimed");
    match store
        .cancel_run(&failing.id, Cancel::Remove, later(11))
        .await
        .expect("cancel")
    {
        Cancelled::Refused(run) => assert_eq!(run.state, RunState::Running),
        other => panic!("a running run is not removed: {other:?}"),
    }
    let failed = finish(store, &claimed, Outcome::Exited(1), later(12)).await;
    assert_eq!(failed.state, RunState::Failed);
    let removed = cancelled(store, &failing.id, Cancel::Remove, later(13)).await;
    assert_eq!((removed.state, removed.attempt), (RunState::Removed, 1));
    match store
        .cancel_run(&failing.id, Cancel::Remove, later(14))
        .await
        .expect("cancel")
    {
        Cancelled::Refused(run) => assert_eq!(run.state, RunState::Removed),
        other => panic!("a removed run is not removed again: {other:?}"),
    }
    for (job, ms) in [("pending", 20), ("failing", 21)] {
        enqueue_new(store, &run(&t, job, json!({}), ms)).await;
    }
    let removed_only = store
        .list_runs(&RunFilter {
            state: Some(RunState::Removed),
            project: Some(t.clone()),
            ..RunFilter::default()
        })
        .await
        .expect("list_runs");
    assert_eq!(removed_only.len(), 2, "removed runs are kept and listed");
    drain(store).await;
}

/// Kills racing four claimers over the same runs: each run is claimed at most once and
/// ends `killed` exactly once, with a history that never runs twice.
pub async fn kill_racing_claims_changes_each_run_once(store: &dyn Store) {
    const N: i64 = 40;
    let t = tag();
    let mut ids = Vec::new();
    for i in 0..N {
        let mut r = run(&t, &format!("j{}", i % 4), json!({"i": i}), i);
        r.max_parallel = 100;
        enqueue_new(store, &r).await;
        ids.push(r.id);
    }
    let now = later(1_000);
    let claimer = |worker| claim_all(store, worker, now);
    let killer = async {
        let mut done = 0;
        for id in &ids {
            if let Cancelled::Done(_) = store.cancel_run(id, Cancel::Kill, now).await.expect("kill")
            {
                done += 1;
            }
        }
        done
    };
    let (a, b, c, d, killed) = tokio::join!(
        claimer("w0"),
        claimer("w1"),
        claimer("w2"),
        claimer("w3"),
        killer
    );
    assert_eq!(killed, N, "every run was killed, waiting or running");
    let claimed: Vec<String> = [a, b, c, d].into_iter().flatten().collect();
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(unique.len(), claimed.len(), "no run claimed twice");
    for id in &ids {
        let r = get(store, id).await;
        assert_eq!(r.state, RunState::Killed, "{id}");
        let runs = r
            .history
            .iter()
            .filter(|c| c.state == RunState::Running)
            .count();
        let kills = r
            .history
            .iter()
            .filter(|c| c.state == RunState::Killed)
            .count();
        assert_eq!(kills, 1, "{id}: {:?}", r.history);
        assert_eq!(
            runs,
            usize::from(claimed.contains(id)),
            "{id}: {:?}",
            r.history
        );
    }
    drain(store).await;
}

/// A try handed back at its worker's shutdown leaves the run pending, claimable at once,
/// still blocking the same work, with the attempt given back.
pub async fn handed_back_run_is_pending_with_its_attempt(store: &dyn Store) {
    let t = tag();
    let r = run(&t, "j", json!({}), 0);
    enqueue_new(store, &r).await;
    let claimed = claim(store, "w1", later(10)).await.expect("claim");
    assert_eq!(claimed.id, r.id);
    let back = finish(store, &claimed, Outcome::HandedBack, later(20)).await;
    assert_eq!(back.state, RunState::Pending);
    assert_eq!(
        (back.attempt, back.reason_text().as_deref()),
        (0, Some("shutdown"))
    );
    assert_eq!(back.not_before, later(20));
    assert!(matches!(
        store.enqueue(&run(&t, "j", json!({}), 30)).await.expect("enqueue"),
        Enqueued::Duplicate(id) if id == r.id
    ));
    let again = claim(store, "w2", later(20)).await.expect("claimed again");
    assert_eq!((again.id.as_str(), again.attempt), (r.id.as_str(), 1));
    drain(store).await;
}

/// A run whose worker is lost is pending again at once, its attempt given back (one
/// attempt only): the `max_lost`th loss in a row ends it as `error`, each loss in its
/// history, its dedupe key freed.
pub async fn a_run_losing_its_worker_max_lost_times_in_a_row_errors(store: &dyn Store) {
    let t = tag();
    let mut r = run(&t, "j", json!({}), 0);
    r.attempts = 1;
    enqueue_new(store, &r).await;
    let mut now = later(100);
    for loss in 1..=3u32 {
        let claimed = claim(store, "w1", now).await.expect("claim");
        assert_eq!((claimed.id.as_str(), claimed.attempt), (r.id.as_str(), 1));
        now += chrono::TimeDelta::seconds(61);
        let taken = store
            .take_back_zombies(now, secs(60), 3)
            .await
            .expect("take_back_zombies");
        assert_eq!(ids(&taken, |r| &r.id), vec![r.id.clone()]);
        let back = &taken[0];
        assert_eq!(back.lost, loss);
        assert_eq!(get(store, &r.id).await, *back);
        if loss < 3 {
            assert_eq!(
                (
                    back.state,
                    back.attempt,
                    back.not_before,
                    back.reason_text().as_deref()
                ),
                (RunState::Pending, 0, now, Some("zombie"))
            );
        } else {
            assert_eq!(
                (back.state, back.attempt, back.reason_text().as_deref()),
                (RunState::Error, 1, Some("lost 3 times with its worker"))
            );
        }
    }
    let history = get(store, &r.id).await.history;
    let notes: Vec<String> = history
        .iter()
        .filter(|c| {
            c.note
                .as_deref()
                .is_some_and(|n| n.starts_with("lost with worker w1"))
        })
        .map(|c| format!("{} {}", c.state, c.note.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(notes.len(), 3, "{history:?}");
    assert!(notes[0].starts_with("pending ") && notes[0].contains("loss 1 of 3"));
    assert!(notes[1].starts_with("pending ") && notes[1].contains("loss 2 of 3"));
    assert!(notes[2].starts_with("error ") && notes[2].contains("loss 3 of 3"));
    // A smaller max_lost ends a run at its first loss.
    let other = run(&t, "k", json!({}), 1);
    enqueue_new(store, &other).await;
    claim(store, "w2", now).await.expect("claim");
    let taken = store
        .take_back_zombies(now + chrono::TimeDelta::seconds(61), secs(60), 1)
        .await
        .expect("take_back_zombies");
    assert_eq!(
        taken.iter().map(|r| r.reason_text()).collect::<Vec<_>>(),
        [Some("lost 1 time with its worker".to_owned())]
    );
    enqueue_new(store, &run(&t, "j", json!({}), 2)).await;
    drain(store).await;
}

/// Deferrals (exit 75) wait `defer_delay`, doubling with each in a row, the last wait cut
/// to the `defer_max` deadline; a deferral at the deadline ends the run as `error`. What
/// the series needs is stored with the run.
pub async fn deferrals_back_off_and_end_after_defer_max(store: &dyn Store) {
    let t = tag();
    let definition = Job {
        defer_delay: HumanDuration(secs(10)),
        defer_max: HumanDuration(secs(60)),
        ..Job::with_command(&["true"])
    };
    let r = new_run(
        &definition,
        NewRun::new(&format!("{t}.j"), &t, json!({}), later(0)),
    );
    assert_eq!((r.defer_delay_ms, r.defer_max_ms), (10_000, 60_000));
    enqueue_new(store, &r).await;
    let mut now = later(1_000);
    let mut waits = Vec::new();
    loop {
        let claimed = claim(store, "w1", now).await.expect("claim");
        assert_eq!((claimed.id.as_str(), claimed.attempt), (r.id.as_str(), 1));
        let ended = finish(store, &claimed, Outcome::Deferred, now).await;
        assert_eq!(get(store, &r.id).await, ended);
        if ended.state == RunState::Error {
            assert_eq!(
                ended.reason_text().as_deref(),
                Some("deferred for longer than defer_max (1m)")
            );
            break;
        }
        assert_eq!((ended.state, ended.attempt), (RunState::Deferred, 0));
        assert_eq!(ended.deferred_since, Some(later(1_000)));
        assert_eq!(ended.deferrals as usize, waits.len() + 1);
        waits.push((ended.not_before - now).num_seconds());
        assert_eq!(
            claim_id(
                store,
                "w1",
                ended.not_before - chrono::TimeDelta::milliseconds(1)
            )
            .await,
            None,
            "not claimed before its wait is over"
        );
        now = ended.not_before;
    }
    // 1 s + 10 + 20 = 31 s; 40 would pass the deadline at 61 s: cut to 30.
    assert_eq!(waits, [10, 20, 30]);
    // A try that ends otherwise starts the next series afresh.
    let again = new_run(
        &definition,
        NewRun::new(&format!("{t}.j"), &t, json!({}), later(2)),
    );
    enqueue_new(store, &again).await;
    let claimed = claim(store, "w1", now).await.expect("claim");
    let deferred = finish(store, &claimed, Outcome::Deferred, now).await;
    let now = deferred.not_before;
    let claimed = claim(store, "w1", now).await.expect("claim");
    let failed = finish(store, &claimed, Outcome::Exited(1), now).await;
    assert_eq!(
        (failed.state, failed.deferrals, failed.deferred_since),
        (RunState::Error, 0, None)
    );
    drain(store).await;
}

/// However often a run changes state, its stored history keeps its first and its latest
/// entries, and counts what it folded away.
pub async fn history_is_bounded_and_counts_what_it_folds(store: &dyn Store) {
    use coco::queue::history;
    let t = tag();
    let mut r = run(&t, "j", json!({}), 0);
    r.attempts = 1_000;
    r.retry_delay_ms = 0;
    enqueue_new(store, &r).await;
    let tries = 40;
    let mut last = None;
    for i in 0..tries {
        let now = later(1_000 + i);
        let claimed = claim(store, "w1", now).await.expect("claim");
        last = Some(finish(store, &claimed, Outcome::Exited(1), now).await);
    }
    let stored = get(store, &r.id).await;
    assert_eq!(Some(&stored), last.as_ref());
    // pending, then a running and a failed entry per try.
    let entries = 1 + 2 * tries as usize;
    assert_eq!(stored.history.len(), history::MAX);
    assert_eq!(stored.history_folded, (entries - history::MAX) as u64);
    assert_eq!(stored.history[0].state, RunState::Pending);
    assert_eq!(stored.history[1].note.as_deref(), Some("attempt 1 on w1"));
    let latest = &stored.history[history::MAX - 2];
    assert_eq!(
        latest.note.as_deref(),
        Some(format!("attempt {tries} on w1").as_str())
    );
    assert_eq!(stored.attempt, tries as u32);
    drain(store).await;
}

/// Pauses (everything, or projects one by one) and the halt instant read back as set.
pub async fn pauses_and_halt_round_trip(store: &dyn Store) {
    let t = tag();
    let (a, b) = (format!("{t}-a"), format!("{t}-b"));
    store.set_paused(Some(&b), true).await.expect("pause b");
    store.set_paused(Some(&a), true).await.expect("pause a");
    store
        .set_paused(Some(&a), true)
        .await
        .expect("pause a again");
    store.set_paused(None, true).await.expect("pause all");
    let control = store.control().await.expect("control");
    assert!(control.paused_all);
    let mine: Vec<&String> = control
        .paused_projects
        .iter()
        .filter(|p| p.starts_with(&t))
        .collect();
    assert_eq!(mine, [&a, &b], "sorted, once each");
    store.set_paused(None, false).await.expect("resume all");
    let control = store.control().await.expect("control");
    assert!(!control.paused_all);
    assert!(control.paused_projects.contains(&a), "projects stay paused");
    store.set_paused(Some(&a), false).await.expect("resume a");
    store.set_paused(Some(&b), false).await.expect("resume b");
    store
        .set_paused(Some(&b), false)
        .await
        .expect("resume b again");
    let control = store.control().await.expect("control");
    assert!(!control.paused_projects.iter().any(|p| p.starts_with(&t)));
    assert_eq!(
        control.paused(),
        Paused {
            all: false,
            projects: control.paused_projects.clone()
        }
    );

    let halt = later(50);
    store.halt(halt).await.expect("halt");
    let control = store.control().await.expect("control");
    assert_eq!(control.halt_before, Some(halt));
    assert!(control.halts(later(49)), "started before: stops");
    assert!(!control.halts(later(50)), "started at or after: goes on");
    assert!(!Control::default().halts(later(0)));
}

/// Worker and daemon records are replaced by name, listed sorted, and removed.
pub async fn members_recorded_listed_and_forgotten(store: &dyn Store) {
    let t = tag();
    let member = |name: &str, beat: i64| MemberRecord {
        name: format!("{t}-{name}"),
        kind: MemberKind::Worker,
        host: "host".into(),
        pid: 42,
        started: later(0),
        heartbeat: later(beat),
        slots: 4,
        running: vec![format!("{t}-r1"), format!("{t}-r2")],
        holding: None,
        version: "1.2.3".into(),
        lease_ms: 10_000,
        apps: Vec::new(),
    };
    store.put_member(&member("b", 1)).await.expect("put");
    store.put_member(&member("a", 1)).await.expect("put");
    let updated = MemberRecord {
        running: vec![],
        holding: Some("paused".into()),
        ..member("b", 2)
    };
    store.put_member(&updated).await.expect("replace");
    let mine = |all: Vec<MemberRecord>| -> Vec<MemberRecord> {
        all.into_iter().filter(|m| m.name.starts_with(&t)).collect()
    };
    assert_eq!(
        mine(store.list_members().await.expect("list")),
        [member("a", 1), updated.clone()]
    );
    store
        .remove_member(&format!("{t}-a"))
        .await
        .expect("remove");
    store
        .remove_member(&format!("{t}-a"))
        .await
        .expect("remove again");
    assert_eq!(mine(store.list_members().await.expect("list")), [updated]);
}

/// A try's end carries what was not reported yet (pid, progress): the finished run has it;
/// what it leaves out stays as reported.
pub async fn finish_keeps_the_last_report(store: &dyn Store) {
    let t = tag();
    let r = run(&t, "j", json!({}), 0);
    enqueue_new(store, &r).await;
    let claimed = claim(store, "w1", later(10)).await.expect("claim");
    let reported = LiveReport {
        progress_message: Some("half".into()),
        ..LiveReport::default()
    };
    assert!(
        store
            .report_run(&r.id, "w1", &reported, later(11))
            .await
            .expect("report")
    );
    let mut end = claimed.end(Outcome::Exited(0), Some(0), later(20));
    end.report = LiveReport {
        pid: Some(4242),
        progress: Some(1.0),
        progress_message: None,
    };
    let done = store
        .finish_run(&r.id, "w1", &end)
        .await
        .expect("finish")
        .expect("ours");
    assert_eq!(
        (done.pid, done.progress, done.progress_message.as_deref()),
        (Some(4242), Some(1.0), Some("half"))
    );
    assert_eq!(get(store, &r.id).await, done, "as stored");
    drain(store).await;
}

/// What a worker reads to start a run: the project as stored but its `jobs` emptied (each
/// job is read on its own), the job as stored.
pub async fn a_runs_project_is_read_without_its_jobs(store: &dyn Store) {
    let t = tag();
    let (p, j) = (project(&t, 7), job(&t, "j", 7));
    store.put_project(&p).await.expect("put_project");
    store.put_job(&j).await.expect("put_job");
    let (project, job) = store
        .get_project_and_job(&p.name, &j.id)
        .await
        .expect("get_project_and_job");
    let mut manifest = p.manifest.clone();
    manifest["jobs"] = json!({});
    let expected = ProjectRecord {
        manifest,
        ..p.clone()
    };
    assert_eq!(
        (project.as_ref(), job.as_ref()),
        (Some(&expected), Some(&j))
    );
    assert_eq!(
        store.get_project(&p.name).await.expect("get_project"),
        Some(p.clone()),
        "the project itself is kept whole"
    );
    // A manifest every server stores as a document (no nested arrays) reads alike.
    let plain = ProjectRecord {
        name: format!("{t}-plain"),
        manifest: json!({"name": "plain", "environment": {"env": {"A": "1"}},
                         "jobs": {"a": {"command": ["true"]}}, "apps": {}}),
        ..p.clone()
    };
    store.put_project(&plain).await.expect("put_project");
    let (project, job) = store
        .get_project_and_job(&plain.name, "missing.job")
        .await
        .expect("get_project_and_job");
    assert_eq!(
        (project.map(|p| p.manifest), job),
        (
            Some(json!({"name": "plain", "environment": {"env": {"A": "1"}},
                        "jobs": {}, "apps": {}})),
            None
        )
    );
    assert_eq!(
        store
            .get_project_and_job("missing-project", &j.id)
            .await
            .expect("get_project_and_job"),
        (None, Some(j))
    );
}

/// A worker's step between runs: the finish frees the job's slot before the claim looks, the
/// claim brings the run's project and job, and either half may be left out.
pub async fn finish_and_claim_in_one_step(store: &dyn Store) {
    let t = tag();
    let (p, j) = (project(&t, 1), job(&t, "j", 1));
    store.put_project(&p).await.expect("put_project");
    store.put_job(&j).await.expect("put_job");
    let runs: Vec<RunRecord> = (0..2).map(|i| run(&t, "j", json!({"i": i}), i)).collect();
    for r in &runs {
        enqueue_new(store, r).await;
    }
    let anything = Paused::default();
    let step = |finish: Option<(&RunRecord, RunEnd)>, claim: Option<(DateTime<Utc>, Paused)>| {
        let finish = finish.map(|(r, end)| (r.id.clone(), end));
        async move {
            store
                .finish_and_claim(
                    "w1",
                    finish.as_ref().map(|(id, end)| (id.as_str(), end)),
                    claim.as_ref().map(|(now, paused)| (*now, paused)),
                )
                .await
                .expect("finish_and_claim")
        }
    };

    // Claim only: the first run, with its definitions as stored (the project's jobs emptied).
    let p = ProjectRecord {
        manifest: p.manifest_without_jobs(),
        ..p
    };
    let first = step(None, Some((later(100), anything.clone()))).await;
    assert_eq!(first.finished, None);
    let first = first.claimed.expect("claim").expect("a run to claim");
    assert_eq!(first.run.id, runs[0].id);
    assert_eq!(
        (
            first.run.state,
            first.run.worker.as_deref(),
            first.run.attempt
        ),
        (RunState::Running, Some("w1"), 1)
    );
    assert_eq!(first.project.as_ref(), Some(&p));
    assert_eq!(first.job.as_ref(), Some(&j));
    assert_eq!(
        get(store, &runs[0].id).await,
        first.run,
        "the claim is stored"
    );

    // max_parallel 1: while the first runs, a claim finds nothing.
    let none = step(None, Some((later(150), anything.clone()))).await;
    assert_eq!(none.claimed.expect("claim"), None);

    // Finish and claim: the finish frees the slot the claim then takes.
    let end = first.run.end(Outcome::Exited(0), Some(0), later(200));
    let paused_project = Paused {
        all: false,
        projects: vec![t.clone()],
    };
    let held = step(
        Some((&first.run, end.clone())),
        Some((later(200), paused_project)),
    )
    .await;
    let done = held.finished.expect("the first run is finished");
    assert_eq!(
        (done.id.as_str(), done.state),
        (runs[0].id.as_str(), RunState::Complete)
    );
    assert_eq!(held.claimed.expect("claim"), None, "its project is paused");
    let again = step(
        Some((&first.run, end)),
        Some((later(210), anything.clone())),
    )
    .await;
    assert_eq!(again.finished, None, "a try ends once");
    let second = again.claimed.expect("claim").expect("the second run");
    assert_eq!(second.run.id, runs[1].id);

    // Another worker's run is not finished; finish only claims nothing.
    let end = second.run.end(Outcome::Exited(3), Some(3), later(300));
    let foreign = store
        .finish_and_claim("w2", Some((&second.run.id, &end)), None)
        .await
        .expect("finish_and_claim");
    assert_eq!(foreign.finished, None, "not w2's run");
    assert_eq!(get(store, &second.run.id).await.state, RunState::Running);
    let last = step(Some((&second.run, end)), None).await;
    assert_eq!(
        last.finished.map(|r| r.state),
        Some(RunState::Failed),
        "exit 3 with an attempt left"
    );
    assert_eq!(last.claimed.expect("nothing asked"), None);

    // An end a try cannot have is refused, changing nothing.
    let r = run(&t, "k", json!({}), 400);
    enqueue_new(store, &r).await;
    let orphan = step(None, Some((later(500), anything.clone())))
        .await
        .claimed
        .expect("claim")
        .expect("the run of a job with no record");
    assert_eq!(orphan.run.id, r.id);
    assert_eq!((orphan.project.as_ref(), orphan.job), (Some(&p), None));
    let mut running = orphan.run.end(Outcome::Exited(0), Some(0), later(600));
    running.next.state = RunState::Running;
    assert!(
        store
            .finish_and_claim("w1", Some((&r.id, &running)), None)
            .await
            .is_err()
    );
    assert_eq!(get(store, &r.id).await.state, RunState::Running);
    drain(store).await;
}

/// `run_ids_starting_with` finds the runs whose id starts with a prefix (and no other),
/// sorted, up to a limit: how `coco detail 01JD6W` finds its run.
pub async fn run_ids_found_by_prefix(store: &dyn Store) {
    let t = tag();
    // Ids that share a long prefix no other case's ids share (ULIDs: 16 random characters).
    let stem = ulid::Ulid::new().to_string()[..22].to_string();
    let ids = [
        format!("{stem}0000"),
        format!("{stem}0001"),
        format!("{stem}1000"),
    ];
    for (n, id) in ids.iter().enumerate().rev() {
        let mut r = run(&t, &format!("job{n}"), json!({}), 0);
        r.id = id.clone();
        enqueue_new(store, &r).await;
    }
    let found = |prefix: String, limit: usize| async move {
        store
            .run_ids_starting_with(&prefix, limit)
            .await
            .expect("run_ids_starting_with")
    };
    assert_eq!(found(stem.clone(), 10).await, ids, "all three, sorted");
    assert_eq!(found(format!("{stem}000"), 10).await, ids[..2]);
    assert_eq!(found(format!("{stem}1"), 10).await, ids[2..]);
    assert_eq!(found(ids[1].clone(), 10).await, ids[1..2], "a whole id");
    assert!(found(format!("{stem}2"), 10).await.is_empty());
    assert!(
        found(format!("{stem}00000"), 10).await.is_empty(),
        "longer than any id"
    );
    assert_eq!(found(stem.clone(), 2).await, ids[..2], "at most the limit");
    assert!(found(stem.clone(), 0).await.is_empty());
    assert!(
        found(stem.to_lowercase(), 10).await.is_empty(),
        "exact: callers upper-case what the operator typed"
    );
    drain(store).await;
}

/// A token named `name` whose secret hashes to `hash`.
fn token(name: &str, hash: &str, role: Role) -> TokenRecord {
    TokenRecord {
        name: name.to_string(),
        role,
        projects: vec!["shop".into(), "billing".into()],
        hash: hash.to_string(),
        created: at(1_700_000_000_123),
        expires: Some(at(1_800_000_000_456)),
        last_used: None,
    }
}

/// A token round-trips, is found by its hash only, its last use only moves forward, and a
/// revoked one is gone.
pub async fn tokens_created_found_touched_and_revoked(store: &dyn Store) {
    let t = tag();
    let (a, b) = (format!("{t}-a"), format!("{t}-b"));
    let mine = |tokens: Vec<TokenRecord>| -> Vec<TokenRecord> {
        tokens
            .into_iter()
            .filter(|k| k.name.starts_with(&t))
            .collect()
    };
    let first = token(&b, &format!("{t}-hash-b"), Role::Operator);
    let second = TokenRecord {
        projects: Vec::new(),
        expires: None,
        ..token(&a, &format!("{t}-hash-a"), Role::Viewer)
    };
    assert!(store.create_token(&first).await.expect("create b"));
    assert!(store.create_token(&second).await.expect("create a"));
    assert_eq!(
        mine(store.list_tokens().await.expect("list")),
        [second.clone(), first.clone()],
        "sorted by name, every field kept"
    );
    assert_eq!(
        store.token_by_hash(&first.hash).await.expect("by hash"),
        Some(first.clone())
    );
    assert_eq!(
        store.token_by_hash(&first.name).await.expect("by name"),
        None
    );
    assert_eq!(
        store
            .token_by_hash(&format!("{t}-nope"))
            .await
            .expect("none"),
        None
    );

    // A last use given at create is not kept: a new token was never used.
    let used_at_birth = TokenRecord {
        last_used: Some(at(1_700_000_000_999)),
        ..token(&format!("{t}-c"), &format!("{t}-hash-c"), Role::Admin)
    };
    assert!(store.create_token(&used_at_birth).await.expect("create c"));
    let c = store.token_by_hash(&used_at_birth.hash).await.expect("c");
    assert_eq!(c.and_then(|c| c.last_used), None);

    assert!(
        store
            .touch_token(&b, at(1_700_000_005_000))
            .await
            .expect("touch")
    );
    assert!(
        store
            .touch_token(&b, at(1_700_000_001_000))
            .await
            .expect("earlier touch")
    );
    let touched = store.token_by_hash(&first.hash).await.expect("touched");
    assert_eq!(
        touched.map(|k| k.last_used),
        Some(Some(at(1_700_000_005_000))),
        "an earlier use does not move the last use back"
    );
    assert!(
        !store
            .touch_token(&format!("{t}-nope"), at(1))
            .await
            .expect("touch none")
    );

    assert!(store.revoke_token(&b).await.expect("revoke"));
    assert!(!store.revoke_token(&b).await.expect("revoke again"));
    assert_eq!(
        store.token_by_hash(&first.hash).await.expect("revoked"),
        None
    );
    let left: Vec<String> = mine(store.list_tokens().await.expect("list"))
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(left, [a.clone(), format!("{t}-c")]);
    // Its name (and hash) are free again.
    assert!(store.create_token(&first).await.expect("create b again"));
}

/// A name, or a hash, is taken once: a second token with either changes nothing, and of
/// several processes creating one name at once exactly one wins.
pub async fn token_name_and_hash_each_taken_once(store: &dyn Store) {
    let t = tag();
    let original = token(&format!("{t}-x"), &format!("{t}-hash-x"), Role::Viewer);
    assert!(store.create_token(&original).await.expect("create"));
    let same_name = token(&original.name, &format!("{t}-hash-other"), Role::Admin);
    assert!(!store.create_token(&same_name).await.expect("same name"));
    let same_hash = token(&format!("{t}-y"), &original.hash, Role::Admin);
    assert!(!store.create_token(&same_hash).await.expect("same hash"));
    let tokens: Vec<TokenRecord> = store
        .list_tokens()
        .await
        .expect("list")
        .into_iter()
        .filter(|k| k.name.starts_with(&t))
        .collect();
    assert_eq!(tokens, [original], "nothing of the refused two was written");

    for round in 0..5 {
        let name = format!("{t}-race-{round}");
        let create = |n: u32| {
            let k = token(&name, &format!("{t}-hash-{round}-{n}"), Role::Operator);
            async move { store.create_token(&k).await.expect("create_token") }
        };
        let results = tokio::join!(create(1), create(2), create(3), create(4), create(5));
        let results = [results.0, results.1, results.2, results.3, results.4];
        assert_eq!(
            results.iter().filter(|won| **won).count(),
            1,
            "round {round}: {results:?}"
        );
    }
}

/// Pages of runs, newest first: each page starts after the last run of the one before, runs
/// created in the same millisecond ordered by id, none twice, none left out.
pub async fn runs_paged_newest_first_by_cursor(store: &dyn Store) {
    let t = tag();
    let project = format!("{t}-p");
    let job = format!("{project}.j");
    // Seven runs: two pairs share their millisecond.
    let created = [1_000, 2_000, 2_000, 3_000, 4_000, 4_000, 5_000];
    let mut expected = Vec::new();
    for (i, ms) in created.iter().enumerate() {
        let r = run(&project, "j", json!({ "i": i }), 1_700_000_000_000 + ms);
        enqueue_new(store, &r).await;
        expected.push((r.created, r.id.clone()));
    }
    expected.sort();
    expected.reverse();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    for page_size in [1, 2, 3, 7, 8] {
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .list_runs(&RunFilter {
                    job: Some(job.clone()),
                    limit: Some(page_size),
                    before: before.clone(),
                    ..RunFilter::default()
                })
                .await
                .expect("list_runs");
            seen.extend(page.iter().map(|r| r.id.clone()));
            match page.last() {
                Some(last) if page.len() == page_size => before = Some(RunCursor::of(last)),
                _ => break,
            }
            assert!(seen.len() <= expected.len(), "pages never end: {seen:?}");
        }
        assert_eq!(seen, expected, "pages of {page_size}");
    }
    // Counting after a place counts what the pages after it hold.
    let after_third = RunFilter {
        job: Some(job.clone()),
        before: store
            .get_run(&expected[2])
            .await
            .expect("get")
            .as_ref()
            .map(RunCursor::of),
        ..RunFilter::default()
    };
    assert_eq!(store.count_runs(&after_third).await.expect("count"), 4);
    drain(store).await;
}
