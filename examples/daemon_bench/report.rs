//! The figures as Markdown: the machine, a summary with the targets of issue 4, then one
//! table per benchmark, one row per store (per process for the idle daemon).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::common::report_head;
use crate::fire::Fire;
use crate::idle::Idle;
use crate::restart::Restarts;
use crate::{Options, Results};

pub fn markdown(options: &Options, coco: &Path, all: &[Results]) -> String {
    let mut out = report_head(
        "Daemons",
        coco,
        all.iter().map(|r| (r.backend.label(), r.load.clone())),
    );
    summary(&mut out, all);
    save(&mut out, options, all);
    fire(&mut out, options, all);
    idle(&mut out, all);
    restart(&mut out, all);
    out
}

fn summary(out: &mut String, all: &[Results]) {
    let _ = writeln!(
        out,
        "| store | benchmark | measured | target |\n|---|---|---|---|"
    );
    for r in all {
        let store = r.backend.label();
        if let Some(result) = &r.save {
            let (measured, target) = match result {
                Ok(s) => {
                    let (p50, p99) = (p(&s.latencies, 0.5), p(&s.latencies, 0.99));
                    let met = p50 < 100_000 && p99 < 250_000 && s.passed();
                    (
                        format!(
                            "median {}, p99 {} ({} saves{})",
                            ms(p50),
                            ms(p99),
                            s.latencies.len(),
                            if s.passed() {
                                String::new()
                            } else {
                                format!(", **{} never applied**", s.missed.len())
                            }
                        ),
                        format!(
                            "median < 100 ms, p99 < 250 ms: **{}**",
                            if met { "met" } else { "not met" }
                        ),
                    )
                }
                Err(e) => (format!("error: {e}"), String::new()),
            };
            let _ = writeln!(out, "| {store} | save → applied | {measured} | {target} |");
            if let Ok(s) = result {
                let _ = writeln!(
                    out,
                    "| {store} | start-up reconcile, {} projects × {} jobs | {} to the store, {} \
                     to `daemon started`; {} with nothing to apply | — |",
                    s.projects,
                    s.jobs,
                    secs(s.startup_store),
                    secs(s.startup_log),
                    secs(s.restart_log)
                );
            }
        }
        if let Some(result) = &r.fire {
            let (measured, target) = match result {
                Ok(f) => {
                    let (series, what) = if f.enqueued.is_empty() {
                        (&f.created, "created")
                    } else {
                        (&f.enqueued, "enqueued")
                    };
                    let p99 = p(series, 0.99);
                    (
                        format!(
                            "{what} − instant: p50 {}, p99 {}, max {} ({} fires; {})",
                            ms(p(series, 0.5)),
                            ms(p99),
                            ms(p(series, 1.0)),
                            f.fired,
                            fire_verdict(f)
                        ),
                        format!(
                            "p99 < 20 ms: **{}**",
                            if p99 < 20_000 { "met" } else { "not met" }
                        ),
                    )
                }
                Err(e) => (format!("error: {e}"), String::new()),
            };
            let _ = writeln!(out, "| {store} | fire precision | {measured} | {target} |");
        }
        if let Some(result) = &r.idle {
            let measured = match result {
                Ok(i) => {
                    let children: Vec<String> = i
                        .children
                        .iter()
                        .map(|c| {
                            format!(
                                "{} {:.2} %, {}",
                                short(&c.what),
                                c.cpu_percent(i.secs),
                                mib(c.rss_peak_kb)
                            )
                        })
                        .collect();
                    format!(
                        "daemon {:.2} % CPU, RSS peak {} (mean {}); children: {}",
                        i.daemon.cpu_percent(i.secs),
                        mib(i.daemon.rss_peak_kb),
                        mib(i.daemon.rss_mean_kb),
                        children.join("; ")
                    )
                }
                Err(e) => format!("error: {e}"),
            };
            let _ = writeln!(out, "| {store} | idle daemon | {measured} | — |");
        }
        if let Some(result) = &r.restart {
            let measured = match result {
                Ok(rs) => {
                    let daemon = restart_series(rs, |r| r.healthy_daemon);
                    let store_seen = restart_series(rs, |r| Some(r.healthy_store));
                    format!(
                        "write → healthy (daemon's check) median {}, max {}; shown by `coco \
                         apps` median {} ({} restarts{})",
                        ms(p(&daemon, 0.5)),
                        ms(p(&daemon, 1.0)),
                        ms(p(&store_seen, 0.5)),
                        rs.restarts.len(),
                        if rs.passed() { "" } else { ", **one failed**" }
                    )
                }
                Err(e) => format!("error: {e}"),
            };
            let _ = writeln!(out, "| {store} | app restart | {measured} | — |");
        }
    }
    out.push('\n');
}

