//! coco's Prometheus metrics: the families one process counts as it works, and the text a
//! scrape of `GET /metrics` answers (the Prometheus text format, version 0.0.4, with
//! prometheus-client).
//!
//! Two kinds of series:
//!
//! - **Counted here**, per process, as Prometheus expects of counters and histograms (they
//!   start at zero when the process does): the worker's tries ([`run_ended`],
//!   [`run_started`]), the scheduler's fires ([`fired`]), the daemon's convergence passes
//!   ([`reconciled`]), the supervisor's app restarts ([`app_restarted`]) and the API's
//!   answers ([`http_answered`]). Each family lives in one process-global registry
//!   (a `OnceLock`), so recording is a lock-free update and costs nothing when nobody
//!   scrapes.
//! - **Read from the store at scrape time** ([`Snapshot`]): runs by state, live workers and
//!   their busy slots, apps up, manifest problems. They describe the whole store, so every
//!   daemon on one store answers the same; [`render`] builds them into a registry of their
//!   own, made fresh per scrape, and writes it after the process's one.
//!
//! Why not OpenMetrics: there a counter `coco_runs` is written `coco_runs_total` but its
//! family is still named `coco_runs`, which the gauge `coco_runs{state}` also is — two
//! families of one name are not a valid OpenMetrics exposition. The 0.0.4 text format names
//! the counter's family `coco_runs_total`, so both fit.
//!
//! Labels come only from names the manifests bound (project, job, app: `project.app`), run
//! states and outcomes, route patterns and status codes: never a run id, an argument, a
//! path, a host or a secret, so the number of series grows with the manifests, not with the
//! traffic. Pure but for the process-global families.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A run's try, its wait in the queue: from 0.1 s to 6 h.
const RUN_BUCKETS: [f64; 17] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
    14400.0, 21600.0,
];

/// How late a fire was: usually milliseconds, hours when missed instants are caught up.
const LATENESS_BUCKETS: [f64; 16] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    21600.0,
];

/// A convergence pass: milliseconds for a saved manifest, seconds for a large home.
const RECONCILE_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// An HTTP answer, up to the API's time limit (30 s).
const HTTP_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    project: String,
    job: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// The families this process counts in, registered once.
struct Families {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    run_duration: Histogram,
    queue_wait: Histogram,
    lateness: Histogram,
    app_restarts: Family<AppLabels, Counter>,
    reconcile: Histogram,
    http: HistogramFamily<HttpLabels>,
}

impl Families {
    fn new() -> Families {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "coco_runs",
            "Tries of runs this process's worker ended, by project, job and the state the try \
             left the run in",
            runs.clone(),
        );
        let run_duration = Histogram::new(RUN_BUCKETS);
        registry.register(
            "coco_run_duration_seconds",
            "How long the tries this process's worker ended ran, from claim to end",
            run_duration.clone(),
        );
        let queue_wait = Histogram::new(RUN_BUCKETS);
        registry.register(
            "coco_run_queue_wait_seconds",
            "How long the runs this process's worker claimed waited after they could be \
             claimed (enqueued, or due again)",
            queue_wait.clone(),
        );
        let lateness = Histogram::new(LATENESS_BUCKETS);
        registry.register(
            "coco_schedule_lateness_seconds",
            "How late this process's scheduler fired each instant it fired: fire time minus \
             the due instant",
            lateness.clone(),
        );
        let app_restarts = Family::<AppLabels, Counter>::default();
        registry.register(
            "coco_app_restarts",
            "Restarts of the apps this process supervises (process exited, health checks \
             failed, definition changed), by app (project.app)",
            app_restarts.clone(),
        );
        let reconcile = Histogram::new(RECONCILE_BUCKETS);
        registry.register(
            "coco_reconcile_duration_seconds",
            "How long this process's convergence passes took (read manifests, diff, apply)",
            reconcile.clone(),
        );
        let http: HistogramFamily<HttpLabels> =
            Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        registry.register(
            "coco_http_request_duration_seconds",
            "How long this process's API took to answer, by route pattern and status code",
            http.clone(),
        );
        let build = Family::<VersionLabels, Gauge>::default();
        build
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register(
            "coco_build_info",
            "The version of coco this process runs (always 1)",
            build,
        );
        Families {
            registry,
            runs,
            run_duration,
            queue_wait,
            lateness,
            app_restarts,
            reconcile,
            http,
        }
    }
}

fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(Families::new)
}

/// A try of a run of `project`'s job `job` (its name in the project) ended, leaving the run
/// in state `outcome` (`complete`, `failed`, `deferred`, `error`, `pending` when handed
/// back, …) after running for `ran`, if it ran at all.
pub fn run_ended(project: &str, job: &str, outcome: &str, ran: Option<Duration>) {
    let families = families();
    families
        .runs
        .get_or_create(&RunLabels {
            project: project.to_owned(),
            job: job.to_owned(),
            outcome: outcome.to_owned(),
        })
        .inc();
    if let Some(ran) = ran {
        families.run_duration.observe(ran.as_secs_f64());
    }
}

/// A run was claimed after waiting `waited` since it could be claimed.
pub fn run_started(waited: Duration) {
    families().queue_wait.observe(waited.as_secs_f64());
}

/// The scheduler fired an instant `late` after it was due.
pub fn fired(late: Duration) {
    families().lateness.observe(late.as_secs_f64());
}

/// App `app` (`project.app`) was restarted.
pub fn app_restarted(app: &str) {
    families()
        .app_restarts
        .get_or_create(&AppLabels {
            app: app.to_owned(),
        })
        .inc();
}

/// A convergence pass took `took`.
pub fn reconciled(took: Duration) {
    families().reconcile.observe(took.as_secs_f64());
}

/// The API answered a request for `route` (the matched route pattern, such as
/// `/api/v1/runs/{id}`, or [`UNMATCHED`]) with `status` after `took`.
pub fn http_answered(route: &str, status: u16, took: Duration) {
    families()
        .http
        .get_or_create(&HttpLabels {
            route: route.to_owned(),
            status,
        })
        .observe(took.as_secs_f64());
}

/// What a scrape reads from the store: the whole store's state at that moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Runs by state (every state, zeros included, so a series does not vanish).
    pub runs: Vec<(&'static str, u64)>,
    /// Workers alive (a recent heartbeat, slots to run in).
    pub workers: u64,
    /// Their slots, and those of them running a run.
    pub slots: u64,
    pub slots_busy: u64,
    /// Active apps (`project.app`) and whether each is up: running or healthy, its daemon
    /// heard from lately.
    pub apps: Vec<(String, bool)>,
    /// Manifest problems the daemons see (each distinct problem once).
    pub manifest_problems: u64,
}

/// The exposition of a scrape: this process's families, then `snapshot`'s gauges.
pub fn render(snapshot: &Snapshot) -> String {
    let mut text = String::new();
    // Writing to a String does not fail.
    let _ = prometheus_text::encode(&mut text, &families().registry);
    let _ = prometheus_text::encode(&mut text, &snapshot_registry(snapshot));
    text
}

