//! What the benchmark examples (`queue_bench`, `daemon_bench`, `api_bench`) share: which
//! stores to run on, where the coco binary is, spawning and signalling host processes, and
//! the machine they ran on. Included by each with
//! `#[path = "../bench_common/mod.rs"] mod common;` (a folder without `main.rs`, so not an
//! example of its own).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use chrono::Utc;
use clap::ValueEnum;
use coco::store::StoreLocation;

/// Which store(s) to measure (`--store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stores {
    Embedded,
    Mongo,
    Both,
}

/// Which store a benchmark runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Embedded,
    /// A MongoDB-wire server; every sandbox gets a database of its own.
    Mongo {
        url: String,
    },
}

impl Backend {
    pub fn label(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded (SQLite)",
            Backend::Mongo { .. } => "FerretDB (MongoDB wire)",
        }
    }
}

/// The backends `stores` names; the mongo one needs `mongo_url`.
pub fn backends(stores: Stores, mongo_url: Option<&str>) -> anyhow::Result<Vec<Backend>> {
    let mongo = || -> anyhow::Result<Backend> {
        let url = mongo_url.context("the mongo store needs --mongo-url or COCO_TEST_MONGO_URL")?;
        Ok(Backend::Mongo {
            url: url.to_owned(),
        })
    };
    Ok(match stores {
        Stores::Embedded => vec![Backend::Embedded],
        Stores::Mongo => vec![mongo()?],
        Stores::Both => vec![Backend::Embedded, mongo()?],
    })
}

/// A sandbox's store on `backend`.
pub struct SandboxStore {
    pub location: StoreLocation,
    /// What `local.yaml` needs to name it (nothing for SQLite: `folder.state` places it).
    pub config: String,
    /// MongoDB URL and database, for [`drop_database`].
    pub mongo: Option<(String, String)>,
}

/// The store of a new sandbox: `coco.db` under `state`, or a new MongoDB database named
/// `{prefix}_{name}_{pid}_{ms}` (readable and unique).
pub fn sandbox_store(backend: &Backend, state: &Path, prefix: &str, name: &str) -> SandboxStore {
    match backend {
        Backend::Embedded => SandboxStore {
            location: StoreLocation::Embedded {
                path: state.join("coco.db"),
            },
            config: String::new(),
            mongo: None,
        },
        Backend::Mongo { url } => {
            let database = format!(
                "{prefix}_{}_{}_{}",
                name.replace('-', "_"),
                std::process::id(),
                Utc::now().timestamp_millis()
            );
            SandboxStore {
                location: StoreLocation::Mongo {
                    url: url.clone(),
                    database: database.clone(),
                },
                config: format!("DEFAULT:\n  mongo_url: {url}\n  mongo_database: {database}\n"),
                mongo: Some((url.clone(), database)),
            }
        }
    }
}

/// Drop a sandbox's MongoDB database, if it has one (a failure is reported, not fatal).
pub async fn drop_database(mongo: Option<&(String, String)>) {
    let Some((url, database)) = mongo else {
        return;
    };
    let dropped = match mongodb::Client::with_uri_str(url).await {
        Ok(client) => client.database(database).drop().await,
        Err(error) => Err(error),
    };
    if let Err(error) = dropped {
        eprintln!("  could not drop database {database}: {error}");
    }
}

/// The machine, and each store's load average at its start: the head of a report.
pub fn report_head(
    what: &str,
    coco: &Path,
    loads: impl IntoIterator<Item = (&'static str, String)>,
) -> String {
    let mut out = format!("{} {what}: {}.\n\n", machine(), coco.display());
    for (label, load) in loads {
        out.push_str(&format!("- {label}: load average at its start {load}\n"));
    }
    out.push('\n');
    out
}

/// The coco binary: `given`, else `target/<profile>/coco` next to
/// `target/<profile>/examples/<this bench>`; it must exist.
pub fn coco_binary(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let coco = match given {
        Some(path) => path.clone(),
        None => {
            let exe = std::env::current_exe()?;
            let profile_dir = exe
                .parent()
                .and_then(|examples| examples.parent())
                .context("locating the target folder")?;
            profile_dir.join("coco")
        }
    };
    anyhow::ensure!(
        coco.is_file(),
        "no coco binary at {}: build it (cargo build --release) or pass --coco",
        coco.display()
    );
    Ok(coco)
}

/// A command for a program of this host (the coco binary, `xargs`): the benchmarks start
/// and signal them themselves, like the integration tests that run the coco binary.
#[allow(clippy::disallowed_methods)] // the benches run coco processes and the xargs baseline
pub fn host_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    Command::new(program)
}

/// Send `signal` to `pid` (a child not reaped yet); nothing for a pid that is not one.
pub fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) with the pid of a child we have not reaped yet (so not reused).
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The 1, 5 and 15 minute load averages (the machine may be shared).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPUs, kernel, CPU model, memory and build profile, for the record.
pub fn machine() -> String {
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
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let kb: u64 = l
                .strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some(format!("{:.0} GiB RAM", kb as f64 / 1024.0 / 1024.0))
        })
        .unwrap_or_default();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    format!(
        "Machine: {cpus} CPUs ({model}), {memory}, Linux {}; {profile} build of the bench.",
        kernel.trim()
    )
}