fn save(out: &mut String, options: &Options, all: &[Results]) {
    if all.iter().all(|r| r.save.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "Save → applied: P projects × {jobs} scheduled jobs (P below), `coco daemon --no-worker \
         --no-apps`; a random job's schedule changed, its manifest written in place, timed until \
         `get_job` shows the new next fire (polled every 2 ms); 500–750 ms between saves. \
         \"daemon's pass\": the `took=` of the daemon's `applied:` line for that save. \
         Start-up: from the spawn on an empty store.\n\n\
         | store | P | saves | p50 | p90 | p99 | max | daemon's pass p50 / p99 | passes logged | start-up: store shows all | `daemon started` | its pass took | second start, nothing to apply |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|",
        jobs = options.jobs
    );
    for r in all {
        let row = match &r.save {
            Some(Ok(s)) => format!(
                "{} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {}",
                s.projects,
                s.latencies.len(),
                ms(p(&s.latencies, 0.5)),
                ms(p(&s.latencies, 0.9)),
                ms(p(&s.latencies, 0.99)),
                ms(p(&s.latencies, 1.0)),
                ms(p(&s.took, 0.5)),
                ms(p(&s.took, 0.99)),
                s.passes,
                secs(s.startup_store),
                secs(s.startup_log),
                s.startup_took.map_or("-".into(), secs),
                secs(s.restart_log)
            ),
            Some(Err(e)) => format!("| error: {e} | | | | | | | | | | |"),
            None => continue,
        };
        let _ = writeln!(out, "| {} | {row} |", r.backend.label());
        if let Some(Ok(s)) = &r.save {
            for missed in s.missed.iter().take(5) {
                let _ = writeln!(out, "  - never applied: {missed}");
            }
        }
    }
    out.push('\n');
}

fn fire(out: &mut String, options: &Options, all: &[Results]) {
    if all.iter().all(|r| r.fire.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "Fire precision: `schedule: \"* * * * * *\"`, `concurrency: allow`, `date +%s%N`, \
         `coco daemon --no-apps` for {secs} s. Lateness against the instant: created = the \
         run's `created` (ms resolution), enqueued = the daemon's `fired` log line (after the insert, µs), started = \
         the job's own clock (enqueue + wake-up + claim + spawn).\n\n\
         | store | runs | check | created p50 / p99 / max | enqueued p50 / p99 / max | job started p50 / p99 / max |\n\
         |---|---|---|---|---|---|",
        secs = options.fire_secs
    );
    for r in all {
        let row = match &r.fire {
            Some(Ok(f)) => format!(
                "{} | {} | {} | {} | {}",
                f.fired,
                fire_verdict(f),
                triple(&f.created),
                triple(&f.enqueued),
                triple(&f.started)
            ),
            Some(Err(e)) => format!("| error: {e} | | | |"),
            None => continue,
        };
        let _ = writeln!(out, "| {} | {row} |", r.backend.label());
        if let Some(Ok(f)) = &r.fire {
            for wrong in f.missed.iter().chain(&f.doubled).chain(&f.wrong).take(5) {
                let _ = writeln!(out, "  - {wrong}");
            }
        }
    }
    out.push('\n');
}

fn fire_verdict(f: &Fire) -> String {
    if f.passed() {
        "pass: every second once".into()
    } else {
        format!(
            "**fail**: {} missed, {} doubled, {} other",
            f.missed.len(),
            f.doubled.len(),
            f.wrong.len()
        )
    }
}

