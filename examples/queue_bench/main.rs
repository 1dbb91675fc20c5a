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
//! - [`exactly_once`]: 4 worker processes, 2,000 runs appending their id to one file.
//! - [`crash`]: SIGKILL a worker with 50 runs in flight; a new worker finishes them all.
//!
//! Progress goes to stderr, the figures (Markdown tables) to stdout. The exit status is 1
//! when a correctness check (exactly once, crash) fails or any benchmark could not run.

mod crash;
mod exactly_once;
mod latency;
mod sandbox;
mod throughput;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

use crash::Crash;
use exactly_once::ExactlyOnce;
use latency::Latency;
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
    /// Throughput: runs of `true`.
    #[arg(long, default_value_t = 5000)]
    runs: usize,
    /// Throughput: worker slots (and xargs -P).
    #[arg(long, default_value_t = 2)]
    slots: usize,
    /// Latency: measured repetitions (after 5 uncounted warm-up ones).
    #[arg(long, default_value_t = 200)]
    latency_reps: usize,
    /// Latency: idle time before each enqueue, in milliseconds.
    #[arg(long, default_value_t = 250)]
    latency_gap_ms: u64,
    /// Exactly once: runs.
    #[arg(long, default_value_t = 2000)]
    contention_runs: usize,
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
    /// Crash: seconds each crash run sleeps.
    #[arg(long, default_value_t = 2)]
    nap_secs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Stores {
    Embedded,
    Mongo,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    Throughput,
    Latency,
    ExactlyOnce,
    Crash,
}

/// Everything measured on one store; `Err` holds why a benchmark could not run.
struct Results {
    backend: Backend,
    throughput: Option<Result<Throughput, String>>,
    latency: Option<Result<Latency, String>>,
    exactly_once: Option<Result<ExactlyOnce, String>>,
    crash: Option<Result<Crash, String>>,
}

impl Results {
    fn passed(&self) -> bool {
        ran(&self.throughput)
            && ran(&self.latency)
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
    let coco = match &options.coco {
        Some(path) => path.clone(),
        None => default_coco()?,
    };
    anyhow::ensure!(
        coco.is_file(),
        "no coco binary at {}: build it (cargo build --release) or pass --coco",
        coco.display()
    );
    let mut all = Vec::new();
    for backend in backends(&options)? {
        eprintln!("== {}", backend.label());
        all.push(run_store(&options, &coco, backend).await);
    }
    println!("{}", report(&options, &all));
    if all.iter().all(Results::passed) {
        Ok(())
    } else {
        eprintln!("queue_bench: a check failed or a benchmark could not run (see above)");
        std::process::exit(1);
    }
}

/// `target/<profile>/coco`, next to `target/<profile>/examples/queue_bench`.
fn default_coco() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .context("locating the target folder")?;
    Ok(profile_dir.join("coco"))
}

fn backends(options: &Options) -> anyhow::Result<Vec<Backend>> {
    let mongo = || -> anyhow::Result<Backend> {
        let url = options
            .mongo_url
            .clone()
            .context("the mongo store needs --mongo-url or COCO_TEST_MONGO_URL")?;
        Ok(Backend::Mongo { url })
    };
    Ok(match options.store {
        Stores::Embedded => vec![Backend::Embedded],
        Stores::Mongo => vec![mongo()?],
        Stores::Both => vec![Backend::Embedded, mongo()?],
    })
}

