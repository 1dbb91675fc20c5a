//! A fresh world for one benchmark: a temporary home with the `bench` project, a state
//! folder, a `local.yaml` naming the store (a new SQLite file, or a new MongoDB database),
//! the manifests applied with `coco apply`, and the store opened by this process. Workers are
//! real `coco worker` processes ([`WorkerProcess`]) that a drop guard SIGKILLs if a benchmark
//! bails out early.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chrono::Utc;
use coco::manifest::Job;
use coco::queue::run::RunRecord;
use coco::queue::state::RunState;
use coco::queue::{self, NewRun};
use coco::store::{self, Enqueued, RunFilter, Store};
use tempfile::TempDir;

pub use crate::common::Backend;
use crate::common::{SandboxStore, drop_database, host_command, sandbox_store, signal};
use tokio::time::Instant;

/// Seconds the `nap` and `nest` jobs of the crash benchmark sleep; more projects (the fire
/// burst's): folder name and manifest.
pub struct Jobs {
    pub nap_secs: u32,
    pub extra: Vec<(String, String)>,
}

/// The `bench` project: one job per benchmark. `max_parallel` is high so that only the
/// worker slots limit concurrency; `retry_delay` is zero so a taken-back run is retried at
/// once.
fn manifest(jobs: &Jobs) -> String {
    let nap = jobs.nap_secs;
    format!(
        r#"project: bench
environment:
  workdir: .
jobs:
  noop:
    command: ["true"]
    max_parallel: 1000
  stamp:
    command: [date, "+%s%N"]
    max_parallel: 1000
  later:
    command: ["true"]
    max_parallel: 1000
  append:
    command: [sh, -c, "echo $COCO_RUN_ID >> ran.txt"]
    max_parallel: 1000
  nap:
    command: [sleep, "{nap}"]
    attempts: 2
    retry_delay: 0s
    max_parallel: 1000
  nest:
    command: [sh, -c, "sleep {nap} & echo $! >> grandchildren.txt; wait"]
    attempts: 2
    retry_delay: 0s
    max_parallel: 1000
"#
    )
}

/// One benchmark's home, state and store (see the module documentation).
pub struct Sandbox {
    dir: TempDir,
    coco: PathBuf,
    pub store: Arc<dyn Store>,
    /// MongoDB URL and database, dropped by [`Sandbox::close`].
    mongo: Option<(String, String)>,
}

