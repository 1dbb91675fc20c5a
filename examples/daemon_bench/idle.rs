//! The idle daemon: memory and CPU of `coco daemon` running the example home with nothing to
//! do.
//!
//! The sandbox holds a copy of `examples/home` (projects `hello` and `shop`) and of
//! `examples/local.yaml` (logging as there: INFO to stderr and to the store), with
//! `folder.state` pointed into the sandbox and the `shop.web` app's port 8080 replaced by a
//! free port. `coco daemon` runs with everything on: converger, scheduler, worker (one slot
//! per CPU, with its process guard `coco __guard`) and the app supervisor, which starts
//! `shop.web` (`python3 -m http.server`).
//!
//! Once the daemon logged `daemon started` and the store shows `shop.web` healthy, and 5 s
//! more passed, every process under the daemon is sampled once a second for `secs` seconds:
//! `VmRSS` from `/proc/PID/status`, `utime + stime` from `/proc/PID/stat`. Reported per
//! process (the daemon alone, then each child: the guard, the app): CPU time over the window
//! as a percentage of one CPU, mean and peak RSS, and the daemon's `VmHWM` (its peak RSS
//! since it started, start-up included). Runs started by the example's schedules during the
//! window (`hello.greet` every minute, `shop.sync-stock` hourly on weekdays) are counted:
//! the daemon's share of them (fire, claim, spawn, output, progress) is in its figures; the
//! jobs' own processes, which come and go, are not sampled.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chrono::Utc;
use coco::process::procfs;
use coco::store::RunFilter;
use tokio::time::Instant;

use crate::sandbox::{Backend, Sandbox, free_port};

