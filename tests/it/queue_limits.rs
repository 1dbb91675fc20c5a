//! What bounds a run that neither fails nor completes, through the `coco` binary with real
//! `coco worker` processes: a lost worker spends no attempt but a run losing its worker again
//! and again ends (`worker.max_lost`), a deferral (exit 75) waits longer each time and ends
//! after `defer_max`, and a run's history stays small however often it changes state.
//!
//! Each test has a sandbox of its own, so they run in parallel; the zombie interval is the
//! shortest `coco worker` takes (`--zombie-after 10s`).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::support::{Background, Sandbox, stderr, stdout};

/// Wait (up to `secs`) until `done`; panics with `what` otherwise.
fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait (up to a minute: a take-back needs the zombie interval) until run `id` is in
/// `state`; returns the run.
fn wait_for_state(sandbox: &Sandbox, id: &str, state: &str) -> serde_json::Value {
    let mut run = serde_json::Value::Null;
    wait_until(60, &format!("run {id} never reached {state}"), || {
        run = sandbox.run_json(id);
        run["state"] == state
    });
    run
}

/// Wait (up to a minute) until `worker` has exited (here: killed by SIGKILL).
fn wait_exited(worker: &mut Background) {
    wait_until(60, "the worker is still alive", || {
        worker.child.try_wait().unwrap().is_some()
    });
}

