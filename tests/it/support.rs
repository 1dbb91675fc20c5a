//! What the end-to-end tests of the `coco` binary share: a sandbox user home with its own
//! `~/.coco/local.yaml`, projects and store, and ways to run the binary in it.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temporary user home with `~/.coco/local.yaml` pointing at `~/home` for projects and
/// `~/state` for the embedded store.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// Extra arguments after the verb (e.g. a MongoDB store).
    pub store_args: Vec<String>,
}

impl Sandbox {
    /// A sandbox whose coco logs warnings and errors to stderr.
    pub fn new() -> Sandbox {
        Sandbox::with_stderr_level("WARNING")
    }

    /// A sandbox whose coco logs to stderr from `level` on.
    pub fn with_stderr_level(level: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".coco")).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::write(
            dir.path().join(".coco/local.yaml"),
            format!("logging:\n  stderr: {level}\nfolder:\n  home: ~/home\n  state: ~/state\n"),
        )
        .unwrap();
        Sandbox {
            dir,
            store_args: Vec::new(),
        }
    }

    /// A sandbox on a fresh database of the MongoDB test server (`COCO_TEST_MONGO_URL`);
    /// `None` only when `COCO_TEST_SKIP_MONGO=1` says to skip (a CI run never passes by
    /// silently testing nothing).
    pub fn on_mongodb(prefix: &str) -> Option<Sandbox> {
        let Ok(url) = std::env::var("COCO_TEST_MONGO_URL") else {
            assert_eq!(
                std::env::var("COCO_TEST_SKIP_MONGO").as_deref(),
                Ok("1"),
                "COCO_TEST_MONGO_URL is not set (tests/run.sh starts a server), nor COCO_TEST_SKIP_MONGO=1"
            );
            return None;
        };
        let mut sandbox = Sandbox::new();
        sandbox.store_args = vec![
            "--mongo-url".into(),
            url,
            "--mongo-database".into(),
            format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase()),
        ];
        Some(sandbox)
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn project(&self, name: &str, text: &str) {
        std::fs::create_dir_all(self.home().join(name)).unwrap();
        std::fs::write(self.home().join(name).join("coco.yaml"), text).unwrap();
    }

    /// Write `path` under the home (and make it executable).
    pub fn file(&self, path: &str, text: &str, executable: bool) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.home().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        if executable {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// Apply the home's projects; panics unless it worked.
    pub fn apply(&self) {
        let apply = self.coco(&["apply"]);
        assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    }

    /// Run coco to its end with HOME set to the sandbox and no COCO_* variables from outside.
    pub fn coco(&self, args: &[&str]) -> Output {
        self.coco_env(args, &[])
    }

    /// [`Sandbox::coco`] with extra environment variables.
    pub fn coco_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    /// Start coco in the background (e.g. a worker); it is stopped when the guard drops.
    pub fn spawn(&self, args: &[&str]) -> Background {
        self.spawn_env(args, &[])
    }

    /// [`Sandbox::spawn`] with extra environment variables.
    pub fn spawn_env(&self, args: &[&str], env: &[(&str, &str)]) -> Background {
        let log = self.dir.path().join(format!("{}.log", ulid::Ulid::new()));
        let child = self
            .command(args, env)
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        Background { child, log }
    }

    /// [`Sandbox::spawn`] inside network namespace `netns` (`ip netns exec`, which execs
    /// coco itself: the child is coco's process).
    pub fn spawn_in(&self, netns: &str, args: &[&str]) -> Background {
        let log = self.dir.path().join(format!("{}.log", ulid::Ulid::new()));
        let child = self
            .command_in(Some(netns), args, &[])
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        Background { child, log }
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        self.command_in(None, args, env)
    }

    #[allow(clippy::disallowed_methods)] // runs the coco binary under test
    fn command_in(&self, netns: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Command {
        let coco = env!("CARGO_BIN_EXE_coco");
        let mut command = match netns {
            None => Command::new(coco),
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, coco]);
                command
            }
        };
        command
            .args(args)
            .args(&self.store_args)
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("COCO_") {
                command.env_remove(key);
            }
        }
        // A daemon's API on a port of the kernel's choosing: tests run many daemons at once
        // (a test of the API names its port; `env` may say otherwise, and an empty
        // `COCO_API__LISTEN` leaves the address to local.yaml).
        command.env("COCO_API__LISTEN", "127.0.0.1:0");
        for (key, value) in env {
            command.env(key, value);
        }
        if env.contains(&("COCO_API__LISTEN", "")) {
            command.env_remove("COCO_API__LISTEN");
        }
        command
    }

    /// `git ARGS` in `dir` as the developer of this sandbox (its HOME, so no user config;
    /// an identity given); its stdout; panics unless it worked.
    #[allow(clippy::disallowed_methods)] // the tests play the developer's part with git
    pub fn git(&self, dir: &std::path::Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.org"])
            .args(args)
            .current_dir(dir)
            .env("HOME", self.dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Enqueue and return the printed id; panics unless it worked.
    pub fn enqueue(&self, args: &[&str]) -> String {
        let mut all = vec!["enqueue"];
        all.extend_from_slice(args);
        let output = self.coco(&all);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let id = stdout(&output).trim().to_owned();
        assert_eq!(id.len(), 26, "a ULID: {id:?}");
        id
    }

    pub fn list_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["list", "--json"];
        all.extend_from_slice(args);
        let output = self.coco(&all);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_str(&stdout(&output)).unwrap()
    }

    /// `coco detail ID --json`'s run.
    pub fn run_json(&self, id: &str) -> serde_json::Value {
        let output = self.coco(&["detail", id, "--json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let detail: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        detail["run"].clone()
    }

    /// Wait (up to 20 s) until run `id` is in `state`; returns the run.
    pub fn wait_for_state(&self, id: &str, state: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let run = self.run_json(id);
            if run["state"] == state {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} never reached {state}: {run:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A coco process running in the background, with its output in a file; SIGTERM and wait
/// on drop.
pub struct Background {
    pub child: Child,
    log: PathBuf,
}

impl Background {
    /// Its output so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait (up to 20 s) for it to exit on its own; its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "still running:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (up to 20 s) until its output contains `text`.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            // A stopped one (a fleet test's SIGSTOP that failed half-way) gets it once woken.
            // SAFETY: as above.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGCONT) };
            let _ = self.child.wait();
        }
    }
}

/// A loopback port free right now (for an app to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Is a process with this pid alive? Zombies (exited, not yet reaped) count as gone.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

/// Run coco in `sandbox`, assert its exit code; its stdout.
pub fn ok(sandbox: &Sandbox, args: &[&str], code: i32) -> String {
    let output = sandbox.coco(args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "coco {args:?}\nstdout: {}\nstderr: {}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// The pid of `worker`'s process guard (`coco __guard …`, a child of the worker).
pub fn guard_of(worker: u32) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            parent == Some(worker) && cmdline.split(|&b| b == 0).any(|arg| arg == b"__guard")
        })
}

/// App `app`'s status as `coco apps --json` shows it, once `until` holds (up to 40 s).
pub fn app_status(
    sandbox: &Sandbox,
    app: &str,
    until: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let apps: Vec<serde_json::Value> =
            serde_json::from_str(&ok(sandbox, &["apps", "--json"], 0)).unwrap();
        let status = apps
            .iter()
            .find(|line| line["app"] == app)
            .map(|line| line["status"].clone())
            .unwrap_or_default();
        if until(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{app}: {apps:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
