//! Host load: is this host too busy to start another run? (`worker.max_cpu`,
//! `worker.min_free_ram` in local.yaml.)
//!
//! CPU use is the share of non-idle time between two readings of `/proc/stat`; free memory
//! is `MemAvailable` from `/proc/meminfo`. Parsing and the verdict are pure functions; only
//! [`Sampler::check`] reads files, at most once per [`Sampler::every`]. Where `/proc` cannot
//! be read (not Linux), nothing is ever considered overloaded.

use std::time::{Duration, Instant};

/// The limits a worker keeps to; `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Start no run while CPU use is above this many percent.
    pub max_cpu: Option<f64>,
    /// Start no run while less than this many MiB of memory are available.
    pub min_free_ram_mib: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.max_cpu.is_none() && self.min_free_ram_mib.is_none()
    }
}

/// Cumulative CPU time counters (any unit) of the whole host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// The host's counters from the text of `/proc/stat` (its first `cpu ` line).
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// CPU use in percent between two readings; `None` when no time passed.
pub fn cpu_percent(before: CpuTimes, after: CpuTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    let busy = after.busy.checked_sub(before.busy)?;
    (total > 0).then(|| busy as f64 * 100.0 / total as f64)
}

/// `MemAvailable` in MiB from the text of `/proc/meminfo`.
pub fn parse_available_mib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Why the host is too busy under `limits`, or `None` if it is not (unknown readings never
/// count as busy).
pub fn verdict(limits: &Limits, cpu: Option<f64>, free_mib: Option<u64>) -> Option<String> {
    if let (Some(max), Some(cpu)) = (limits.max_cpu, cpu)
        && cpu > max
    {
        return Some(format!("CPU at {cpu:.0}% (worker.max_cpu: {max}%)"));
    }
    if let (Some(min), Some(free)) = (limits.min_free_ram_mib, free_mib)
        && free < min
    {
        return Some(format!(
            "{free} MiB memory free (worker.min_free_ram: {min} MiB)"
        ));
    }
    None
}

/// Reads the host's load at most once per `every` and remembers the verdict.
#[derive(Debug)]
pub struct Sampler {
    limits: Limits,
    every: Duration,
    cpu: Option<CpuTimes>,
    last: Option<(Instant, Option<String>)>,
}

impl Sampler {
    pub fn new(limits: Limits, every: Duration) -> Self {
        let mut sampler = Sampler {
            limits,
            every,
            cpu: None,
            last: None,
        };
        if !limits.is_empty() {
            sampler.cpu = read_cpu();
        }
        sampler
    }

    /// How often the files are read.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Why the host is too busy to start a run now, if it is.
    pub fn check(&mut self) -> Option<String> {
        if self.limits.is_empty() {
            return None;
        }
        if let Some((at, verdict)) = &self.last
            && at.elapsed() < self.every
        {
            return verdict.clone();
        }
        let cpu_now = read_cpu();
        let cpu = match (self.cpu, cpu_now) {
            (Some(before), Some(after)) => cpu_percent(before, after),
            _ => None,
        };
        if cpu_now.is_some() {
            self.cpu = cpu_now;
        }
        let free = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_available_mib(&text));
        let found = verdict(&self.limits, cpu, free);
        self.last = Some((Instant::now(), found.clone()));
        found
    }
}

fn read_cpu() -> Option<CpuTimes> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| parse_proc_stat(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\nintr 1\n";

    #[test]
    fn proc_stat_counts_idle_and_iowait_as_idle() {
        let times = parse_proc_stat(STAT).unwrap();
        assert_eq!(
            times,
            CpuTimes {
                busy: 150,
                total: 1000
            }
        );
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        assert_eq!(parse_proc_stat("cpu  x y\n"), None);
    }

    #[test]
    fn cpu_percent_is_the_busy_share_between_readings() {
        let before = CpuTimes {
            busy: 150,
            total: 1000,
        };
        let after = CpuTimes {
            busy: 225,
            total: 1100,
        };
        assert_eq!(cpu_percent(before, after), Some(75.0));
        assert_eq!(cpu_percent(before, before), None);
        assert_eq!(cpu_percent(after, before), None, "counters never go back");
    }

    #[test]
    fn meminfo_available_in_mib() {
        let text = "MemTotal: 16000000 kB\nMemFree: 1000 kB\nMemAvailable: 2097152 kB\n";
        assert_eq!(parse_available_mib(text), Some(2048));
        assert_eq!(parse_available_mib("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn verdict_names_the_limit_exceeded() {
        let limits = Limits {
            max_cpu: Some(90.0),
            min_free_ram_mib: Some(512),
        };
        assert_eq!(verdict(&limits, Some(50.0), Some(4096)), None);
        assert_eq!(
            verdict(&limits, Some(95.0), Some(4096)).as_deref(),
            Some("CPU at 95% (worker.max_cpu: 90%)")
        );
        assert_eq!(
            verdict(&limits, Some(10.0), Some(100)).as_deref(),
            Some("100 MiB memory free (worker.min_free_ram: 512 MiB)")
        );
        assert_eq!(verdict(&limits, None, None), None, "unknown is not busy");
        assert_eq!(verdict(&Limits::default(), Some(100.0), Some(0)), None);
    }

    #[test]
    fn a_sampler_without_limits_reads_nothing() {
        let mut sampler = Sampler::new(Limits::default(), Duration::from_secs(1));
        assert_eq!(sampler.check(), None);
        assert!(sampler.cpu.is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_impossible_memory_floor_holds_the_host() {
        let mut sampler = Sampler::new(
            Limits {
                max_cpu: None,
                min_free_ram_mib: Some(u64::MAX / 2),
            },
            Duration::from_secs(60),
        );
        let reason = sampler.check().expect("held");
        assert!(reason.contains("worker.min_free_ram"), "{reason}");
        assert_eq!(
            sampler.check(),
            Some(reason),
            "remembered until `every` passed"
        );
    }
}