/// Run the selected benchmarks on one store, each in a sandbox of its own.
async fn run_store(options: &Options, coco: &std::path::Path, backend: Backend) -> Results {
    let wanted = |bench| options.only.is_empty() || options.only.contains(&bench);
    let jobs = Jobs {
        nap_secs: options.nap_secs,
    };
    let sandbox = |name: &'static str| Sandbox::new(coco, &backend, name, &jobs);
    let mut results = Results {
        backend: backend.clone(),
        throughput: None,
        latency: None,
        exactly_once: None,
        crash: None,
    };
    if wanted(Bench::Throughput) {
        eprintln!("-- throughput");
        let result = async {
            let sandbox = sandbox("throughput").await?;
            let result = throughput::measure(&sandbox, options.runs, options.slots).await;
            sandbox.close().await;
            result
        };
        results.throughput = Some(logged(result.await));
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
    if wanted(Bench::ExactlyOnce) {
        eprintln!("-- exactly once");
        let result = async {
            let sandbox = sandbox("contention").await?;
            let result = exactly_once::check(
                &sandbox,
                options.contention_runs,
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

/// The figures as Markdown: the machine, then one table per benchmark.
fn report(options: &Options, all: &[Results]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", machine());
    if all.iter().any(|r| r.throughput.is_some()) {
        let _ = writeln!(
            out,
            "Throughput: {} runs of `true`, `coco worker --slots {}`; coco timed from worker \
             spawn to the last run's `finished`.\n\n\
             | store | enqueue runs/s | coco runs/s | coco after start-up | xargs -P{} runs/s | coco / xargs |\n\
             |---|---|---|---|---|---|",
            options.runs, options.slots, options.slots
        );
        for r in all {
            let row = match &r.throughput {
                Some(Ok(t)) => format!(
                    "{:.0} | {:.0} | {:.0}/s (start-up {:.0?}) | {:.0} | {:.2}",
                    t.enqueue_rate(),
                    t.coco_rate(),
                    t.steady_rate(),
                    t.start_up,
                    t.xargs_rate(),
                    t.ratio()
                ),
                Some(Err(e)) => format!("error: {e} | | | |"),
                None => continue,
            };
            let _ = writeln!(out, "| {} | {row} |", r.backend.label());
        }
        out.push('\n');
    }
    if all.iter().any(|r| r.latency.is_some()) {
        let _ = writeln!(
            out,
            "Pick-up latency: enqueue (+ wake) of one run → `date +%s%N` in the job, idle \
             worker, {} repetitions, {} ms idle before each.\n\n\
             | store | p50 | p99 | max | of which enqueue call (p50) |\n|---|---|---|---|---|",
            options.latency_reps, options.latency_gap_ms
        );
        for r in all {
            let row = match &r.latency {
                Some(Ok(l)) => format!(
                    "{} | {} | {} | {}",
                    ms(l.p(0.5)),
                    ms(l.p(0.99)),
                    ms(l.p(1.0)),
                    ms(l.enqueue_p50())
                ),
                Some(Err(e)) => format!("error: {e} | | |"),
                None => continue,
            };
            let _ = writeln!(out, "| {} | {row} |", r.backend.label());
        }
        out.push('\n');
    }
    if all.iter().any(|r| r.exactly_once.is_some()) {
        let _ = writeln!(
            out,
            "Exactly once: {} runs appending `$COCO_RUN_ID` to one file, {} `coco worker` \
             processes × {} slots, enqueued while they run.\n\n\
             | store | result | enqueue → all done | runs per worker |\n|---|---|---|---|",
            options.contention_runs, options.contention_workers, options.contention_slots
        );
        for r in all {
            let row = match &r.exactly_once {
                Some(Ok(e)) => format!(
                    "{} | {:.1?} | {}",
                    e.verdict(),
                    e.took,
                    e.per_worker
                        .iter()
                        .map(|(w, n)| format!("{w} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(Err(e)) => format!("error: {e} | |"),
                None => continue,
            };
            let _ = writeln!(out, "| {} | {row} |", r.backend.label());
        }
        out.push('\n');
    }
    if all.iter().any(|r| r.crash.is_some()) {
        let _ = writeln!(
            out,
            "Crash: SIGKILL a `coco worker` with {} × `sleep {}` (+ {} probe runs) in flight; \
             a new worker (zombie_after 1 s) retries them. Times from the kill.\n\n\
             | store | result | job pids gone | last taken back | all complete | probe: grandchildren alive |\n\
             |---|---|---|---|---|---|",
            options.crash_runs, options.nap_secs, options.crash_probe
        );
        for r in all {
            let row = match &r.crash {
                Some(Ok(c)) => format!(
                    "{} | {:.0?} | {:.2?} | {:.2?} | {}/{} |",
                    c.verdict(),
                    c.pids_gone,
                    c.taken_back,
                    c.all_done,
                    c.grandchildren.0,
                    c.grandchildren.1
                ),
                Some(Err(e)) => format!("error: {e} | | | | |"),
                None => continue,
            };
            let _ = writeln!(out, "| {} | {row}", r.backend.label());
            if let Some(Ok(c)) = &r.crash {
                for wrong in c.wrong.iter().take(5) {
                    let _ = writeln!(out, "  - {wrong}");
                }
            }
        }
    }
    out
}

/// Microseconds as milliseconds with two decimals.
fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// CPUs, kernel, CPU model and build profile, for the record.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    format!(
        "Machine: {cpus} CPUs ({model}), Linux {}; {profile} build.",
        kernel.trim()
    )
}