/// A fresh registry of `snapshot`'s gauges (pure).
fn snapshot_registry(snapshot: &Snapshot) -> Registry {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut registry = Registry::default();
    let runs = Family::<StateLabels, Gauge>::default();
    for (state, n) in &snapshot.runs {
        runs.get_or_create(&StateLabels {
            state: (*state).to_owned(),
        })
        .set(count(*n));
    }
    registry.register("coco_runs", "Runs in the store, by state", runs);
    let gauge = |n: u64| {
        let gauge = Gauge::<i64>::default();
        gauge.set(count(n));
        gauge
    };
    registry.register(
        "coco_workers",
        "Workers of the store alive (heartbeat within 60s, slots to run in)",
        gauge(snapshot.workers),
    );
    registry.register(
        "coco_worker_slots",
        "Slots of the workers alive",
        gauge(snapshot.slots),
    );
    registry.register(
        "coco_worker_slots_busy",
        "Slots of the workers alive running a run",
        gauge(snapshot.slots_busy),
    );
    let apps = Family::<AppLabels, Gauge>::default();
    for (app, up) in &snapshot.apps {
        apps.get_or_create(&AppLabels { app: app.clone() })
            .set(i64::from(*up));
    }
    registry.register(
        "coco_app_up",
        "1 while an active app (project.app) is running or healthy and its daemon was heard \
         from within 10s, else 0",
        apps,
    );
    registry.register(
        "coco_manifest_problems",
        "Problems in the manifests the daemons read (each distinct one once)",
        gauge(snapshot.manifest_problems),
    );
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `series` (name and labels as written) in `text`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn what_is_counted_and_what_is_read_make_one_exposition() {
        run_ended(
            "shop",
            "hello",
            "complete",
            Some(Duration::from_millis(300)),
        );
        run_started(Duration::from_secs(2));
        fired(Duration::from_millis(20));
        app_restarted("shop.web");
        reconciled(Duration::from_millis(4));
        http_answered("/api/v1/runs/{id}", 200, Duration::from_millis(3));
        let text = render(&Snapshot {
            runs: vec![("complete", 3), ("pending", 0)],
            workers: 1,
            slots: 2,
            slots_busy: 1,
            apps: vec![("shop.web".into(), true), ("shop.api".into(), false)],
            manifest_problems: 2,
        });
        let at_least = |series: &str, least: f64| {
            let found = value(&text, series);
            assert!(
                found.is_some_and(|v| v >= least),
                "{series}: {found:?}\n{text}"
            );
        };
        at_least(
            r#"coco_runs_total{project="shop",job="hello",outcome="complete"}"#,
            1.0,
        );
        at_least("coco_run_duration_seconds_count", 1.0);
        at_least(r#"coco_run_duration_seconds_bucket{le="0.5"}"#, 1.0);
        at_least("coco_run_queue_wait_seconds_count", 1.0);
        at_least("coco_schedule_lateness_seconds_count", 1.0);
        at_least(r#"coco_app_restarts_total{app="shop.web"}"#, 1.0);
        at_least("coco_reconcile_duration_seconds_count", 1.0);
        at_least(
            r#"coco_http_request_duration_seconds_count{route="/api/v1/runs/{id}",status="200"}"#,
            1.0,
        );
        let exactly = |series: &str, expected: f64| {
            assert_eq!(value(&text, series), Some(expected), "{series}\n{text}");
        };
        exactly(
            &format!(
                r#"coco_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        );
        exactly(r#"coco_runs{state="complete"}"#, 3.0);
        exactly(r#"coco_runs{state="pending"}"#, 0.0);
        exactly("coco_workers", 1.0);
        exactly("coco_worker_slots", 2.0);
        exactly("coco_worker_slots_busy", 1.0);
        exactly(r#"coco_app_up{app="shop.web"}"#, 1.0);
        exactly(r#"coco_app_up{app="shop.api"}"#, 0.0);
        exactly("coco_manifest_problems", 2.0);
        // Each family described once: the counter and the gauge of runs are two names.
        let mut types: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(|line| line.split(' ').next().unwrap_or_default())
            .collect();
        assert!(types.contains(&"coco_runs_total") && types.contains(&"coco_runs"));
        let all = types.len();
        types.sort_unstable();
        types.dedup();
        assert_eq!(types.len(), all, "{text}");
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn the_run_buckets_go_from_a_tenth_of_a_second_to_six_hours() {
        assert_eq!(RUN_BUCKETS.first(), Some(&0.1));
        assert_eq!(RUN_BUCKETS.last(), Some(&21600.0));
        for buckets in [
            &RUN_BUCKETS[..],
            &LATENESS_BUCKETS,
            &RECONCILE_BUCKETS,
            &HTTP_BUCKETS,
        ] {
            assert!(buckets.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }
}
