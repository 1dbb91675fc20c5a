//! The figures as Markdown: the machine, then one table per benchmark, one row per store.

use std::fmt::Write as _;
use std::path::Path;

use crate::common::report_head;
use crate::throughput::{Throughput, rate};
use crate::{Options, Results};

pub fn markdown(options: &Options, coco: &Path, all: &[Results]) -> String {
    let mut out = report_head(
        "Workers",
        coco,
        all.iter().map(|r| (r.backend.label(), r.load.clone())),
    );
    throughput(&mut out, options, all);
    latency(&mut out, options, all);
    backlog(&mut out, all);
    burst(&mut out, all);
    round_trips(&mut out, all);
    exactly_once(&mut out, options, all);
    crash(&mut out, options, all);
    out
}

fn throughput(out: &mut String, options: &Options, all: &[Results]) {
    if all.iter().all(|r| r.throughput.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "Throughput: N runs of `true` enqueued, then one `coco worker --slots {slots}`, timed from \
         its spawn to the last run's `finished`; `xargs -P{slots} -n1 true` over N arguments \
         right before, in the same sandbox; `coco::process` = the same N × `true` through \
         coco's process builder, {slots} at once, no store. Medians over the repetitions.\n\n\
         `store round trips/s` = the store's cheapest call (`get_project`, a read by key), {slots} \
         at once for a second: a ceiling, since every run takes several.\n\n\
         | store | N × reps | enqueue runs/s | coco runs/s | xargs -P{slots} runs/s | coco / xargs | ratio per rep | coco::process runs/s | store round trips/s |\n\
         |---|---|---|---|---|---|---|---|---|",
        slots = options.slots
    );
    for r in all {
        let row = match &r.throughput {
            Some(Ok(reps)) => {
                let enqueue = median(reps.iter().map(Throughput::enqueue_rate));
                let coco = median(reps.iter().map(Throughput::coco_rate));
                let xargs = median(reps.iter().map(Throughput::xargs_rate));
                let process = median(reps.iter().map(Throughput::process_rate));
                let round_trips = median(reps.iter().map(Throughput::round_trip_rate));
                let each: Vec<String> = reps.iter().map(|t| fig(t.ratio())).collect();
                format!(
                    "{} × {} | {} | {} | {} | **{}** | {} | {} | {}",
                    r.sizes.runs,
                    reps.len(),
                    fig(enqueue),
                    fig(coco),
                    fig(xargs),
                    fig(coco / xargs),
                    each.join(", "),
                    fig(process),
                    fig(round_trips)
                )
            }
            Some(Err(e)) => format!("{} | error: {e} | | | | | | |", r.sizes.runs),
            None => continue,
        };
        let _ = writeln!(out, "| {} | {row} |", r.backend.label());
    }
    out.push('\n');
}

fn backlog(out: &mut String, all: &[Results]) {
    if all.iter().all(|r| r.backlog.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "Claim cost as the queue grows: the pick-up latency above with N pending runs of another \
         job waiting (`not_before` a day ahead), small then large N, each in a fresh sandbox \
         (goal: p50 large ≤ 2 × p50 small).\n\n\
         | store | waiting (small / large) | p50 small | p50 large | large / small | p99 small | p99 large |\n|---|---|---|---|---|---|---|"
    );
    let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
    for r in all {
        let row = match &r.backlog {
            Some(Ok(b)) => format!(
                "{} / {} | {} | {} | **{:.2}** | {} | {}",
                b.small,
                b.large,
                ms(b.with_small.p(0.5)),
                ms(b.with_large.p(0.5)),
                b.growth(),
                ms(b.with_small.p(0.99)),
                ms(b.with_large.p(0.99))
            ),
            Some(Err(e)) => format!("error: {e} | | | | | |"),
            None => continue,
        };
        let _ = writeln!(out, "| {} | {row} |", r.backend.label());
    }
    out.push('\n');
}

fn burst(out: &mut String, all: &[Results]) {
    if all.iter().all(|r| r.burst.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "Fire burst: N jobs scheduled at one instant (`S * * * * *`), fired by the scheduler, \
         a worker with N slots, both in one process on one store as in `coco daemon`; times after \
         the instant: the scheduler's `fired` events, the runs' `started` (goals: all enqueued \
         within 100 ms, the last started within 1 s).\n\n\
         | store | jobs (projects) | enqueued p50 | last enqueued | started p50 | last started |\n|---|---|---|---|---|---|"
    );
    for r in all {
        let row = match &r.burst {
            Some(Ok(b)) => format!(
                "{} ({}) | {:.1?} | **{:.1?}** | {:.1?} | **{:.1?}**",
                b.jobs, b.projects, b.enqueued_p50, b.enqueued_last, b.started_p50, b.started_last
            ),
            Some(Err(e)) => format!("error: {e} | | | | |"),
            None => continue,
        };
        let _ = writeln!(out, "| {} | {row} |", r.backend.label());
    }
    out.push('\n');
}

