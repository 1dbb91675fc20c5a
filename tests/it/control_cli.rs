//! Running and controlling runs through the `coco` binary, with a real `coco worker` process,
//! on both stores: enqueue --wait, then: chains, logs (--follow), kill, remove, restart,
//! pause/resume/mode, alive, halt, and core4's spellings of them.

use std::time::{Duration, Instant};

use crate::support::{Sandbox, guard_of, ok, pid_alive, stderr};

const WORK: &str = "\
jobs:
  sleeper:
    command: [sh, -c, 'echo $$ > sleeper.pid; echo started; sleep 30']
  quick:
    command: [sh, -c, 'echo one; echo \"::progress:: 0.5 half\"; echo two >&2; exit {{args.code}}']
    args: {code: 0}
    then: [after]
  after:
    command: [sh, -c, 'echo \"parent=$COCO_PARENT_RUN\" > after.txt']
  flaky:
    command: [sh, -c, 'exit 3']
    attempts: 2
    retry_delay: 1h
";

#[test]
fn control_verbs_on_the_embedded_store() {
    control_verbs(&Sandbox::new());
}

#[test]
fn control_verbs_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_ctl") {
        control_verbs(&sandbox);
    }
}

fn control_verbs(sandbox: &Sandbox) {
    sandbox.project("work", WORK);
    sandbox.apply();
    let mut worker = sandbox.spawn(&["worker", "--slots", "2", "--name", "w1"]);
    worker.wait_for_log("worker w1: 2 slots");

    // alive: the worker with its slots (and core4's spelling).
    let alive: serde_json::Value =
        serde_json::from_str(&ok(sandbox, &["alive", "--json"], 0)).unwrap();
    assert_eq!(alive[0]["name"], "w1", "{alive:#}");
    assert_eq!(
        (alive[0]["kind"].as_str(), alive[0]["slots"].as_u64()),
        (Some("worker"), Some(2))
    );
    assert!(ok(sandbox, &["--alive"], 0).contains("w1"));

    // enqueue --wait: exits with the job's status; a completed run enqueues its `then:` jobs
    // with itself as COCO_PARENT_RUN.
    let done = ok(sandbox, &["enqueue", "work.quick", "--wait"], 0);
    let done = done.trim();
    let after = sandbox
        .list_json(&[])
        .into_iter()
        .find(|run| run["job"] == "work.after")
        .expect("the follower was enqueued");
    assert_eq!(after["parent"], done);
    sandbox.wait_for_state(after["id"].as_str().unwrap(), "complete");
    let written = std::fs::read_to_string(sandbox.home().join("work/after.txt")).unwrap();
    assert_eq!(written.trim(), format!("parent={done}"));
    let failed = ok(
        sandbox,
        &["enqueue", "work.quick", "--arg", "code=4", "--wait"],
        4,
    );
    let failed = sandbox.run_json(failed.trim());
    assert_eq!(
        (failed["state"].as_str(), failed["exit_code"].as_i64()),
        (Some("error"), Some(4))
    );
    assert_eq!(
        sandbox
            .list_json(&["--project", "work"])
            .iter()
            .filter(|r| r["job"] == "work.after")
            .count(),
        1,
        "a failed run has no followers"
    );

    // logs: lines with times and streams; progress lines are not output.
    let logs = ok(sandbox, &["logs", done], 0);
    let mut tagged: Vec<&str> = logs.lines().map(|l| &l[13..]).collect();
    // stdout and stderr are separate pipes: lines written at once may be read in any order.
    tagged.sort();
    assert_eq!(tagged, ["err two", "out one"], "{logs}");

    // kill: a running run's process group ends; logs --follow saw its output and its end.
    let sleeper = sandbox.enqueue(&["work.sleeper"]);
    sandbox.wait_for_state(&sleeper, "running");
    let mut follow = sandbox.spawn(&["logs", &sleeper, "--follow"]);
    follow.wait_for_log("out started");
    let pid_file = sandbox.home().join("work/sleeper.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    let killed = ok(sandbox, &["kill", &sleeper], 0);
    assert!(
        killed.contains(&format!(
            "killed run {sleeper} of work.sleeper (attempt 1): w1 ends its process group"
        )),
        "{killed}"
    );
    let run = sandbox.wait_for_state(&sleeper, "killed");
    assert_eq!(run["reason"], "killed");
    let killed_runs = sandbox.list_json(&["--state", "killed"]);
    assert_eq!(killed_runs.len(), 1, "{killed_runs:?}");
    assert_eq!(killed_runs[0]["id"], sleeper.as_str());
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the killed job's process {pid} is still alive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(follow.wait_exit(), Some(0));
    assert!(
        follow
            .log()
            .contains(&format!("-- run {sleeper} is killed")),
        "{}",
        follow.log()
    );
    let again = sandbox.coco(&["kill", &sleeper]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("is killed already"),
        "{}",
        stderr(&again)
    );
    let unknown = sandbox.coco(&["kill", "01NOSUCHRUN0000000000000000"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no run with id"),
        "{}",
        stderr(&unknown)
    );

    // pause one project: nothing of it starts, except forced runs; resume starts it.
    let paused = ok(sandbox, &["pause", "work"], 0);
    assert!(paused.contains("paused projects: work"), "{paused}");
    assert!(ok(sandbox, &["mode"], 0).contains("paused projects: work"));
    let typo = sandbox.coco(&["pause", "wrok"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        stderr(&typo).contains("did you mean work?"),
        "{}",
        stderr(&typo)
    );
    let held = sandbox.enqueue(&["work.quick", "--arg", "code=0", "--arg", "held=1"]);
    ok(
        sandbox,
        &[
            "enqueue",
            "work.quick",
            "--arg",
            "forced=1",
            "--force",
            "--wait",
        ],
        0,
    );
    assert_eq!(
        sandbox.run_json(&held)["state"],
        "pending",
        "paused project: not started"
    );
    ok(sandbox, &["resume", "work"], 0);
    sandbox.wait_for_state(&held, "complete");

    // pause everything; remove a waiting run (kept as removed); resume.
    assert!(ok(sandbox, &["--pause"], 0).starts_with("mode: paused"));
    let waiting = sandbox.enqueue(&["work.quick", "--arg", "code=5"]);
    assert!(ok(sandbox, &["remove", &waiting], 0).contains(&format!("removed run {waiting}")));
    assert_eq!(sandbox.run_json(&waiting)["state"], "removed");
    let twice = sandbox.coco(&["remove", &waiting]);
    assert_eq!(twice.status.code(), Some(1), "{}", stderr(&twice));
    assert_eq!(ok(sandbox, &["resume"], 0).trim(), "mode: running");

    // restart: a failed run waiting for its retry is replaced by a new run linked to it; a
    // removed run is enqueued again; a running one has nothing to restart.
    let flaky = sandbox.enqueue(&["work.flaky"]);
    sandbox.wait_for_state(&flaky, "failed");
    let restarted = ok(sandbox, &["restart", &flaky], 0);
    let restarted = restarted.trim();
    assert_eq!(sandbox.run_json(restarted)["restart_of"], flaky.as_str());
    assert_eq!(
        sandbox.run_json(&flaky)["state"],
        "killed",
        "replaced by the restart"
    );
    let again = ok(sandbox, &["restart", &waiting], 0);
    sandbox.wait_for_state(again.trim(), "error");
    let busy = sandbox.enqueue(&["work.sleeper"]);
    sandbox.wait_for_state(&busy, "running");
    let refused = sandbox.coco(&["restart", &busy]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("nothing to restart"),
        "{}",
        stderr(&refused)
    );

    // halt: the worker hands its running run back and exits; nothing is alive any more.
    let halted = ok(sandbox, &["halt", "--wait"], 0);
    assert!(
        halted.contains("asked 1 worker or daemon to stop: w1"),
        "{halted}"
    );
    assert_eq!(worker.wait_exit(), Some(0));
    assert!(
        worker.log().contains("worker w1 stopped (halted)"),
        "{}",
        worker.log()
    );
    let handed_back = sandbox.run_json(&busy);
    assert_eq!(
        (
            handed_back["state"].as_str(),
            handed_back["attempt"].as_u64()
        ),
        (Some("pending"), Some(0)),
        "handed back without spending its attempt"
    );
    assert_eq!(
        ok(sandbox, &["alive"], 0).trim(),
        "No worker or daemon is running."
    );
    // A worker started after the halt is not affected by it.
    let mut later = sandbox.spawn(&["--worker", "--slots", "1", "--name", "w2"]);
    sandbox.wait_for_state(&busy, "running");
    ok(sandbox, &["kill", &busy], 0);
    ok(sandbox, &["halt", "--wait"], 0);
    assert_eq!(later.wait_exit(), Some(0));
}

/// Every try of `nap` records its shell's pid and its `sleep`'s pid (a grandchild of the
/// worker, out of reach of the death signal, not of the guard); the first try sleeps long, a
/// retry (on attempt 1 again: the lost worker spent none) ends at once.
const NAPS: &str = "\
jobs:
  nap:
    command: [sh, -c, 'if [ ! -e tried.$COCO_RUN_ID ]; then touch tried.$COCO_RUN_ID; sleep 30 & echo $! >> sleeps; echo $$ >> shells; wait; fi']
    max_parallel: 10
";

#[test]
fn a_sigkilled_worker_loses_nothing_on_the_embedded_store() {
    sigkilled_worker(&Sandbox::new());
}

#[test]
fn a_sigkilled_worker_loses_nothing_on_mongodb() {
    if let Some(sandbox) = Sandbox::on_mongodb("coco_crash") {
        sigkilled_worker(&sandbox);
    }
}

fn pids(sandbox: &Sandbox, file: &str) -> Vec<i32> {
    std::fs::read_to_string(sandbox.home().join("work").join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL a `coco worker` with 5 runs in flight: its process guard (restarted once after it
/// was killed itself) ends its jobs and what they started, at once; a new worker takes the
/// runs back and every run completes, its one attempt (the default) not spent by the loss.
fn sigkilled_worker(sandbox: &Sandbox) {
    use coco::store::StoreLocation;
    use coco::worker::{Worker, WorkerSettings};

    sandbox.project("work", NAPS);
    sandbox.apply();
    let mut doomed = sandbox.spawn(&["worker", "--slots", "5", "--name", "doomed"]);
    let ids: Vec<String> = (0..5)
        .map(|i| sandbox.enqueue(&["work.nap", "--arg", &format!("i={i}")]))
        .collect();
    wait_until("5 tries running", || {
        pids(sandbox, "shells").len() == 5 && pids(sandbox, "sleeps").len() == 5
    });
    let first_guard = guard_of(doomed.child.id()).expect("the worker has a guard");
    // SAFETY: kill(2) on the guard process found just now.
    assert_eq!(unsafe { libc::kill(first_guard, libc::SIGKILL) }, 0);
    wait_until("the guard is restarted", || {
        guard_of(doomed.child.id()).is_some_and(|pid| pid != first_guard)
    });
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    for pid in pids(sandbox, "shells")
        .into_iter()
        .chain(pids(sandbox, "sleeps"))
    {
        wait_until(&format!("job process {pid} outlived its worker"), || {
            !pid_alive(pid)
        });
    }
    for id in &ids {
        assert_eq!(
            sandbox.run_json(id)["state"],
            "running",
            "not ended by anyone yet"
        );
    }

    let location = match sandbox.store_args.as_slice() {
        [_, url, _, database] => StoreLocation::Mongo {
            url: url.clone(),
            database: database.clone(),
        },
        _ => StoreLocation::Embedded {
            path: sandbox.dir.path().join("state/coco.db"),
        },
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(coco::store::open(&location)).unwrap();
    let settings = WorkerSettings {
        slots: 5,
        zombie_after: Duration::from_secs(1),
        zombie_every: Duration::from_millis(200),
        ..WorkerSettings::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rescuer = rt.spawn(Worker::new("rescuer", store, settings).run(async {
        let _ = stopped.await;
    }));
    for id in &ids {
        let run = sandbox.wait_for_state(id, "complete");
        assert_eq!(run["attempt"], 1, "{run:#}");
        assert_eq!(run["worker"], "rescuer");
        let states: Vec<&str> = run["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|change| change["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            ["pending", "running", "pending", "running", "complete"]
        );
    }
    stop.send(()).unwrap();
    let summary = rt.block_on(rescuer).unwrap();
    assert_eq!((summary.claimed, summary.finished), (5, 5));
    assert_eq!(
        pids(sandbox, "shells").len(),
        5,
        "no second try ran the long branch"
    );
}
