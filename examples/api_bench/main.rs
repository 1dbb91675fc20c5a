//! API benchmarks: the read latency of `GET /api/v1/runs?limit=50` with 100,000 runs in the
//! store, the latency of the event stream `GET /api/v1/events`, and the idle cost of 16 open
//! event streams — each against a baseline measured in the same run — on the embedded store
//! and on a MongoDB-wire server (FerretDB).
//!
//! Run everything with `bench/api.sh` (it builds in release mode and starts FerretDB), or
//! this example alone:
//!
//! ```text
//! cargo build --release --bin coco --example api_bench
//! target/release/examples/api_bench --store embedded            # or --mongo-url URL
//! ```
//!
//! For each store size (`--runs-small`, `--runs-large`) a fresh sandbox ([`sandbox`]): a
//! temporary home with the `bench` project applied by `coco apply`, a new SQLite file or
//! MongoDB database filled with that many runs through the library ([`fill`]: a mix of
//! states, mostly complete), an admin token made by `coco token create`, and a real
//! `coco daemon --no-worker --no-scheduler --no-apps` of the built binary (`--coco`) serving
//! the API on a free loopback port. Against that one daemon, in this order:
//!
//! - [`reads`]: page 1 and page 2 of `GET runs?limit=50`, keep-alive and fresh connections,
//!   against the same pages read in-process through `Queue::list_runs`;
//! - [`events`] (the large store; `--events-small` for both): enqueue and remove runs
//!   through the library, until the matching `run` event arrives; against the poller's
//!   interval and one poll round's store reads measured in-process (on every size);
//! - [`idle`]: the daemon's CPU and RSS with no stream open, then with 16 open and idle.
//!
//! On FerretDB the large store defaults to 1,000 runs (`--mongo-runs-large`), 20 requests a
//! series and 20 changes: its SQLite backend filters and sorts by reading every document of
//! the collection (see docs/benchmarks.md), so a page costs ~0.2 ms per stored run there
//! (seconds with 100,000) and one poll round of the event stream takes seconds already
//! with 2,000.
//!
//! Progress goes to stderr, the figures (Markdown tables) to stdout. Every figure is a
//! measurement: the exit status is 1 only when a benchmark could not run.

#[path = "../bench_common/mod.rs"]
mod common;
#[allow(dead_code)] // waiting for a log line is the daemon benchmark's
#[path = "../bench_common/daemon.rs"]
mod daemon_process;
mod events;
mod fill;
mod http;
mod idle;
mod reads;
mod report;
mod sandbox;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use common::{Backend, Stores};

use events::{EventLatency, PollRound};
use fill::Mix;
use idle::Idle;
use reads::Reads;
use sandbox::Sandbox;

#[derive(Debug, Parser)]
#[command(about = "coco API benchmarks: GET runs with 100,000 runs, event latency, idle streams")]
pub struct Options {
    /// Which store(s) to measure.
    #[arg(long, value_enum, default_value = "both")]
    store: Stores,
    /// MongoDB-wire server for the `mongo` store (each store size uses a new database).
    #[arg(long, env = "COCO_TEST_MONGO_URL")]
    mongo_url: Option<String>,
    /// The pid of that server if it runs on this host, to read its CPU in the idle windows
    /// (`tests/mongo_server.sh start` exports it).
    #[arg(long, env = "COCO_TEST_MONGO_PID")]
    server_pid: Option<u32>,
    /// The coco binary whose `daemon`, `apply` and `token` verbs are run (default: next to
    /// this example, `target/<profile>/coco`).
    #[arg(long)]
    coco: Option<PathBuf>,
    /// Benchmarks to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Bench>,
    /// Runs in the small store.
    #[arg(long, default_value_t = 100)]
    runs_small: usize,
    /// Runs in the large store (embedded).
    #[arg(long, default_value_t = 100_000)]
    runs_large: usize,
    /// Runs in the large store on MongoDB.
    #[arg(long, default_value_t = 1_000)]
    mongo_runs_large: usize,
    /// Reads: requests in each series (after a tenth as many uncounted ones, 2 to 20).
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Reads: requests in each series on MongoDB.
    #[arg(long, default_value_t = 20)]
    mongo_requests: usize,
    /// Events: changes (half enqueues, half removals).
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Events: changes on MongoDB.
    #[arg(long, default_value_t = 20)]
    mongo_changes: usize,
    /// Events: the shortest pause before a change, in milliseconds.
    #[arg(long, default_value_t = 300)]
    gap_min_ms: u64,
    /// Events: the longest pause before a change, in milliseconds.
    #[arg(long, default_value_t = 600)]
    gap_max_ms: u64,
    /// Events: measure on the small store too.
    #[arg(long)]
    events_small: bool,
    /// Events: poll rounds timed in-process.
    #[arg(long, default_value_t = 20)]
    poll_rounds: usize,
    /// Events: poll rounds timed in-process on MongoDB.
    #[arg(long, default_value_t = 5)]
    mongo_poll_rounds: usize,
    /// Idle: streams held open.
    #[arg(long, default_value_t = 16)]
    streams: usize,
    /// Idle: seconds of each window.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// Keep each sandbox folder (the daemons' logs are in logs/) and MongoDB database.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    Reads,
    Events,
    Idle,
}

/// Everything measured on one store.
pub struct Results {
    pub backend: Backend,
    /// The load average when this store's benchmarks started.
    pub load: String,
    pub sizes: Vec<Result<Size, String>>,
}

/// Everything measured on one store size; `Err` holds why a benchmark could not run.
pub struct Size {
    pub runs: usize,
    pub mix: Mix,
    pub filled_in: Duration,
    pub reads: Option<Result<Reads, String>>,
    pub poll: Option<Result<PollRound, String>>,
    pub events: Option<Result<EventLatency, String>>,
    pub idle: Option<Result<Idle, String>>,
}

