//! The figures as Markdown: the machine, the stores' contents, then one table per benchmark
//! (reads, events with the poll round, idle streams), one row per series and store size.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::common::report_head;
use crate::{Options, Results, Samples, Size};

pub fn markdown(options: &Options, coco: &Path, poll: Duration, all: &[Results]) -> String {
    let mut out = report_head(
        "API",
        coco,
        all.iter().map(|r| (r.backend.label(), r.load.clone())),
    );
    stores(&mut out, all);
    reads(&mut out, all);
    events(&mut out, options, poll, all);
    idle(&mut out, options, all);
    out
}

/// Each store size: what it holds, or why it could not be made.
fn stores(out: &mut String, all: &[Results]) {
    let _ = writeln!(
        out,
        "Stores: runs of 4 jobs created evenly over 7 days, inserted through the library \
         (`Queue::enqueue_all`); `coco daemon --no-worker --no-scheduler --no-apps`, API on \
         127.0.0.1, an admin token from `coco token create`.\n\n\
         | store | runs | of which | filled in |\n|---|---|---|---|"
    );
    for r in all {
        for size in &r.sizes {
            match size {
                Ok(s) => {
                    let mix: Vec<String> = s
                        .mix
                        .iter()
                        .map(|(state, n)| format!("{} {state}", count(*n)))
                        .collect();
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {:.1} s |",
                        r.backend.label(),
                        count(s.runs),
                        mix.join(", "),
                        s.filled_in.as_secs_f64()
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "| {} | — | error: {e} | — |", r.backend.label());
                }
            }
        }
    }
    out.push('\n');
}

fn reads(out: &mut String, all: &[Results]) {
    let sizes = each(all, |s| s.reads.as_ref());
    if sizes.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Reads: `GET /api/v1/runs?limit=50` (admin token), sequential requests, from writing \
         the request to the whole body read; page 2 = `&before=` the `next` of page 1. \
         Baselines in-process on the benchmark's own connection to the same store: the \
         library calls the route makes (`list_runs` limit 50; + the page's JSON; page 2: \
         `run_id::resolve` + `get_run` + `list_runs` from the cursor).\n\n\
         | store | runs | read | n | p50 | p99 | max |\n|---|---|---|---|---|---|---|"
    );
    for (label, size, result) in sizes {
        match result {
            Ok(r) => {
                let rows: [(&str, &Samples); 6] = [
                    ("HTTP page 1, keep-alive", &r.keep_alive),
                    ("HTTP page 2 (`before`), keep-alive", &r.second_page),
                    ("HTTP page 1, a fresh connection each", &r.fresh),
                    ("library: `list_runs` page 1", &r.library),
                    ("library: `list_runs` page 1 + JSON", &r.library_json),
                    ("library: page 2 (resolve, get, list)", &r.library_second),
                ];
                for (what, samples) in rows {
                    let _ = writeln!(
                        out,
                        "| {label} | {} | {what} | {} | {} |",
                        count(size.runs),
                        samples.n(),
                        triple(samples)
                    );
                }
                let _ = writeln!(
                    out,
                    "| {label} | {} | (page 1's body: {:.1} kB) | | | | |",
                    count(size.runs),
                    r.body_bytes as f64 / 1000.0
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| {label} | {} | error: {e} | | | | |",
                    count(size.runs)
                );
            }
        }
    }
    out.push('\n');
}

