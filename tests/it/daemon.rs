//! `coco daemon` and `coco scheduler` as real processes on a temporary home, on both stores:
//! saved edits converge (truncate-and-write, rename, new and deleted projects), a typo
//! changes nothing, schedules fire each instant once across two daemons, `concurrency`
//! policies, and the life cycle (SIGTERM, `coco halt`).

use std::time::{Duration, Instant};

use crate::support::{Sandbox, stderr};

fn both(test: fn(&Sandbox)) {
    test(&Sandbox::new());
    if let Some(sandbox) = Sandbox::on_mongodb("coco_daemon") {
        test(&sandbox);
    }
}

/// Wait (up to 20 s) until `coco plan` says the store matches the files.
fn wait_converged(sandbox: &Sandbox, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let plan = sandbox.coco(&["plan"]);
        if plan.status.code() == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never converged; plan says:\n{}{}",
            String::from_utf8_lossy(&plan.stdout),
            stderr(&plan)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn manifest(jobs: &[&str]) -> String {
    let mut text = String::from("jobs:\n");
    for job in jobs {
        text.push_str(&format!("  {job}:\n    command: [\"true\"]\n"));
    }
    text
}

/// `coco status --json`, parsed.
fn status_json(sandbox: &Sandbox) -> serde_json::Value {
    let out = sandbox.coco(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "coco status: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("coco status --json prints JSON")
}

/// Is job `id` active in the store? (`coco enqueue` knows only applied, active jobs.)
fn enqueue_works(sandbox: &Sandbox, job: &str) -> bool {
    sandbox.coco(&["enqueue", job]).status.code() == Some(0)
}

#[test]
fn saved_edits_converge_and_a_typo_changes_nothing() {
    both(saved_edits_converge);
}

fn saved_edits_converge(sandbox: &Sandbox) {
    sandbox.project("work", &manifest(&["a"]));
    let daemon = sandbox.spawn(&["daemon", "--no-worker"]);
    wait_converged(sandbox, "the start-up pass");

    // Truncate and write in place.
    let file = sandbox.home().join("work/coco.yaml");
    std::fs::write(&file, manifest(&["a", "b"])).unwrap();
    wait_converged(sandbox, "a write in place");
    assert!(enqueue_works(sandbox, "work.b"));

    // Save by rename, as vim and many editors do.
    let temp = sandbox.home().join("work/.coco.yaml.tmp");
    std::fs::write(&temp, manifest(&["a", "b", "c"])).unwrap();
    std::fs::rename(&temp, &file).unwrap();
    wait_converged(sandbox, "a save by rename");
    assert!(enqueue_works(sandbox, "work.c"));

    // A typo: reported with its position, the stored state kept.
    std::fs::write(&file, "jobs:\n  a:\n    command: [\"true\"\n").unwrap();
    daemon.wait_for_log("coco.yaml:");
    let log = daemon.log();
    let line = log
        .lines()
        .find(|line| line.contains("work/coco.yaml:"))
        .unwrap_or_else(|| panic!("no located error in:\n{log}"));
    assert!(
        line.split("coco.yaml:")
            .nth(1)
            .is_some_and(|rest| rest.split(':').take(2).all(|n| n.parse::<u32>().is_ok())),
        "path:line:column: {line}"
    );
    assert!(
        enqueue_works(sandbox, "work.a"),
        "nothing was deactivated by the typo"
    );
    let status = status_json(sandbox);
    let problems = status["problems"].to_string();
    assert!(
        problems.contains("work/coco.yaml:"),
        "coco status shows the typo: {problems}"
    );
    assert!(
        status["members"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["kind"] == "daemon")),
        "coco status lists the daemon: {}",
        status["members"]
    );

    // A project created while the daemon runs, then the typo fixed.
    sandbox.project("extra", &manifest(&["x"]));
    std::fs::write(&file, manifest(&["a"])).unwrap();
    wait_converged(sandbox, "a new project and a fix");
    assert!(enqueue_works(sandbox, "extra.x"));
    assert!(!enqueue_works(sandbox, "work.c"), "c left the manifest");
    let problems = status_json(sandbox)["problems"].to_string();
    assert!(
        !problems.contains("coco.yaml:"),
        "the fix cleared the problem: {problems}"
    );

    // A project folder deleted: its jobs become inactive.
    std::fs::remove_dir_all(sandbox.home().join("extra")).unwrap();
    wait_converged(sandbox, "a deleted project");
    assert!(!enqueue_works(sandbox, "extra.x"));
    drop(daemon);
}

const TICK: &str = "\
jobs:
  tick:
    command: [\"true\"]
    schedule: '* * * * * *'
    concurrency: allow
";

/// The instants (ms) the runs of `job` were scheduled for, from their first history note.
fn scheduled_instants(sandbox: &Sandbox, job: &str) -> Vec<String> {
    let mut instants: Vec<String> = sandbox
        .list_json(&[
            "--project",
            job.split('.').next().unwrap(),
            "--limit",
            "1000",
        ])
        .iter()
        .filter(|run| run["job"] == job)
        .map(|run| {
            let detail = sandbox.run_json(run["id"].as_str().unwrap());
            detail["history"][0]["note"]
                .as_str()
                .and_then(|note| note.strip_prefix("scheduled for "))
                .unwrap_or_else(|| panic!("not a scheduled run: {detail:#}"))
                .to_owned()
        })
        .collect();
    instants.sort();
    instants
}

#[test]
fn two_daemons_fire_each_instant_once() {
    both(two_daemons_fire_once);
}

fn two_daemons_fire_once(sandbox: &Sandbox) {
    sandbox.project("clock", TICK);
    sandbox.apply();
    let first = sandbox.spawn(&["daemon", "--no-worker"]);
    let second = sandbox.spawn(&["scheduler"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sandbox.list_json(&["--project", "clock"]).len() < 4 {
        assert!(Instant::now() < deadline, "no fires:\n{}", first.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(first);
    drop(second);
    let instants = scheduled_instants(sandbox, "clock.tick");
    let mut unique = instants.clone();
    unique.dedup();
    assert_eq!(unique, instants, "an instant fired twice");
    let seconds: Vec<i64> = instants
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp())
        .collect();
    assert!(
        seconds.windows(2).all(|w| w[1] - w[0] == 1),
        "every second fired, none lost: {instants:?}"
    );
}

fn policy(concurrency: &str) -> String {
    format!(
        "jobs:\n  busy:\n    command: [sleep, '30']\n    schedule: '* * * * * *'\n    concurrency: {concurrency}\n"
    )
}

/// Without a worker every run stays pending, i.e. active.
#[test]
fn forbid_skips_fires_while_a_run_is_active() {
    both(|sandbox| {
        sandbox.project("p", &policy("forbid"));
        sandbox.apply();
        let daemon = sandbox.spawn(&["daemon", "--no-worker"]);
        // Three seconds of fires: only the first is queued.
        std::thread::sleep(Duration::from_millis(3200));
        drop(daemon);
        let runs = sandbox.list_json(&["--project", "p"]);
        assert_eq!(runs.len(), 1, "{runs:#?}");
        assert_eq!(runs[0]["state"], "pending");
        // Each skip is recorded (the daemon flushed its log records as it stopped).
        let log = sandbox.coco(&["log", "--job", "p.busy", "--json"]);
        assert_eq!(log.status.code(), Some(0), "{}", stderr(&log));
        let records: Vec<serde_json::Value> = serde_json::from_slice(&log.stdout).unwrap();
        let skips = records
            .iter()
            .filter(|r| {
                r["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("fire skipped"))
            })
            .count();
        assert!(skips >= 1, "skips recorded: {records:#?}");
    });
}

#[test]
fn replace_kills_the_active_run_for_the_new_one() {
    both(|sandbox| {
        sandbox.project("p", &policy("replace"));
        sandbox.apply();
        let daemon = sandbox.spawn(&["daemon", "--no-worker"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while sandbox.list_json(&["--project", "p"]).len() < 3 {
            assert!(Instant::now() < deadline, "no fires:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(daemon);
        let runs = sandbox.list_json(&["--project", "p"]);
        let pending = runs.iter().filter(|run| run["state"] == "pending").count();
        let killed = runs.iter().filter(|run| run["state"] == "killed").count();
        assert_eq!(pending, 1, "{runs:#?}");
        assert_eq!(killed, runs.len() - 1, "{runs:#?}");
    });
}

#[test]
fn sigterm_and_halt_stop_the_daemon() {
    both(|sandbox| {
        sandbox.project("work", &manifest(&["a"]));
        let mut daemon = sandbox.spawn(&["daemon", "--slots", "1"]);
        wait_converged(sandbox, "start-up");
        // SAFETY: kill(2) on the daemon we spawned, not yet reaped.
        unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
        assert_eq!(daemon.wait_exit(), Some(0), "{}", daemon.log());

        let mut daemon = sandbox.spawn(&["daemon", "--slots", "1"]);
        daemon.wait_for_log("daemon: home");
        std::thread::sleep(Duration::from_millis(100));
        let halt = sandbox.coco(&["halt"]);
        assert_eq!(halt.status.code(), Some(0), "{}", stderr(&halt));
        assert_eq!(daemon.wait_exit(), Some(0), "{}", daemon.log());
        assert!(daemon.log().contains("(halted)"), "{}", daemon.log());
    });
}

#[test]
fn jobs_lists_schedules_and_latest_runs() {
    let sandbox = Sandbox::new();
    sandbox.project("clock", TICK);
    sandbox.project("plain", &manifest(&["once"]));
    sandbox.apply();
    let id = sandbox.enqueue(&["plain.once"]);
    let output = sandbox.coco(&["jobs", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    let tick = &jobs[0];
    assert_eq!(tick["job"], "clock.tick");
    assert_eq!(tick["schedule"], "* * * * * *");
    assert_eq!(tick["timezone"], "UTC");
    assert!(tick["next_fire"].is_string(), "apply set the next fire");
    let once = &jobs[1];
    assert_eq!(
        (&once["last_run"], &once["last_state"]),
        (&serde_json::json!(id), &serde_json::json!("pending"))
    );
    let text = crate::support::stdout(&sandbox.coco(&["jobs"]));
    // An every-second job's next fire may be passed by the time `coco jobs` runs (no
    // scheduler here moves it on): `in 1s` or `due 20ms ago`, never `-`.
    let tick_line = text
        .lines()
        .find(|l| l.starts_with("clock.tick"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        tick_line.contains(" in ") || tick_line.contains(" due "),
        "{text}"
    );
}

#[test]
fn local_yaml_changes_apply_or_say_restart() {
    let sandbox = Sandbox::new();
    sandbox.project("work", &manifest(&["a"]));
    let daemon = sandbox.spawn(&["daemon", "--no-worker"]);
    wait_converged(&sandbox, "start-up");
    let local = sandbox.dir.path().join(".coco/local.yaml");

    // A new home is taken at once: its projects are applied, the old home's left alone.
    let other = sandbox.dir.path().join("home2/other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("coco.yaml"), manifest(&["x"])).unwrap();
    std::fs::write(
        &local,
        "logging:\n  stderr: WARNING\nfolder:\n  home: ~/home2\n  state: ~/state\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !enqueue_works(&sandbox, "other.x") {
        assert!(
            Instant::now() < deadline,
            "new home not applied:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A broken local.yaml changes nothing and says why.
    std::fs::write(&local, "folder:\n  home: [unclosed\n").unwrap();
    daemon.wait_for_log("configuration not reloaded");

    // What needs a restart says so.
    std::fs::write(
        &local,
        "logging:\n  stderr: ERROR\nfolder:\n  home: ~/home2\n  state: ~/state2\n",
    )
    .unwrap();
    daemon.wait_for_log("restart the daemon");
    let log = daemon.log();
    assert!(
        log.contains("folder.state") && log.contains("logging"),
        "{log}"
    );
    let mut daemon = daemon;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon keeps running:\n{log}"
    );
    drop(daemon);
}

/// A saved manifest is converged on its own; when it renames its project or takes another
/// folder's project name, the whole home decides (the old name is deactivated, the clash is
/// reported and nothing of the other project changes).
#[test]
fn renames_and_name_clashes_in_a_saved_manifest() {
    let sandbox = Sandbox::new();
    sandbox.project("one", &manifest(&["a"]));
    sandbox.project("two", &manifest(&["b"]));
    let daemon = sandbox.spawn(&["daemon", "--no-worker"]);
    wait_converged(&sandbox, "start-up");
    std::fs::write(
        sandbox.home().join("one/coco.yaml"),
        format!("project: uno\n{}", manifest(&["a"])),
    )
    .unwrap();
    wait_converged(&sandbox, "a renamed project");
    assert!(enqueue_works(&sandbox, "uno.a"));
    assert!(
        !enqueue_works(&sandbox, "one.a"),
        "the old name is inactive"
    );

    std::fs::write(
        sandbox.home().join("one/coco.yaml"),
        format!("project: two\n{}", manifest(&["a"])),
    )
    .unwrap();
    daemon.wait_for_log("is already used by");
    assert!(
        enqueue_works(&sandbox, "two.b"),
        "the other project is untouched"
    );
    drop(daemon);

    // At start-up too, the folder whose manifest is applied keeps the name, though `one`
    // comes first.
    let daemon = sandbox.spawn(&["daemon", "--no-worker"]);
    daemon.wait_for_log("is already used by");
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "one{}coco.yaml:1:10: project name `two` is already used by",
            std::path::MAIN_SEPARATOR
        )),
        "{log}"
    );
    // (Enqueued with an argument: the earlier run of two.b still waits, no worker runs.)
    let enqueue = |job: &str| {
        let args = ["enqueue", job, "--arg", "after=restart"];
        sandbox.coco(&args).status.code() == Some(0)
    };
    assert!(enqueue("two.b"), "still folder two's project");
    assert!(!enqueue("two.a"), "not folder one's");
    drop(daemon);
}
