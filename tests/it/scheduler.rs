//! The scheduler in-process on both stores: fires that a stopped scheduler recorded but never
//! settled are taken over — once, by one of two schedulers — and end as one run each (never
//! a second run when the first was enqueued before the stop, even if it already ended; none
//! for `catchup: none`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use coco::manifest::{Catchup, Job};
use coco::queue::run::Cancel;
use coco::queue::{self, NewRun, new_run};
use coco::scheduler::{FireCounts, Scheduler, SchedulerSettings};
use coco::store::{Cancelled, Enqueued, JobRecord, RunFilter, Store};

async fn put_job(store: &dyn Store, id: &str, job: &Job) {
    let (project, name) = id.split_once('.').unwrap();
    store
        .put_job(&JobRecord {
            id: id.into(),
            project: project.into(),
            name: name.into(),
            definition: serde_json::to_value(job).unwrap(),
            hash: "h".into(),
            active: true,
            next_fire: None,
            last_fire: None,
            updated_at: Utc::now(),
        })
        .await
        .unwrap();
}

fn hourly(catchup: Catchup) -> Job {
    Job {
        schedule: Some("0 * * * *".into()),
        catchup,
        ..Job::with_command(&["true"])
    }
}

async fn runs_of(store: &dyn Store, job: &str) -> Vec<coco::queue::run::RunRecord> {
    store
        .list_runs(&RunFilter {
            job: Some(job.into()),
            ..RunFilter::default()
        })
        .await
        .unwrap()
}

async fn unsettled_fires_taken_over_once(store: Arc<dyn Store>) {
    // The last whole hour: recorded by a scheduler that stopped at once.
    let now = Utc::now();
    let instant: DateTime<Utc> = now
        .with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap();
    for (job, catchup) in [
        ("rec.lost", Catchup::Once),
        ("rec.enqueued", Catchup::Once),
        ("rec.quiet", Catchup::None),
    ] {
        put_job(store.as_ref(), job, &hourly(catchup)).await;
        assert!(store.record_fire(job, instant).await.unwrap());
    }
    // rec.enqueued's scheduler stopped after enqueueing, before settling.
    let definition = hourly(Catchup::Once);
    let mut run = new_run(
        &definition,
        NewRun {
            scheduled_for: Some(instant),
            ..NewRun::new("rec.enqueued", "rec", serde_json::json!({}), now)
        },
    );
    run.id = queue::scheduled_run_id("rec.enqueued", instant);
    assert!(matches!(
        store.enqueue(&run).await.unwrap(),
        Enqueued::Queued(_)
    ));
    // ... and the run already ended, so only its id can tell a taker it exists.
    assert!(matches!(
        store.cancel_run(&run.id, Cancel::Kill, now).await.unwrap(),
        Cancelled::Done(_)
    ));

    let settings = SchedulerSettings {
        reload_every: Duration::from_millis(50),
        state_dir: None,
        recover_after: Duration::from_millis(200),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let schedulers: Vec<_> = (0..2)
        .map(|_| {
            let scheduler = Scheduler::new(Arc::clone(&store), settings.clone());
            let mut stopped = stopped.clone();
            tokio::spawn(scheduler.run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !store
        .unsettled_fires(Utc::now() + TimeDelta::hours(1))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fires never settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    let mut counts = FireCounts::default();
    for scheduler in schedulers {
        let c = scheduler.await.unwrap();
        counts.recovered += c.recovered;
        counts.enqueued += c.enqueued;
        counts.missed += c.missed;
    }
    assert_eq!(counts.recovered, 3, "each fire taken over once: {counts:?}");
    assert_eq!(counts.enqueued, 1, "only the lost one enqueued: {counts:?}");
    assert_eq!(counts.missed, 1, "catchup none: {counts:?}");

    let lost = runs_of(store.as_ref(), "rec.lost").await;
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_eq!(lost[0].id, queue::scheduled_run_id("rec.lost", instant));
    assert!(
        lost[0].history[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains(&instant.to_rfc3339())),
        "{:#?}",
        lost[0].history
    );
    let enqueued = runs_of(store.as_ref(), "rec.enqueued").await;
    assert_eq!(enqueued.len(), 1, "not doubled: {enqueued:#?}");
    assert!(runs_of(store.as_ref(), "rec.quiet").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_unsettled_fires_taken_over_once() {
    let fixture = crate::store::embedded_store().await;
    unsettled_fires_taken_over_once(Arc::new(fixture.store.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_unsettled_fires_taken_over_once() {
    if let Some(fixture) = crate::store::mongo_store().await {
        unsettled_fires_taken_over_once(Arc::new(fixture.store.clone())).await;
    }
}

/// The id of a scheduled run is its job's and instant's, the same in every process.
#[test]
fn scheduled_run_ids_are_stable_and_distinct() {
    let at = |ms| DateTime::from_timestamp_millis(ms).unwrap();
    let a = queue::scheduled_run_id("p.a", at(1_800_000_000_000));
    assert_eq!(a, queue::scheduled_run_id("p.a", at(1_800_000_000_000)));
    assert_ne!(a, queue::scheduled_run_id("p.b", at(1_800_000_000_000)));
    assert_ne!(a, queue::scheduled_run_id("p.a", at(1_800_000_000_001)));
    assert_eq!(a.len(), 26);
}