fn round_trips(out: &mut String, all: &[Results]) {
    if all.iter().all(|r| r.round_trips.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "Store round trips: the commands one `coco worker --slots 2` sent for N `true` runs, \
         counted by a proxy between it and the server (the driver's monitoring apart).\n\n\
         | store | runs | commands per run | by command |\n|---|---|---|---|"
    );
    for r in all {
        let row = match &r.round_trips {
            Some(Ok(t)) => {
                let by: Vec<String> = t
                    .commands
                    .iter()
                    .map(|(name, count)| format!("{name} {count}"))
                    .collect();
                format!("{} | **{:.1}** | {}", t.runs, t.per_run(), by.join(", "))
            }
            Some(Err(e)) => format!("error: {e} | | |"),
            None => continue,
        };
        let _ = writeln!(out, "| {} | {row} |", r.backend.label());
    }
    out.push('\n');
}

fn latency(out: &mut String, options: &Options, all: &[Results]) {
    if all.iter().all(|r| r.latency.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "Pick-up latency: one `coco worker --slots 1`, idle {gap} ms before each enqueue; \
         enqueue + `coco::queue::wake` → the job's own `date +%s%N`; {reps} repetitions after 5 \
         warm-up ones.\n\n\
         | store | p50 | p99 | max | enqueue call alone (p50) | p50 of the first / last 50 |\n|---|---|---|---|---|---|",
        gap = options.latency_gap_ms,
        reps = options.latency_reps
    );
    for r in all {
        let row = match &r.latency {
            Some(Ok(l)) => {
                let (first, last) = l.drift(50);
                format!(
                    "{} | {} | {} | {} | {} / {}",
                    ms(l.p(0.5)),
                    ms(l.p(0.99)),
                    ms(l.p(1.0)),
                    ms(l.enqueue_p50()),
                    ms(first),
                    ms(last)
                )
            }
            Some(Err(e)) => format!("error: {e} | | | |"),
            None => continue,
        };
        let _ = writeln!(out, "| {} | {row} |", r.backend.label());
    }
    out.push('\n');
}

fn exactly_once(out: &mut String, options: &Options, all: &[Results]) {
    if all.iter().all(|r| r.exactly_once.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "Exactly once: {workers} `coco worker --slots {slots}` processes on one store; runs \
         enqueued while they run (a wake-up after each), each appending `$COCO_RUN_ID` to one \
         file.\n\n\
         | store | runs | result | first enqueue → all done | runs per worker |\n|---|---|---|---|---|",
        workers = options.contention_workers,
        slots = options.contention_slots
    );
    for r in all {
        let row = match &r.exactly_once {
            Some(Ok(e)) => format!(
                "{} | {:.1?} ({:.0} runs/s) | {}",
                e.verdict(),
                e.took,
                rate(e.runs, e.took),
                e.per_worker
                    .iter()
                    .map(|(w, n)| format!("{w}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(Err(e)) => format!("error: {e} | | |"),
            None => continue,
        };
        let _ = writeln!(
            out,
            "| {} | {} | {row} |",
            r.backend.label(),
            r.sizes.contention_runs
        );
    }
    out.push('\n');
}

fn crash(out: &mut String, options: &Options, all: &[Results]) {
    if all.iter().all(|r| r.crash.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "Crash: a `coco worker` with {runs} × `sleep {nap}` (2 attempts) + {probe} probe runs \
         `sh -c 'sleep {nap} & …; wait'` in flight is SIGKILLed; a worker with zombie_after 3 s \
         then takes them back. Times from the kill but the first.\n\n\
         | store | result | all in flight after | recorded job pids gone | last taken back | all complete | probe: grandchildren alive after the kill | … once taken back |\n\
         |---|---|---|---|---|---|---|---|",
        runs = options.crash_runs,
        nap = options.nap_secs,
        probe = options.crash_probe
    );
    for r in all {
        let row = match &r.crash {
            Some(Ok(c)) => format!(
                "{} | {:.2?} | {:.1?} | {:.2?} | {:.2?} | {} of {} | {} of {}",
                c.verdict(),
                c.in_flight_after,
                c.pids_gone,
                c.taken_back,
                c.all_done,
                c.grandchildren.0,
                c.grandchildren.1,
                c.grandchildren_after.0,
                c.grandchildren_after.1
            ),
            Some(Err(e)) => format!("error: {e} | | | | | |"),
            None => continue,
        };
        let _ = writeln!(out, "| {} | {row} |", r.backend.label());
        if let Some(Ok(c)) = &r.crash {
            for wrong in c.wrong.iter().take(5) {
                let _ = writeln!(out, "  - {wrong}");
            }
        }
    }
    out.push('\n');
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `x` to three significant digits (no exponent): 2193, 218, 5.02, 0.0998.
fn fig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// Microseconds as milliseconds with two decimals.
fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}