impl Sandbox {
    /// Write the home and `local.yaml`, apply the `bench` project with `coco apply`, open
    /// the store. `name` makes the MongoDB database name unique and readable.
    pub async fn new(
        coco: &Path,
        backend: &Backend,
        name: &str,
        jobs: &Jobs,
    ) -> anyhow::Result<Sandbox> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("coco-bench-{name}-"))
            .tempdir()
            .context("creating the sandbox folder")?;
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("bench"))?;
        std::fs::create_dir_all(dir.path().join("logs"))?;
        std::fs::write(home.join("bench/coco.yaml"), manifest(jobs))?;
        for (folder, manifest) in &jobs.extra {
            std::fs::create_dir_all(home.join(folder))?;
            std::fs::write(home.join(folder).join("coco.yaml"), manifest)?;
        }
        let state = dir.path().join("state");
        let mut config = format!(
            "logging:\n  stderr: WARNING\nfolder:\n  home: {}\n  state: {}\n",
            home.display(),
            state.display()
        );
        let SandboxStore {
            location,
            config: store_config,
            mongo,
        } = sandbox_store(backend, &state, "coco_bench", name);
        config.push_str(&store_config);
        std::fs::write(dir.path().join("local.yaml"), config)?;
        let sandbox = Sandbox {
            store: store::open(&location).await.context("opening the store")?,
            dir,
            coco: coco.to_path_buf(),
            mongo,
        };
        sandbox.apply()?;
        Ok(sandbox)
    }

    /// A path inside the sandbox folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The `bench` project folder (the jobs' working directory).
    pub fn project_dir(&self) -> PathBuf {
        self.path("home/bench")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// `coco --config <sandbox>/local.yaml ARGS…`, output to `logs/<log>.out|.err`.
    fn coco(&self, args: &[&str], log: &str) -> anyhow::Result<Command> {
        let mut command = host_command(&self.coco);
        command
            .arg("--config")
            .arg(self.path("local.yaml"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(
                self.path(&format!("logs/{log}.out")),
            )?)
            .stderr(std::fs::File::create(
                self.path(&format!("logs/{log}.err")),
            )?);
        for (key, _) in std::env::vars() {
            if key.starts_with("COCO_") {
                command.env_remove(key);
            }
        }
        Ok(command)
    }

    fn apply(&self) -> anyhow::Result<()> {
        let status = self.coco(&["apply"], "apply")?.status()?;
        ensure!(
            status.success(),
            "coco apply failed ({status}): {}",
            self.log_tail("apply.err")
        );
        Ok(())
    }

    /// The last lines of a log file of this sandbox, for error messages.
    pub fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.path(&format!("logs/{name}"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Start `coco worker --slots SLOTS --name NAME`.
    pub fn worker(&self, name: &str, slots: usize) -> anyhow::Result<WorkerProcess> {
        let slots = slots.to_string();
        let child = self
            .coco(&["worker", "--slots", &slots, "--name", name], name)?
            .spawn()
            .with_context(|| format!("starting worker {name}"))?;
        Ok(WorkerProcess {
            name: name.to_string(),
            child: Some(child),
        })
    }

    /// Wait until `count` workers listen for wake-ups (their socket is bound: they are up).
    pub async fn wait_for_listeners(&self, count: usize, within: Duration) -> anyhow::Result<()> {
        let wake = coco::wake::dir(&self.state_dir());
        let deadline = Instant::now() + within;
        loop {
            let bound = std::fs::read_dir(&wake)
                .map(|entries| entries.flatten().count())
                .unwrap_or(0);
            if bound >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {bound} of {count} workers came up within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The stored definition of job `bench.NAME`.
    pub async fn job(&self, name: &str) -> anyhow::Result<Job> {
        let record = self
            .store
            .get_job(&format!("bench.{name}"))
            .await?
            .with_context(|| format!("job bench.{name} is not applied"))?;
        Ok(record.job()?)
    }

    /// Enqueue a run of `bench.NAME` as `coco enqueue` does (without the wake-up: see
    /// [`Sandbox::wake`]); returns its id.
    pub async fn enqueue(
        &self,
        name: &str,
        job: &Job,
        args: serde_json::Value,
    ) -> anyhow::Result<String> {
        let job_id = format!("bench.{name}");
        let run = queue::new_run(job, NewRun::new(&job_id, "bench", args, Utc::now()));
        match self.store.enqueue(&run).await? {
            Enqueued::Queued(id) => Ok(id),
            Enqueued::Duplicate(id) => bail!("enqueue refused: duplicate of run {id}"),
        }
    }

    /// Wake this host's idle workers, as `coco enqueue` does after enqueuing.
    pub fn wake(&self) -> usize {
        queue::wake(&self.state_dir())
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> anyhow::Result<Vec<RunRecord>> {
        Ok(self.store.list_runs(&RunFilter::default()).await?)
    }

    /// Is any run in `state`? (One cheap query: newest first, limit 1.)
    async fn any_in(&self, state: RunState) -> anyhow::Result<bool> {
        let filter = RunFilter {
            state: Some(state),
            limit: Some(1),
            ..RunFilter::default()
        };
        Ok(!self.store.list_runs(&filter).await?.is_empty())
    }

    /// Wait until no run is waiting or running any more, checking every `every`.
    pub async fn wait_idle(&self, every: Duration, within: Duration) -> anyhow::Result<()> {
        const BUSY: [RunState; 4] = [
            RunState::Pending,
            RunState::Running,
            RunState::Failed,
            RunState::Deferred,
        ];
        let deadline = Instant::now() + within;
        'wait: loop {
            tokio::time::sleep(every).await;
            for state in BUSY {
                if self.any_in(state).await? {
                    if Instant::now() > deadline {
                        bail!("runs still {state} after {within:?}");
                    }
                    continue 'wait;
                }
            }
            return Ok(());
        }
    }

    /// Drop the sandbox's MongoDB database (the temporary folder goes with `self`); a
    /// failure is only logged.
    pub async fn close(self) {
        drop_database(self.mongo.as_ref()).await;
    }
}

/// A running `coco worker` process; SIGKILLed on drop if still running.
pub struct WorkerProcess {
    pub name: String,
    child: Option<Child>,
}

impl WorkerProcess {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM (graceful: running runs finish or are handed back), then wait for the exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        signal(self.pid(), libc::SIGTERM);
        self.wait(Duration::from_secs(30)).await
    }

    /// SIGKILL, then reap it.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        signal(self.pid(), libc::SIGKILL);
        self.wait(Duration::from_secs(10)).await
    }

    async fn wait(&mut self, within: Duration) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let deadline = Instant::now() + within;
        loop {
            if child.try_wait()?.is_some() {
                self.child = None;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("worker {} did not exit within {within:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Is `pid` a live (not zombie) process running `comm`? Reused pids of other programs do
/// not count.
pub fn alive_as(pid: u32, comm: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let state = stat[close + 1..].split_whitespace().next();
    &stat[open + 1..close] == comm && !matches!(state, Some("Z" | "X"))
}

/// A set of ids, to look them up.
pub fn ids_of(ids: &[String]) -> HashSet<&str> {
    ids.iter().map(String::as_str).collect()
}
