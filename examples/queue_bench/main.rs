//! Queue benchmarks (issue 3): throughput, pick-up latency, exactly-once under contention and
//! crash recovery, on the embedded store and on a MongoDB-wire server (FerretDB).
//!
//! Run everything with `bench/queue.sh` (it builds in release mode and starts FerretDB), or
//! this example alone:
//!
//! ```text
//! cargo build --release --bin coco --example queue_bench
//! target/release/examples/queue_bench --store embedded            # or --mongo-url URL
//! ```
//!
//! Each benchmark gets a fresh sandbox ([`sandbox`]): a temporary home with the `bench`
//! project applied by `coco apply`, and a new SQLite file or MongoDB database. Workers are
//! real `coco worker` processes of the built binary (`--coco`), except the rescuer of the
//! crash benchmark, which runs in this process to get short zombie settings. Runs are
//! enqueued through the library, as `coco enqueue` does, followed by `coco::queue::wake`.
//!
//! - [`throughput`]: N × `true`, one worker with 2 slots, against `xargs -P2`.
//! - [`latency`]: idle worker, one enqueue → the job's own start timestamp; p50/p99.
//! - [`backlog`]: the same with 100 and with 100,000 waiting runs of another job.
//! - [`burst`]: 1,000 jobs scheduled at one instant, fired by the scheduler.
//! - [`round_trips`]: on FerretDB, the store commands a worker sends per run.
//! - [`exactly_once`]: 4 worker processes, 2,000 runs appending their id to one file.
//! - [`crash`]: SIGKILL a worker with 50 runs in flight; a new worker finishes them all.
//!
//! On FerretDB the throughput and exactly-once sizes default to smaller counts
//! (`--mongo-runs`, `--mongo-contention-runs`): its SQLite backend uses no index but `_id`, so
//! each queue operation scans the whole collection and the time per run grows with the runs
//! stored (see docs/benchmarks.md); 5,000 runs there take hours.
//!
//! Progress goes to stderr, the figures (Markdown tables) to stdout. The exit status is 1
//! when a correctness check (exactly once, crash) fails or any benchmark could not run.

mod backlog;
mod burst;
#[path = "../bench_common/mod.rs"]
mod common;
mod crash;
mod exactly_once;
mod latency;
mod report;
mod round_trips;
mod sandbox;
mod throughput;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use common::Stores;

use backlog::Backlog;
use burst::Burst;
use crash::Crash;
use exactly_once::ExactlyOnce;
use latency::Latency;
use round_trips::RoundTrips;
use sandbox::{Backend, Jobs, Sandbox};
use throughput::Throughput;

#[derive(Debug, Parser)]
#[command(about = "coco queue benchmarks: throughput, pick-up latency, exactly once, crash")]
struct Options {
    /// Which store(s) to measure.
    #[arg(long, value_enum, default_value = "both")]
    store: Stores,
    /// MongoDB-wire server for the `mongo` store (each benchmark uses a new database).
    #[arg(long, env = "COCO_TEST_MONGO_URL")]
    mongo_url: Option<String>,
    /// The coco binary whose `worker` and `apply` verbs are run (default: next to this
    /// example, `target/<profile>/coco`).
    #[arg(long)]
    coco: Option<PathBuf>,
    /// Benchmarks to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Bench>,
    /// Throughput: runs of `true` (embedded store).
    #[arg(long, default_value_t = 5000)]
    runs: usize,
    /// Throughput: runs of `true` on FerretDB.
    #[arg(long, default_value_t = 500)]
    mongo_runs: usize,
    /// Throughput: repetitions, each in a fresh sandbox (embedded store).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Throughput: repetitions on FerretDB.
    #[arg(long, default_value_t = 1)]
    mongo_repeat: usize,
    /// Throughput: worker slots (and xargs -P).
    #[arg(long, default_value_t = 2)]
    slots: usize,
    /// Latency: measured repetitions (after 5 uncounted warm-up ones).
    #[arg(long, default_value_t = 200)]
    latency_reps: usize,
    /// Latency: idle time before each enqueue, in milliseconds.
    #[arg(long, default_value_t = 250)]
    latency_gap_ms: u64,
    /// Backlog: waiting runs of another job in the small case.
    #[arg(long, default_value_t = 100)]
    backlog_small: usize,
    /// Backlog: waiting runs of another job in the large case (embedded store).
    #[arg(long, default_value_t = 100_000)]
    backlog_large: usize,
    /// Backlog: waiting runs of another job in the large case on FerretDB.
    #[arg(long, default_value_t = 1_000)]
    mongo_backlog_large: usize,
    /// Fire burst: jobs scheduled at the same instant (the worker gets a slot for each).
    #[arg(long, default_value_t = 1000)]
    burst_jobs: usize,
    /// Fire burst: projects the jobs are spread over (at most 1,000 jobs each).
    #[arg(long, default_value_t = 1)]
    burst_projects: usize,
    /// Fire burst on FerretDB (each of its claims scans the collection: keep it small).
    #[arg(long, default_value_t = 20)]
    mongo_burst_jobs: usize,
    /// Round trips (FerretDB only): runs whose store commands are counted.
    #[arg(long, default_value_t = 200)]
    round_trip_runs: usize,
    /// Backlog: measured repetitions in each case.
    #[arg(long, default_value_t = 50)]
    backlog_reps: usize,
    /// Exactly once: runs (embedded store).
    #[arg(long, default_value_t = 2000)]
    contention_runs: usize,
    /// Exactly once: runs on FerretDB.
    #[arg(long, default_value_t = 400)]
    mongo_contention_runs: usize,
    /// Exactly once: worker processes.
    #[arg(long, default_value_t = 4)]
    contention_workers: usize,
    /// Exactly once: slots per worker process.
    #[arg(long, default_value_t = 2)]
    contention_slots: usize,
    /// Crash: `sleep` runs in flight when the worker is killed.
    #[arg(long, default_value_t = 50)]
    crash_runs: usize,
    /// Crash: extra `sh -c 'sleep & wait'` runs whose grandchildren are counted.
    #[arg(long, default_value_t = 5)]
    crash_probe: usize,
    /// Crash: seconds each crash run sleeps (long enough for one worker to claim them all:
    /// on FerretDB on 2 CPUs that can take 5 s).
    #[arg(long, default_value_t = 10)]
    nap_secs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    Throughput,
    Latency,
    Backlog,
    Burst,
    RoundTrips,
    ExactlyOnce,
    Crash,
}

