//! Daemon benchmarks (issue 4): save-to-applied latency on a home of 500 projects (and its
//! start-up reconcile), fire precision of a job due every second, the idle daemon's CPU and
//! memory, and the time to restart an app after its definition changed.
//!
//! Run everything with `bench/daemon.sh` (it builds in release mode), or this example alone:
//!
//! ```text
//! cargo build --release --bin coco --example daemon_bench
//! target/release/examples/daemon_bench                  # embedded store
//! target/release/examples/daemon_bench --store mongo --mongo-url URL
//! ```
//!
//! Each benchmark gets a fresh sandbox ([`sandbox`]): a temporary folder with a home, a
//! state folder and a `local.yaml`, and a new SQLite file or MongoDB database. Daemons are
//! real `coco daemon` processes of the built binary (`--coco`); this process writes the
//! manifests, reads the store through the library (`coco::store`) and `/proc`.
//!
//! - [`save`]: 500 projects × 10 scheduled jobs; start-up reconcile, then write → the new
//!   next fire in the store, median and p99 (targets: 100 ms and 250 ms).
//! - [`fire`]: a job due every second for 60 s; lateness of each enqueue against its
//!   instant, p50/p99/max (target p99 < 20 ms); every instant fired once.
//! - [`idle`]: `coco daemon` on the example home; CPU % and RSS over 60 s, per process.
//! - [`restart`]: an HTTP app; write → the new process healthy, median, p90, max.
//!
//! On FerretDB the save benchmark defaults to 100 projects and 30 saves (`--mongo-projects`,
//! `--mongo-saves`): its SQLite backend filters by scanning every document, so applying 500
//! projects takes minutes there and each save seconds (see docs/benchmarks.md).
//!
//! Progress goes to stderr, the figures (Markdown) to stdout. The exit status is 1 when a
//! correctness check fails (a save never applied, a fire missed or doubled, a restart that
//! did not end healthy) or a benchmark could not run; a missed target is reported, not an
//! error.

#[path = "../bench_common/mod.rs"]
mod common;
#[path = "../bench_common/daemon.rs"]
mod daemon_process;
mod fire;
mod idle;
mod report;
mod restart;
mod sandbox;
mod save;

use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use common::Stores;

use fire::Fire;
use idle::Idle;
use restart::Restarts;
use sandbox::Backend;
use save::Save;

#[derive(Debug, Parser)]
#[command(about = "coco daemon benchmarks: save-to-applied, fire precision, idle, app restart")]
pub struct Options {
    /// Which store(s) to measure.
    #[arg(long, value_enum, default_value = "embedded")]
    store: Stores,
    /// MongoDB-wire server for the `mongo` store (each benchmark uses a new database).
    #[arg(long, env = "COCO_TEST_MONGO_URL")]
    mongo_url: Option<String>,
    /// The coco binary run as `coco daemon` (default: next to this example,
    /// `target/<profile>/coco`).
    #[arg(long)]
    coco: Option<PathBuf>,
    /// The folder holding `local.yaml` and `home/` for the idle benchmark.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))]
    examples: PathBuf,
    /// Benchmarks to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Bench>,
    /// Save: project folders in the home.
    #[arg(long, default_value_t = 500)]
    projects: usize,
    /// Save: scheduled jobs per project (at most 60).
    #[arg(long, default_value_t = 10)]
    jobs: usize,
    /// Save: manifest edits timed.
    #[arg(long, default_value_t = 100)]
    saves: usize,
    /// Save: project folders on FerretDB (each of its scans costs per stored document: 500
    /// projects take minutes to apply there).
    #[arg(long, default_value_t = 100)]
    mongo_projects: usize,
    /// Save: manifest edits timed on FerretDB.
    #[arg(long, default_value_t = 30)]
    mongo_saves: usize,
    /// Fire: seconds the every-second job runs.
    #[arg(long, default_value_t = 60)]
    fire_secs: u64,
    /// Idle: seconds sampled.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Restart: app restarts timed.
    #[arg(long, default_value_t = 20)]
    restarts: usize,
    /// Keep every sandbox folder (and MongoDB database), with the daemons' logs in `logs/`.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    Save,
    Fire,
    Idle,
    Restart,
}

/// Everything measured on one store; `Err` holds why a benchmark could not run.
pub struct Results {
    pub backend: Backend,
    /// The load average when this store's benchmarks started.
    pub load: String,
    pub save: Option<Result<Save, String>>,
    pub fire: Option<Result<Fire, String>>,
    pub idle: Option<Result<Idle, String>>,
    pub restart: Option<Result<Restarts, String>>,
}

impl Results {
    fn passed(&self) -> bool {
        passed(&self.save, Save::passed)
            && passed(&self.fire, Fire::passed)
            && passed(&self.idle, |_| true)
            && passed(&self.restart, Restarts::passed)
    }
}

/// Not selected, or ran and passed its check.
fn passed<T>(result: &Option<Result<T, String>>, check: impl Fn(&T) -> bool) -> bool {
    result.as_ref().is_none_or(|r| r.as_ref().is_ok_and(check))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    sandbox::KEEP.store(options.keep, std::sync::atomic::Ordering::Relaxed);
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
        eprintln!("daemon_bench: a check failed or a benchmark could not run (see above)");
        std::process::exit(1);
    }
}

/// Run the selected benchmarks on one store, each in a sandbox of its own.
async fn run_store(options: &Options, coco: &Path, backend: Backend) -> Results {
    let wanted = |bench| options.only.is_empty() || options.only.contains(&bench);
    let mut results = Results {
        backend: backend.clone(),
        load: common::load_average(),
        save: None,
        fire: None,
        idle: None,
        restart: None,
    };
    if wanted(Bench::Save) {
        eprintln!("-- save to applied");
        let (projects, saves) = match backend {
            Backend::Embedded => (options.projects, options.saves),
            Backend::Mongo { .. } => (options.mongo_projects, options.mongo_saves),
        };
        let result = save::measure(coco, &backend, projects, options.jobs, saves);
        results.save = Some(logged(result.await));
    }
    if wanted(Bench::Fire) {
        eprintln!("-- fire precision");
        results.fire = Some(logged(
            fire::measure(coco, &backend, options.fire_secs).await,
        ));
    }
    if wanted(Bench::Idle) {
        eprintln!("-- idle daemon");
        let result = idle::measure(coco, &backend, &options.examples, options.idle_secs);
        results.idle = Some(logged(result.await));
    }
    if wanted(Bench::Restart) {
        eprintln!("-- app restart");
        results.restart = Some(logged(
            restart::measure(coco, &backend, options.restarts).await,
        ));
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