fn events(out: &mut String, options: &Options, poll: Duration, all: &[Results]) {
    let sizes = each(all, |s| s.events.as_ref());
    if !sizes.is_empty() {
        let _ = writeln!(
            out,
            "Events: one client on `GET /api/v1/events`; a change through the library every \
             {}–{} ms (after the previous event came), until its `run` event arrived. \
             Baseline: the poller reads the store every **{} ms** (`POLL`, \
             src/api/events.rs), so a change waits {} ms for the next read on average, {} ms \
             at most, plus one poll round (below).\n\n\
             | store | runs | change → event | n | p50 | p99 | max | missed (> 10 s) |\n\
             |---|---|---|---|---|---|---|---|",
            options.gap_min_ms,
            options.gap_max_ms,
            poll.as_millis(),
            poll.as_millis() / 2,
            poll.as_millis()
        );
        for (label, size, result) in sizes {
            match result {
                Ok(e) => {
                    let all = e.enqueued.and(&e.removed);
                    let rows: [(&str, &Samples, String); 4] = [
                        ("enqueue → `pending`", &e.enqueued, String::new()),
                        ("remove → `removed`", &e.removed, String::new()),
                        ("both", &all, e.missed.to_string()),
                        ("(the store call alone)", &e.writes, String::new()),
                    ];
                    for (what, samples, missed) in rows {
                        let _ = writeln!(
                            out,
                            "| {label} | {} | {what} | {} | {} | {missed} |",
                            count(size.runs),
                            samples.n(),
                            triple(samples)
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "| {label} | {} | error: {e} | | | | | |",
                        count(size.runs)
                    );
                }
            }
        }
        out.push('\n');
    }
    let rounds = each(all, |s| s.poll.as_ref());
    if rounds.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Poll round in-process ({} rounds; {} on MongoDB): the poller's store reads — `list_runs` of the \
         newest 200 and of the 200 newest running, pending, failed, deferred, each run \
         encoded to JSON — and the status it reads after a change and at least once a \
         second (`views::status::status`, encoded).\n\n\
         | store | runs | runs read | reads + JSON p50 / max | status p50 / max | round p50 |\n\
         |---|---|---|---|---|---|",
        options.poll_rounds, options.mongo_poll_rounds
    );
    for (label, size, result) in rounds {
        match result {
            Ok(p) => {
                let _ = writeln!(
                    out,
                    "| {label} | {} | {} | {} / {} | {} / {} | {} |",
                    count(size.runs),
                    p.runs_read,
                    ms(p.runs.p(0.5)),
                    ms(p.runs.max()),
                    ms(p.status.p(0.5)),
                    ms(p.status.max()),
                    ms(p.runs.p(0.5) + p.status.p(0.5))
                );
            }
            Err(e) => {
                let _ = writeln!(out, "| {label} | {} | error: {e} | | | |", count(size.runs));
            }
        }
    }
    out.push('\n');
}

fn idle(out: &mut String, options: &Options, all: &[Results]) {
    let sizes = each(all, |s| s.idle.as_ref());
    if sizes.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Idle: the same daemon, {} s with no stream open, then {} s with {} streams open and \
         nothing changing. CPU = utime + stime (`/proc/PID/stat`) over the window, % of one \
         CPU; RSS = `VmRSS` sampled every second. Server: the MongoDB-wire server's process \
         over the same windows, when it runs on this host.\n\n\
         | store | runs | streams | daemon CPU % | CPU time | RSS mean | RSS peak | threads | server CPU % | events received (data) |\n\
         |---|---|---|---|---|---|---|---|---|---|",
        options.idle_secs, options.idle_secs, options.streams
    );
    for (label, size, result) in sizes {
        match result {
            Ok(i) => {
                for w in [&i.quiet, &i.open] {
                    let server = w
                        .server_cpu
                        .map_or("—".to_string(), |cpu| format!("{:.2} %", w.percent(cpu)));
                    let events: Vec<String> = w
                        .events
                        .iter()
                        .map(|(name, (n, bytes))| {
                            format!("{n} `{name}` ({:.1} kB)", *bytes as f64 / 1000.0)
                        })
                        .collect();
                    let events = if events.is_empty() {
                        "0".to_string()
                    } else {
                        events.join(", ")
                    };
                    let _ = writeln!(
                        out,
                        "| {label} | {} | {} | {:.2} % | {:.2} s | {:.1} MiB | {:.1} MiB | {} | {server} | {events} |",
                        count(size.runs),
                        w.streams,
                        w.percent(w.cpu),
                        w.cpu,
                        w.rss_mean_kb as f64 / 1024.0,
                        w.rss_peak_kb as f64 / 1024.0,
                        w.threads,
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| {label} | {} | error: {e} | | | | | | | |",
                    count(size.runs)
                );
            }
        }
    }
    out.push('\n');
}

/// Each store size that ran `pick`'s benchmark: its store's label, the size, the result.
fn each<'a, T>(
    all: &'a [Results],
    pick: impl Fn(&'a Size) -> Option<&'a Result<T, String>>,
) -> Vec<(&'static str, &'a Size, &'a Result<T, String>)> {
    let mut found = Vec::new();
    for r in all {
        for size in r.sizes.iter().filter_map(|s| s.as_ref().ok()) {
            if let Some(result) = pick(size) {
                found.push((r.backend.label(), size, result));
            }
        }
    }
    found
}

/// `p50 | p99 | max`.
fn triple(samples: &Samples) -> String {
    format!(
        "{} | {} | {}",
        ms(samples.p(0.5)),
        ms(samples.p(0.99)),
        ms(samples.max())
    )
}

/// A duration in milliseconds, three significant digits or so.
fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `100000` as `100,000`.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
