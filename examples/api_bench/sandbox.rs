//! A fresh world for one store size: a temporary folder with a home holding the `bench`
//! project (applied with `coco apply`), a state folder, a `local.yaml` naming them and the
//! store (a new SQLite file, or a new MongoDB database), the store opened by this process
//! too, and an admin token made by `coco token create`. The daemon is a real
//! `coco daemon --no-worker --no-scheduler --no-apps` serving the API on a free loopback
//! port ([`DaemonProcess`]; a drop guard SIGKILLs it if a benchmark bails out early).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use coco::store::{self, Store};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::common::{Backend, SandboxStore, drop_database, host_command, sandbox_store};
pub use crate::daemon_process::{DaemonProcess, free_port};
use crate::http;

/// Keep the sandbox folders (`--keep`), to read the daemons' logs and the stores afterwards.
pub static KEEP: AtomicBool = AtomicBool::new(false);

/// The `bench` project: the jobs the stored runs belong to. `sync` may be tried three
/// times (its failed runs wait for a retry), the others once (a failure is final).
const MANIFEST: &str = r#"project: bench
environment:
  workdir: .
jobs:
  build:
    command: ["true"]
  sync:
    command: ["true"]
    attempts: 3
    retry_delay: 10m
  report:
    command: ["true"]
  backup:
    command: ["true"]
"#;

/// The jobs of [`MANIFEST`].
pub const JOBS: [&str; 4] = ["build", "sync", "report", "backup"];

/// One store size's folder, home, state, store and token.
pub struct Sandbox {
    dir: TempDir,
    coco: PathBuf,
    pub store: Arc<dyn Store>,
    /// MongoDB URL and database, dropped by [`Sandbox::close`].
    pub mongo: Option<(String, String)>,
    /// The secret of the admin token `bench`.
    pub token: String,
}

impl Sandbox {
    /// Write the home and `local.yaml`, open the store, apply the project with `coco apply`
    /// and create the admin token with `coco token create bench --role admin`.
    pub async fn new(coco: &Path, backend: &Backend, name: &str) -> anyhow::Result<Sandbox> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("coco-api-bench-{name}-"))
            .tempdir()
            .context("creating the sandbox folder")?;
        std::fs::create_dir_all(dir.path().join("home/bench"))?;
        std::fs::create_dir_all(dir.path().join("logs"))?;
        std::fs::write(dir.path().join("home/bench/coco.yaml"), MANIFEST)?;
        let state = dir.path().join("state");
        let SandboxStore {
            location,
            config: store_config,
            mongo,
        } = sandbox_store(backend, &state, "coco_api_bench", name);
        // INFO to stderr (kept in logs/), the daemon's records to the store as by default.
        let config = format!(
            "logging:\n  stderr: INFO\nfolder:\n  home: home\n  state: state\n{store_config}"
        );
        std::fs::write(dir.path().join("local.yaml"), config)?;
        let mut sandbox = Sandbox {
            store: store::open(&location).await.context("opening the store")?,
            dir,
            coco: coco.to_path_buf(),
            mongo,
            token: String::new(),
        };
        sandbox.run(&["apply"], "apply")?;
        sandbox.token = sandbox
            .run(&["token", "create", "bench", "--role", "admin"], "token")?
            .trim()
            .to_string();
        ensure!(
            sandbox.token.starts_with("coco_"),
            "coco token create printed no secret: {:?}",
            sandbox.token
        );
        Ok(sandbox)
    }

    /// A path inside the sandbox folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// `coco --config <sandbox>/local.yaml ARGS…`, no `COCO_*` variables of ours inherited.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = host_command(&self.coco);
        command
            .arg("--config")
            .arg(self.path("local.yaml"))
            .args(args)
            .stdin(Stdio::null());
        for (key, _) in std::env::vars() {
            if key.starts_with("COCO_") {
                command.env_remove(key);
            }
        }
        command
    }

    /// Run `coco ARGS…` to its end; its stdout (stderr kept in `logs/<log>.err`).
    fn run(&self, args: &[&str], log: &str) -> anyhow::Result<String> {
        let err = self.path(&format!("logs/{log}.err"));
        let output = self
            .command(args)
            .stderr(std::fs::File::create(&err)?)
            .output()
            .with_context(|| format!("running coco {}", args.join(" ")))?;
        ensure!(
            output.status.success(),
            "coco {} failed ({}): {}",
            args.join(" "),
            output.status,
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Start `coco daemon --no-worker --no-scheduler --no-apps --api-listen 127.0.0.1:PORT`
    /// on a free port and wait until `GET /healthz` answers 200.
    /// The daemon and its API's port on 127.0.0.1.
    pub async fn daemon(&self, log: &str) -> anyhow::Result<(DaemonProcess, u16)> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let err = self.path(&format!("logs/{log}.err"));
        let child = self
            .command(&[
                "daemon",
                "--no-worker",
                "--no-scheduler",
                "--no-apps",
                "--api-listen",
                &listen,
            ])
            .stdout(std::fs::File::create(
                self.path(&format!("logs/{log}.out")),
            )?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .context("starting coco daemon")?;
        let mut daemon = DaemonProcess::new(child, err);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let healthy = tokio::task::spawn_blocking(move || {
                http::Connection::open(port)
                    .and_then(|mut c| c.get("/healthz", None))
                    .is_ok_and(|answer| answer.status == 200)
            })
            .await?;
            if healthy {
                return Ok((daemon, port));
            }
            daemon.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "the daemon's API did not answer within 60 s:\n{}",
                    daemon.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drop the sandbox's MongoDB database (the temporary folder goes with `self`). With
    /// `--keep`, both stay.
    pub async fn close(self) {
        if KEEP.load(Ordering::Relaxed) {
            eprintln!("   kept {}", self.dir.keep().display());
            return;
        }
        drop_database(self.mongo.as_ref()).await;
    }
}