/// One process's use of the machine over the window.
#[derive(Debug, Clone)]
pub struct Usage {
    pub pid: u32,
    /// What it is (`coco daemon`, `coco __guard …`, the app's command line).
    pub what: String,
    /// CPU seconds (user + system) used in the window.
    pub cpu: f64,
    pub rss_mean_kb: u64,
    pub rss_peak_kb: u64,
    /// `VmHWM`: peak RSS since the process started.
    pub hwm_kb: u64,
    pub threads: u64,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct Idle {
    pub secs: u64,
    /// Spawn → the app healthy in the store.
    pub settled: Duration,
    pub daemon: Usage,
    pub children: Vec<Usage>,
    /// Runs created during the window.
    pub runs: usize,
}

impl Usage {
    /// Mean CPU use over `secs`, in % of one CPU.
    pub fn cpu_percent(&self, secs: u64) -> f64 {
        self.cpu / secs as f64 * 100.0
    }
}

pub async fn measure(
    coco: &Path,
    backend: &Backend,
    examples: &Path,
    secs: u64,
) -> anyhow::Result<Idle> {
    let port = free_port()?;
    let local = std::fs::read_to_string(examples.join("local.yaml"))
        .with_context(|| format!("reading {}/local.yaml", examples.display()))?;
    let config = local.replace("state: ../target/example-state", "state: state");
    ensure!(
        config != local && config.contains("home: home"),
        "examples/local.yaml no longer says `home: home` and `state: ../target/example-state`"
    );
    let sandbox = Sandbox::new(coco, backend, "idle", &config, |dir| {
        copy_dir(&examples.join("home"), &dir.join("home"))?;
        let shop = dir.join("home/shop/coco.yaml");
        let text = std::fs::read_to_string(&shop)?;
        ensure!(text.contains("8080"), "examples/home/shop has no port 8080");
        std::fs::write(&shop, text.replace("8080", &port.to_string()))?;
        Ok(())
    })
    .await?;
    let result = async {
        let spawned = Instant::now();
        let mut daemon = sandbox.daemon(&[], "idle")?;
        daemon
            .wait_for_log("daemon started", Duration::from_secs(60))
            .await?;
        loop {
            let statuses = sandbox.store.list_app_status().await?;
            if statuses
                .iter()
                .any(|s| s.id == "shop.web" && s.state == coco::store::AppState::Healthy)
            {
                break;
            }
            daemon.check_running()?;
            if spawned.elapsed() > Duration::from_secs(60) {
                bail!("shop.web not healthy within 60 s:\n{}", daemon.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let settled = spawned.elapsed();
        tokio::time::sleep(Duration::from_secs(5)).await;

        eprintln!("   sampling for {secs} s");
        let window_start = Utc::now();
        let pids: Vec<u32> = std::iter::once(daemon.pid())
            .chain(descendants(daemon.pid()))
            .collect();
        let first: BTreeMap<u32, u64> = pids
            .iter()
            .filter_map(|pid| Some((*pid, cpu_ticks(*pid)?)))
            .collect();
        let mut rss: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let began = Instant::now();
        for n in 0..=secs {
            tokio::time::sleep_until(began + Duration::from_secs(n)).await;
            for pid in &pids {
                if let Some(kb) = status_kb(*pid, "VmRSS") {
                    rss.entry(*pid).or_default().push(kb);
                }
            }
        }
        let elapsed = began.elapsed().as_secs_f64();
        let tick = clock_ticks_per_second();
        let mut usage = Vec::new();
        for pid in &pids {
            let (Some(start), Some(end)) = (first.get(pid), cpu_ticks(*pid)) else {
                continue; // ended during the window
            };
            let samples = rss.remove(pid).unwrap_or_default();
            usage.push(Usage {
                pid: *pid,
                what: command_line(*pid),
                // Scaled to exactly `secs`, the window the report divides by.
                cpu: (end - start) as f64 / tick * secs as f64 / elapsed,
                rss_mean_kb: samples.iter().sum::<u64>() / samples.len().max(1) as u64,
                rss_peak_kb: samples.iter().copied().max().unwrap_or(0),
                hwm_kb: status_kb(*pid, "VmHWM").unwrap_or(0),
                threads: status_kb(*pid, "Threads").unwrap_or(0),
            });
        }
        let runs = sandbox
            .store
            .list_runs(&RunFilter::default())
            .await?
            .iter()
            .filter(|r| r.created >= window_start)
            .count();
        daemon.check_running()?;
        daemon.stop().await?;
        ensure!(
            usage.first().is_some_and(|u| u.pid == pids[0]),
            "the daemon vanished"
        );
        let daemon = usage.remove(0);
        Ok(Idle {
            secs,
            settled,
            daemon,
            children: usage,
            runs,
        })
    };
    let result = result.await;
    sandbox.close().await;
    result
}

/// Copy a folder tree (files and folders only).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Every live process below `root` (children, grandchildren…), from `/proc/*/stat`.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: BTreeMap<u32, u32> = BTreeMap::new();
    for pid in procfs::pids().into_iter().flatten() {
        if let Some(ppid) = procfs::Stat::read(pid).and_then(|stat| stat.field(1)) {
            parent_of.insert(pid, ppid);
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid) in &parent_of {
            if *ppid == parent {
                found.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    found.sort_unstable();
    found
}

/// `utime + stime` (fields 14 and 15) in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = procfs::Stat::read(pid)?;
    Some(stat.field::<u64>(11)? + stat.field::<u64>(12)?)
}

/// A `kB` (or count) line of `/proc/PID/status`.
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The command line of `pid`, arguments joined by spaces (without the `--config` pair).
fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let mut shown = Vec::new();
    let mut skip = false;
    for (i, word) in words.iter().enumerate() {
        if skip {
            skip = false;
            continue;
        }
        if word == "--config" {
            skip = true;
            continue;
        }
        shown.push(if i == 0 {
            Path::new(word)
                .file_name()
                .map_or(word.clone(), |n| n.to_string_lossy().into_owned())
        } else {
            word.clone()
        });
    }
    shown.join(" ")
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}
