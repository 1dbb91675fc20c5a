//! A fresh world for one benchmark: a temporary folder holding a home, a state folder and a
//! `local.yaml` naming them (relative to it) and the store — a new SQLite file under the
//! state folder, or a new MongoDB database — opened by this process too. Daemons are real
//! `coco daemon` processes of the built binary ([`DaemonProcess`]), their stderr kept in
//! `logs/`; a drop guard SIGKILLs one if a benchmark bails out early.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use coco::store::{self, Store};
use tempfile::TempDir;

pub use crate::common::Backend;
use crate::common::{SandboxStore, drop_database, host_command, sandbox_store};
pub use crate::daemon_process::{DaemonProcess, free_port};

/// Keep the sandbox folders (`--keep`), to read the daemons' logs afterwards.
pub static KEEP: AtomicBool = AtomicBool::new(false);

/// The `local.yaml` of a sandbox without its store part: logging at the defaults (INFO to
/// stderr and to the store), home and state folders next to it.
pub const CONFIG: &str = "logging:\n  stderr: INFO\nfolder:\n  home: home\n  state: state\n";

/// One benchmark's folder, home, state and store (see the module documentation).
pub struct Sandbox {
    dir: TempDir,
    coco: PathBuf,
    pub store: Arc<dyn Store>,
    /// MongoDB URL and database, dropped by [`Sandbox::close`].
    mongo: Option<(String, String)>,
}

impl Sandbox {
    /// A sandbox whose `local.yaml` is `config` (paths relative to the sandbox folder) plus
    /// the store's lines. `prepare` fills the folder (the home) before the store is opened.
    /// `name` makes the folder and the MongoDB database name readable.
    pub async fn new(
        coco: &Path,
        backend: &Backend,
        name: &str,
        config: &str,
        prepare: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Sandbox> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("coco-daemon-bench-{name}-"))
            .tempdir()
            .context("creating the sandbox folder")?;
        std::fs::create_dir_all(dir.path().join("home"))?;
        std::fs::create_dir_all(dir.path().join("logs"))?;
        prepare(dir.path())?;
        let state = dir.path().join("state");
        let SandboxStore {
            location,
            config: store_config,
            mongo,
        } = sandbox_store(backend, &state, "coco_daemon_bench", name);
        // The daemon's API on a port of the kernel's choosing: 5001 may be another daemon's.
        let config = format!("{config}{store_config}api:\n  listen: 127.0.0.1:0\n");
        std::fs::write(dir.path().join("local.yaml"), config)?;
        Ok(Sandbox {
            store: store::open(&location).await.context("opening the store")?,
            dir,
            coco: coco.to_path_buf(),
            mongo,
        })
    }

    /// A path inside the sandbox folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// `coco --config <sandbox>/local.yaml ARGS…`, no `COCO_*` variables of ours inherited.
    pub fn command(&self, args: &[&str]) -> Command {
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

    /// Start `coco daemon ARGS…`, its stdout and stderr to `logs/<log>.out|.err`.
    pub fn daemon(&self, args: &[&str], log: &str) -> anyhow::Result<DaemonProcess> {
        let err = self.path(&format!("logs/{log}.err"));
        let mut all = vec!["daemon"];
        all.extend_from_slice(args);
        let child = self
            .command(&all)
            .stdout(std::fs::File::create(
                self.path(&format!("logs/{log}.out")),
            )?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .context("starting coco daemon")?;
        Ok(DaemonProcess::new(child, err))
    }

    /// Drop the sandbox's MongoDB database (the temporary folder goes with `self`); a
    /// failure is only logged. With `--keep`, both stay.
    pub async fn close(self) {
        if KEEP.load(Ordering::Relaxed) {
            eprintln!("   kept {}", self.dir.keep().display());
            return;
        }
        drop_database(self.mongo.as_ref()).await;
    }
}

/// A small xorshift generator (which project, job, pause), seeded differently every run.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Rng(nanos | 1)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