/// The states of a run's history, oldest first.
fn states(run: &serde_json::Value) -> Vec<String> {
    run["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["state"].as_str().unwrap().to_owned())
        .collect()
}

fn time(value: &serde_json::Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// `coco detail ID` as text.
fn detail_text(sandbox: &Sandbox, id: &str) -> String {
    let detail = sandbox.coco(&["detail", id]);
    assert_eq!(detail.status.code(), Some(0), "{}", stderr(&detail));
    stdout(&detail)
}

const NAP: &str = "\
jobs:
  nap:
    command: [sh, -c, 'echo $$ >> tries; if [ ! -e slept ]; then touch slept; sleep 30; fi']
";

/// SIGKILL a `coco worker` while its run sleeps, the job's `attempts` left at 1: another
/// worker takes the run back, retries it on the same attempt, and it completes; `coco
/// detail` shows the loss.
#[test]
fn a_worker_killed_mid_run_costs_no_attempt_and_the_run_completes() {
    let sandbox = Sandbox::new();
    sandbox.project("work", NAP);
    sandbox.apply();
    let mut doomed = sandbox.spawn(&["worker", "--name", "doomed"]);
    let id = sandbox.enqueue(&["work.nap"]);
    let tries = sandbox.home().join("work/tries");
    wait_until(20, "the first try started", || tries.exists());
    assert_eq!(sandbox.run_json(&id)["state"], "running");
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();

    let _rescuer = sandbox.spawn(&["worker", "--name", "rescuer", "--zombie-after", "10s"]);
    let run = wait_for_state(&sandbox, &id, "complete");
    assert_eq!(
        (&run["attempt"], &run["attempts"], &run["worker"]),
        (&1.into(), &1.into(), &"rescuer".into()),
        "{run:#}"
    );
    assert_eq!(
        states(&run),
        ["pending", "running", "pending", "running", "complete"]
    );
    assert_eq!(run["lost"], 0, "a completed try ends the series of losses");
    let text = detail_text(&sandbox, &id);
    assert!(text.contains("state:        complete\n"), "{text}");
    assert!(text.contains("attempt:      1/1\n"), "{text}");
    assert!(
        text.contains(
            "pending   lost with worker doomed (stopped heartbeating), loss 1 of 3 in a row: \
             retried without spending an attempt\n"
        ),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&tries).unwrap().lines().count(),
        2,
        "tried twice"
    );
}

const HOG: &str = "\
jobs:
  hog:
    command: [sh, -c, 'while [ ! -s worker.pid ]; do sleep 0.05; done; kill -9 $(cat worker.pid); sleep 30']
";

/// A job that kills its own worker (as an out-of-memory killer would) is not retried
/// forever: at its third loss in a row (`worker.max_lost`'s default) it ends as `error`.
#[test]
fn a_job_that_kills_its_worker_three_times_ends_as_error() {
    let sandbox = Sandbox::new();
    sandbox.project("work", HOG);
    sandbox.apply();
    let id = sandbox.enqueue(&["work.hog"]);
    let pid_file = sandbox.home().join("work/worker.pid");
    for round in 1..=3 {
        let name = format!("w{round}");
        let mut worker = sandbox.spawn(&["worker", "--name", &name, "--zombie-after", "10s"]);
        // The job reads which process to kill (its worker) from this file.
        let partial = sandbox.home().join("work/worker.pid.partial");
        std::fs::write(&partial, worker.child.id().to_string()).unwrap();
        std::fs::rename(&partial, &pid_file).unwrap();
        wait_exited(&mut worker);
        std::fs::remove_file(&pid_file).unwrap();
        let run = sandbox.run_json(&id);
        assert_eq!(
            (&run["state"], &run["worker"]),
            (&"running".into(), &name.as_str().into()),
            "round {round}: {run:#}"
        );
    }
    let _last = sandbox.spawn(&["worker", "--name", "w4", "--zombie-after", "10s"]);
    let run = wait_for_state(&sandbox, &id, "error");
    assert_eq!(run["reason"], "lost 3 times with its worker", "{run:#}");
    assert_eq!((&run["attempt"], &run["lost"]), (&1.into(), &3.into()));
    assert_eq!(
        states(&run),
        [
            "pending", "running", "pending", "running", "pending", "running", "error"
        ]
    );
    let text = detail_text(&sandbox, &id);
    assert!(
        text.contains("reason:       lost 3 times with its worker\n"),
        "{text}"
    );
    for (n, worker, then) in [
        (1, "w1", "retried without spending an attempt"),
        (2, "w2", "retried without spending an attempt"),
        (3, "w3", "the run ends"),
    ] {
        let line = format!(
            "lost with worker {worker} (stopped heartbeating), loss {n} of 3 in a row: {then}\n"
        );
        assert!(text.contains(&line), "no {line:?} in\n{text}");
    }
}

/// `worker.max_lost` in local.yaml sets how many losses in a row end a run (and 0 is
/// refused where it is written).
#[test]
fn max_lost_comes_from_local_yaml() {
    let sandbox = Sandbox::new();
    let local = sandbox.dir.path().join(".coco/local.yaml");
    let base = std::fs::read_to_string(&local).unwrap();
    std::fs::write(&local, format!("{base}worker:\n  max_lost: 0\n")).unwrap();
    let refused = sandbox.coco(&["config"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let err = stderr(&refused);
    let line = base.lines().count() + 2;
    assert!(
        err.contains(&format!("local.yaml:{line}:13: must be at least 1")),
        "{err}"
    );

    std::fs::write(&local, format!("{base}worker:\n  max_lost: 1\n")).unwrap();
    sandbox.project("work", NAP);
    sandbox.apply();
    let mut doomed = sandbox.spawn(&["worker", "--name", "doomed"]);
    let id = sandbox.enqueue(&["work.nap"]);
    wait_until(20, "the first try started", || {
        sandbox.home().join("work/tries").exists()
    });
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    let _reaper = sandbox.spawn(&["worker", "--name", "reaper", "--zombie-after", "10s"]);
    let run = wait_for_state(&sandbox, &id, "error");
    assert_eq!(run["reason"], "lost 1 time with its worker", "{run:#}");
    assert_eq!(states(&run), ["pending", "running", "error"]);
}

const DEFERRING: &str = "\
jobs:
  later:
    command: [sh, -c, 'echo x >> later.tries; exit 75']
  soon:
    command: [sh, -c, 'echo x >> soon.tries; exit 75']
    defer_delay: 1s
    defer_max: 10s
  flaky:
    command: [sh, -c, 'exit 1']
    attempts: 40
";

/// Exit 75 with the defaults waits 10 s (no loop); with `defer_delay: 1s` and `defer_max:
/// 10s` the waits grow (1 s, 2 s, 4 s, then what is left of the 10 s) and the run ends as
/// `error`; a run retried 40 times keeps a short history.
#[test]
fn deferrals_wait_longer_each_time_end_after_defer_max_and_history_stays_small() {
    let sandbox = Sandbox::new();
    sandbox.project("work", DEFERRING);
    sandbox.apply();
    let _worker = sandbox.spawn(&["worker", "--slots", "3"]);
    let later = sandbox.enqueue(&["work.later"]);
    let soon = sandbox.enqueue(&["work.soon"]);
    let flaky = sandbox.enqueue(&["work.flaky"]);

    // The defaults: one try, then a wait of 10 s.
    let run = wait_for_state(&sandbox, &later, "deferred");
    assert_eq!(
        time(&run["not_before"]) - time(&run["finished"]),
        chrono::TimeDelta::seconds(10),
        "{run:#}"
    );
    assert_eq!((&run["attempt"], &run["deferrals"]), (&0.into(), &1.into()));

    // Growing waits (1 s, 2 s, 4 s, then 8 s cut to the deadline), then error.
    let run = wait_for_state(&sandbox, &soon, "error");
    assert_eq!(
        run["reason"], "deferred for longer than defer_max (10s)",
        "{run:#}"
    );
    let history = run["history"].as_array().unwrap();
    let waits: Vec<i64> = history
        .windows(2)
        .filter(|pair| pair[0]["state"] == "deferred")
        .map(|pair| (time(&pair[1]["at"]) - time(&pair[0]["at"])).num_milliseconds())
        .collect();
    assert_eq!(waits.len(), 4, "{run:#}");
    assert!(
        waits[0] >= 1_000 && waits[1] >= 2_000 && waits[2] >= 4_000,
        "{waits:?}"
    );
    assert!(
        waits[0] < waits[1] && waits[1] < waits[2],
        "each wait longer: {waits:?}"
    );
    assert!(
        waits[3] < 4_000,
        "the last wait ends at the deadline: {waits:?}"
    );
    let first_deferral = history
        .iter()
        .find(|change| change["state"] == "deferred")
        .unwrap();
    assert!(
        time(&run["finished"]) - time(&first_deferral["at"]) >= chrono::TimeDelta::seconds(10),
        "{run:#}"
    );
    let tries = std::fs::read_to_string(sandbox.home().join("work/soon.tries")).unwrap();
    assert_eq!(tries.lines().count(), 5);

    // A run tried 40 times: 81 state changes, 50 kept, the record small.
    let run = wait_for_state(&sandbox, &flaky, "error");
    assert_eq!(run["attempt"], 40);
    assert_eq!(run["history"].as_array().unwrap().len(), 50);
    assert_eq!(run["history_folded"], 31);
    let text = detail_text(&sandbox, &flaky);
    assert!(
        text.contains("  … 31 more entries folded away …\n"),
        "{text}"
    );
    let json = sandbox.coco(&["detail", &flaky, "--json"]);
    assert!(json.stdout.len() < 16 * 1024, "{} bytes", json.stdout.len());

    // Meanwhile the run deferring with the defaults was tried again (if at all) only after
    // 10 s, and then waits 20 s.
    let run = sandbox.run_json(&later);
    let history = run["history"].as_array().unwrap();
    let tries = states(&run).iter().filter(|s| *s == "running").count();
    let later_tries = std::fs::read_to_string(sandbox.home().join("work/later.tries")).unwrap();
    assert!(tries <= 2 && later_tries.lines().count() <= 2, "{run:#}");
    for pair in history.windows(2) {
        if pair[0]["state"] == "deferred" && pair[1]["state"] == "running" {
            let gap = time(&pair[1]["at"]) - time(&pair[0]["at"]);
            assert!(gap >= chrono::TimeDelta::seconds(10), "{run:#}");
        }
    }
    if run["deferrals"] == 2 {
        let wait = time(&run["not_before"]) - time(&run["finished"]);
        assert_eq!(wait, chrono::TimeDelta::seconds(20), "{run:#}");
    }
}

/// `defer_delay` has a floor: a manifest asking for less is refused with its position.
#[test]
fn a_defer_delay_under_a_second_is_a_located_error() {
    let sandbox = Sandbox::new();
    sandbox.project(
        "work",
        "jobs:\n  fast:\n    command: [sh, -c, 'exit 75']\n    defer_delay: 0s\n",
    );
    let output = sandbox.coco(&["validate", "home/work"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(
        err.contains("coco.yaml:4:18: `defer_delay` must be at least 1s"),
        "{err}"
    );
    let apply = sandbox.coco(&["apply"]);
    assert_eq!(apply.status.code(), Some(1), "nothing applied");
}