fn idle(out: &mut String, all: &[Results]) {
    for r in all {
        let Some(result) = &r.idle else { continue };
        let i: &Idle = match result {
            Ok(i) => i,
            Err(e) => {
                let _ = writeln!(out, "Idle daemon ({}): error: {e}\n", r.backend.label());
                continue;
            }
        };
        let _ = writeln!(
            out,
            "Idle daemon ({store}): `coco daemon` on a copy of examples/ (worker, scheduler, \
             app `shop.web`), settled in {settled} (spawn → app healthy) + 5 s, then sampled \
             every second for {secs} s; {runs} run(s) started by the example's schedules in the \
             window. CPU = (utime + stime) over the window, % of one CPU.\n\n\
             | process | CPU % | CPU time | RSS mean | RSS peak | VmHWM (since start) | threads |\n\
             |---|---|---|---|---|---|---|",
            store = r.backend.label(),
            settled = secs(i.settled),
            secs = i.secs,
            runs = i.runs
        );
        for u in std::iter::once(&i.daemon).chain(&i.children) {
            let _ = writeln!(
                out,
                "| `{}` (pid {}) | {:.2} % | {:.2} s | {} | {} | {} | {} |",
                short(&u.what),
                u.pid,
                u.cpu_percent(i.secs),
                u.cpu,
                mib(u.rss_mean_kb),
                mib(u.rss_peak_kb),
                mib(u.hwm_kb),
                u.threads
            );
        }
        out.push('\n');
    }
}

fn restart(out: &mut String, all: &[Results]) {
    if all.iter().all(|r| r.restart.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "App restart: a python3 HTTP app (`health: {{http: \"/\"}}`, a port) under `coco daemon \
         --no-worker --no-scheduler`; its `env` changed and the manifest written in place; times \
         from the write, p50 / p90 / max. Old gone = first probe refused; spawned = the new \
         process's `started`; answering = first `GET /` answered by the new process (probed \
         every 5 ms); healthy (daemon) = the daemon's first passing check; healthy (store) = \
         `coco apps` shows it.\n\n\
         | store | restarts | old gone | spawned | answering | healthy (daemon's check) | healthy (store) |\n\
         |---|---|---|---|---|---|---|"
    );
    for r in all {
        let row = match &r.restart {
            Some(Ok(rs)) => format!(
                "{}{} | {} | {} | {} | {} | {}",
                rs.restarts.len(),
                if rs.passed() {
                    String::new()
                } else {
                    format!(" (**failed**: {})", rs.failed.join("; "))
                },
                triple_u(&restart_series(rs, |r| r.old_gone)),
                triple_u(&restart_series(rs, |r| r.spawned)),
                triple_u(&restart_series(rs, |r| Some(r.answering))),
                triple_u(&restart_series(rs, |r| r.healthy_daemon)),
                triple_u(&restart_series(rs, |r| Some(r.healthy_store)))
            ),
            Some(Err(e)) => format!("error: {e} | | | | | |"),
            None => continue,
        };
        let _ = writeln!(out, "| {} | {row} |", r.backend.label());
    }
    out.push('\n');
}

fn restart_series(
    rs: &Restarts,
    pick: impl Fn(&crate::restart::Restart) -> Option<u64>,
) -> Vec<u64> {
    rs.restarts.iter().filter_map(pick).collect()
}

/// Nearest-rank percentile (0 for none).
pub fn p<T: Copy + Ord + Default>(values: &[T], q: f64) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return T::default();
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 / p99 / max of signed microseconds.
fn triple(values: &[i64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    format!(
        "{} / {} / {}",
        ms(p(values, 0.5)),
        ms(p(values, 0.99)),
        ms(p(values, 1.0))
    )
}

/// p50 / p90 / max of microseconds.
fn triple_u(values: &[u64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    format!(
        "{} / {} / {}",
        ms(p(values, 0.5)),
        ms(p(values, 0.9)),
        ms(p(values, 1.0))
    )
}

/// Microseconds as milliseconds: one decimal below 100 ms, none above.
fn ms<T: TryInto<i64>>(us: T) -> String {
    let us = us.try_into().unwrap_or(i64::MAX) as f64;
    if us.abs() < 100_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.0} ms", us / 1000.0)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// A command line cut for a table: `coco __guard` without its marker, at most 40 chars.
fn short(what: &str) -> String {
    let words: Vec<&str> = what.split_whitespace().collect();
    let text = match words.as_slice() {
        [coco, guard, ..] if guard.starts_with("__guard") => format!("{coco} {guard}"),
        _ => what.to_owned(),
    };
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(39).collect();
        format!("{cut}…")
    } else {
        text
    }
}
