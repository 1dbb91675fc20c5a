//! App restart: from saving a changed app definition to the new app process being healthy.
//!
//! One project `web` with app `srv`: `python3 server.py`, a small `http.server` on a free
//! port (`PORT`, set by coco from `port:`) that answers `GET /` with its pid and the value of
//! `GENERATION`, an environment variable of the app; `health: {http: "/"}`, `restart:
//! always`. `coco daemon --no-worker --no-scheduler` supervises it. Each repetition, after a
//! pause of 1.5–2.5 s (random, so that writes fall at random points of the 1 s status
//! tick), writes the manifest in place with the next `GENERATION` — a definition
//! change, so the supervisor replaces the process (with a port, the old one is stopped
//! before the new one starts) — and then sends `GET /` itself every 5 ms and reads the app's
//! status from the store every 10 ms, until the store shows the new pid healthy. Times from
//! just before the write:
//!
//! - **old gone**: the first probe that finds nothing listening;
//! - **spawned**: the new process's `started` in the store (the daemon's clock, ms);
//! - **answering**: the first probe answered with the new generation (the app is up);
//! - **healthy (daemon)**: the `checked` time of the daemon's first passing health check of
//!   the new process — health checks run every 100 ms until the first passes;
//! - **healthy (store)**: the store, `coco apps --json`, shows the new pid `healthy` — the
//!   daemon writes an app's status when it starts it and then once a second, so this adds
//!   up to 1 s.
//!
//! Every repetition must end with a new pid healthy within 20 s.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::sandbox::{Backend, CONFIG, Rng, Sandbox, free_port};

const SERVER: &str = r#"import http.server, os

BODY = f"{os.getpid()} {os.environ.get('GENERATION', '')}\n".encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

fn manifest(port: u16, generation: usize) -> String {
    format!(
        r#"project: web
environment:
  workdir: .
apps:
  srv:
    command: [python3, server.py]
    port: {port}
    health: {{http: "/"}}
    restart: always
    env: {{GENERATION: "{generation}"}}
"#
    )
}

/// One restart; every time from just before the write, in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Restart {
    pub old_gone: Option<u64>,
    pub spawned: Option<u64>,
    pub answering: u64,
    pub healthy_daemon: Option<u64>,
    pub healthy_store: u64,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct Restarts {
    pub restarts: Vec<Restart>,
    /// Repetitions that did not end with a new healthy process.
    pub failed: Vec<String>,
}

impl Restarts {
    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }
}

pub async fn measure(coco: &Path, backend: &Backend, reps: usize) -> anyhow::Result<Restarts> {
    let port = free_port()?;
    let sandbox = Sandbox::new(coco, backend, "restart", CONFIG, |dir| {
        let folder = dir.join("home/web");
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join("server.py"), SERVER)?;
        std::fs::write(folder.join("coco.yaml"), manifest(port, 0))?;
        Ok(())
    })
    .await?;
    let result = async {
        let mut daemon = sandbox.daemon(&["--no-worker", "--no-scheduler"], "restart")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut pid = loop {
            if let Some(pid) = healthy_pid(&sandbox).await? {
                break pid;
            }
            daemon.check_running()?;
            if Instant::now() > deadline {
                bail!("web.srv never became healthy:\n{}", daemon.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!("   {reps} restarts of a python3 HTTP server");
        let mut restarts = Vec::new();
        let mut failed = Vec::new();
        let mut rng = Rng::seeded();
        for generation in 1..=reps {
            let pause = 1500 + rng.below(1000) as u64;
            tokio::time::sleep(Duration::from_millis(pause)).await;
            match once(&sandbox, port, generation, pid).await {
                Ok((restart, new_pid)) => {
                    restarts.push(restart);
                    pid = new_pid;
                }
                Err(error) => {
                    eprintln!("   restart {generation}: {error:#}");
                    failed.push(format!("restart {generation}: {error:#}"));
                    break;
                }
            }
            daemon.check_running()?;
        }
        daemon.stop().await?;
        Ok(Restarts { restarts, failed })
    };
    let result = result.await;
    sandbox.close().await;
    result
}

/// Save generation `generation` and time the replacement of `old_pid`.
async fn once(
    sandbox: &Sandbox,
    port: u16,
    generation: usize,
    old_pid: u32,
) -> anyhow::Result<(Restart, u32)> {
    let file = sandbox.home().join("web/coco.yaml");
    let text = manifest(port, generation);
    let wall = DateTime::<Utc>::from(SystemTime::now());
    let before = Instant::now();
    std::fs::write(&file, text)?;
    let us = |d: Duration| d.as_micros() as u64;
    let since_write = |t: DateTime<Utc>| (t - wall).num_microseconds().map(|us| us.max(0) as u64);
    let mut restart = Restart::default();
    let mut answered = None;
    let mut checks = 0u32;
    loop {
        match probe(port).await {
            Some((pid, seen)) if seen == generation.to_string() => {
                if answered.is_none() {
                    answered = Some(pid);
                    restart.answering = us(before.elapsed());
                }
            }
            Some(_) => {}
            None => {
                if restart.old_gone.is_none() {
                    restart.old_gone = Some(us(before.elapsed()));
                }
            }
        }
        checks += 1;
        if checks.is_multiple_of(2) || answered.is_some() {
            let status = sandbox
                .store
                .list_app_status()
                .await?
                .into_iter()
                .find(|s| s.id == "web.srv")
                .context("the app's status vanished")?;
            if let Some(pid) = status.pid.filter(|pid| *pid != old_pid) {
                restart.spawned = status.started.and_then(since_write);
                if status.state == coco::store::AppState::Healthy && answered.is_some() {
                    restart.healthy_store = us(before.elapsed());
                    restart.healthy_daemon = status.checked.and_then(since_write);
                    if answered != Some(pid) {
                        bail!("the store says pid {pid}, the app answers as {answered:?}");
                    }
                    return Ok((restart, pid));
                }
            }
        }
        if before.elapsed() > Duration::from_secs(20) {
            bail!("no new healthy process within 20 s (old pid {old_pid})");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The pid of the app if the store shows it healthy.
async fn healthy_pid(sandbox: &Sandbox) -> anyhow::Result<Option<u32>> {
    Ok(sandbox
        .store
        .list_app_status()
        .await?
        .into_iter()
        .find(|s| s.id == "web.srv" && s.state == coco::store::AppState::Healthy)
        .and_then(|s| s.pid))
}

/// `GET /` on the app: its pid and generation, or `None` if nothing answers (within 200 ms).
async fn probe(port: u16) -> Option<(u32, String)> {
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.ok()?;
        let body = answer.split("\r\n\r\n").nth(1)?;
        let mut words = body.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        Some((pid, words.next().unwrap_or_default().to_owned()))
    };
    tokio::time::timeout(Duration::from_millis(200), ask)
        .await
        .ok()
        .flatten()
}