/// How big the benchmarks are on one store.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub runs: usize,
    pub backlog_large: usize,
    pub burst_jobs: usize,
    pub repeat: usize,
    pub contention_runs: usize,
}

impl Options {
    fn sizes(&self, backend: &Backend) -> Sizes {
        match backend {
            Backend::Embedded => Sizes {
                runs: self.runs,
                backlog_large: self.backlog_large,
                burst_jobs: self.burst_jobs,
                repeat: self.repeat,
                contention_runs: self.contention_runs,
            },
            Backend::Mongo { .. } => Sizes {
                runs: self.mongo_runs,
                backlog_large: self.mongo_backlog_large,
                burst_jobs: self.mongo_burst_jobs,
                repeat: self.mongo_repeat,
                contention_runs: self.mongo_contention_runs,
            },
        }
    }
}

/// Everything measured on one store; `Err` holds why a benchmark could not run.
pub struct Results {
    pub backend: Backend,
    pub sizes: Sizes,
    /// The load average when this store's benchmarks started.
    pub load: String,
    pub throughput: Option<Result<Vec<Throughput>, String>>,
    pub latency: Option<Result<Latency, String>>,
    pub backlog: Option<Result<Backlog, String>>,
    pub burst: Option<Result<Burst, String>>,
    pub round_trips: Option<Result<RoundTrips, String>>,
    pub exactly_once: Option<Result<ExactlyOnce, String>>,
    pub crash: Option<Result<Crash, String>>,
}

impl Results {
    fn passed(&self) -> bool {
        ran(&self.throughput)
            && ran(&self.latency)
            && ran(&self.backlog)
            && ran(&self.burst)
            && ran(&self.round_trips)
            && self
                .exactly_once
                .as_ref()
                .is_none_or(|r| r.as_ref().is_ok_and(ExactlyOnce::passed))
            && self
                .crash
                .as_ref()
                .is_none_or(|r| r.as_ref().is_ok_and(Crash::passed))
    }
}

/// Not selected, or ran without an error.
fn ran<T>(result: &Option<Result<T, String>>) -> bool {
    result.as_ref().is_none_or(Result::is_ok)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let coco = common::coco_binary(options.coco.as_ref())?;
    let mut all = Vec::new();
    for backend in common::backends(options.store, options.mongo_url.as_deref())? {
        eprintln!("== {}", backend.label());
        all.push(run_store(&options, &coco, backend).await);
    }
    println!("{}", report::markdown(&options, &coco, &all));
    if all.iter().all(Results::passed) {
        Ok(())
    } else {
        eprintln!("queue_bench: a check failed or a benchmark could not run (see above)");
        std::process::exit(1);
    }
}