impl Results {
    fn ran(&self) -> bool {
        self.sizes.iter().all(|size| {
            size.as_ref()
                .is_ok_and(|s| ran(&s.reads) && ran(&s.poll) && ran(&s.events) && ran(&s.idle))
        })
    }
}

/// Not selected, or ran without an error.
fn ran<T>(result: &Option<Result<T, String>>) -> bool {
    result.as_ref().is_none_or(Result::is_ok)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    sandbox::KEEP.store(options.keep, std::sync::atomic::Ordering::Relaxed);
    let coco = common::coco_binary(options.coco.as_ref())?;
    let poll = coco::api::POLL;
    let started = Instant::now();
    let mut all = Vec::new();
    for backend in common::backends(options.store, options.mongo_url.as_deref())? {
        eprintln!("== {}", backend.label());
        let load = common::load_average();
        let mut sizes = Vec::new();
        let large = match backend {
            Backend::Embedded => options.runs_large,
            Backend::Mongo { .. } => options.mongo_runs_large,
        };
        for (runs, is_large) in [(options.runs_small, false), (large, true)] {
            eprintln!("-- {runs} runs in the store");
            sizes.push(logged(
                run_size(&options, &coco, &backend, runs, is_large).await,
            ));
        }
        all.push(Results {
            backend,
            load,
            sizes,
        });
    }
    eprintln!("api_bench: {:.0?} in all", started.elapsed());
    println!("{}", report::markdown(&options, &coco, poll, &all));
    if all.iter().all(Results::ran) {
        Ok(())
    } else {
        eprintln!("api_bench: a benchmark could not run (see above)");
        std::process::exit(1);
    }
}

/// One store size: sandbox, fill, daemon, then the selected benchmarks against it.
async fn run_size(
    options: &Options,
    coco: &Path,
    backend: &Backend,
    runs: usize,
    is_large: bool,
) -> anyhow::Result<Size> {
    let wanted = |bench| options.only.is_empty() || options.only.contains(&bench);
    let name = if is_large { "large" } else { "small" };
    let sandbox = Sandbox::new(coco, backend, name).await?;
    let result = async {
        let filling = Instant::now();
        let mix = fill::fill(&sandbox, runs).await?;
        let filled_in = filling.elapsed();
        eprintln!("   filled in {filled_in:.1?}: {mix:?}");
        let (daemon, port) = sandbox.daemon(name).await?;
        let (requests, changes, rounds) = match backend {
            Backend::Embedded => (options.requests, options.changes, options.poll_rounds),
            Backend::Mongo { .. } => (
                options.mongo_requests,
                options.mongo_changes,
                options.mongo_poll_rounds,
            ),
        };
        let mut size = Size {
            runs,
            mix,
            filled_in,
            reads: None,
            poll: None,
            events: None,
            idle: None,
        };
        if wanted(Bench::Reads) {
            eprintln!("-- reads: GET /api/v1/runs?limit=50, {requests} requests a series");
            size.reads = Some(logged(reads::measure(&sandbox, port, requests).await));
            if let Some(Ok(r)) = &size.reads {
                eprintln!(
                    "   keep-alive p50 {:.2} ms, library p50 {:.2} ms",
                    r.keep_alive.p(0.5).as_secs_f64() * 1e3,
                    r.library.p(0.5).as_secs_f64() * 1e3
                );
            }
        }
        if wanted(Bench::Events) {
            eprintln!("-- poll round in-process, {rounds} rounds");
            let home = sandbox.home();
            size.poll = Some(logged(
                events::poll_round(sandbox.store.as_ref(), &home, rounds).await,
            ));
            if is_large || options.events_small {
                eprintln!("-- events: {changes} changes");
                let gap = (
                    Duration::from_millis(options.gap_min_ms),
                    Duration::from_millis(options.gap_max_ms.max(options.gap_min_ms)),
                );
                size.events = Some(logged(
                    events::measure(&sandbox, port, changes.div_ceil(2), gap).await,
                ));
            }
        }
        if wanted(Bench::Idle) {
            eprintln!("-- idle: 0 then {} streams", options.streams);
            let server = match backend {
                Backend::Mongo { .. } => options.server_pid,
                Backend::Embedded => None,
            };
            size.idle = Some(logged(
                idle::measure(
                    daemon.pid(),
                    port,
                    &sandbox.token,
                    options.streams,
                    options.idle_secs,
                    server,
                )
                .await,
            ));
        }
        daemon.stop().await?;
        Ok(size)
    }
    .await;
    sandbox.close().await;
    result
}

/// A benchmark's error, logged, becomes its message in the report.
fn logged<T>(result: anyhow::Result<T>) -> Result<T, String> {
    result.map_err(|error| {
        eprintln!("  failed: {error:#}");
        format!("{error:#}")
    })
}

/// Durations measured, in the order measured.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new(values: Vec<Duration>) -> Samples {
        Samples(values)
    }

    pub fn push(&mut self, value: Duration) {
        self.0.push(value);
    }

    /// How many were measured.
    pub fn n(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile (zero for none).
    pub fn p(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }

    /// Both series together.
    pub fn and(&self, other: &Samples) -> Samples {
        Samples(self.0.iter().chain(&other.0).copied().collect())
    }
}

/// A small xorshift generator (the pauses between changes), seeded differently every run.
pub struct Random(u64);

impl Random {
    pub fn seeded() -> Random {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Random(nanos | 1)
    }

    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A duration in `[low, high]`, to the microsecond.
    pub fn between(&mut self, (low, high): (Duration, Duration)) -> Duration {
        let span = (high - low).as_micros() as u64 + 1;
        low + Duration::from_micros(self.bits() % span)
    }
}
