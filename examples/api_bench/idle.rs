//! The idle cost of open event streams: the daemon's CPU and memory over a window with no
//! stream open, then over a window of the same length with `streams` streams open and idle
//! (nothing changes in the store), in the same daemon one after the other.
//!
//! Before each window the daemon is left alone for [`SETTLE`] (the poller stops once the
//! last stream of the event benchmark closed; it starts with the first new stream and its
//! first read only primes it). During a window `utime + stime` (`/proc/PID/stat`) is read at
//! its start and end — CPU as a percentage of one CPU — and `VmRSS` (`/proc/PID/status`)
//! every second. The streams are HTTP/1.0 `GET /api/v1/events` of the one admin token (16 is
//! the most one token may hold), each drained by a thread that counts the events it gets.
//! With `server` (the MongoDB-wire server's pid, when it runs on this host: FerretDB of
//! `tests/mongo_server.sh`) that process's CPU is read over the same windows: on MongoDB the
//! store's work is done there, not in the daemon.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::ensure;
use coco::process::procfs;
use tokio::time::Instant;

use crate::http::EventStream;

/// Quiet time before each window.
const SETTLE: Duration = Duration::from_secs(3);

/// One window's figures.
#[derive(Debug, Clone)]
pub struct Window {
    pub streams: usize,
    pub secs: u64,
    /// The daemon's CPU seconds (user + system) in the window.
    pub cpu: f64,
    pub rss_mean_kb: u64,
    pub rss_peak_kb: u64,
    pub threads: u64,
    /// The store server's CPU seconds in the window, if it was sampled.
    pub server_cpu: Option<f64>,
    /// Events the streams received in the window (all of them together), and their data's
    /// bytes; by name.
    pub events: Received,
}

impl Window {
    /// CPU seconds over the window as % of one CPU.
    pub fn percent(&self, cpu: f64) -> f64 {
        cpu / self.secs as f64 * 100.0
    }
}

/// Both windows.
#[derive(Debug, Clone)]
pub struct Idle {
    pub quiet: Window,
    pub open: Window,
}

pub async fn measure(
    daemon: u32,
    port: u16,
    token: &str,
    streams: usize,
    secs: u64,
    server: Option<u32>,
) -> anyhow::Result<Idle> {
    tokio::time::sleep(SETTLE).await;
    eprintln!("   {secs} s with no stream open");
    let quiet = window(daemon, server, secs, 0, BTreeMap::new).await?;

    let received: Arc<Mutex<Received>> = Arc::default();
    let mut closers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..streams {
        let stream = EventStream::open(port, token)?;
        closers.push(stream.closer()?);
        let received = Arc::clone(&received);
        readers.push(std::thread::spawn(move || {
            let mut stream = stream;
            while let Some(event) = stream.next() {
                let mut received = received.lock().unwrap_or_else(|e| e.into_inner());
                let count = received.entry(event.name).or_default();
                count.0 += 1;
                count.1 += event.data.len();
            }
        }));
    }
    tokio::time::sleep(SETTLE).await;
    eprintln!("   {secs} s with {streams} streams open");
    let taken = || std::mem::take(&mut *received.lock().unwrap_or_else(|e| e.into_inner()));
    taken();
    let open = window(daemon, server, secs, streams, taken).await;
    for closer in &closers {
        let _ = closer.shutdown(std::net::Shutdown::Both);
    }
    for reader in readers {
        let _ = reader.join();
    }
    Ok(Idle { quiet, open: open? })
}

/// Events received, by name: how many, and their data's bytes.
type Received = BTreeMap<String, (usize, usize)>;

/// Sample `daemon` (and `server`) for `secs` seconds.
async fn window(
    daemon: u32,
    server: Option<u32>,
    secs: u64,
    streams: usize,
    events: impl Fn() -> Received,
) -> anyhow::Result<Window> {
    let start = cpu_ticks(daemon);
    let server_start = server.and_then(cpu_ticks);
    let mut rss = Vec::new();
    let began = Instant::now();
    for n in 0..=secs {
        tokio::time::sleep_until(began + Duration::from_secs(n)).await;
        if let Some(kb) = status_kb(daemon, "VmRSS") {
            rss.push(kb);
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    let end = cpu_ticks(daemon);
    let server_end = server.and_then(cpu_ticks);
    let (Some(start), Some(end)) = (start, end) else {
        anyhow::bail!("the daemon (pid {daemon}) vanished during the window");
    };
    ensure!(!rss.is_empty(), "no VmRSS read for pid {daemon}");
    let tick = clock_ticks_per_second();
    // Scaled to exactly `secs`, the window the report divides by.
    let scaled = |ticks: u64| ticks as f64 / tick * secs as f64 / elapsed;
    Ok(Window {
        streams,
        secs,
        cpu: scaled(end - start),
        rss_mean_kb: rss.iter().sum::<u64>() / rss.len() as u64,
        rss_peak_kb: rss.iter().copied().max().unwrap_or(0),
        threads: status_kb(daemon, "Threads").unwrap_or(0),
        server_cpu: match (server_start, server_end) {
            (Some(start), Some(end)) => Some(scaled(end - start)),
            _ => None,
        },
        events: events(),
    })
}

/// `utime + stime` (fields 14 and 15) in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = procfs::Stat::read(pid)?;
    Some(stat.field::<u64>(11)? + stat.field::<u64>(12)?)
}

/// A `kB` (or count) line of `/proc/PID/status`.
fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}