/// Run the selected benchmarks on one store, each in a sandbox of its own.
async fn run_store(options: &Options, coco: &Path, backend: Backend) -> Results {
    let wanted = |bench| options.only.is_empty() || options.only.contains(&bench);
    let sizes = options.sizes(&backend);
    let jobs = Jobs {
        nap_secs: options.nap_secs,
        extra: Vec::new(),
    };
    let sandbox = |name: &'static str| Sandbox::new(coco, &backend, name, &jobs);
    let mut results = Results {
        backend: backend.clone(),
        sizes,
        load: common::load_average(),
        throughput: None,
        latency: None,
        backlog: None,
        burst: None,
        round_trips: None,
        exactly_once: None,
        crash: None,
    };
    if wanted(Bench::Throughput) {
        let mut all = Vec::new();
        for n in 1..=sizes.repeat {
            eprintln!("-- throughput {n}/{}", sizes.repeat);
            let result = async {
                let sandbox = sandbox("throughput").await?;
                let result = throughput::measure(&sandbox, sizes.runs, options.slots).await;
                sandbox.close().await;
                result
            };
            match result.await {
                Ok(measured) => all.push(measured),
                Err(error) => {
                    all.clear();
                    results.throughput = Some(logged(Err(error)));
                    break;
                }
            }
        }
        if !all.is_empty() {
            results.throughput = Some(Ok(all));
        }
    }
    if wanted(Bench::Latency) {
        eprintln!("-- pick-up latency");
        let gap = Duration::from_millis(options.latency_gap_ms);
        let result = async {
            let sandbox = sandbox("latency").await?;
            let result = latency::measure(&sandbox, options.latency_reps, gap).await;
            sandbox.close().await;
            result
        };
        results.latency = Some(logged(result.await));
    }
    if wanted(Bench::Backlog) {
        let gap = Duration::from_millis(options.latency_gap_ms);
        let mut each = Vec::new();
        for backlog in [options.backlog_small, sizes.backlog_large] {
            eprintln!("-- pick-up latency with {backlog} waiting runs");
            let result = async {
                let sandbox = sandbox("backlog").await?;
                let result = backlog::measure(&sandbox, backlog, options.backlog_reps, gap).await;
                sandbox.close().await;
                result
            };
            each.push(result.await);
        }
        let mut each = each.into_iter();
        results.backlog = Some(logged(match (each.next(), each.next()) {
            (Some(Ok(with_small)), Some(Ok(with_large))) => Ok(Backlog {
                small: options.backlog_small,
                large: sizes.backlog_large,
                with_small,
                with_large,
            }),
            (Some(Err(error)), _) | (_, Some(Err(error))) => Err(error),
            _ => unreachable!("two measurements"),
        }));
    }
    if wanted(Bench::Burst) {
        eprintln!("-- fire burst: {} jobs at one instant", sizes.burst_jobs);
        let (second, instant) = burst::instant_ahead();
        let jobs = Jobs {
            nap_secs: options.nap_secs,
            extra: burst::manifests(sizes.burst_jobs, options.burst_projects, second),
        };
        let result = async {
            let sandbox = Sandbox::new(coco, &backend, "burst", &jobs).await?;
            let result = burst::measure(
                &sandbox,
                coco,
                sizes.burst_jobs,
                options.burst_projects,
                instant,
            )
            .await;
            sandbox.close().await;
            result
        };
        results.burst = Some(logged(result.await));
    }
    if let Backend::Mongo { url } = &backend
        && wanted(Bench::RoundTrips)
    {
        eprintln!("-- store round trips per run");
        let result = async {
            let sandbox = sandbox("round-trips").await?;
            let result = round_trips::measure(&sandbox, url, options.round_trip_runs).await;
            sandbox.close().await;
            result
        };
        results.round_trips = Some(logged(result.await));
    }
    if wanted(Bench::ExactlyOnce) {
        eprintln!("-- exactly once");
        let result = async {
            let sandbox = sandbox("contention").await?;
            let result = exactly_once::check(
                &sandbox,
                sizes.contention_runs,
                options.contention_workers,
                options.contention_slots,
            )
            .await;
            sandbox.close().await;
            result
        };
        results.exactly_once = Some(logged(result.await));
    }
    if wanted(Bench::Crash) {
        eprintln!("-- crash");
        let result = async {
            let sandbox = sandbox("crash").await?;
            let result = crash::check(&sandbox, options.crash_runs, options.crash_probe).await;
            sandbox.close().await;
            result
        };
        results.crash = Some(logged(result.await));
    }
    results
}

/// A benchmark's error, logged, becomes its message in the report.
fn logged<T>(result: anyhow::Result<T>) -> Result<T, String> {
    result.map_err(|error| {
        eprintln!("  failed: {error:#}");
        format!("{error:#}")
    })
}
